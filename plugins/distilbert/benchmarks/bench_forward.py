"""Forward latency of DistilBertForSequenceClassification against the reference library (CPU, float32).

Both implementations run in one process on the same checkpoint and inputs, alternating, after warm-up;
the script prints the median of each and the ratio ours / reference, for the default path and for the
opt-in ``enable_fast_path()``. Needs an environment with both ``transformers`` and plugformers importable::

    python plugins/distilbert/benchmarks/bench_forward.py --batch 8 --seq 128 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import torch


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers
    from plugformers_distilbert.modeling_distilbert import DistilBertForSequenceClassification

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig()).save_pretrained(folder)
        ref = transformers.DistilBertForSequenceClassification.from_pretrained(folder).eval()
        ours = DistilBertForSequenceClassification.from_pretrained(folder).eval()
        fast = DistilBertForSequenceClassification.from_pretrained(folder).eval().enable_fast_path()

    ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    runners = {
        "reference": lambda: ref(input_ids=ids, attention_mask=mask),
        "ours": lambda: ours(input_ids=ids, attention_mask=mask),
        "ours_fast": lambda: fast(input_ids=ids, attention_mask=mask),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    with torch.inference_mode():
        expected = runners["reference"]().logits
        for name in ("ours", "ours_fast"):
            diff = (runners[name]().logits - expected).abs().max().item()
            print(f"{name}: max |logits - reference| = {diff:.2e}")
        for _ in range(args.warmup):
            for fn in runners.values():
                fn()
        for _ in range(args.repeats):
            for name, fn in runners.items():
                times[name].append(_time(fn))
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "batch": args.batch,
        "seq": args.seq,
        "threads": torch.get_num_threads(),
        "median_s": medians,
        "ratio_ours": medians["ours"] / medians["reference"],
        "ratio_ours_fast": medians["ours_fast"] / medians["reference"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
