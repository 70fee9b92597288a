"""Deployment section of the benchmark: reduced-precision CPU inference against the reference and ONNX Runtime.

For each shape (DistilBERT-base classification 8x128 and 1x16 tokens, ViT-B/16 8x224) one worker process
holds every variant on the same weights and inputs and times them alternately, at ``threads`` threads on
every side: ours in float32 (eager and fast path), bfloat16 and int8 (``to_inference``, fast path on); the
reference in float32, bfloat16 (``from_pretrained(dtype=torch.bfloat16)``) and int8
(``torch.ao.quantization.quantize_dynamic`` of its linear layers, what its users run); onnxruntime in
float32 on the file ``plugformers export`` wrote (verified against eager) and in int8 from onnxruntime's own
``quantize_dynamic`` of that file. Every output is compared with the reference's float32 logits.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _families import SPECS

#: ``(family, batch, length)``: tokens per sequence for text, image side for images.
SHAPES = (("distilbert", 8, 128), ("distilbert", 1, 16), ("vit", 8, 224))
#: Variant names, grouped by precision; the table reads them in this order.
PRECISIONS = {
    "float32": ("ours", "ours_fast", "reference", "onnxruntime"),
    "bfloat16": ("ours", "reference"),
    "int8": ("ours", "reference", "onnxruntime"),
}


#: Seconds between two timed calls (see the loop in :func:`run_shape`).
PAUSE_S = 0.05


def shape_name(family: str, batch: int, length: int) -> str:
    return f"{batch}x{length} tokens" if family == "distilbert" else f"{batch}x{length}x{length}"


def inputs_for(family: str, batch: int, length: int, vocab_size: int) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    if family == "distilbert":
        ids = torch.randint(0, vocab_size, (batch, length), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return {"pixel_values": torch.randn(batch, 3, length, length, generator=gen)}


def export_onnx(args: dict[str, Any]) -> dict[str, Any]:
    """Our verified ONNX export of the checkpoint, and onnxruntime's own dynamic int8 quantization of it."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import plugformers

    out = Path(args["dir"])
    fp32 = out / "model.onnx"
    int8 = out / "model.int8.onnx"
    info: dict[str, Any] = {"onnxruntime": onnxruntime.__version__}
    if not fp32.is_file():
        started = time.perf_counter()
        result = plugformers.export(args["checkpoint"], out)
        info.update(export_s=time.perf_counter() - started, max_abs_diff=result.max_abs_diff, inputs=result.input_names)
    if not int8.is_file():
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return info


def run_shape(args: dict[str, Any]) -> dict[str, Any]:
    """Median latency of every variant at one shape, alternating, and each one's largest logit difference."""
    import onnxruntime
    import torch
    import transformers

    import plugformers
    from plugformers.precision import cpu_support

    threads = args["threads"]
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    family, batch, length = args["family"], args["batch"], args["length"]
    spec = SPECS[family]
    ckpt = args["checkpoint"]
    ours_cls, ref_cls = getattr(plugformers, spec.model_class), getattr(transformers, spec.model_class)
    ref = ref_cls.from_pretrained(ckpt).eval()
    inputs = inputs_for(family, batch, length, getattr(ref.config, "vocab_size", 100))
    half = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}
    models: dict[str, tuple[Any, dict[str, Any]]] = {
        "ours/float32": (ours_cls.from_pretrained(ckpt), inputs),
        "ours_fast/float32": (ours_cls.from_pretrained(ckpt).enable_fast_path(), inputs),
        "ours/bfloat16": (ours_cls.from_pretrained(ckpt).to_inference(dtype="bfloat16", fast_path=True), inputs),
        "ours/int8": (ours_cls.from_pretrained(ckpt).to_inference(quantize="int8", fast_path=True), inputs),
        "reference/float32": (ref, inputs),
        "reference/bfloat16": (ref_cls.from_pretrained(ckpt, dtype=torch.bfloat16).eval(), half),
        "reference/int8": (
            torch.ao.quantization.quantize_dynamic(ref_cls.from_pretrained(ckpt).eval(), {torch.nn.Linear}, dtype=torch.qint8),
            inputs,
        ),
    }
    calls: dict[str, Callable[[], Any]] = {
        name: (lambda m=model, x=feed: m(**x).logits) for name, (model, feed) in models.items()
    }
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    feeds = {k: v.numpy() for k, v in inputs.items()}
    for precision, file in (("float32", "model.onnx"), ("int8", "model.int8.onnx")):
        session = onnxruntime.InferenceSession(str(Path(args["onnx_dir"]) / file), options, providers=["CPUExecutionProvider"])
        calls[f"onnxruntime/{precision}"] = lambda s=session: torch.from_numpy(s.run(["logits"], feeds)[0])
    expected = calls["reference/float32"]()
    diffs = {name: float((fn().float() - expected).abs().max()) for name, fn in calls.items()}  # also the warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    begin = time.perf_counter()
    for rep in range(args["max_reps"]):
        # A new order every round, and a pause before each call: onnxruntime's thread pool spins on for a while
        # after its call and would slow down whichever call came next (always the same one in a fixed order).
        for name in random.Random(rep).sample(order, len(order)):
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
        if rep + 1 >= args["min_reps"] and time.perf_counter() - begin > args["budget_s"]:
            break
    return {
        "family": family, "batch": batch, "length": length, "threads": threads,
        "cpu": cpu_support().describe(),
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "times": times,
        "max_abs_diff": diffs,
    }


def rows(deploy: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per shape and precision: ours (best of eager and fast path in float32), reference, onnxruntime."""
    out = []
    for entry in deploy["shapes"]:
        med, diff = entry["median_s"], entry["max_abs_diff"]
        label = f"{entry['family']} {shape_name(entry['family'], entry['batch'], entry['length'])}"
        for precision, sides in PRECISIONS.items():
            row: dict[str, Any] = {"shape": label, "precision": precision}
            for side in sides:
                row[side] = med.get(f"{side}/{precision}")
                row[f"{side}_diff"] = diff.get(f"{side}/{precision}")
            out.append(row)
        ours_best = min(v for k, v in med.items() if k.startswith("ours"))
        ort_best = min(v for k, v in med.items() if k.startswith("onnxruntime"))
        out.append({"shape": label, "precision": "best", "ours": ours_best, "onnxruntime": ort_best,
                    "ours_name": min((k for k in med if k.startswith("ours")), key=med.__getitem__),
                    "onnxruntime_name": min((k for k in med if k.startswith("onnxruntime")), key=med.__getitem__),
                    "reference": min(v for k, v in med.items() if k.startswith("reference"))})
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or not b else f"{a / b:.2f}"


def render(deploy: dict[str, Any]) -> str:
    """The deployment table: milliseconds per forward, ratios ours/reference and ours/onnxruntime."""
    first = deploy["shapes"][0] if deploy["shapes"] else {}
    lines = [
        f"CPU: {first.get('cpu', '?')}; {first.get('threads', '?')} threads on every side; onnxruntime "
        f"{deploy.get('onnxruntime', '?')}. Milliseconds per forward (median, alternating runs); ratio < 1: ours "
        "is faster. Ours in bfloat16 and int8: `to_inference(...)` with the fast path on; the reference's int8: "
        "`torch.ao.quantization.quantize_dynamic`; onnxruntime's: `onnxruntime.quantization.quantize_dynamic` "
        "of our exported file. Max abs diff: logits against the reference's float32.",
        "",
        "| Model, shape | Precision | Ours | Ours, fast path | Reference | onnxruntime | ours / reference | ours / onnxruntime | max abs diff (ours / ref / ort) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows(deploy):
        if row["precision"] == "best":
            lines.append(
                f"| {row['shape']} | best of each | {_ms(row['ours'])} ({row['ours_name']}) | | {_ms(row['reference'])} | "
                f"{_ms(row['onnxruntime'])} ({row['onnxruntime_name']}) | {_ratio(row['ours'], row['reference'])} | "
                f"{_ratio(row['ours'], row['onnxruntime'])} | |"
            )
            continue
        ours = row.get("ours")
        if row.get("ours_fast") is not None:
            ours = min(ours, row["ours_fast"]) if ours is not None else row["ours_fast"]
        diffs = " / ".join("-" if row.get(f"{s}_diff") is None else f"{row[f'{s}_diff']:.1e}"
                           for s in ("ours", "reference", "onnxruntime"))
        lines.append(
            f"| {row['shape']} | {row['precision']} | {_ms(row.get('ours'))} | {_ms(row.get('ours_fast'))} | "
            f"{_ms(row.get('reference'))} | {_ms(row.get('onnxruntime'))} | {_ratio(ours, row.get('reference'))} | "
            f"{_ratio(ours, row.get('onnxruntime'))} | {diffs} |"
        )
    return "\n".join(lines) + "\n"
