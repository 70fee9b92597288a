"""A small local stand-in for the Hugging Face Hub, for tests that exercise real downloads and uploads.

:class:`LocalHub` is an HTTP server on ``127.0.0.1`` (a free port, a background thread) that answers the part
of the Hub API that huggingface_hub 2.4 uses to resolve, download and upload files:

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}`` with the ``X-Repo-Commit``/``ETag``/``X-Error-Code``
  headers huggingface_hub relies on (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and byte ranges;
* ``GET /api/models/{repo_id}[/revision/{rev}]`` (model info), ``/tree/{rev}``, ``/refs``, ``POST /paths-info/{rev}``;
* ``POST /api/repos/create``, ``/api/models/{repo_id}/branch/{name}``, ``/preupload/{rev}`` (every file is
  ``"regular"``, so no LFS or Xet transfer is needed) and ``/commit/{rev}`` (the NDJSON commit payload);
* ``GET /api/whoami-v2``, ``POST /api/validate-yaml`` (a model card's metadata, checked before its upload).

Repositories are in memory: each commit is an immutable snapshot named by a real 40-hex hash, branches are
movable pointers, so ``revision=<commit>`` pins a snapshot while ``main`` moves on. Private repositories need
the hub's token. :meth:`LocalHub.fail_downloads` makes the next downloads die mid-body (a network failure).

Pointing huggingface_hub at the server. huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``,
``HF_HUB_DISABLE_XET`` and ``HF_HUB_CACHE`` once, at import, into ``huggingface_hub.constants``; the module-level
``HfApi`` instance also keeps the endpoint it saw then. So either

* run the code under test in a subprocess whose environment is ``hub.env(cache_dir)`` (the most faithful:
  nothing is patched), or
* inside the test process use ``with hub.patched(cache_dir): ...``, which sets ``constants.ENDPOINT``,
  ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (what ``hf_hub_url`` formats), ``constants.HF_HUB_CACHE``,
  ``constants.HF_HUB_DISABLE_XET`` and the default ``HfApi`` instance's endpoint, plus ``HF_TOKEN``, and
  restores them afterwards. Both were checked against huggingface_hub 2.4.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Commit", "HubRepo", "LocalHub"]

DEFAULT_USER = "tester"
DEFAULT_TOKEN = "hf_local_test_token"


@dataclass(frozen=True)
class Commit:
    """An immutable snapshot of a repository."""

    oid: str
    files: Mapping[str, bytes]
    parent: str | None
    message: str
    created: float


@dataclass
class HubRepo:
    """A repository: commits by hash and branches pointing at them."""

    repo_id: str
    private: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """A branch name, a full commit hash or a unique hash prefix (7+ characters) to its commit."""
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.commits:
            return self.commits[revision]
        if re.fullmatch(r"[0-9a-f]{7,39}", revision):
            found = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(found) == 1:
                return found[0]
        return None


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _commit_oid(files: Mapping[str, bytes], parent: str | None, message: str, created: float) -> str:
    h = hashlib.sha1()
    h.update(f"parent {parent}\ntime {created!r}\nmessage {message}\n".encode())
    for name in sorted(files):
        h.update(f"{name}\0{_git_blob_sha1(files[name])}\n".encode())
    return h.hexdigest()


def _normalise_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"Invalid path in repository: {path!r}")
    return "/".join(parts)


class LocalHub:
    """An in-memory Hub served over HTTP on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, *, user: str = DEFAULT_USER, token: str = DEFAULT_TOKEN) -> None:
        self.user = user
        self.token = token
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._failures: list[tuple[str, int]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not running; call start() first.")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> LocalHub:
        if self._server is not None:
            return self
        hub = self

        class Handler(_HubHandler):
            owner = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- repositories -------------------------------------------------------------------------------------

    def _qualify(self, repo_id: str) -> str:
        return repo_id if "/" in repo_id else f"{self.user}/{repo_id}"

    def get_repo(self, repo_id: str) -> HubRepo | None:
        with self._lock:
            return self.repos.get(repo_id) or self.repos.get(self._qualify(repo_id))

    def create_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | str | os.PathLike[str] | None = None,
        *,
        private: bool = False,
        message: str = "initial commit",
    ) -> str:
        """Create ``repo_id`` (``.gitattributes`` only, like the Hub) and optionally commit ``files``.

        ``files`` is a ``{path: content}`` mapping or a local folder whose files are uploaded. Returns the
        hash of the latest commit on ``main``.
        """
        repo_id = self._qualify(repo_id)
        with self._lock:
            if repo_id in self.repos:
                raise ValueError(f"Repository {repo_id!r} already exists on the local hub.")
            repo = HubRepo(repo_id, private=private)
            self.repos[repo_id] = repo
            oid = self._commit(
                repo,
                "main",
                {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                (),
                "initial",
            )
            if files is not None:
                oid = self.commit(repo_id, files, message=message)
            return oid

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | str | os.PathLike[str],
        *,
        branch: str = "main",
        message: str = "update",
        delete: tuple[str, ...] = (),
    ) -> str:
        """Add/replace ``files`` (mapping or folder) and delete paths on ``branch``; returns the new commit hash."""
        repo = self.get_repo(repo_id)
        if repo is None:
            raise KeyError(f"No repository {repo_id!r} on the local hub.")
        if isinstance(files, (str, os.PathLike)):
            root = Path(files)
            if not root.is_dir():
                raise NotADirectoryError(f"{root} is not a folder.")
            files = {
                p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            }
        added = {
            _normalise_path(k): v.encode("utf-8") if isinstance(v, str) else bytes(v)
            for k, v in files.items()
        }
        with self._lock:
            return self._commit(repo, branch, added, delete, message)

    def _commit(
        self, repo: HubRepo, branch: str, added: Mapping[str, bytes], delete: tuple[str, ...], message: str
    ) -> str:
        parent = repo.branches.get(branch)
        snapshot = dict(repo.commits[parent].files) if parent else {}
        for path in delete:
            path = _normalise_path(path)
            snapshot.pop(path, None)
            for key in [k for k in snapshot if k.startswith(path + "/")]:
                del snapshot[key]
        snapshot.update(added)
        created = time.time()
        oid = _commit_oid(snapshot, parent, message, created)
        repo.commits[oid] = Commit(oid, snapshot, parent, message, created)
        repo.branches[branch] = oid
        return oid

    def create_branch(self, repo_id: str, branch: str, revision: str = "main") -> str:
        repo = self.get_repo(repo_id)
        if repo is None:
            raise KeyError(f"No repository {repo_id!r} on the local hub.")
        with self._lock:
            commit = repo.resolve(revision)
            if commit is None:
                raise KeyError(f"No revision {revision!r} in {repo_id!r}.")
            repo.branches[branch] = commit.oid
            return commit.oid

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (for assertions)."""
        repo = self.get_repo(repo_id)
        commit = repo.resolve(revision) if repo else None
        if commit is None:
            raise KeyError(f"No revision {revision!r} of {repo_id!r} on the local hub.")
        return dict(commit.files)

    # ----- fault injection ----------------------------------------------------------------------------------

    def fail_downloads(self, path_suffix: str = "", *, times: int = 1, after_bytes: int = 8) -> None:
        """The next ``times`` GETs of a file ending in ``path_suffix`` send ``after_bytes`` bytes, then drop."""
        with self._lock:
            self._failures.extend([(path_suffix, after_bytes)] * times)

    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            for i, (suffix, after) in enumerate(self._failures):
                if path.endswith(suffix):
                    del self._failures[i]
                    return after
        return None

    # ----- pointing huggingface_hub here --------------------------------------------------------------------

    def env(self, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
        """Environment variables that make a *new* process use this hub (and ``cache_dir`` as its cache)."""
        out = {
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "0",
            "HF_TOKEN": self.token,
            "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "10",
        }
        if cache_dir is not None:
            out["HF_HUB_CACHE"] = os.fspath(cache_dir)
            out["HF_HOME"] = os.fspath(Path(cache_dir).parent / "hf_home")
        return out

    @contextlib.contextmanager
    def patched(self, cache_dir: str | os.PathLike[str] | None = None) -> Iterator[LocalHub]:
        """Point the already-imported huggingface_hub of this process at the hub, restoring it on exit."""
        from huggingface_hub import constants, hf_api

        saved = {
            name: getattr(constants, name)
            for name in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_CACHE", "HF_HUB_DISABLE_XET")
        }
        saved_api_endpoint = hf_api.api.endpoint
        saved_token = os.environ.get("HF_TOKEN")
        try:
            constants.ENDPOINT = self.url
            constants.HUGGINGFACE_CO_URL_TEMPLATE = self.url + "/{repo_id}/resolve/{revision}/{filename}"
            constants.HF_HUB_DISABLE_XET = True
            if cache_dir is not None:
                constants.HF_HUB_CACHE = os.fspath(cache_dir)
            hf_api.api.endpoint = self.url
            os.environ["HF_TOKEN"] = self.token
            yield self
        finally:
            for name, value in saved.items():
                setattr(constants, name, value)
            hf_api.api.endpoint = saved_api_endpoint
            if saved_token is None:
                os.environ.pop("HF_TOKEN", None)
            else:
                os.environ["HF_TOKEN"] = saved_token


class _Reply(Exception):
    """Raised inside a handler to send an error response."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.extra = extra or {}
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


class _HubHandler(BaseHTTPRequestHandler):
    owner: LocalHub
    protocol_version = "HTTP/1.1"
    server_version = "plugformers-local-hub/1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ----- plumbing -----------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False
    ) -> None:
        self.send_response(status)
        merged = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        merged.update(headers or {})
        for key, value in merged.items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _authorised(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.owner.token}"

    def _repo(self, repo_id: str, *, write: bool = False) -> HubRepo:
        repo = self.owner.get_repo(repo_id)
        if repo is None or (repo.private and not self._authorised()):
            raise _Reply(404, "Repository not found", "RepoNotFound")
        if write and not self._authorised():
            raise _Reply(401, "Invalid credentials in Authorization header")
        return repo

    @staticmethod
    def _revision(repo: HubRepo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise _Reply(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        self.owner.requests.append((method, self.path))
        try:
            self._route(method, path, query)
        except _Reply as reply:
            headers = {"X-Error-Message": reply.message, **reply.headers}
            if reply.code:
                headers["X-Error-Code"] = reply.code
            self._send(
                reply.status,
                json.dumps({"error": reply.message, **reply.extra}).encode(),
                headers,
                head=method == "HEAD",
            )
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ----- routes -------------------------------------------------------------------------------------------

    _API_REPO = re.compile(
        r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)(?P<rest>/(?:revision|tree|refs|paths-info|preupload|commit|branch)(?:/.*)?)?$"
    )
    _RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")

    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        if path == "/api/whoami-v2" and method == "GET":
            if not self._authorised():
                raise _Reply(401, "Invalid credentials in Authorization header")
            self._json(
                {"type": "user", "name": self.owner.user, "orgs": [], "auth": {"type": "access_token"}}
            )
            return
        if path == "/api/repos/create" and method == "POST":
            self._create_repo()
            return
        if path == "/api/validate-yaml" and method == "POST":  # asked before a README.md is uploaded
            self._validate_yaml()
            return
        match = self._API_REPO.match(path)
        if match:
            self._api(method, match.group("repo"), match.group("rest") or "", query)
            return
        # Revisions like refs/pr/1 arrive percent-encoded; match on the raw path so they stay one segment.
        raw = urlsplit(self.path).path
        match = self._RESOLVE.match(raw)
        if match and method in ("GET", "HEAD"):
            self._resolve(
                method, unquote(match.group("repo")), match.group("rev"), unquote(match.group("file"))
            )
            return
        raise _Reply(404, f"The local hub does not implement {method} {path}")

    def _validate_yaml(self) -> None:
        """Accept a model card whose metadata block (between ``---`` lines) is a YAML mapping, as the Hub does."""
        import yaml

        content = json.loads(self._body() or b"{}").get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
        try:
            data = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            raise _Reply(400, f"Invalid metadata in README.md: {exc}") from None
        if data is not None and not isinstance(data, dict):
            raise _Reply(400, "The metadata of README.md must be a YAML mapping")
        self._json({"errors": [], "warnings": []})

    def _create_repo(self) -> None:
        if not self._authorised():
            raise _Reply(401, "Invalid credentials in Authorization header")
        payload = json.loads(self._body() or b"{}")
        if payload.get("type", "model") != "model":
            raise _Reply(400, "The local hub only stores model repositories")
        repo_id = f"{payload.get('organization') or self.owner.user}/{payload['name']}"
        if self.owner.get_repo(repo_id) is not None:
            raise _Reply(
                409, "You already created this model repo", extra={"url": f"{self.owner.url}/{repo_id}"}
            )
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.owner.create_repo(repo_id, private=private)
        self._json({"url": f"{self.owner.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _entry(self, name: str, data: bytes) -> dict[str, Any]:
        return {"type": "file", "oid": _git_blob_sha1(data), "size": len(data), "path": name}

    def _api(self, method: str, repo_id: str, rest: str, query: dict[str, list[str]]) -> None:
        repo = self._repo(repo_id, write=method == "POST")
        if rest == "" or rest.startswith("/revision/"):
            revision = rest[len("/revision/") :] if rest else "main"
            commit = self._revision(repo, revision)
            self._json(
                {
                    "_id": repo.repo_id,
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "author": repo.repo_id.split("/")[0],
                    "sha": commit.oid,
                    "private": repo.private,
                    "disabled": False,
                    "gated": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
                    "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
                    "siblings": [{"rfilename": name} for name in sorted(commit.files)],
                }
            )
            return
        if rest.startswith("/tree/"):
            revision, _, sub = rest[len("/tree/") :].partition("/")
            commit = self._revision(repo, revision)
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            entries = []
            folders: set[str] = set()
            prefix = sub.strip("/") + "/" if sub.strip("/") else ""
            for name in sorted(commit.files):
                if not name.startswith(prefix):
                    continue
                tail = name[len(prefix) :]
                if "/" in tail and not recursive:
                    folders.add(prefix + tail.split("/")[0])
                    continue
                entries.append(self._entry(name, commit.files[name]))
            entries.extend(
                {"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)
            )
            self._json(entries)
            return
        if rest == "/refs":
            self._json(
                {
                    "branches": [
                        {"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                        for b, oid in repo.branches.items()
                    ],
                    "converts": [],
                    "tags": [],
                }
            )
            return
        if rest.startswith("/paths-info/") and method == "POST":
            commit = self._revision(repo, rest[len("/paths-info/") :])
            body = self._body()
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                wanted = json.loads(body or b"{}").get("paths", [])
            else:
                wanted = parse_qs(body.decode()).get("paths", [])
            self._json([self._entry(p, commit.files[p]) for p in wanted if p in commit.files])
            return
        if rest.startswith("/branch/") and method == "POST":
            branch = unquote(rest[len("/branch/") :])
            payload = json.loads(self._body() or b"{}")
            if branch in repo.branches:
                raise _Reply(409, f"Branch {branch} already exists")
            start = self._revision(repo, payload.get("startingPoint") or "main")
            with self.owner._lock:
                repo.branches[branch] = start.oid
            self._json({})
            return
        if rest.startswith("/preupload/") and method == "POST":
            self._revision(repo, rest[len("/preupload/") :])
            payload = json.loads(self._body() or b"{}")
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in payload.get("files", [])
            ]
            self._json({"files": files, "commitOid": repo.branches.get("main")})
            return
        if rest.startswith("/commit/") and method == "POST":
            self._commit(repo, unquote(rest[len("/commit/") :]), query)
            return
        raise _Reply(404, f"The local hub does not implement {method} /api/models/{repo_id}{rest}")

    def _commit(self, repo: HubRepo, branch: str, query: dict[str, list[str]]) -> None:
        if query.get("create_pr", ["0"])[0] not in ("0", ""):
            raise _Reply(400, "The local hub does not support pull requests")
        if branch not in repo.branches:
            raise _Reply(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        summary = "update"
        parent = None
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                summary = value.get("summary") or summary
                if value.get("description"):  # stored like git does: summary, blank line, body
                    summary = f"{summary}\n\n{value['description']}"
                parent = value.get("parentCommit")
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise _Reply(400, f"Unsupported encoding {value.get('encoding')!r}")
                added[_normalise_path(value["path"])] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                raise _Reply(
                    400, f"The local hub does not support commit operation {key!r} (LFS/Xet uploads)"
                )
        with self.owner._lock:
            if parent is not None and repo.branches[branch] != parent:
                raise _Reply(412, "A commit has happened since the parent commit")
            oid = self.owner._commit(repo, branch, added, tuple(deleted), summary)
        self._json(
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.owner.url}/{repo.repo_id}/commit/{oid}",
                "pullRequestUrl": None,
            }
        )

    def _resolve(self, method: str, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo(repo_id)
        commit = self._revision(repo, revision)
        data = commit.files.get(filename)
        if data is None:
            raise _Reply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{_git_blob_sha1(data)}"',
            "Accept-Ranges": "bytes",
        }
        status, body = 200, data
        wanted = self.headers.get("Range")
        if wanted:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data):
                    raise _Reply(416, "Requested range not satisfiable")
                status, body = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
        if method == "GET":
            cut = self.owner._take_failure(filename)
            if cut is not None:
                # A network failure: promise the whole body, send part of it, drop the connection.
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
        self._send(status, body, headers, head=method == "HEAD")
