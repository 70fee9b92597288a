"""How close the transformer families' CPU forward is to the machine's float32 matmul peak, and what 0.8 would need.

For DistilBERT, ViT and Wav2Vec2 at their default configs and bench batches: counts the model's floating-point
work with ``torch.utils.flop_counter`` (matmuls, convolutions, attention), measures a 4096^3 float32 matmul as
the attainable peak, and times the reference (when ``transformers`` is importable, as in the nox ``bench``
session), our plain model and our fast path, alternating, at one thread by default. The last column is the rate
at which the whole model would have to run to take 0.8 of the reference's time, as a share of that peak: above
about 90% it cannot be reached by scheduling the same arithmetic better, only by doing less of it.

Not part of ``bench/run.py`` (it repeats nothing the suite reports): ``python bench/roofline.py [--threads N]
[--families vit,wav2vec2]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from _families import SPECS, make_inputs
from torch.utils.flop_counter import FlopCounterMode

TRANSFORMERS = ["distilbert", "vit", "wav2vec2"]


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(runs: int) -> float:
    """FLOP/s of a large square float32 matmul (2 FLOPs per multiply-accumulate)."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    return 2 * 4096**3 / median_time(lambda: a @ b, runs)


def build(family: str, library: Any) -> Any:
    spec = SPECS[family]
    config = library.AutoConfig.for_model(family)
    torch.manual_seed(0)
    return getattr(library, spec.model_class)(config).eval()


def measure(family: str, runs: int) -> dict[str, Any]:
    import plugformers

    spec = SPECS[family]
    inputs = make_inputs(family, spec.batch)
    ours = build(family, plugformers)
    fast = copy.deepcopy(ours).enable_fast_path()
    models: dict[str, Any] = {"plain": ours, "fast path": fast}
    try:
        import transformers  # the oracle, only where the bench session installed it
    except ImportError:
        transformers = None
    if transformers is not None:
        models["reference"] = build(family, transformers)
    # no_grad, not inference_mode: under the latter the counter trips over Wav2Vec2's weight-norm parametrization.
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        ours(**inputs)
    flops = counter.get_total_flops()
    with torch.inference_mode():
        for model in models.values():
            model(**inputs)  # warm-up (and the fast path's derived weights)
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(runs):  # alternate, so that a load change hits every model alike
            for name, model in models.items():
                times[name].append(median_time(lambda m=model: m(**inputs), 1))
    return {"flops": flops, "seconds": {name: statistics.median(ts) for name, ts in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the bench uses 1)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model (median)")
    parser.add_argument("--families", default=",".join(TRANSFORMERS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s)")
    peak = matmul_peak(args.runs)
    print(f"float32 matmul 4096^3: {peak / 1e9:.1f} GFLOP/s (the peak below)\n")
    for family in args.families.split(","):
        spec = SPECS[family]
        result = measure(family, args.runs)
        flops, seconds = result["flops"], result["seconds"]
        print(f"{family} {spec.model_class} {spec.batch}{spec.shape_note}: {flops / 1e9:.1f} GFLOP")
        for name, s in seconds.items():
            print(f"  {name:<10} {s:6.3f} s  {flops / s / 1e9:5.1f} GFLOP/s = {flops / s / peak:4.0%} of the peak")
        base_name = "reference" if "reference" in seconds else "plain"
        needed = flops / (0.8 * seconds[base_name])
        print(f"  0.8 of the {base_name}'s time needs {needed / 1e9:.1f} GFLOP/s = {needed / peak:.0%} of the peak;"
              f" fast path / {base_name} = {seconds['fast path'] / seconds[base_name]:.2f}\n")


if __name__ == "__main__":
    main()
