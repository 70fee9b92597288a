"""Crash-safe writes.

Every ``save_pretrained`` in plugformers goes through :func:`atomic_directory`: the new files are
written into a staging folder beside the target, which is then swapped in with one atomic rename.
A process killed at any point leaves either the old checkpoint or the new one on disk, never a mix.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_directory", "atomic_write_bytes", "atomic_write_text", "write_json"]

# Staging folders that are being filled right now, so that nested saves (a processor saving its
# tokenizer, a model saving its config) write into the outer staging folder instead of swapping twice.
_OPEN_STAGING: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "plugformers_open_staging", default=frozenset()
)

_RENAME_EXCHANGE = 2  # from <linux/fs.h>


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text flavour of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, *, sort_keys: bool = True) -> None:
    """Write ``obj`` as indented JSON (the layout the reference library uses) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    res = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if res != 0:
        err = ctypes.get_errno()
        # EINVAL/ENOSYS: the filesystem or kernel cannot exchange; fall back to two renames.
        if err in (22, 38, 95):
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True


#: Files at least this large are hard-linked into the staging folder instead of copied. Writers must
#: replace such files (unlink, then write) rather than rewrite them in place; the weight writers do.
LINK_THRESHOLD = 64 * 1024 * 1024


def _link_tree(src: Path, dst: Path) -> None:
    """Populate ``dst`` with ``src``'s files: copies, so in-place rewrites cannot reach the live folder,
    except hard links for very large files (weights), which writers always delete before writing."""

    def link_or_copy(s: str, d: str) -> None:
        if os.path.getsize(s) >= LINK_THRESHOLD:
            try:
                os.link(s, d)
                return
            except OSError:
                pass
        shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy, dirs_exist_ok=True, symlinks=True)


def _owner_tag() -> str:
    """``<host>-<pid>``: which process on which machine a staging folder belongs to."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}"


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:staging|old)-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _remove_leftovers(target: Path) -> None:
    """Delete the staging folders of earlier saves of ``target`` whose process died mid-save.

    Only folders made by a process of this machine that no longer exists are touched (a folder of a live
    save, or of another machine sharing the file system, is left alone). POSIX only: elsewhere there is no
    safe way to ask whether a process exists.
    """
    if os.name != "posix":
        return
    host = _owner_tag().rsplit("-", 1)[0]
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return
    for entry in siblings:
        match = _LEFTOVER.match(entry.name)
        if match is None or match["name"] != target.name or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _process_is_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging folder that replaces ``path`` atomically when the block succeeds.

    The staging folder starts with a copy of what ``path`` already holds (very large files are hard
    links), so saving a tokenizer next to a model keeps the model. Writers overwrite or delete files in it freely: the target is only
    touched by the final swap, and if the block raises, the target is left exactly as it was. Staging
    folders left by earlier saves of ``path`` whose process was killed are removed first.
    """
    target = Path(path).absolute()
    if str(target) in _OPEN_STAGING.get():
        yield target
        return
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"Cannot save into {str(path)!r}: it exists and is a file, not a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-{_owner_tag()}-", dir=target.parent))
    token = None
    try:
        if target.exists():
            _link_tree(target, staging)
        token = _OPEN_STAGING.set(_OPEN_STAGING.get() | {str(staging)})
        yield staging
        _OPEN_STAGING.reset(token)
        token = None
        for root, _dirs, files in os.walk(staging):
            for name in files:
                p = Path(root, name)
                if not p.is_symlink():
                    with open(p, "rb") as fh:
                        os.fsync(fh.fileno())
        _fsync_dir(staging)
        if not target.exists():
            os.rename(staging, target)
        elif _exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # staging now holds the old contents
        else:
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{_owner_tag()}-", dir=target.parent))
            os.rmdir(backup)
            os.rename(target, backup)
            os.rename(staging, target)
            shutil.rmtree(backup, ignore_errors=True)
        _fsync_dir(target.parent)
    finally:
        if token is not None:
            _OPEN_STAGING.reset(token)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
