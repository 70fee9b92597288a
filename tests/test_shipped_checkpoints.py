"""The trained checkpoints installed plugins ship (``checkpoints=`` in their registration) really predict.

Generic over the registry: each folder holds a checkpoint and its samples, ``plugformers predict`` gives
every sample the label its ``eval_results.json`` expects, and the demo says so. (The digit checkpoints'
held-out accuracy is checked by their plugins' own tests.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import plugformers.demo_trained as demo_trained
from plugformers.cli import main
from plugformers.demo_trained import (
    ShippedCheckpoint,
    checkpoint_folder,
    recorded_results,
    shipped_checkpoints,
    show_trained_models,
)
from plugformers.vocabulary import CONFIG_NAME, SAFE_WEIGHTS_NAME

CHECKPOINTS = shipped_checkpoints()
needs_checkpoints = pytest.mark.skipif(not CHECKPOINTS, reason="no installed plugin ships a checkpoint")


@needs_checkpoints
@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=[c.name for c in CHECKPOINTS])
def test_checkpoint_folder_holds_weights_results_and_samples(ckpt: ShippedCheckpoint) -> None:
    for filename in (CONFIG_NAME, SAFE_WEIGHTS_NAME, demo_trained.RESULTS_FILE):
        assert (ckpt.folder / filename).is_file(), filename
    assert (ckpt.folder / SAFE_WEIGHTS_NAME).stat().st_size < 2_000_000
    recorded = recorded_results(ckpt.folder)
    assert recorded.get("summary") and recorded.get("samples")
    for relative in recorded["samples"]:
        assert (ckpt.folder / relative).is_file(), relative
    config = json.loads((ckpt.folder / CONFIG_NAME).read_text(encoding="utf-8"))
    assert config["model_type"] == ckpt.model_type


@needs_checkpoints
@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=[c.name for c in CHECKPOINTS])
def test_cli_predict_gives_every_sample_its_label(ckpt: ShippedCheckpoint, capsys: pytest.CaptureFixture[str]) -> None:
    samples = recorded_results(ckpt.folder)["samples"]
    paths = [str(ckpt.folder / relative) for relative in samples]
    assert main(["predict", str(ckpt.folder), *paths, "--json", "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == len(samples)
    for result, expected in zip(out["results"], samples.values()):
        top = result["output"]  # image-classification: [{"label", "score"}], best first
        assert top[0]["label"] == expected, result
        assert top[0]["score"] > top[1]["score"]


@needs_checkpoints
def test_the_demo_shows_every_checkpoint_and_prediction(capsys: pytest.CaptureFixture[str]) -> None:
    assert show_trained_models() == 0
    out = capsys.readouterr().out
    for ckpt in CHECKPOINTS:
        recorded = recorded_results(ckpt.folder)
        assert f"trained checkpoint {ckpt.name} ({ckpt.model_type}, plugin {ckpt.plugin}" in out
        assert recorded["summary"] in out
    assert out.count(" ok") == sum(len(recorded_results(c.folder)["samples"]) for c in CHECKPOINTS)
    assert "WRONG" not in out


@needs_checkpoints
def test_the_demo_counts_a_wrong_label_and_skips_an_empty_folder(tmp_path, monkeypatch, capsys) -> None:
    real = CHECKPOINTS[0]
    shutil.copytree(real.folder, tmp_path / "copy")
    recorded = recorded_results(tmp_path / "copy")
    first = next(iter(recorded["samples"]))
    recorded["samples"][first] = "not-a-label"
    (tmp_path / "copy" / demo_trained.RESULTS_FILE).write_text(json.dumps(recorded), encoding="utf-8")
    (tmp_path / "empty").mkdir()
    fakes = [
        ShippedCheckpoint("copy", real.model_type, real.plugin, tmp_path / "copy"),
        ShippedCheckpoint("empty", real.model_type, real.plugin, tmp_path / "empty"),
    ]
    monkeypatch.setattr(demo_trained, "shipped_checkpoints", lambda: fakes)
    assert show_trained_models() == 1
    out = capsys.readouterr().out
    assert out.count("WRONG, expected not-a-label") == 1
    assert "holds no config.json" in out


def test_checkpoint_folder_resolves_inside_the_package(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "pf_shipped_pkg"
    (package / "models" / "m").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert checkpoint_folder("pf_shipped_pkg:models/m") == package / "models" / "m"
