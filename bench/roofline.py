"""How close the transformer families' CPU forward is to the machine's float32 matmul peak, and what 0.8 would need.

For DistilBERT, ViT and Wav2Vec2 at their default configs and bench batches: counts each model's floating-point
work with ``torch.utils.flop_counter`` (matmuls, convolutions, attention) and times the reference (when
``transformers`` is importable, as in the nox ``bench`` session), our plain model, our fast path and a 4096^3
float32 matmul (the attainable peak) in alternating rounds, at one thread by default. The last line gives the
rate at which our fast path's arithmetic would have to run to take 0.8 of the reference's time, as a share of
that peak: near or above 100% it cannot be reached by running the same arithmetic better, only by doing less.

Not part of ``bench/run.py`` (it repeats nothing the suite reports): ``python bench/roofline.py [--threads N]
[--families vit,wav2vec2]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable
from typing import Any

import torch
from _families import SPECS, make_inputs
from _worker import _timed
from torch.utils.flop_counter import FlopCounterMode

TRANSFORMERS = ["distilbert", "vit", "wav2vec2"]


def matmul() -> Callable[[], object]:
    """A large square float32 matmul, timed beside the models as the attainable peak."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    return lambda: a @ b


MATMUL_FLOPS = 2 * 4096**3


def build(family: str, library: Any) -> Any:
    spec = SPECS[family]
    config = library.AutoConfig.for_model(family)
    torch.manual_seed(0)
    return getattr(library, spec.model_class)(config).eval()


def measure(family: str, runs: int) -> dict[str, Any]:
    """Each model's FLOPs and median time, and the matmul's, in alternating rounds (a load change hits all alike)."""
    import plugformers

    spec = SPECS[family]
    inputs = make_inputs(family, spec.batch)
    ours = build(family, plugformers)
    models: dict[str, Any] = {"plain": ours, "fast path": copy.deepcopy(ours).enable_fast_path()}
    try:
        import transformers  # the oracle, only where the bench session installed it
    except ImportError:
        transformers = None
    if transformers is not None:
        models["reference"] = build(family, transformers)
    flops = {}
    for name, model in models.items():
        # no_grad, not inference_mode: under the latter the counter trips over Wav2Vec2's weight-norm
        # parametrization. The reference's classification heads do more arithmetic than ours (see the docs).
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(**inputs)
        flops[name] = counter.get_total_flops()
    calls: dict[str, Callable[[], object]] = {name: (lambda m=model: m(**inputs)) for name, model in models.items()}
    calls["matmul"] = matmul()
    flops["matmul"] = MATMUL_FLOPS
    with torch.inference_mode():
        for call in calls.values():
            call()  # warm-up (and the fast path's derived weights)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(runs):
            for name, call in calls.items():
                times[name].append(_timed(call)[0])
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
    for family in args.families.split(","):
        spec = SPECS[family]
        result = measure(family, args.runs)
        flops, seconds = result["flops"], result["seconds"]
        peak = MATMUL_FLOPS / seconds.pop("matmul")
        print(f"{family} {spec.model_class} {spec.batch}{spec.shape_note}; float32 matmul 4096^3 in the same rounds "
              f"{peak / 1e9:.1f} GFLOP/s (the peak)")
        for name, s in seconds.items():
            rate = flops[name] / s
            print(f"  {name:<10} {s:6.3f} s  {flops[name] / 1e9:6.1f} GFLOP  {rate / 1e9:5.1f} GFLOP/s = "
                  f"{rate / peak:4.0%} of the peak")
        base = "reference" if "reference" in seconds else "plain"
        needed = flops["fast path"] / (0.8 * seconds[base])
        print(f"  our arithmetic in 0.8 of the {base}'s time needs {needed / 1e9:.1f} GFLOP/s = {needed / peak:.0%} "
              f"of the peak; fast path / {base} = {seconds['fast path'] / seconds[base]:.2f}\n")


if __name__ == "__main__":
    main()
