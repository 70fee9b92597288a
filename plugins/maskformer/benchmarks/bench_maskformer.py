"""Time MaskFormerForInstanceSegmentation (ResNet-50 backbone, default heads) on CPU, batch 2 at 384x384, float32.

Run it once with plugformers (``--impl plugformers``) and once in an environment with the reference library
(``--impl transformers``) on the same checkpoint folder; ``--make-checkpoint`` writes that folder with the
reference library so both load identical weights. Prints the median forward time in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--impl", choices=["plugformers", "transformers"], default="plugformers")
    parser.add_argument("--make-checkpoint", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.impl == "transformers":
        import transformers as lib
    else:
        import plugformers as lib
    if args.make_checkpoint:
        backbone = lib.ResNetConfig(out_features=["stage1", "stage2", "stage3", "stage4"])
        torch.manual_seed(0)
        lib.MaskFormerForInstanceSegmentation(lib.MaskFormerConfig(backbone_config=backbone)).save_pretrained(
            args.checkpoint
        )
    model = lib.MaskFormerForInstanceSegmentation.from_pretrained(args.checkpoint).eval()
    pixels = torch.randn(2, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        model(pixel_values=pixels)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(pixel_values=pixels)
            times.append((time.perf_counter() - start) * 1000)
    print(f"{args.impl}: median {statistics.median(times):.1f} ms over {args.repeats} runs ({[round(t) for t in times]})")


if __name__ == "__main__":
    main()
