"""ViTModel forward latency on CPU against the reference library, on the same weights and inputs.

Usage (in an environment with both plugformers-vit and the reference ``transformers`` installed)::

    python plugins/vit/benchmarks/bench_vit_cpu.py --batch 8 --reps 5

Builds the default ViT-B/16 config with the reference, saves it, loads it with plugformers (plain and with
``enable_fast_path()``), checks the outputs agree, then times the three alternately and prints medians and
the ratios ours/reference. Numbers on a shared machine are noisy: compare ratios from one run only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    import transformers
    from plugformers_vit.modeling_vit import ViTModel

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    reference = transformers.ViTModel(transformers.ViTConfig()).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        plain = ViTModel.from_pretrained(folder).eval()
        fast = ViTModel.from_pretrained(folder).eval().enable_fast_path()
    models = {"reference": reference, "plugformers": plain, "plugformers fast path": fast}
    x = torch.randn(args.batch, 3, args.size, args.size)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        expected = reference(x).last_hidden_state
        for name, model in models.items():
            diff = (model(x).last_hidden_state - expected).abs().max().item()
            print(f"{name:24s} max |diff| vs reference: {diff:.2e}")
        for _ in range(args.reps):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["reference"])
    print(f"ViTModel default config, batch {args.batch} at {args.size}x{args.size}, float32, "
          f"{torch.get_num_threads()} threads, {args.reps} runs each (median)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} {median:8.3f} s   ratio {median / base:.3f}")


if __name__ == "__main__":
    main()
