"""GPU section of the benchmark: half precision, eager/sdpa/``torch.compile``, TFLOP/s against a measured peak.

Runs only where ``torch.cuda.is_available()``; elsewhere it returns ``{"skipped": reason}``. ``device="cpu"``
with tiny repetition counts is a dry run that exercises the same code on a machine without a GPU.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _families import SPECS, make_inputs

DTYPES = ("bfloat16", "float16")
# Large-batch throughput shapes; ViT at 256 and DistilBERT at 64 x 512 are the TFLOP/s shapes.
LARGE_BATCH = {"distilbert": 64, "vit": 256, "wav2vec2": 16, "resnet": 256, "maskformer": 16}
TFLOPS_SHAPES = {"vit": {"batch": 256}, "distilbert": {"batch": 64, "seq_len": 512}}
NO_ATTENTION = {"resnet"}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], Any], device: str, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_tflops(device: str, n: int, reps: int) -> float:
    """bf16 dense matmul throughput measured now, the yardstick for model TFLOP/s."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = _median_time(lambda: a @ b, device, warmup=3, reps=reps)
    return 2 * n**3 / seconds / 1e12


def _inputs(family: str, batch: int, device: str, dtype: Any, seq_len: int | None = None) -> dict[str, Any]:
    import torch

    if family == "distilbert" and seq_len is not None:
        ids = torch.randint(0, 100, (batch, seq_len), generator=torch.Generator().manual_seed(0))
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    else:
        inputs = make_inputs(family, batch)
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}


def _load(impl: str, family: str, checkpoint: str, dtype: Any, mode: str, device: str) -> Any:
    import torch

    lib = __import__({"ours": "plugformers", "reference": "transformers"}[impl])
    kwargs: dict[str, Any] = {"dtype": dtype}
    if family not in NO_ATTENTION:
        kwargs["attn_implementation"] = "eager" if mode == "eager" else "sdpa"
    model = getattr(lib, SPECS[family].model_class).from_pretrained(checkpoint, **kwargs).to(device).eval()
    if mode == "compile":
        model = torch.compile(model)
    return model


def _flops(model: Any, inputs: dict[str, Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(**inputs)
    return int(counter.get_total_flops())


def _rss_with_device_map(impl: str, family: str, checkpoint: str, device: str, dtype: str) -> dict[str, Any]:
    """Fresh process: ``from_pretrained(device_map=device, dtype=dtype)`` peak host RSS growth against the
    shard size, and on CUDA the peak device memory against the loaded weights' size."""
    worker = Path(__file__).with_name("_worker.py")
    args = {
        "impl": impl, "family": family, "checkpoint": checkpoint, "threads": 4, "device_map": device, "dtype": dtype,
    }
    proc = subprocess.run([sys.executable, str(worker), "load", json.dumps(args)], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr or proc.stdout)[-500:]}
    result = json.loads(lines[-1][len("BENCH_RESULT "):])
    shards = [p.stat().st_size for p in Path(checkpoint).glob("*.safetensors")]
    result["largest_shard_mb"] = max(shards) / 2**20 if shards else None
    return result


def run_gpu_section(args: dict[str, Any]) -> dict[str, Any]:
    """Every family x dtype x mode x implementation: batch-1 latency and large-batch throughput; TFLOP/s."""
    import torch

    device = args.get("device", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": "no CUDA device here (torch.cuda.is_available() is False): GPU section not run"}
    torch.set_grad_enabled(False)
    warmup, reps = args.get("warmup", 5), args.get("reps", 20)
    large = {**LARGE_BATCH, **args.get("large_batch", {})}
    modes = args.get("modes", ["eager", "sdpa", "compile"])
    dtypes = args.get("dtypes", list(DTYPES))
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else device,
        "matmul_peak_bf16_tflops": matmul_peak_tflops(device, args.get("matmul_n", 8192), reps),
        "runs": [],
        "tflops": [],
        "device_map_rss": {},
    }
    for family in args["families"]:
        checkpoint = str(Path(args["dir"]) / family)
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            for mode in modes:
                if mode == "eager" and family in NO_ATTENTION and "sdpa" in modes:
                    continue  # no attention: eager and sdpa are the same model
                for impl in ("ours", "reference"):
                    row: dict[str, Any] = {"family": family, "dtype": dtype_name, "mode": mode, "impl": impl}
                    try:
                        model = _load(impl, family, checkpoint, dtype, mode, device)
                        one = _inputs(family, 1, device, dtype)
                        row["latency_b1_s"] = _median_time(lambda m=model, x=one: m(**x), device, warmup, reps)
                        big = _inputs(family, large[family], device, dtype)
                        seconds = _median_time(lambda m=model, x=big: m(**x), device, warmup, max(3, reps // 4))
                        row["throughput_batch"] = large[family]
                        row["throughput_per_s"] = large[family] / seconds
                        shape = TFLOPS_SHAPES.get(family)
                        if shape and dtype_name == "bfloat16" and mode != "eager":
                            batch = args.get("tflops_batch", {}).get(family, shape["batch"])
                            x = _inputs(family, batch, device, dtype, shape.get("seq_len"))
                            flops = _flops(model, x)
                            secs = _median_time(lambda m=model, x=x: m(**x), device, warmup, max(3, reps // 4))
                            tflops = flops / secs / 1e12
                            result["tflops"].append({
                                "family": family, "impl": impl, "mode": mode, "batch": batch,
                                "seq_len": shape.get("seq_len"), "tflops": tflops,
                                "fraction_of_peak": tflops / result["matmul_peak_bf16_tflops"],
                            })
                        del model
                    except Exception as exc:  # one failing combination must not hide the others
                        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                    result["runs"].append(row)
                    if device == "cuda":
                        torch.cuda.empty_cache()
        if args.get("device_map_check", True):
            result["device_map_rss"][family] = {
                f"{impl} {dtype}": _rss_with_device_map(impl, family, checkpoint, device, dtype)
                for impl in ("ours", "reference")
                for dtype in ("float32", "bfloat16")
            }
    return result
