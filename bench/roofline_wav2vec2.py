"""Why Wav2Vec2's forward cannot reach 0.8 of the reference on a CPU in float32: work per second against the peak.

Counts the multiply-accumulates of Wav2Vec2-base (the default config) on a batch of 4 x 4 s of 16 kHz audio,
measures a large float32 matmul on the same machine as the attainable peak, and times the conv feature encoder,
the whole plain model and the fast path. Both libraries run the same kernels, so the plain model's rate is the
reference's too. Run with the dev environment: ``python bench/roofline_wav2vec2.py [--threads N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from plugformers_wav2vec2.configuration_wav2vec2 import Wav2Vec2Config
from plugformers_wav2vec2.modeling_wav2vec2 import Wav2Vec2ForCTC

BATCH, SAMPLES = 4, 64_000


def best_of(fn: Callable[[], object], runs: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def macs(config: Wav2Vec2Config, samples: int) -> tuple[int, int, int]:
    """Multiply-accumulates per sample: (conv feature encoder, transformer incl. projections and head, frames)."""
    length, channels_in, conv = samples, 1, 0
    for channels, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        conv += length * channels * channels_in * kernel
        channels_in = channels
    hidden, frames = config.hidden_size, length
    projection = frames * channels_in * hidden
    positional = frames * hidden * (hidden // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings
    layer = frames * (4 * hidden * hidden + 2 * hidden * config.intermediate_size) + 2 * frames * frames * hidden
    head = frames * hidden * config.vocab_size
    return conv, projection + positional + config.num_hidden_layers * layer + head, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the bench uses 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = Wav2Vec2Config()
    conv, transformer, frames = macs(config, SAMPLES)
    total = BATCH * (conv + transformer)
    print(f"{frames} frames; GMAC per sample: conv encoder {conv / 1e9:.2f}, transformer {transformer / 1e9:.2f}; "
          f"batch of {BATCH}: {total / 1e9:.1f}")
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    peak = 4096**3 / best_of(lambda: a @ b) / 1e9
    print(f"float32 matmul 4096^3 at {args.threads} thread(s): {peak:.1f} GMAC/s")
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(config).eval()
    audio = torch.randn(BATCH, SAMPLES)
    with torch.inference_mode():
        encoder = best_of(lambda: model.wav2vec2.feature_extractor(audio))
        plain = best_of(lambda: model(audio))
        model.enable_fast_path()
        fast = best_of(lambda: model(audio))
    print(f"conv encoder {encoder:.2f} s = {BATCH * conv / encoder / 1e9:.1f} GMAC/s")
    print(f"whole model, plain {plain:.2f} s = {total / plain / 1e9:.1f} GMAC/s ({total / plain / 1e9 / peak:.0%} of "
          f"the matmul); fast path {fast:.2f} s = {total / fast / 1e9:.1f} GMAC/s")
    needed = total / (0.8 * plain) / 1e9
    print(f"0.8 of the plain time needs {needed:.1f} GMAC/s = {needed / peak:.0%} of the matmul")


if __name__ == "__main__":
    main()
