"""Hub downloads and uploads for real, through huggingface_hub, against the local Hub server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugformers.configuration_utils import PretrainedConfig
from plugformers.testing.hub_server import LocalHub
from plugformers.utils.hub import HubDownloadError, PlugformersFileNotFoundError, resolve_file


@pytest.fixture(scope="module")
def hub():
    with LocalHub() as server:
        yield server


@pytest.fixture
def cache(tmp_path, hub):
    """A fresh huggingface_hub cache, with this process pointed at the local hub."""
    path = tmp_path / "hf_cache"
    with hub.patched(path):
        yield path


_counter = iter(range(10_000))


def _repo_name(prefix: str) -> str:
    return f"tester/{prefix}-{next(_counter)}"


def _config_json(**fields) -> str:
    return json.dumps({"model_type": "", **fields})


def _run(code: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_download_follows_branch_and_revision_pins_snapshot(hub, cache):
    repo = _repo_name("pin")
    first = hub.create_repo(repo, {"config.json": _config_json(hidden=1), "sub/extra.txt": "v1"})
    second = hub.commit(repo, {"config.json": _config_json(hidden=2)})
    assert first != second and len(first) == 40

    latest = resolve_file(repo, "config.json")
    pinned = resolve_file(repo, "config.json", revision=first)
    assert json.loads(Path(latest).read_text())["hidden"] == 2
    assert json.loads(Path(pinned).read_text())["hidden"] == 1
    assert f"/snapshots/{first}/" in pinned and Path(pinned).is_relative_to(cache)
    assert Path(resolve_file(repo, "extra.txt", subfolder="sub")).read_text() == "v1"

    assert PretrainedConfig.from_pretrained(repo).hidden == 2
    assert PretrainedConfig.from_pretrained(repo, revision=first).hidden == 1
    hub.create_branch(repo, "stable", first)
    hub.commit(repo, {"config.json": _config_json(hidden=3)})  # main moves on; the pin does not
    assert PretrainedConfig.from_pretrained(repo, revision="stable").hidden == 1
    assert PretrainedConfig.from_pretrained(repo, revision=first).hidden == 1
    assert PretrainedConfig.from_pretrained(repo).hidden == 3


def test_missing_repo_revision_and_file_give_clear_errors(hub, cache):
    repo = _repo_name("errors")
    hub.create_repo(repo, {"config.json": _config_json()})
    with pytest.raises(PlugformersFileNotFoundError, match="no Hub repository of that name"):
        resolve_file("tester/does-not-exist", "config.json")
    with pytest.raises(OSError, match="does-not-exist"):
        PretrainedConfig.from_pretrained("tester/does-not-exist")
    with pytest.raises(PlugformersFileNotFoundError, match="Revision 'no-such-branch' does not exist"):
        PretrainedConfig.from_pretrained(repo, revision="no-such-branch")
    with pytest.raises(PlugformersFileNotFoundError, match="Revision"):
        resolve_file(repo, "config.json", revision="0" * 40)
    with pytest.raises(PlugformersFileNotFoundError, match=r"no file named 'weights\.bin'"):
        resolve_file(repo, "weights.bin")
    assert resolve_file(repo, "weights.bin", required=False) is None


def test_private_repo_needs_the_token(hub, cache):
    repo = _repo_name("private")
    hub.create_repo(repo, {"config.json": _config_json(secret=1)}, private=True)
    with pytest.raises(PlugformersFileNotFoundError, match="private"):
        resolve_file(repo, "config.json", token=False)
    assert PretrainedConfig.from_pretrained(repo, token=hub.token).secret == 1
    # The old spelling still carries the token (the reference drops it silently, which reads as "not found").
    assert PretrainedConfig.from_pretrained(repo, use_auth_token=hub.token, force_download=True).secret == 1
    with pytest.raises(ValueError, match="disagree"):
        PretrainedConfig.from_pretrained(repo, use_auth_token=hub.token, token="other")


def test_local_files_only_and_offline_mode_use_the_cache(hub, cache, tmp_path, monkeypatch):
    repo = _repo_name("offline")
    commit = hub.create_repo(repo, {"config.json": _config_json(hidden=5)})
    assert PretrainedConfig.from_pretrained(repo).hidden == 5
    before = len(hub.requests)
    assert PretrainedConfig.from_pretrained(repo, local_files_only=True).hidden == 5
    assert len(hub.requests) == before, "local_files_only must not touch the network"
    with pytest.raises(PlugformersFileNotFoundError, match="not in the local cache"):
        resolve_file(_repo_name("never-downloaded"), "config.json", local_files_only=True)

    # A new process with HF_HUB_OFFLINE=1 and an endpoint where nothing listens: only the cache answers.
    env = {**hub.env(cache), "HF_ENDPOINT": _dead_endpoint(), "HF_HUB_OFFLINE": "1"}
    proc = _run(
        f"""
        from plugformers.configuration_utils import PretrainedConfig
        print(PretrainedConfig.from_pretrained({repo!r}).hidden)
        print(PretrainedConfig.from_pretrained({repo!r}, revision={commit!r}).hidden)
        try:
            PretrainedConfig.from_pretrained("tester/never-downloaded")
        except OSError as exc:
            print("ERR", exc)
        """,
        env,
        tmp_path,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines[:2] == ["5", "5"]
    assert lines[2].startswith("ERR") and "offline mode is on" in lines[2] and "Unset HF_HUB_OFFLINE" in lines[2]
    assert len(hub.requests) == before


def test_network_failure_mid_download_leaves_no_partial_file(hub, cache):
    repo = _repo_name("flaky")
    payload = os.urandom(200_000)
    hub.create_repo(repo, {"model.safetensors": payload, "config.json": _config_json()})

    # One dropped connection: huggingface_hub resumes with a Range request and the bytes are intact.
    hub.fail_downloads("model.safetensors", times=1, after_bytes=5_000)
    assert Path(resolve_file(repo, "model.safetensors")).read_bytes() == payload

    other = _repo_name("flaky-down")
    hub.create_repo(other, {"model.safetensors": payload})
    hub.fail_downloads("model.safetensors", times=50, after_bytes=5_000)
    try:
        # The transport error huggingface_hub lets through after its retries becomes one clear OSError.
        with pytest.raises(HubDownloadError, match=r"Downloading 'model.safetensors' from .* failed"):
            resolve_file(other, "model.safetensors")
    finally:
        hub._failures.clear()
    repo_cache = cache / f"models--{other.replace('/', '--')}"
    leftovers = [p for p in repo_cache.rglob("*") if p.is_file() or p.is_symlink()]
    # Only the branch pointer (refs/main) may remain: no blob, no snapshot link, no .incomplete file.
    assert [p for p in leftovers if p.parent.name != "refs"] == [], leftovers
    with pytest.raises(PlugformersFileNotFoundError, match="not in the local cache"):
        resolve_file(other, "model.safetensors", local_files_only=True)
    # Once the network is back the download completes and is byte-exact.
    assert Path(resolve_file(other, "model.safetensors")).read_bytes() == payload


def test_two_processes_download_the_same_repo_into_one_cache(hub, tmp_path):
    repo = _repo_name("shared")
    files = {f"shard-{i}.bin": os.urandom(300_000 + i) for i in range(3)}
    commit = hub.create_repo(repo, {**files, "config.json": _config_json(hidden=9)})
    cache = tmp_path / "shared_cache"
    code = f"""
        import hashlib
        from plugformers.utils.hub import resolve_file
        from plugformers.configuration_utils import PretrainedConfig
        for name in {sorted(files)!r}:
            with open(resolve_file({repo!r}, name), "rb") as fh:
                print(name, hashlib.sha256(fh.read()).hexdigest())
        print("hidden", PretrainedConfig.from_pretrained({repo!r}, revision={commit!r}).hidden)
        """
    procs = [_run(code, hub.env(cache), tmp_path) for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outputs.append(out)
    import hashlib

    expected = (
        "".join(f"{n} {hashlib.sha256(d).hexdigest()}\n" for n, d in sorted(files.items())) + "hidden 9\n"
    )
    assert outputs == [expected, expected]
    blobs = list((cache / f"models--{repo.replace('/', '--')}" / "blobs").iterdir())
    assert not [b for b in blobs if b.name.endswith(".incomplete")]
    assert len(blobs) == 4


def test_push_to_hub_uploads_config_and_its_code(hub, cache, tmp_path, monkeypatch):
    pkg = tmp_path / "pushpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "configuration_pushed.py").write_text(
        textwrap.dedent(
            """
            from plugformers.configuration_utils import PretrainedConfig


            class PushedConfig(PretrainedConfig):
                model_type = "pushed-remote"

                def __init__(self, depth: int = 2, **kwargs):
                    self.depth = depth
                    super().__init__(**kwargs)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("pushpkg.configuration_pushed")
    try:
        mod.PushedConfig.register_for_auto_class()
        repo = _repo_name("pushed")
        info = mod.PushedConfig(depth=4).push_to_hub(repo, commit_message="first upload")
        files = hub.files(repo)
        assert {"config.json", "configuration_pushed.py"} <= set(files)
        saved = json.loads(files["config.json"])
        assert (
            saved["auto_map"] == {"AutoConfig": "configuration_pushed.PushedConfig"} and saved["depth"] == 4
        )
        head = hub.get_repo(repo).branches["main"]
        assert hub.get_repo(repo).commits[head].message == "first upload"
        assert head in str(info)

        mod.PushedConfig(depth=6).push_to_hub(repo, revision="dev", private=True)
        assert json.loads(hub.files(repo, "dev")["config.json"])["depth"] == 6
        assert json.loads(hub.files(repo, "main")["config.json"])["depth"] == 4
        assert PretrainedConfig.from_pretrained(repo, revision="dev").depth == 6
        assert PretrainedConfig.from_pretrained(repo, revision=head).depth == 4
    finally:
        mod.PushedConfig._auto_class = None
        for name in [m for m in sys.modules if m.startswith("pushpkg")]:
            del sys.modules[name]


def test_remote_code_from_the_hub_with_pinned_revision(hub, cache, tmp_path, monkeypatch):
    """Code fetched from a Hub repo is cached per commit; a pinned revision keeps the old code."""
    from plugformers.dynamic_module_utils import get_class_from_dynamic_module

    monkeypatch.setenv("PLUGFORMERS_HOME", str(tmp_path / "pf_home"))
    repo = _repo_name("code")
    src = "from .consts import VALUE\n\nclass Thing:\n    value = VALUE\n"
    first = hub.create_repo(repo, {"modeling_thing.py": src, "consts.py": "VALUE = 1\n"})
    hub.commit(repo, {"consts.py": "VALUE = 2\n"})
    old = get_class_from_dynamic_module("modeling_thing.Thing", repo, revision=first)
    new = get_class_from_dynamic_module("modeling_thing.Thing", repo)
    assert (old.value, new.value) == (1, 2)
    cached = {p.parent.name for p in (tmp_path / "pf_home" / "modules").rglob("__init__.py")}
    assert first in cached and len(cached) == 2
    other = _repo_name("code-elsewhere")
    hub.create_repo(other, {"config.json": _config_json()})
    via_other = get_class_from_dynamic_module(f"{repo}--modeling_thing.Thing", other, code_revision=first)
    assert via_other.value == 1


def test_push_to_hub_of_a_model_with_code_and_load_it_back(hub, cache, tmp_path, monkeypatch):
    """A model registered for an Auto class uploads weights, config and code; it loads back from the Hub."""
    torch = pytest.importorskip("torch")
    import importlib
    from importlib import metadata

    try:
        metadata.distribution("custom-resnet-example")
        pytest.skip("custom-resnet-example is installed here, so its classes are not remote")
    except metadata.PackageNotFoundError:
        pass
    monkeypatch.setenv("PLUGFORMERS_HOME", str(tmp_path / "pf_home"))
    monkeypatch.syspath_prepend(
        str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_resnet" / "src")
    )
    conf_mod = importlib.import_module("custom_resnet_example.configuration_resnet")
    model_mod = importlib.import_module("custom_resnet_example.modeling_resnet")
    try:
        conf_mod.ResnetConfig.register_for_auto_class()
        model_mod.ResnetModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")
        config = conf_mod.ResnetConfig(
            block_type="basic", layers=[1, 1, 1, 1], channels=[4, 4, 4, 4], stem_width=8
        )
        torch.manual_seed(0)
        model = model_mod.ResnetModelForImageClassification(config).eval()
        repo = _repo_name("model-push")
        model.push_to_hub(repo, commit_message="weights and code")
    finally:
        conf_mod.ResnetConfig._auto_class = None
        model_mod.ResnetModelForImageClassification._auto_class = None
        for name in [m for m in sys.modules if m.startswith("custom_resnet_example")]:
            del sys.modules[name]
    files = hub.files(repo)
    assert {"config.json", "model.safetensors", "configuration_resnet.py", "modeling_resnet.py"} <= set(files)
    commit = hub.get_repo(repo).branches["main"]
    import plugformers

    with pytest.raises(ValueError, match="trust_remote_code=True"):
        plugformers.AutoModelForImageClassification.from_pretrained(repo, revision=commit)
    loaded = plugformers.AutoModelForImageClassification.from_pretrained(
        repo, trust_remote_code=True, revision=commit
    ).eval()
    assert type(loaded).__module__.startswith("plugformers_remote_")
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(pixels)["logits"], model(pixels)["logits"])


def _tiny_distilbert():
    torch = pytest.importorskip("torch")
    from plugformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    config = DistilBertConfig(n_layers=1, dim=32, hidden_dim=37, n_heads=2, vocab_size=50)
    return DistilBertModel(config)


def test_auto_model_force_download_reaches_the_weights(hub, cache):
    """AutoConfig consumes the hub keywords; AutoModel must hand all of them on to the weights lookup."""
    import plugformers

    repo = _repo_name("force")
    _tiny_distilbert().push_to_hub(repo)
    plugformers.AutoModel.from_pretrained(repo)
    before = len(hub.requests)
    plugformers.AutoModel.from_pretrained(repo, force_download=True)
    fetched = [path for method, path in hub.requests[before:] if method == "GET"]
    assert any(p.endswith("/config.json") for p in fetched)
    assert any(p.endswith("/model.safetensors") for p in fetched), fetched


def test_push_to_hub_qualifies_a_bare_repo_id_and_sends_the_description(hub, cache):
    """'name' alone means the token owner's 'owner/name' (what create_repo answers); the upload must go there."""
    name = f"bare-{next(_counter)}"
    info = PretrainedConfig(hidden=3).push_to_hub(name, commit_message="title", commit_description="the body")
    posts = [path for method, path in hub.requests if method == "POST" and name in path]
    assert posts and all(f"/tester/{name}/" in p for p in posts if "/api/models/" in p), posts
    repo = hub.get_repo(f"tester/{name}")
    assert repo.commits[repo.branches["main"]].message == "title\n\nthe body"
    assert f"tester/{name}" in str(info)


def test_model_push_replaces_the_previous_weight_layout(hub, cache):
    """Pushing shards after a single file (or back) must not leave the old weights to shadow the new ones."""
    torch = pytest.importorskip("torch")
    import plugformers

    repo = _repo_name("relayout")
    model = _tiny_distilbert()
    model.push_to_hub(repo)
    first = hub.get_repo(repo).branches["main"]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.push_to_hub(repo, max_shard_size="20KB", commit_message="sharded")
    files = set(hub.files(repo))
    assert "model.safetensors" not in files and "model.safetensors.index.json" in files
    loaded = plugformers.AutoModel.from_pretrained(repo)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert "model.safetensors" in hub.files(repo, first), "the old layout stays in the history"
    model.push_to_hub(repo)  # and back to one file: the shards and their index go
    assert not [f for f in hub.files(repo) if f.startswith("model-") or f.endswith(".index.json")]
    other = _repo_name("relayout-config")
    hub.create_repo(other, {"model.safetensors": b"kept", "notes.txt": "kept"})
    model.config.push_to_hub(other)  # only a model push replaces weights
    assert {"model.safetensors", "notes.txt", "config.json"} <= set(hub.files(other))


def test_cache_only_errors_say_why_and_name_the_subfolder(hub, cache):
    """local_files_only=True with a cold cache names that option (not an unreachable Hub) and how to fix it."""
    repo = _repo_name("cold")
    hub.create_repo(repo, {"sub/config.json": _config_json(hidden=1)})
    with pytest.raises(PlugformersFileNotFoundError, match=r"local_files_only=True.*Drop local_files_only"):
        PretrainedConfig.from_pretrained(repo, subfolder="sub", local_files_only=True)
    with pytest.raises(PlugformersFileNotFoundError, match=r"'sub/config\.json'.*not in the local cache"):
        resolve_file(repo, "config.json", subfolder="sub", local_files_only=True)
    with pytest.raises(PlugformersFileNotFoundError, match=r"no file named 'sub/extra\.txt'"):
        resolve_file(repo, "extra.txt", subfolder="sub")
    assert PretrainedConfig.from_pretrained(repo, subfolder="sub").hidden == 1


def test_save_pretrained_push_to_hub_uploads_what_was_saved(hub, cache, tmp_path, monkeypatch):
    """push_to_hub=True uploads the files this save wrote, as written: not a fresh re-save, not bystanders."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load

    model = _tiny_distilbert()
    halved = {k: v / 2 for k, v in model.state_dict().items()}
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "notes.txt").write_text("private notes, not for the Hub")
    repo = _repo_name("save-push")
    model.save_pretrained(folder, state_dict=halved, push_to_hub=True, repo_id=repo, commit_message="halved")
    files = hub.files(repo)
    assert "notes.txt" not in files and {"config.json", "model.safetensors"} <= set(files)
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    pushed = load(files["model.safetensors"])
    assert torch.equal(pushed["transformer.layer.0.ffn.lin1.weight"], halved["transformer.layer.0.ffn.lin1.weight"])
    repo_info = hub.get_repo(repo)
    assert repo_info.commits[repo_info.branches["main"]].message == "halved"

    # A weights file that looks unchanged (rewritten within one clock tick at the same size) must still go up:
    # the commit deletes superseded weight files, and must not delete the ones the folder holds.
    from plugformers.utils import hub as hub_utils

    original = hub_utils.PushToHubMixin._push_saved_folder

    def as_if_unchanged(self, save_directory, before, repo_id, kwargs):
        return original(self, save_directory, hub_utils.folder_state(save_directory), repo_id, kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(hub_utils.PushToHubMixin, "_push_saved_folder", as_if_unchanged)
        model.save_pretrained(folder, push_to_hub=True, repo_id=repo, commit_message="again")
    assert "model.safetensors" in hub.files(repo)

    from plugformers import DistilBertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]))
    tok_dir = tmp_path / "tok"
    tok_repo = _repo_name("tok-save-push")
    DistilBertTokenizerFast(vocab_file=str(vocab)).save_pretrained(
        tok_dir, filename_prefix="mine", push_to_hub=True, repo_id=tok_repo
    )
    assert {p.name for p in tok_dir.iterdir()} <= set(hub.files(tok_repo))
    assert any(name.startswith("mine-") for name in hub.files(tok_repo))
