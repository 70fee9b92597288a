"""Repositories with code, across libraries: the reference loads ours and we load the reference's.

A code file saved with a checkpoint runs inside whichever library loads it, and a file written for the
reference imports ``transformers``. We do not rewrite imports on load. What is checked instead:

* the same ``auto_map`` and the same code files are written by both libraries for the same classes;
* a *dual* repository, whose code imports ``plugformers`` when it is run by us (its module name starts
  with ``plugformers_remote_``) and ``transformers`` when run by the reference, saved by either library,
  loads in the other with ``trust_remote_code=True`` and gives the same logits;
* a repository made for the reference alone (code imports only ``transformers``) is refused by us without
  ``trust_remote_code=True``, naming its files, and nothing of it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

CONFIG_SRC = """
import os

# Which library runs this file: the loader's package name says, else DUAL_LIB (when saving).
if __name__.startswith("plugformers_remote_"):
    _LIB = "plugformers"
elif __name__.startswith("transformers_modules"):
    _LIB = "transformers"
else:
    _LIB = os.environ["DUAL_LIB"]

if _LIB == "plugformers":
    from plugformers import PretrainedConfig
else:
    from transformers import PretrainedConfig


class DualConfig(PretrainedConfig):
    model_type = "dual-remote"

    def __init__(self, hidden=8, **kwargs):
        self.hidden = hidden
        super().__init__(**kwargs)
"""

MODELING_SRC = """
from torch import nn

from .configuration_dual import _LIB, DualConfig

if _LIB == "plugformers":
    from plugformers import PreTrainedModel
else:
    from transformers import PreTrainedModel


class DualModelForImageClassification(PreTrainedModel):
    config_class = DualConfig
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        self.conv = nn.Conv2d(3, config.hidden, 3, padding=1)
        self.classifier = nn.Linear(config.hidden, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=0.2)
            nn.init.zeros_(module.bias)

    def forward(self, pixel_values, labels=None, **kwargs):
        hidden = self.conv(pixel_values).relu().mean(dim=(2, 3))
        return {"logits": self.classifier(hidden)}
"""

SAVE = """
    import json, os, sys, torch
    from dualpkg.configuration_dual import DualConfig
    from dualpkg.modeling_dual import DualModelForImageClassification
    DualConfig.register_for_auto_class()
    DualModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    torch.manual_seed(0)
    model = DualModelForImageClassification(DualConfig(hidden=6, num_labels=3)).eval()
    pixels = torch.load(sys.argv[2])
    with torch.no_grad():
        logits = model(pixels)["logits"]
    model.save_pretrained(sys.argv[1])
    torch.save(logits, os.path.join(sys.argv[1] + ".logits.pt"))
    print(json.dumps({"base": type(model).__mro__[1].__module__}))
"""

LOAD_WITH_REFERENCE = """
    import json, sys, torch
    import transformers
    model = transformers.AutoModelForImageClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(torch.load(sys.argv[2]))["logits"]
    print(json.dumps({
        "module": type(model).__module__,
        "base": type(model).__mro__[1].__module__,
        "logits": logits.tolist(),
    }))
"""

LOAD_WITH_US = """
    import json, sys, torch
    import plugformers
    model = plugformers.AutoModelForImageClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(torch.load(sys.argv[2]))["logits"]
    print(json.dumps({
        "module": type(model).__module__,
        "base": type(model).__mro__[1].__module__,
        "logits": logits.tolist(),
    }))
"""


def _python(code: str, args: list[str], cwd: Path, env_extra: dict[str, str], with_pkg: Path | None) -> dict:
    env = dict(os.environ)
    env.update(env_extra)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if with_pkg is not None:
        paths.insert(0, str(with_pkg))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dual(tmp_path_factory):
    root = tmp_path_factory.mktemp("dual")
    pkg = root / "src" / "dualpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configuration_dual.py").write_text(CONFIG_SRC)
    (pkg / "modeling_dual.py").write_text(MODELING_SRC)
    torch.manual_seed(1)
    pixels = root / "pixels.pt"
    torch.save(torch.randn(2, 3, 8, 8), pixels)
    env = {"PLUGFORMERS_HOME": str(root / "pf_home"), "HF_MODULES_CACHE": str(root / "hf_modules")}
    saved = {}
    for lib in ("plugformers", "transformers"):
        out = root / f"saved_by_{lib}"
        _python(SAVE, [str(out), str(pixels)], root, {**env, "DUAL_LIB": lib}, root / "src")
        saved[lib] = out
    return root, saved, pixels, env


def test_both_libraries_write_the_same_auto_map_and_code_files(dual):
    _root, saved, _pixels, _env = dual
    ours = json.loads((saved["plugformers"] / "config.json").read_text())
    theirs = json.loads((saved["transformers"] / "config.json").read_text())
    expected = {
        "AutoConfig": "configuration_dual.DualConfig",
        "AutoModelForImageClassification": "modeling_dual.DualModelForImageClassification",
    }
    assert ours["auto_map"] == theirs["auto_map"] == expected
    code = sorted(p.name for p in saved["plugformers"].glob("*.py"))
    assert (
        code
        == sorted(p.name for p in saved["transformers"].glob("*.py"))
        == [
            "configuration_dual.py",
            "modeling_dual.py",
        ]
    )
    for name in code:
        assert (saved["plugformers"] / name).read_bytes() == (saved["transformers"] / name).read_bytes()


def test_reference_loads_our_repo_with_trust_remote_code(dual):
    root, saved, pixels, env = dual
    result = _python(LOAD_WITH_REFERENCE, [str(saved["plugformers"]), str(pixels)], root, env, None)
    assert result["module"].startswith("transformers_modules")
    assert result["base"].startswith("transformers.")
    expected = torch.load(str(saved["plugformers"]) + ".logits.pt")
    assert torch.allclose(torch.tensor(result["logits"]), expected, atol=1e-6)


def test_we_load_the_reference_repo_with_trust_remote_code(dual):
    root, saved, pixels, env = dual
    result = _python(LOAD_WITH_US, [str(saved["transformers"]), str(pixels)], root, env, None)
    assert result["module"].startswith("plugformers_remote_")
    assert result["base"] == "plugformers.modeling_utils"
    expected = torch.load(str(saved["transformers"]) + ".logits.pt")
    assert torch.allclose(torch.tensor(result["logits"]), expected, atol=1e-6)


def test_reference_only_repo_is_refused_without_trust(dual, tmp_path, monkeypatch):
    """Code written for the reference alone: refused by name, nothing imported (a canary would say)."""
    import plugformers

    _root, saved, _pixels, _env = dual
    monkeypatch.setenv("PLUGFORMERS_HOME", str(tmp_path / "pf_home"))
    repo = tmp_path / "reference_only"
    repo.mkdir()
    marker = tmp_path / "RAN"
    for name in ("configuration_dual.py", "modeling_dual.py"):
        text = (saved["transformers"] / name).read_text()
        (repo / name).write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n" + text)
    (repo / "config.json").write_text((saved["transformers"] / "config.json").read_text())
    with pytest.raises(ValueError, match=r"configuration_dual\.py"):
        plugformers.AutoConfig.from_pretrained(repo)
    with pytest.raises(ValueError, match=r"trust_remote_code=True"):
        plugformers.AutoModelForImageClassification.from_pretrained(repo)
    assert not marker.exists()
    assert not [m for m in sys.modules if m.startswith("plugformers_remote_local_reference_only")]
