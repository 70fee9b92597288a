"""``torchrun -m plugformers predict``: two CPU ranks (gloo), one killed mid-run, the job resumed and merged.

The merged file must hold every input exactly once, in input order, with the results one process gives; the
lines a rank wrote before it was killed must be kept, not recomputed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_checkpoints import text_checkpoint

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank processes through /proc"),
]


def _torchrun(*argv: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "plugformers", *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _rank_pid(agent: int, rank: int) -> int | None:
    """The pid of the worker of ``rank`` under the torchrun agent ``agent`` (its RANK environment variable)."""
    for task in Path(f"/proc/{agent}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(child)
    return None


def _count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def test_two_ranks_killed_and_resumed_merge_in_input_order(tmp_path):
    pytest.importorskip("plugformers_distilbert")
    pytest.importorskip("torch.distributed")
    model = text_checkpoint(tmp_path / "model", "DistilBertForSequenceClassification", id2label={0: "neg", 1: "pos"})
    texts = [f"the fox number {n} lives in paris" if n % 3 else f"a dog {n}" for n in range(600)]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    job = [str(model), "--input-file", str(tmp_path / "texts.txt"), "--output", str(out)]
    part = tmp_path / "out.jsonl.rank1-of-2"

    # Run 1: kill rank 1 once it has written a few lines (torchrun then stops rank 0, as on a lost node).
    agent = subprocess.Popen(_torchrun("predict", *job, "--batch-size", "1"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while _count(part) < 5 and agent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = _rank_pid(agent.pid, 1)
    assert victim is not None and agent.poll() is None, "the job ended before rank 1 could be killed"
    os.kill(victim, signal.SIGKILL)
    log = agent.communicate(timeout=120)[0].decode(errors="replace")
    assert agent.returncode != 0, log
    written = part.read_text(encoding="utf-8").splitlines()
    assert 5 <= len(written) < 300 and not out.exists()
    # Mark a line rank 1 wrote before it died: resuming must keep it as it is.
    marked = json.loads(written[0])
    marked["output"] = "kept from the first run"
    written[0] = json.dumps(marked)
    part.write_text("\n".join(written) + "\n", encoding="utf-8")

    # Run 2: --resume finishes both ranks' parts (in bigger batches: same numbers); rank 0 merges them.
    done = subprocess.run(_torchrun("predict", *job, "--resume", "--batch-size", "16"), env=_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == list(range(len(texts)))
    assert [r["input"] for r in lines] == texts
    assert lines[marked["id"]]["output"] == "kept from the first run"
    assert not list(tmp_path.glob("out.jsonl.rank*"))
    # The results are those of one process (any rank, any batch: the same numbers).
    from plugformers import pipeline

    sample = [n for n in range(0, len(texts), 37) if n != marked["id"]]
    expected = pipeline("text-classification", model=model)([texts[n] for n in sample], top_k=3)
    for n, want in zip(sample, expected):
        assert [e["label"] for e in lines[n]["output"]] == [e["label"] for e in want]
        assert [e["score"] for e in lines[n]["output"]] == pytest.approx([e["score"] for e in want], abs=1e-5)


def test_merge_refuses_a_missing_result(tmp_path):
    from plugformers.predict import Item, PredictError, _merge

    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.rank0-of-2").write_text('{"id": 0, "input": "a", "output": 1}\n', encoding="utf-8")
    (tmp_path / "out.jsonl.rank1-of-2").write_text("", encoding="utf-8")
    with pytest.raises(PredictError, match="1 input"):
        _merge(out, 2, [Item(0, "a", "a"), Item(1, "b", "b")])
    (tmp_path / "out.jsonl.rank1-of-2").write_text('{"id": 1, "input": "b", "output": 2}\n', encoding="utf-8")
    _merge(out, 2, [Item(0, "a", "a"), Item(1, "b", "b")])
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [0, 1]
