"""Code saved with checkpoints: ``custom_object_save``, ``trust_remote_code`` and the module cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugformers.dynamic_module_utils import (
    RemoteCodeError,
    auto_map_files,
    custom_object_save,
    get_class_from_dynamic_module,
    parse_class_reference,
    resolve_trust_remote_code,
)

CONFIG_SRC = """
from __future__ import annotations

from plugformers.configuration_utils import PretrainedConfig

from .helpers import DEFAULT_WIDTH


class ToyConfig(PretrainedConfig):
    model_type = "toy-remote"

    def __init__(self, width: int = DEFAULT_WIDTH, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""

HELPERS_SRC = "DEFAULT_WIDTH = 7\n"


def _make_package(root: Path, name: str = "toypkg", helpers: str = HELPERS_SRC) -> Path:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configuration_toy.py").write_text(CONFIG_SRC)
    (pkg / "helpers.py").write_text(helpers)
    return pkg


@pytest.fixture
def modules_home(tmp_path, monkeypatch):
    home = tmp_path / "pf_home"
    monkeypatch.setenv("PLUGFORMERS_HOME", str(home))
    return home / "modules"


@pytest.fixture
def saved_repo(tmp_path, monkeypatch):
    """A folder saved by ``ToyConfig.save_pretrained`` after ``register_for_auto_class``."""
    src = tmp_path / "src"
    _make_package(src)
    monkeypatch.syspath_prepend(str(src))
    import importlib

    mod = importlib.import_module("toypkg.configuration_toy")
    try:
        mod.ToyConfig.register_for_auto_class()
        config = mod.ToyConfig(width=11)
        out = tmp_path / "repo"
        config.save_pretrained(out)
    finally:
        for name in [m for m in sys.modules if m == "toypkg" or m.startswith("toypkg.")]:
            del sys.modules[name]
    return out


def _run(code: str, env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ----- saving ---------------------------------------------------------------------------------------------


def test_save_copies_code_and_relative_imports_and_writes_auto_map(saved_repo):
    names = sorted(p.name for p in saved_repo.iterdir())
    assert names == ["config.json", "configuration_toy.py", "helpers.py"]
    data = json.loads((saved_repo / "config.json").read_text())
    assert data["auto_map"] == {"AutoConfig": "configuration_toy.ToyConfig"}
    assert data["model_type"] == "toy-remote"
    assert data["width"] == 11
    assert (saved_repo / "helpers.py").read_text() == HELPERS_SRC


def test_custom_object_save_tokenizer_map_on_dict(tmp_path, monkeypatch):
    pkg = tmp_path / "tokpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tokenization_toy.py").write_text(
        textwrap.dedent(
            """
            class PreTrainedTokenizerFast:
                pass

            class ToyTokenizer:
                _auto_class = "AutoTokenizer"

            class ToyTokenizerFast(PreTrainedTokenizerFast):
                _auto_class = "AutoTokenizer"
                slow_tokenizer_class = ToyTokenizer
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("tokpkg.tokenization_toy")
    try:
        slow_conf: dict = {"auto_map": {"AutoConfig": "configuration_toy.ToyConfig"}}
        written = custom_object_save(mod.ToyTokenizer(), tmp_path / "out1", config=slow_conf)
        assert [Path(p).name for p in written] == ["tokenization_toy.py"]
        assert slow_conf["auto_map"] == {
            "AutoConfig": "configuration_toy.ToyConfig",
            "AutoTokenizer": ["tokenization_toy.ToyTokenizer", None],
        }
        fast_conf: dict = {}
        custom_object_save(mod.ToyTokenizerFast(), tmp_path / "out2", config=fast_conf)
        assert fast_conf["auto_map"] == {
            "AutoTokenizer": ["tokenization_toy.ToyTokenizer", "tokenization_toy.ToyTokenizerFast"]
        }
    finally:
        for name in [m for m in sys.modules if m.startswith("tokpkg")]:
            del sys.modules[name]


def test_custom_object_save_without_auto_class_or_from_main_writes_nothing(tmp_path):
    class Plain:
        _auto_class = None

    assert custom_object_save(Plain(), tmp_path / "x") == []

    Main = type("Main", (), {"_auto_class": "AutoModel", "__module__": "__main__"})
    assert custom_object_save(Main(), tmp_path / "y", config={}) == []
    assert not (tmp_path / "y").exists()


def test_save_refuses_relative_import_outside_folder(tmp_path, monkeypatch):
    pkg = tmp_path / "outer" / "inner"
    pkg.mkdir(parents=True)
    (tmp_path / "outer" / "__init__.py").write_text("")
    (tmp_path / "outer" / "shared.py").write_text("X = 1\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "modeling_escape.py").write_text(
        "from ..shared import X\n\nclass Escape:\n    _auto_class = 'AutoModel'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("outer.inner.modeling_escape")
    try:
        with pytest.raises(RemoteCodeError, match="outside its folder"):
            custom_object_save(mod.Escape(), tmp_path / "save", config={})
    finally:
        for name in [m for m in sys.modules if m.startswith("outer")]:
            del sys.modules[name]


# ----- names and trust ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "../evil.Cls",
        "/abs/path.Cls",
        "sub/mod.Cls",
        "a.b.Cls",
        "mod.1Cls",
        "mod.class",
        "modCls",
        "bad repo!--mod.Cls",
        "..--mod.Cls",
        "user/repo--../mod.Cls",
    ],
)
def test_parse_class_reference_refuses_escapes_and_bad_names(ref):
    with pytest.raises(RemoteCodeError):
        parse_class_reference(ref, default_repo="here")


def test_parse_class_reference_accepts_both_forms():
    assert parse_class_reference("modeling_x.MyModel", default_repo="d") == ("d", "modeling_x", "MyModel")
    assert parse_class_reference("user/code-repo--modeling_x.MyModel", default_repo="d") == (
        "user/code-repo",
        "modeling_x",
        "MyModel",
    )


def test_auto_map_files_lists_every_file_once():
    auto_map = {
        "AutoConfig": "configuration_x.XConfig",
        "AutoModel": "modeling_x.XModel",
        "AutoModelForImageClassification": "modeling_x.XForImages",
        "AutoTokenizer": ["tokenization_x.XTok", None],
        "AutoProcessor": "other/repo--processing_x.XProc",
    }
    assert auto_map_files(auto_map) == [
        "configuration_x.py",
        "modeling_x.py",
        "other/repo/processing_x.py",
        "tokenization_x.py",
    ]
    with pytest.raises(RemoteCodeError):
        auto_map_files({"AutoModel": "../../etc.passwd"})


def test_resolve_trust_remote_code_rules():
    files = ["modeling_x.py", "configuration_x.py"]
    for value in (None, False):
        with pytest.raises(ValueError) as info:
            resolve_trust_remote_code(value, "user/repo", files)
        message = str(info.value)
        assert "configuration_x.py, modeling_x.py" in message
        assert "trust_remote_code=True" in message and "revision" in message
    assert resolve_trust_remote_code(True, "user/repo", files) is True
    assert resolve_trust_remote_code(None, "user/repo", files, has_local_code=True) is False
    assert resolve_trust_remote_code(True, "user/repo", files, has_local_code=True) is True
    assert resolve_trust_remote_code(None, "user/repo", []) is False
    with pytest.raises(TypeError):
        resolve_trust_remote_code("yes", "user/repo", files)  # type: ignore[arg-type]


# ----- loading --------------------------------------------------------------------------------------------


def test_loads_class_from_saved_folder_in_fresh_process(saved_repo, modules_home, tmp_path):
    """The defining package is not importable in the child: the class comes from the cached copy."""
    proc = _run(
        f"""
        import importlib.util, json
        from plugformers.dynamic_module_utils import get_class_from_dynamic_module
        assert importlib.util.find_spec("toypkg") is None
        cls = get_class_from_dynamic_module("configuration_toy.ToyConfig", {str(saved_repo)!r})
        cfg = cls.from_pretrained({str(saved_repo)!r})
        print(json.dumps([cls.__module__, cfg.width, cls().width, cls.model_type]))
        """,
        {"PLUGFORMERS_HOME": str(modules_home.parent)},
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    module, width, default_width, model_type = json.loads(proc.stdout.strip().splitlines()[-1])
    assert module.startswith("plugformers_remote_") and module.endswith(".configuration_toy")
    assert (width, default_width, model_type) == (11, 7, "toy-remote")
    cached = [p for p in modules_home.rglob("*.py")]
    assert sorted({p.name for p in cached}) == ["__init__.py", "configuration_toy.py", "helpers.py"]


def test_module_cache_is_keyed_by_content(saved_repo, modules_home):
    first = get_class_from_dynamic_module("configuration_toy.ToyConfig", saved_repo)
    again = get_class_from_dynamic_module("configuration_toy.ToyConfig", saved_repo)
    assert first is again
    assert first().width == 7
    (saved_repo / "helpers.py").write_text("DEFAULT_WIDTH = 9\n")
    changed = get_class_from_dynamic_module("configuration_toy.ToyConfig", saved_repo)
    assert changed is not first
    assert changed().width == 9 and first().width == 7
    content_dirs = [p for p in modules_home.rglob("__init__.py")]
    assert len(content_dirs) == 2
    assert not [p for p in modules_home.rglob("*") if ".tmp-" in p.name]


def test_no_code_runs_before_trust_is_given(tmp_path, modules_home):
    """Deciding on trust reads nothing from the repo; a canary module would write a marker on import."""
    repo = tmp_path / "canary_repo"
    repo.mkdir()
    marker = tmp_path / "EXECUTED"
    (repo / "modeling_canary.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n\nclass Canary:\n    pass\n"
    )
    auto_map = {"AutoModel": "modeling_canary.Canary"}
    (repo / "config.json").write_text(json.dumps({"auto_map": auto_map}))
    with pytest.raises(ValueError, match=r"modeling_canary\.py"):
        resolve_trust_remote_code(None, str(repo), auto_map_files(auto_map))
    assert not marker.exists()
    assert not modules_home.exists()
    cls = get_class_from_dynamic_module("modeling_canary.Canary", repo)
    assert cls.__name__ == "Canary" and marker.read_text() == "ran"


def test_missing_file_class_or_package_give_clear_errors(tmp_path, modules_home):
    repo = tmp_path / "broken"
    repo.mkdir()
    (repo / "modeling_a.py").write_text("class A:\n    pass\n")
    (repo / "modeling_b.py").write_text("from .does_not_exist import Z\n")
    (repo / "modeling_c.py").write_text("import surely_not_an_installed_package_xyz\n\nclass C:\n    pass\n")
    (repo / "modeling_d.py").write_text("from .sub.mod import Z\n")
    with pytest.raises(OSError, match=r"modeling_missing\.py"):
        get_class_from_dynamic_module("modeling_missing.M", repo)
    with pytest.raises(RemoteCodeError, match="no class named 'Nope'"):
        get_class_from_dynamic_module("modeling_a.Nope", repo)
    with pytest.raises(OSError, match=r"does_not_exist\.py"):
        get_class_from_dynamic_module("modeling_b.B", repo)
    with pytest.raises(ImportError, match="surely_not_an_installed_package_xyz"):
        get_class_from_dynamic_module("modeling_c.C", repo)
    with pytest.raises(RemoteCodeError, match="sub-packages"):
        get_class_from_dynamic_module("modeling_d.D", repo)
    with pytest.raises(RemoteCodeError):
        get_class_from_dynamic_module("../modeling_a.A", repo)


def test_two_processes_fill_the_module_cache_at_once(saved_repo, modules_home, tmp_path):
    code = f"""
        from plugformers.dynamic_module_utils import get_class_from_dynamic_module
        cls = get_class_from_dynamic_module("configuration_toy.ToyConfig", {str(saved_repo)!r})
        print(cls().width)
        """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PLUGFORMERS_HOME"] = str(modules_home.parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "7"
    assert len(list(modules_home.rglob("__init__.py"))) == 1
    assert not [p for p in modules_home.rglob("*") if ".tmp-" in p.name]


# ----- end to end through the Auto classes ----------------------------------------------------------------

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_resnet" / "src"
TINY_RESNET = {
    "block_type": "bottleneck",
    "layers": [1, 1, 1, 1],
    "channels": [4, 4, 8, 8],
    "stem_width": 8,
    "stem_type": "deep-tiered",
    "avg_down": True,
    "num_classes": 3,
}


def _example_installed() -> bool:
    from importlib import metadata

    try:
        metadata.distribution("custom-resnet-example")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture
def resnet_checkpoint(tmp_path, monkeypatch):
    """The example ResNet saved with its code, plus an input and the logits it gave."""
    torch = pytest.importorskip("torch")
    if _example_installed():
        pytest.skip("custom-resnet-example is installed here, so its classes are not remote")
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    import importlib

    conf_mod = importlib.import_module("custom_resnet_example.configuration_resnet")
    model_mod = importlib.import_module("custom_resnet_example.modeling_resnet")
    try:
        conf_mod.ResnetConfig.register_for_auto_class()
        model_mod.ResnetModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")
        torch.manual_seed(0)
        model = model_mod.ResnetModelForImageClassification(conf_mod.ResnetConfig(**TINY_RESNET)).eval()
        pixels = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            logits = model(pixels)["logits"]
        out = tmp_path / "ckpt"
        model.save_pretrained(out)
    finally:
        conf_mod.ResnetConfig._auto_class = None
        model_mod.ResnetModelForImageClassification._auto_class = None
        for name in [m for m in sys.modules if m.startswith("custom_resnet_example")]:
            del sys.modules[name]
    torch.save({"pixels": pixels, "logits": logits}, tmp_path / "io.pt")
    return out, tmp_path / "io.pt"


def test_saved_model_ships_code_and_auto_map(resnet_checkpoint):
    ckpt, _ = resnet_checkpoint
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.json",
        "configuration_resnet.py",
        "model.safetensors",
        "modeling_resnet.py",
    ]
    data = json.loads((ckpt / "config.json").read_text())
    assert data["auto_map"] == {
        "AutoConfig": "configuration_resnet.ResnetConfig",
        "AutoModelForImageClassification": "modeling_resnet.ResnetModelForImageClassification",
    }
    assert data["model_type"] == "custom-resnet"


def test_auto_model_loads_code_in_fresh_process_only_when_trusted(resnet_checkpoint, tmp_path, modules_home):
    ckpt, io_file = resnet_checkpoint
    proc = _run(
        f"""
        import importlib.util, json, torch
        import plugformers
        from plugformers import AutoConfig, AutoModelForImageClassification
        assert importlib.util.find_spec("custom_resnet_example") is None
        result = {{}}
        for call in (lambda: AutoConfig.from_pretrained({str(ckpt)!r}),
                     lambda: AutoModelForImageClassification.from_pretrained({str(ckpt)!r}, trust_remote_code=False)):
            try:
                call()
                result.setdefault("untrusted", []).append("loaded")
            except ValueError as exc:
                result.setdefault("untrusted", []).append(str(exc))
        import sys
        result["imported_before_trust"] = [m for m in sys.modules if m.startswith("plugformers_remote_")]
        model = AutoModelForImageClassification.from_pretrained({str(ckpt)!r}, trust_remote_code=True).eval()
        config = AutoConfig.from_pretrained({str(ckpt)!r}, trust_remote_code=True)
        io = torch.load({str(io_file)!r})
        with torch.no_grad():
            logits = model(io["pixels"])["logits"]
        result["max_diff"] = float((logits - io["logits"]).abs().max())
        result["model_class"] = type(model).__module__ + "." + type(model).__name__
        result["same_config_class"] = type(config) is type(model.config) is type(model).config_class
        result["stem_type"] = config.stem_type
        print(json.dumps(result))
        """,
        {"PLUGFORMERS_HOME": str(modules_home.parent)},
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for message in result["untrusted"]:
        assert "trust_remote_code=True" in message and ".py" in message, message
    assert result["imported_before_trust"] == []
    # Same weights and inputs; only the float summation order may differ (another process, another thread split).
    assert result["max_diff"] < 1e-6
    assert result["model_class"].startswith("plugformers_remote_")
    assert result["model_class"].endswith("modeling_resnet.ResnetModelForImageClassification")
    assert result["same_config_class"] is True
    assert result["stem_type"] == "deep-tiered"


def _canary_repo(root: Path, marker: Path) -> Path:
    repo = root / "canary_auto"
    repo.mkdir()
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    (repo / "configuration_canary.py").write_text(
        payload + "from plugformers import PretrainedConfig\n\nclass CanaryConfig(PretrainedConfig):\n"
        "    model_type = 'canary-remote'\n"
    )
    (repo / "modeling_canary.py").write_text(payload + "class CanaryModel:\n    pass\n")
    (repo / "config.json").write_text(
        json.dumps(
            {
                "model_type": "canary-remote",
                "auto_map": {
                    "AutoConfig": "configuration_canary.CanaryConfig",
                    "AutoModel": "modeling_canary.CanaryModel",
                },
            }
        )
    )
    return repo


def test_auto_classes_import_nothing_without_trust(tmp_path, modules_home):
    import plugformers

    marker = tmp_path / "CANARY_RAN"
    repo = _canary_repo(tmp_path, marker)
    for call in (
        lambda: plugformers.AutoConfig.from_pretrained(repo),
        lambda: plugformers.AutoConfig.from_pretrained(repo, trust_remote_code=False),
        lambda: plugformers.AutoModel.from_pretrained(repo),
    ):
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            call()
    assert not marker.exists()
    assert not modules_home.exists()
    assert not [m for m in sys.modules if m.startswith("plugformers_remote_local_canary_auto_")]
    config = plugformers.AutoConfig.from_pretrained(repo, trust_remote_code=True)
    assert type(config).__name__ == "CanaryConfig" and marker.read_text() == "ran"


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("../outside.EvilConfig", RemoteCodeError),
        ("/etc/passwd.Evil", RemoteCodeError),
        ("configuration_x.not-a-name", RemoteCodeError),
        ("configuration_missing.MissingConfig", OSError),
    ],
)
def test_auto_config_refuses_bad_auto_map_even_when_trusted(tmp_path, modules_home, entry, error):
    import plugformers

    repo = tmp_path / "bad"
    repo.mkdir()
    (repo / "config.json").write_text(
        json.dumps({"model_type": "bad-remote", "auto_map": {"AutoConfig": entry}})
    )
    with pytest.raises(error):
        plugformers.AutoConfig.from_pretrained(repo, trust_remote_code=True)


def test_model_with_code_from_the_hub_pinned_in_fresh_process(resnet_checkpoint, tmp_path, modules_home):
    """Upload the checkpoint, change the code on main, and load the pinned revision in a new process."""
    from plugformers.testing.hub_server import LocalHub

    ckpt, io_file = resnet_checkpoint
    with LocalHub() as hub:
        first = hub.create_repo("tester/custom-resnet", ckpt)
        broken = (ckpt / "modeling_resnet.py").read_text() + "\nraise RuntimeError('main was changed')\n"
        hub.commit("tester/custom-resnet", {"modeling_resnet.py": broken})
        env = {**hub.env(tmp_path / "hf_cache"), "PLUGFORMERS_HOME": str(modules_home.parent)}
        proc = _run(
            f"""
            import torch
            from plugformers import AutoModelForImageClassification
            try:
                AutoModelForImageClassification.from_pretrained("tester/custom-resnet", trust_remote_code=True)
            except Exception as exc:
                print("MAIN", type(exc).__name__, exc)
            model = AutoModelForImageClassification.from_pretrained(
                "tester/custom-resnet", trust_remote_code=True, revision={first!r}
            ).eval()
            io = torch.load({str(io_file)!r})
            with torch.no_grad():
                print("PINNED", float((model(io["pixels"])["logits"] - io["logits"]).abs().max()))
            """,
            env,
            tmp_path,
        )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("MAIN") and "main was changed" in line for line in lines), proc.stdout
    pinned = [float(line.split()[1]) for line in lines if line.startswith("PINNED")]
    assert pinned and pinned[0] < 1e-6, proc.stdout  # the same weights; a fresh process may pick other kernels
    cached = {p.parent.name: p.read_text() for p in modules_home.rglob("modeling_resnet.py")}
    assert len(cached) == 2 and "main was changed" not in cached[first]
