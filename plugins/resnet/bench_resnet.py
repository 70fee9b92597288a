"""Speed of ResNetModel against the reference library on the same weights (a script, not a test).

Run with a Python that has both plugformers-resnet and the reference library (the nox parity environment,
or the reference's venv with ``PYTHONPATH=host:plugins/resnet/src``)::

    python plugins/resnet/bench_resnet.py --batch 8 --size 224 --repeats 10

Both models run interleaved in one process on the same input so that machine noise hits both alike;
the medians and their ratio (ours / reference, below 1 is faster) are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def _time(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--channels-last", action="store_true", help="both models and input in channels_last")
    args = parser.parse_args()

    import transformers
    from plugformers_resnet.modeling_resnet import ResNetModel

    torch.manual_seed(0)
    reference = transformers.ResNetModel(transformers.ResNetConfig()).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = ResNetModel.from_pretrained(folder).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    if args.channels_last:
        reference = reference.to(memory_format=torch.channels_last)
        ours = ours.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        diff = (ours(x).pooler_output - reference(x).pooler_output).abs().max().item()
    for _ in range(2):  # warm-up
        _time(ours, x), _time(reference, x)
    ours_times, ref_times = [], []
    for _ in range(args.repeats):
        ours_times.append(_time(ours, x))
        ref_times.append(_time(reference, x))
    ours_median, ref_median = statistics.median(ours_times), statistics.median(ref_times)
    print(
        f"ResNetModel (ResNet-50) batch {args.batch} at {args.size}x{args.size}, float32, "
        f"{torch.get_num_threads()} threads{', channels_last' if args.channels_last else ''}"
    )
    print(f"  plugformers: {ours_median * 1000:8.1f} ms (median of {args.repeats})")
    print(f"  reference:   {ref_median * 1000:8.1f} ms")
    print(f"  ratio ours/reference: {ours_median / ref_median:.3f}   max |pooler diff|: {diff:.2e}")


if __name__ == "__main__":
    main()
