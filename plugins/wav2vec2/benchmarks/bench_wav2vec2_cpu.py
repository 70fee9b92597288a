"""Time `Wav2Vec2Model` (default config, batch 4 x 4 s of 16 kHz audio, float32, CPU) against the reference.

Both libraries run the same weights: the reference model is built and saved, and ours loads that
checkpoint. Needs an environment with both `transformers` and the plugin installed (e.g. the nox parity
session); prints the median seconds per forward and the ratio ours / reference. Not a test.

    python plugins/wav2vec2/benchmarks/bench_wav2vec2_cpu.py --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import torch


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Fastest of ``repeats`` timed calls per function, alternating calls so background load hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import transformers
    from plugformers_wav2vec2.modeling_wav2vec2 import Wav2Vec2Model

    torch.manual_seed(0)
    reference = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config()).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = Wav2Vec2Model.from_pretrained(folder).eval()
    audio = torch.randn(args.batch, int(args.seconds * 16000))

    with torch.inference_mode():
        diff = (ours(audio).last_hidden_state - reference(audio).last_hidden_state).abs().max().item()
        best = _interleaved({"reference": lambda: reference(audio), "plugformers": lambda: ours(audio)}, args.repeats)
    ref_s, our_s = best["reference"], best["plugformers"]
    print(f"threads={torch.get_num_threads()} input={tuple(audio.shape)} max|diff|={diff:.2e}")
    print(f"reference   {ref_s:.3f} s/forward")
    print(f"plugformers {our_s:.3f} s/forward")
    print(f"ratio ours/reference = {our_s / ref_s:.3f}")


if __name__ == "__main__":
    main()
