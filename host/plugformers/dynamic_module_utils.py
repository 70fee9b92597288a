"""Code that travels with a checkpoint: saving it (``auto_map``) and loading it (``trust_remote_code``).

Saving: when a class was registered with ``register_for_auto_class``, :func:`custom_object_save` copies the
``.py`` file that defines it, plus every module it imports relatively from the same folder, next to the
checkpoint, and records ``"auto_map": {"AutoX": "module.Class"}`` in the config (the reference library's
format, so either library can load the other's repositories).

Loading: :func:`resolve_trust_remote_code` is called first and refuses, without importing anything, unless
the user passed ``trust_remote_code=True``. Then :func:`get_class_from_dynamic_module` fetches the module and
its relative imports (parsed with :mod:`ast`, never executed, to find them) into a content-addressed cache
under ``$PLUGFORMERS_HOME/modules/<repo>/<key>`` and imports it as a package unique to that key, so two
revisions of one repository never shadow each other. The key is the commit hash for Hub repositories and a
hash of the folder's ``.py`` files for local folders; all classes of one snapshot share the package, so a
model file's ``from .configuration_x import XConfig`` is the class ``AutoConfig`` returned. Two processes
filling the cache at once cannot corrupt it: files are written to temporary names and renamed into place
under a file lock.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import importlib.util
import keyword
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from plugformers.utils.hub import PlugformersFileNotFoundError, looks_like_repo_id, resolve_file
from plugformers.utils.io import atomic_write_bytes
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import all_auto_class_names

__all__ = [
    "RemoteCodeError",
    "auto_map_files",
    "custom_object_save",
    "get_class_from_dynamic_module",
    "modules_cache_dir",
    "parse_class_reference",
    "resolve_trust_remote_code",
]

logger = get_logger(__name__)

_COMMIT_IN_PATH = re.compile(r"[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]")
_IMPORT_LOCK = threading.RLock()
# Relative-import chains longer than this are refused (a guard against pathological repositories).
_MAX_CODE_FILES = 64


class RemoteCodeError(ValueError):
    """Code saved with a checkpoint is unsafe or unusable (path escapes, bad names, missing modules)."""


# ----- names ---------------------------------------------------------------------------------------------


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def auto_class_name(auto_class: str | type, prefix: str | tuple[str, ...] = "Auto") -> str:
    """The name of ``auto_class`` once checked against plugformers' Auto classes (``prefix`` narrows them).

    A misspelt name would otherwise be written into ``auto_map`` and fail only when someone loads the code.
    """
    name = auto_class if isinstance(auto_class, str) else getattr(auto_class, "__name__", repr(auto_class))
    valid = sorted(n for n in all_auto_class_names() if n.startswith(prefix))
    if name not in valid:
        raise ValueError(f"{name!r} is not a plugformers Auto class; use one of: {', '.join(valid)}.")
    return name


def parse_class_reference(
    class_reference: str, default_repo: str | None = None
) -> tuple[str | None, str, str]:
    """Split ``"module.Class"`` or ``"repo_id--module.Class"`` into ``(repo, module, class)``.

    Refuses anything that could point outside the repository: ``..``, slashes, absolute paths, dotted
    module paths and names that are not Python identifiers.
    """
    if not isinstance(class_reference, str):
        raise RemoteCodeError(
            f"auto_map entries must be strings like 'modeling_x.MyModel', got {type(class_reference).__name__} "
            f"{class_reference!r}."
        )
    repo: str | None = default_repo
    ref = class_reference
    if "--" in ref:
        repo, ref = ref.split("--", 1)
        if not looks_like_repo_id(repo) or repo.startswith((".", "/", "~")):
            raise RemoteCodeError(
                f"auto_map entry {class_reference!r} names {repo!r}, which is not a valid Hub repository id."
            )
    if "/" in ref or "\\" in ref or ".." in ref or os.path.isabs(ref):
        raise RemoteCodeError(
            f"auto_map entry {class_reference!r} points outside the repository; entries must be "
            "'module.Class' naming a .py file at the top of the repository."
        )
    parts = ref.split(".")
    if len(parts) != 2 or not all(_is_identifier(p) for p in parts):
        raise RemoteCodeError(
            f"auto_map entry {class_reference!r} is not of the form 'module.Class' with both parts Python identifiers."
        )
    return repo, parts[0], parts[1]


def auto_map_files(auto_map: Mapping[str, Any] | Iterable[Any]) -> list[str]:
    """The top-level ``.py`` files an ``auto_map`` (or a list of class references) would run, validated.

    Values may be strings or ``[slow, fast]`` lists (tokenizers, ``None`` allowed). Entries that name
    another repository (``repo--module.Class``) are listed as ``repo/module.py``.
    """
    values = list(auto_map.values()) if isinstance(auto_map, Mapping) else list(auto_map)
    files: set[str] = set()
    for value in values:
        refs = value if isinstance(value, (list, tuple)) else [value]
        for ref in refs:
            if ref is None:
                continue
            repo, module, _cls = parse_class_reference(ref)
            files.add(f"{repo}/{module}.py" if repo else f"{module}.py")
    return sorted(files)


# ----- trust ---------------------------------------------------------------------------------------------


def resolve_trust_remote_code(
    trust_remote_code: bool | None,
    repo: str | os.PathLike[str],
    files: Iterable[str],
    has_local_code: bool = False,
) -> bool:
    """Decide whether to run a repository's own code; True means "load the classes from the repo".

    ``files`` are the code files that loading would run (empty when the repository needs none). Without
    ``trust_remote_code=True`` a repository whose classes are not otherwise available raises a
    ``ValueError`` naming those files; nothing is ever asked interactively, and nothing is imported here.
    When the classes are also installed locally (``has_local_code``), those are used unless the user trusts
    the repository explicitly.
    """
    if trust_remote_code is not None and not isinstance(trust_remote_code, bool):
        raise TypeError(f"trust_remote_code must be True, False or None, got {trust_remote_code!r}.")
    files = sorted(set(files))
    if not files:
        return False
    if trust_remote_code:
        return True
    if has_local_code:
        return False
    listed = ", ".join(files)
    raise ValueError(
        f"{os.fspath(repo)!r} contains custom code that must run to load it: {listed}. "
        "Nothing from it has been imported. Read those files, and if you trust them pass "
        "trust_remote_code=True (and pin revision=<commit hash> so later pushes cannot change the code you run)."
    )


# ----- saving --------------------------------------------------------------------------------------------


def _relative_imports(source: str, filename: str) -> list[str]:
    """Module names imported relatively (``from .x import y``, ``from . import x``) by ``source``."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise RemoteCodeError(f"{filename} is not valid Python (line {exc.lineno}: {exc.msg}).") from exc
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        if node.level > 1:
            raise RemoteCodeError(
                f"{filename} line {node.lineno} imports from {'.' * node.level}{node.module or ''}, which points "
                "outside its folder; code shipped with a checkpoint may only import relatively from its own folder."
            )
        if node.module is None:
            names = [alias.name for alias in node.names]
        elif "." in node.module:
            raise RemoteCodeError(
                f"{filename} line {node.lineno} imports from .{node.module}: sub-packages are not supported in "
                "code shipped with a checkpoint; keep every module at the top of the folder."
            )
        else:
            names = [node.module]
        for name in names:
            if not _is_identifier(name):
                raise RemoteCodeError(
                    f"{filename} line {node.lineno} imports {name!r}, not a valid module name."
                )
            found.append(name)
    return found


def _absolute_imports(source: str, filename: str) -> set[str]:
    """Top-level packages imported absolutely at module level (imports inside ``try`` count as optional)."""
    tree = ast.parse(source, filename=filename)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _local_code_files(module_file: Path) -> list[Path]:
    """``module_file`` and, recursively, the files it imports relatively from the same folder."""
    folder = module_file.parent
    todo = [module_file]
    seen: dict[Path, None] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        for name in _relative_imports(path.read_text(encoding="utf-8"), str(path)):
            candidate = folder / f"{name}.py"
            if candidate.is_file():
                todo.append(candidate)
            elif not (folder / name / "__init__.py").is_file():
                raise RemoteCodeError(f"{path} imports .{name}, but {candidate} does not exist.")
            else:
                raise RemoteCodeError(
                    f"{path} imports the sub-package .{name}; only single-file modules in the same folder can be "
                    "shipped with a checkpoint."
                )
    return list(seen)


def _class_reference(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def _is_fast_tokenizer(cls: type) -> bool:
    return any(base.__name__ == "PreTrainedTokenizerFast" for base in cls.__mro__)


def _auto_map_value(obj: Any) -> str | list[str | None]:
    cls = type(obj)
    if "Tokenizer" not in cls.__name__:
        return _class_reference(cls)
    # Tokenizers are recorded as [slow, fast], either of which may be absent.
    if _is_fast_tokenizer(cls):
        slow = getattr(obj, "slow_tokenizer_class", None)
        slow_ref = _class_reference(slow) if isinstance(slow, type) else None
        return [slow_ref, _class_reference(cls)]
    return [_class_reference(cls), None]


def _record_auto_map(target: Any, auto_class: str, value: str | list[str | None]) -> None:
    if isinstance(target, dict):
        current = dict(target.get("auto_map") or {})
        current[auto_class] = value
        target["auto_map"] = current
        return
    existing = getattr(target, "auto_map", None)
    updated = dict(existing) if isinstance(existing, Mapping) else {}
    updated[auto_class] = value
    target.auto_map = updated


def custom_object_save(obj: Any, folder: str | os.PathLike[str], config: Any = None) -> list[str]:
    """Copy the code defining ``type(obj)`` into ``folder`` and record it in ``config``'s ``auto_map``.

    ``config`` is a config object, a dict (``tokenizer_config.json`` contents), or a list of them; the entry
    written is ``{obj._auto_class: "module.Class"}`` (``[slow, fast]`` for tokenizers). Returns the paths of
    the files written. Classes defined in ``__main__`` cannot be shipped and are skipped with a warning.
    """
    cls = type(obj)
    auto_class = getattr(obj, "_auto_class", None)
    if auto_class is None:
        return []
    if not isinstance(auto_class, str) or not _is_identifier(auto_class):
        raise RemoteCodeError(f"{cls.__name__}._auto_class must be an Auto class name, got {auto_class!r}.")
    module = sys.modules.get(cls.__module__)
    module_file = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or module_file is None:
        logger.warning(
            "%s is defined in %s, not in a .py file of its own, so its code cannot be saved with the checkpoint; "
            "move it into a module to share it with trust_remote_code.",
            cls.__name__,
            cls.__module__,
        )
        return []
    module_path = Path(module_file).resolve()
    if module_path.suffix != ".py":
        raise RemoteCodeError(
            f"{cls.__name__} is defined in {module_path}, which is not a .py file; cannot ship it."
        )

    value = _auto_map_value(obj)
    targets = config if isinstance(config, (list, tuple)) else [config]
    for target in targets:
        if target is not None:
            _record_auto_map(target, auto_class, value)

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for path in _local_code_files(module_path):
        dest = out_dir / path.name
        atomic_write_bytes(dest, path.read_bytes())
        written.append(str(dest))
    return written


# ----- loading -------------------------------------------------------------------------------------------


def modules_cache_dir() -> Path:
    """Where fetched code lives: ``$PLUGFORMERS_HOME/modules`` (default ``~/.cache/plugformers/modules``)."""
    home = os.environ.get("PLUGFORMERS_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "plugformers"
    )
    return Path(home) / "modules"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)[:80] or "repo"


def _fetch_code(
    repo: str, module: str, hub_kwargs: dict[str, Any], class_reference: str
) -> tuple[dict[str, bytes], str | None]:
    """Download/copy ``module.py`` and its relative imports; returns ``({filename: bytes}, commit hash)``."""
    files: dict[str, bytes] = {}
    commit: str | None = None
    todo = [module]
    while todo:
        name = todo.pop()
        filename = f"{name}.py"
        if filename in files:
            continue
        if len(files) >= _MAX_CODE_FILES:
            raise RemoteCodeError(f"{repo!r}: more than {_MAX_CODE_FILES} code files are imported; refusing.")
        try:
            path = resolve_file(repo, filename, **hub_kwargs)
        except PlugformersFileNotFoundError as exc:
            what = f"auto_map entry {class_reference!r} needs" if name == module else "the code imports"
            raise PlugformersFileNotFoundError(f"{what} {filename!r}, which cannot be found: {exc}") from exc
        assert path is not None
        match = _COMMIT_IN_PATH.search(path)
        if match:
            commit = match.group(1)
        data = Path(path).read_bytes()
        files[filename] = data
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteCodeError(f"{filename} in {repo!r} is not UTF-8 text.") from exc
        todo.extend(_relative_imports(source, f"{repo}/{filename}"))
    return files, commit


def _check_requirements(files: dict[str, bytes], repo: str) -> None:
    local = {name[:-3] for name in files}
    missing: set[str] = set()
    for filename, data in files.items():
        for top in _absolute_imports(data.decode("utf-8"), filename):
            if top in local or top in sys.builtin_module_names:
                continue
            if importlib.util.find_spec(top) is None:
                missing.add(top)
    if missing:
        raise ImportError(
            f"The code of {repo!r} needs packages that are not installed: {', '.join(sorted(missing))}. "
            f"Install them (pip install {' '.join(sorted(missing))}) and try again."
        )


def _files_digest(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def _folder_code_digest(folder: str) -> str:
    """Hash of every top-level ``.py`` file of a local folder: the key under which its code is cached."""
    root = Path(folder)
    return _files_digest({p.name: p.read_bytes() for p in sorted(root.glob("*.py")) if p.is_file()})


def _materialise(files: dict[str, bytes], label: str, key: str) -> Path:
    """Put ``files`` into the cache folder for ``(label, key)``; safe against concurrent writers.

    All classes of one repository snapshot share one folder (hence one package), so the config class a
    model file imports relatively is the very class ``AutoConfig`` returned. Every file is written to a
    temporary name and renamed into place under a file lock; ``__init__.py`` is written last.
    """
    final = modules_cache_dir() / _safe_name(label.replace("/", "--")) / key
    if (final / "__init__.py").is_file() and all(
        (final / name).is_file() and (final / name).read_bytes() == data for name, data in files.items()
    ):
        return final
    final.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(final.parent / f".{key}.lock")):
        for name, data in [*sorted(files.items()), ("__init__.py", b"")]:
            target = final / name
            if target.is_file() and target.read_bytes() == data:
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=final)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    return final


def _import_package(folder: Path, package: str, module: str) -> Any:
    with _IMPORT_LOCK:
        if package not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                package, folder / "__init__.py", submodule_search_locations=[str(folder)]
            )
            assert spec is not None and spec.loader is not None
            pkg = importlib.util.module_from_spec(spec)
            sys.modules[package] = pkg
            try:
                spec.loader.exec_module(pkg)
            except BaseException:
                sys.modules.pop(package, None)
                raise
        importlib.invalidate_caches()  # files may have been added to the folder since it was imported
        return importlib.import_module(f"{package}.{module}")


def get_class_from_dynamic_module(
    class_reference: str,
    pretrained_model_name_or_path: str | os.PathLike[str],
    *,
    code_revision: str | None = None,
    **hub_kwargs: Any,
) -> type:
    """Import and return the class named by an ``auto_map`` entry of a folder or Hub repository.

    ``class_reference`` is ``"module.Class"`` (code in the checkpoint's own repository) or
    ``"repo_id--module.Class"`` (code in another repository). ``code_revision`` pins the code's revision;
    by default the code comes from the same ``revision`` as the checkpoint. Call this only after
    :func:`resolve_trust_remote_code` returned True: it executes the repository's code.
    """
    hub_kwargs = {k: v for k, v in hub_kwargs.items() if v is not None}
    source = os.fspath(pretrained_model_name_or_path)
    repo, module, class_name = parse_class_reference(class_reference, default_repo=source)
    assert repo is not None
    if repo != source:
        hub_kwargs["revision"] = code_revision
        hub_kwargs.pop("subfolder", None)
    elif code_revision is not None:
        hub_kwargs["revision"] = code_revision
    files, commit = _fetch_code(repo, module, hub_kwargs, class_reference)
    _check_requirements(files, repo)
    if os.path.isdir(repo):
        where = Path(repo).resolve()
        label = f"local_{where.name}_{hashlib.sha256(str(where).encode()).hexdigest()[:8]}"
        key = "local-" + _folder_code_digest(repo)[:20]
    else:
        label = repo
        key = commit or "files-" + _files_digest(files)[:20]
    folder = _materialise(files, label, key)
    package = f"plugformers_remote_{_safe_name(label)}_{key.replace('-', '_')[:26]}"
    try:
        mod = _import_package(folder, package, module)
    except ImportError as exc:
        raise ImportError(f"Importing {module}.py from {repo!r} failed: {exc}") from exc
    cls = getattr(mod, class_name, None)
    if not isinstance(cls, type):
        raise RemoteCodeError(
            f"auto_map entry {class_reference!r}: {module}.py in {repo!r} defines no class named {class_name!r}."
        )
    return cls
