"""Finding checkpoint files: a local folder, or a Hub repository through huggingface_hub.

All hub I/O (download, cache, offline mode, tokens, uploads) is delegated to huggingface_hub, imported
lazily so that ``import plugformers`` stays cheap.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugformers.utils.env import env_true

__all__ = [
    "HubDownloadError",
    "HubOptions",
    "PlugformersFileNotFoundError",
    "WeightsLoadingError",
    "is_offline",
    "looks_like_repo_id",
    "push_folder_to_hub",
    "resolve_file",
]

_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.\-]{0,95}/)?[A-Za-z0-9][\w.\-]{0,95}$")

HUB_KWARGS = ("revision", "cache_dir", "local_files_only", "token", "force_download", "proxies", "subfolder")


class PlugformersFileNotFoundError(OSError):
    """A checkpoint file could not be found locally or on the Hub; the message says where we looked."""


class WeightsLoadingError(OSError, RuntimeError):
    """A weights file is missing, corrupt, of the wrong format or does not fit the model; names the file.

    Both an ``OSError`` (a file that cannot be used, like the missing-file errors beside it) and a
    ``RuntimeError`` (what the reference raises for weights whose shapes do not fit), so code written
    against either library catches it.
    """


class HubDownloadError(OSError):
    """A download from the Hub broke off (network or server failure); the message names file and repo."""


@dataclass
class HubOptions:
    """Where and how to look for checkpoint files; every ``from_pretrained`` takes these keywords."""

    revision: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    local_files_only: bool = False
    token: str | bool | None = None
    force_download: bool = False
    proxies: dict[str, str] | None = None
    subfolder: str = ""

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> HubOptions:
        """Take the hub keywords out of ``kwargs`` (leaving the rest for the caller)."""
        found = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
        legacy_token = kwargs.pop("use_auth_token", None)  # the old spelling of `token`
        if legacy_token is not None:
            if found.get("token") is not None and found["token"] != legacy_token:
                raise ValueError("use_auth_token= and token= disagree; pass only token=.")
            found["token"] = legacy_token  # dropping it would turn a private repo into a "not found"
        kwargs.pop("resume_download", None)
        if found.get("subfolder") is None:
            found.pop("subfolder", None)
        return cls(**found)

    def as_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HUB_KWARGS}


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or the older ``TRANSFORMERS_OFFLINE``) is set, read at call time."""
    return env_true("HF_HUB_OFFLINE") or env_true("TRANSFORMERS_OFFLINE")


def looks_like_repo_id(name: str) -> bool:
    """Whether ``name`` can be a Hub repository id (``name`` or ``namespace/name``)."""
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith((".", "-"))


def resolve_file(
    path_or_repo_id: str | os.PathLike[str],
    filename: str,
    *,
    required: bool = True,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
    proxies: dict[str, str] | None = None,
    subfolder: str = "",
) -> str | None:
    """Return a local path to ``filename`` in a folder or Hub repository.

    A missing file gives ``None`` when ``required`` is False, else a :class:`PlugformersFileNotFoundError`
    that names the file and where it was looked for. No network request is made when the name is neither
    a folder nor a valid repo id, or when offline mode (``HF_HUB_OFFLINE=1``) is on.
    """
    source = os.fspath(path_or_repo_id)
    rel = f"{subfolder}/{filename}" if subfolder else filename
    if os.path.isdir(source):
        candidate = os.path.join(source, rel)
        if os.path.isfile(candidate):
            return candidate
        if required:
            raise PlugformersFileNotFoundError(f"{source!r} has no file named {rel!r}.")
        return None
    if os.path.isfile(source):
        raise PlugformersFileNotFoundError(
            f"{source!r} is a file; pass the folder that contains {filename!r} instead."
        )
    if not looks_like_repo_id(source) or source.startswith((".", "/", "~")) or os.sep in source.rstrip("/").split("/", 1)[-1]:
        raise PlugformersFileNotFoundError(
            f"{source!r} is neither a local folder nor a valid Hub repository id (expected 'name' or 'owner/name')."
        )
    offline = local_files_only or is_offline()
    return _hub_download(
        source,
        filename,
        subfolder=subfolder,
        required=required,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=offline,
        token=token,
        force_download=force_download,
        proxies=proxies,
    )


def _hub_download(repo_id: str, filename: str, *, required: bool, subfolder: str, **kw: Any) -> str | None:
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    kw = {k: v for k, v in kw.items() if v is not None}
    if "proxies" in kw:
        kw.pop("proxies")  # huggingface_hub >= 1.0 configures proxies through the environment
    where = f"{repo_id!r}" + (f" at revision {kw['revision']!r}" if kw.get("revision") else "")
    shown = f"{subfolder}/{filename}" if subfolder else filename  # what the repo lacks, subfolder included
    local_only = bool(kw.get("local_files_only"))
    try:
        return str(
            huggingface_hub.hf_hub_download(repo_id, filename, subfolder=subfolder or None, **kw)
        )
    except hf_errors.RepositoryNotFoundError as exc:
        raise PlugformersFileNotFoundError(
            f"{repo_id!r} is not a local folder, and no Hub repository of that name could be accessed "
            "(it does not exist, is private, or the token lacks access)."
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise PlugformersFileNotFoundError(
            f"Revision {kw.get('revision')!r} does not exist in Hub repository {repo_id!r}."
        ) from exc
    except hf_errors.EntryNotFoundError as exc:
        if isinstance(exc, hf_errors.LocalEntryNotFoundError) and not isinstance(exc, hf_errors.RemoteEntryNotFoundError):
            raise _offline_error(shown, where, local_only=local_only) from exc
        if not required:
            return None
        raise PlugformersFileNotFoundError(f"Hub repository {where} has no file named {shown!r}.") from exc
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as exc:
        raise _offline_error(shown, where, local_only=local_only) from exc
    except hf_errors.HFValidationError as exc:
        raise PlugformersFileNotFoundError(f"{repo_id!r} is not a valid Hub repository id: {exc}") from exc
    except (PlugformersFileNotFoundError, KeyboardInterrupt):
        raise
    except Exception as exc:  # network and protocol errors from the HTTP stack, whatever its library
        raise HubDownloadError(
            f"Downloading {filename!r} from {where} failed: {type(exc).__name__}: {exc}. "
            "Nothing partial was kept in the cache; try again, or pass a local folder."
        ) from exc


def _offline_error(filename: str, where: str, *, local_only: bool) -> PlugformersFileNotFoundError:
    if is_offline():
        reason = "offline mode is on (HF_HUB_OFFLINE=1)"
        fix = "Unset HF_HUB_OFFLINE to download it, or pass a local folder."
    elif local_only:
        reason = "local_files_only=True forbids downloading it"
        fix = "Drop local_files_only to download it, or pass a local folder."
    else:
        reason = "the Hub could not be reached"
        fix = "Download it once while online, or pass a local folder."
    return PlugformersFileNotFoundError(
        f"Cannot find {filename!r} for {where}: it is not in the local cache and {reason}. {fix}"
    )


def push_folder_to_hub(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    replaced_patterns: list[str] | None = None,
    only_files: list[str] | None = None,
) -> Any:
    """Create ``repo_id`` if needed and upload the contents of ``folder`` in one commit.

    ``repo_id`` may omit the namespace (``"my-model"``): the upload goes to the full id the Hub gives back.
    Remote files matching ``replaced_patterns`` that ``folder`` does not hold are deleted in the same commit
    (older versions stay in the repository's history). ``only_files`` limits the upload to those paths
    (relative to ``folder``).
    """
    import huggingface_hub

    api = huggingface_hub.HfApi(token=token)
    full_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr/"):
        api.create_branch(full_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=full_id,
        folder_path=str(Path(folder)),
        commit_message=commit_message or "Upload with plugformers",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
        delete_patterns=replaced_patterns or None,
        allow_patterns=[glob_escape(f) for f in only_files] if only_files is not None else None,
    )


def glob_escape(path: str) -> str:
    """``path`` as an fnmatch pattern that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def folder_state(folder: str | os.PathLike[str]) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (relative POSIX path) with its modification time and size; {} if absent."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    state = {}
    for p in root.rglob("*"):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            st = p.stat()
            state[p.relative_to(root).as_posix()] = (st.st_mtime_ns, st.st_size)
    return state


class PushToHubMixin:
    """Adds ``push_to_hub`` to anything with a ``save_pretrained(folder)``: save to a temporary folder, upload it."""

    # Remote files a new upload supersedes even where it does not overwrite them (a model pushed as shards
    # after a single-file push must not leave the old model.safetensors, which loading would prefer).
    _hub_replaced_patterns: tuple[str, ...] = ()

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _push_saved_folder(
        self,
        save_directory: str | os.PathLike[str],
        before: dict[str, tuple[int, int]],
        repo_id: str | None,
        kwargs: dict[str, Any],
    ) -> Any:
        """``save_pretrained(..., push_to_hub=True)``: upload what this save wrote into ``save_directory``.

        The files uploaded are the ones the save just wrote, exactly as written (a model saved with
        ``state_dict=`` or a tokenizer saved with ``filename_prefix=`` is pushed as saved); other files in
        the folder are left out. ``before`` is :func:`folder_state` of the folder taken before saving.
        """
        after = folder_state(save_directory)
        # Files matching the replaced patterns always go up: one that looked unchanged (rewritten within a
        # clock tick at the same size) would otherwise be deleted remotely by this very commit.
        written = sorted(
            path
            for path, st in after.items()
            if before.get(path) != st or any(fnmatch.fnmatch(path, p) for p in self._hub_replaced_patterns)
        )
        return push_folder_to_hub(
            save_directory,
            repo_id or Path(os.path.abspath(os.fspath(save_directory))).name,
            commit_message=kwargs.get("commit_message") or f"Upload {type(self).__name__}",
            commit_description=kwargs.get("commit_description"),
            private=kwargs.get("private"),
            token=kwargs.get("token"),
            revision=kwargs.get("revision"),
            create_pr=bool(kwargs.get("create_pr", False)),
            replaced_patterns=list(self._hub_replaced_patterns),
            only_files=written,
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        **save_kwargs: Any,
    ) -> Any:
        """Save this object and upload the folder to the Hub repository ``repo_id`` (created if missing)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="plugformers-push-") as tmp:
            self.save_pretrained(tmp, **save_kwargs)
            return push_folder_to_hub(
                tmp,
                repo_id,
                commit_message=commit_message or f"Upload {type(self).__name__}",
                commit_description=commit_description,
                private=private,
                token=token,
                revision=revision,
                create_pr=create_pr,
                replaced_patterns=list(self._hub_replaced_patterns),
            )
