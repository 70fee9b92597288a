"""The trained digit classifier this plugin ships: registered, as accurate as recorded, and reproducible."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from plugformers.demo_trained import shipped_checkpoints
from plugformers.testing.digits import check_digits_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_digits.py"


def test_shipped_digits_checkpoint_keeps_its_accuracy_and_matches_its_training_script() -> None:
    (ckpt,) = [c for c in shipped_checkpoints() if c.name == "resnet-digits"]
    assert ckpt.model_type == "resnet"
    check_digits_checkpoint(ckpt.folder, build=runpy.run_path(str(SCRIPT))["build"])
