"""The third-party example package (docs/examples/custom_resnet) in a fresh virtual environment.

Both ways of making an outside family known to the Auto classes are checked: registering by hand
(``AutoConfig.register`` / ``AutoModel*.register``, package only importable) and automatic discovery through
the ``plugformers`` entry point once the package is installed.

The fresh environment gets its own editable install of the host and a regular install of the example; the
heavy dependencies (torch, numpy, ...) are shared from the running interpreter's site-packages through a
``.pth`` line instead of being reinstalled. Paths listed in a ``.pth`` file are not site directories, so the
editable installs of this checkout's family plugins are not active there (their stale metadata may make the
registry warn that they were skipped, which is expected).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from plugformers.vocabulary import CONFORMANCE_CHECKS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "custom_resnet"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="venv layout differs on Windows")


def _check(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new venv with the host installed editable; returns its python."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("third_party")
    venv = root / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        _check(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    (site / "_shared_heavy_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    pip += ["--no-build-isolation", "--no-index"]
    # Build from copies: in-tree builds would leave build/ and *.egg-info folders in the checkout.
    host_copy = root / "host_src"
    shutil.copytree(
        ROOT,
        host_copy,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "plugins", "tests", "bench", "docs", ".nox", "*_cache", "build", "*.egg-info"
        ),
    )
    _check([*pip, "-e", str(host_copy)])
    return python, root


def _run(python: Path, code: str, cwd: Path, extra_path: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    env["PLUGFORMERS_HOME"] = str(cwd / "pf_home")
    proc = subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


COMMON = """
    import importlib.util, json, torch
    import plugformers
    from plugformers import AutoConfig, AutoModel, AutoModelForImageClassification
    out = {}
    tiny = dict(block_type="basic", layers=[1, 1, 1, 1], channels=[4, 4, 8, 8], stem_width=8,
                stem_type="deep", avg_down=True, num_classes=5)

    def round_trip(config_cls):
        config_cls(**tiny).save_pretrained("cfg")
        config = AutoConfig.from_pretrained("cfg")
        torch.manual_seed(0)
        model = AutoModelForImageClassification.from_config(config).eval()
        pixels = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            logits = model(pixels)["logits"]
        model.save_pretrained("ckpt")
        again = AutoModelForImageClassification.from_pretrained("ckpt").eval()
        with torch.no_grad():
            # Not bit equality: a memory-mapped weight may take another BLAS kernel than a fresh one (~1e-10).
            same = torch.allclose(again(pixels)["logits"], logits, atol=1e-6, rtol=1e-6)
        base = AutoModel.from_pretrained("ckpt")
        with torch.no_grad():
            features = base(pixels)
        return {
            "config": type(config).__module__ + "." + type(config).__name__,
            "model": type(model).__module__ + "." + type(model).__name__,
            "base": type(base).__name__,
            "logits_shape": list(logits.shape),
            "features_shape": list(features.shape),
            "reloaded_equal": same,
            "loss": float(again(pixels, labels=torch.tensor([0, 1]))["loss"]) > 0,
        }
"""


def test_manual_registration_in_fresh_venv(fresh_venv):
    python, root = fresh_venv
    work = root / "manual"
    work.mkdir(exist_ok=True)
    result = _run(
        python,
        COMMON
        + """
    out["installed"] = importlib.util.find_spec("custom_resnet_example") is not None  # via PYTHONPATH only
    from importlib import metadata
    out["dist"] = any(d.metadata["Name"] == "custom-resnet-example" for d in metadata.distributions())
    from custom_resnet_example.configuration_resnet import ResnetConfig
    from custom_resnet_example.modeling_resnet import ResnetModel, ResnetModelForImageClassification
    ResnetConfig(**tiny).save_pretrained("before")
    try:
        AutoConfig.from_pretrained("before")
        out["before"] = "loaded"
    except (ValueError, KeyError) as exc:
        out["before"] = str(exc)
    AutoConfig.register("custom-resnet", ResnetConfig)
    AutoModel.register(ResnetConfig, ResnetModel)
    AutoModelForImageClassification.register(ResnetConfig, ResnetModelForImageClassification)
    out.update(round_trip(ResnetConfig))
    try:
        ResnetConfig(block_type="wide")
    except ValueError as exc:
        out["bad_block"] = str(exc)
    try:
        ResnetConfig(stem_type="shallow")
    except ValueError as exc:
        out["bad_stem"] = str(exc)
    print(json.dumps(out))
    """,
        work,
        extra_path=EXAMPLE / "src",
    )
    assert result["installed"] is True and result["dist"] is False
    assert "custom-resnet" in result["before"]
    assert result["config"] == "custom_resnet_example.configuration_resnet.ResnetConfig"
    assert result["model"] == "custom_resnet_example.modeling_resnet.ResnetModelForImageClassification"
    assert result["base"] == "ResnetModel"
    assert result["logits_shape"] == [2, 5] and result["features_shape"] == [2, 8, 1, 1]
    assert result["reloaded_equal"] is True and result["loss"] is True
    assert "block_type" in result["bad_block"] and "'wide'" in result["bad_block"]
    assert "stem_type" in result["bad_stem"] and "'shallow'" in result["bad_stem"]


@pytest.fixture(scope="module")
def installed_example(fresh_venv):
    """The example package installed (not editable) in the fresh venv; returns the copy it was built from."""
    python, root = fresh_venv
    example_copy = root / "example_src"
    shutil.copytree(EXAMPLE, example_copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _check(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(example_copy),
        ]
    )
    return example_copy


def test_entry_point_registration_in_fresh_venv(fresh_venv, installed_example):
    python, root = fresh_venv
    work = root / "automatic"
    work.mkdir(exist_ok=True)
    result = _run(
        python,
        COMMON
        + """
    from importlib import metadata
    out["dist"] = metadata.version("custom-resnet-example")
    out["entry_point"] = [ep.value for ep in metadata.entry_points(group="plugformers") if ep.name == "custom-resnet"]
    import sys
    out["imported_at_start"] = "custom_resnet_example.modeling_resnet" in sys.modules
    out["public_name"] = plugformers.ResnetModelForImageClassification.__name__
    out.update(round_trip(plugformers.ResnetConfig))
    from custom_resnet_example.configuration_resnet import ResnetConfig
    try:
        AutoConfig.register("custom-resnet", ResnetConfig)
        out["taken"] = "registered twice"
    except ValueError as exc:
        out["taken"] = str(exc)
    AutoConfig.register("custom-resnet", ResnetConfig, exist_ok=True)
    print(json.dumps(out))
    """,
        work,
    )
    assert result["dist"] == "0.1.0"
    assert result["entry_point"] == ["custom_resnet_example.plugin"]
    assert result["imported_at_start"] is False
    assert result["public_name"] == "ResnetModelForImageClassification"
    assert result["config"] == "custom_resnet_example.configuration_resnet.ResnetConfig"
    assert result["model"] == "custom_resnet_example.modeling_resnet.ResnetModelForImageClassification"
    assert result["logits_shape"] == [2, 5] and result["reloaded_equal"] is True
    assert "exist_ok" in result["taken"]


def test_the_conformance_suite_runs_from_one_conftest_line(fresh_venv, installed_example):
    """The example's tests/conftest.py asks for the suite; pytest runs it for the family, skips with reasons."""
    python, root = fresh_venv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PLUGFORMERS_HOME"] = str(root / "pf_home")
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=installed_example,
        env=env,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    ran = re.findall(r"test_conformance\[([\w-]+)\] (PASSED|SKIPPED|FAILED)", out)
    assert {name.rsplit("-", 1)[1] for name, _ in ran} == set(CONFORMANCE_CHECKS)
    assert all(name.startswith("custom-resnet-Resnet") for name, _ in ran), ran
    outcome = dict(ran)
    for check in ("forward", "save_load", "dtypes", "compile", "export"):
        assert outcome[f"custom-resnet-ResnetModelForImageClassification-{check}"] == "PASSED", check
    assert outcome["custom-resnet-ResnetModelForImageClassification-base_head_loading"] == "PASSED"
    assert outcome["custom-resnet-ResnetModel-backward"] == "SKIPPED"
    # The reasons come from the registration's skips.
    assert "unused" in out and "no hidden states" in out
