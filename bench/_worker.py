"""One benchmark measurement, run in its own process: ``python bench/_worker.py TASK '<json args>'``.

The orchestrator (``bench/run.py``) starts a fresh interpreter per measurement where process state matters
(import time, peak memory) and reads the result from the last stdout line that starts with ``RESULT_MARK``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _families import PHOTO_HW, SPECS, SYLLABLES, make_inputs, reference_config
from _families import words as made_up_words

RESULT_MARK = "BENCH_RESULT "
# Absolute and relative tolerance of the parity tests: every variant of ours must stay within it.
TOLERANCE = 1e-4
LIBS = {"ours": "plugformers", "reference": "transformers"}


def _emit(result: dict[str, Any]) -> None:
    print(RESULT_MARK + json.dumps(result), flush=True)


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    """Peak resident set size of this process image so far, in MiB.

    ``ru_maxrss`` survives ``exec`` on Linux, so a worker would inherit its parent's peak; the kernel's
    ``VmHWM`` belongs to the current image only. ``ru_maxrss`` (KiB on Linux) is the fallback elsewhere.
    """
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> float:
    """Start a new peak-RSS window (Linux ``clear_refs`` 5) and return the current RSS in MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    rss = _status_mb("VmRSS")
    return rss if rss is not None else _maxrss_mb()


def _lib(impl: str) -> Any:
    return __import__(LIBS[impl])


def _class(impl: str, name: str) -> Any:
    """``name`` from either library; for the reference's image processors, the PIL backend it falls back to."""
    lib = _lib(impl)
    if impl == "reference" and name.endswith("ImageProcessor") and hasattr(lib, name + "Pil"):
        try:
            import torchvision  # noqa: F401
        except ImportError:
            return getattr(lib, name + "Pil")
    return getattr(lib, name)


# --------------------------------------------------------------------------------------------- prepare
def task_prepare(args: dict[str, Any]) -> dict[str, Any]:
    """Write one default-config checkpoint per family (and preprocessing files) with the reference library."""
    import torch
    import transformers

    root = Path(args["dir"])
    made = []
    for family in args["families"]:
        out = root / family
        if (out / "DONE").exists():
            continue
        spec = SPECS[family]
        torch.manual_seed(0)
        model = getattr(transformers, spec.model_class)(reference_config(transformers, family)).eval()
        if family in ("resnet", "maskformer"):
            # Non-trivial BatchNorm statistics, so normalisation is really exercised by the comparison.
            with torch.no_grad():
                for module in model.modules():
                    if isinstance(module, torch.nn.BatchNorm2d):
                        module.running_mean.uniform_(-0.1, 0.1)
                        module.running_var.uniform_(0.5, 1.5)
        model.save_pretrained(out)
        if spec.image_processor:
            _class("reference", spec.image_processor)().save_pretrained(out)
        (out / "DONE").write_text("ok\n")
        made.append(family)
        del model
    tok_dir = root / "tokenizer"
    if args.get("tokenizer") and not (tok_dir / "DONE").exists():
        tok_dir.mkdir(parents=True, exist_ok=True)
        vocab = tok_dir / "vocab.txt"
        vocab.write_text("\n".join(_vocabulary()) + "\n")
        transformers.DistilBertTokenizerFast(vocab_file=str(vocab)).save_pretrained(tok_dir)
        (tok_dir / "DONE").write_text("ok\n")
        made.append("tokenizer")
    return {"made": made}


def _vocabulary() -> list[str]:
    """A WordPiece vocabulary: specials, characters, syllable pieces and ~3000 frequent whole words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,;:!?'\"-()")
    pieces = [f"##{c}" for c in chars[:36]] + [f"##{s}" for s in SYLLABLES] + list(SYLLABLES)
    words = [w for w in dict.fromkeys(made_up_words(4000, seed=1)) if w not in SYLLABLES][:3000]
    return list(dict.fromkeys(specials + chars + pieces + words))


def corpus(count: int) -> list[str]:
    """``count`` deterministic English-like sentences of 5 to 40 words, mixed case and punctuation."""
    import random

    rng = random.Random(7)
    words = made_up_words(5000, seed=1)
    out = []
    for _ in range(count):
        sentence = [rng.choice(words) for _ in range(rng.randint(5, 40))]
        sentence[0] = sentence[0].capitalize()
        for i in range(2, len(sentence), 7):
            sentence[i] += rng.choice([",", ";", ""])
        out.append(" ".join(sentence) + rng.choice([".", "!", "?"]))
    return out


# --------------------------------------------------------------------------------------------- import
def task_import(args: dict[str, Any]) -> dict[str, Any]:
    """Seconds to import the library and resolve one config, with torch already imported."""
    import torch  # noqa: F401

    base_rss = _reset_peak()
    start = time.perf_counter()
    lib = _lib(args["impl"])
    lib.AutoConfig.for_model("distilbert")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_mb": _maxrss_mb() - base_rss}


# --------------------------------------------------------------------------------------------- load
def task_load(args: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained`` wall time and peak-RSS growth over this same process idle after its imports."""
    import torch

    torch.set_num_threads(args["threads"])
    cls = _class(args["impl"], SPECS[args["family"]].model_class)
    idle_rss = _reset_peak()
    start = time.perf_counter()
    kwargs: dict[str, Any] = {"device_map": args["device_map"]} if args.get("device_map") else {}
    if args.get("dtype"):
        kwargs["dtype"] = getattr(torch, args["dtype"])
    on_cuda = str(args.get("device_map", "")).startswith("cuda") and torch.cuda.is_available()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    model = cls.from_pretrained(args["checkpoint"], **kwargs)
    seconds = time.perf_counter() - start
    peak = _maxrss_mb()
    # On a GPU, the most device memory the load held at once against what the loaded weights take.
    device_peak = {
        "device_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        "device_weights_mb": sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20,
    } if on_cuda else {}
    # Memory-mapped weights become resident only when read: read every tensor once to see the real footprint.
    numel = 0
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.sum()
            numel += tensor.numel()
    touched = _maxrss_mb()
    return {
        "seconds": seconds, "rss_delta_mb": peak - idle_rss, "rss_peak_mb": peak,
        "rss_touched_delta_mb": touched - idle_rss, "numel": numel, **device_peak,
    }


# --------------------------------------------------------------------------------------------- forward
def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _max_diff(a: Any, b: Any, names: tuple[str, ...]) -> tuple[float, bool]:
    import torch

    worst, ok = 0.0, True
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        worst = max(worst, float((x - y).abs().max()))
        ok = ok and bool(torch.allclose(x, y, atol=TOLERANCE, rtol=TOLERANCE))
    return worst, ok


def task_forward(args: dict[str, Any]) -> dict[str, Any]:
    """Forward latency of ours, our fast path and the reference on the same weights and inputs, interleaved."""
    import torch
    import transformers

    import plugformers

    torch.set_num_threads(args["threads"])
    torch.set_grad_enabled(False)
    spec = SPECS[args["family"]]
    ckpt = args["checkpoint"]
    models: dict[str, Any] = {
        "reference": getattr(transformers, spec.model_class).from_pretrained(ckpt).eval(),
        "ours": getattr(plugformers, spec.model_class).from_pretrained(ckpt).eval(),
    }
    if spec.fast_path and args.get("fast", True):
        fast = getattr(plugformers, spec.model_class).from_pretrained(ckpt).eval()
        getattr(fast, spec.fast_path)()
        models["ours_fast"] = fast
    attn = {k: getattr(m.config, "_attn_implementation", None) for k, m in models.items()}
    vocab = getattr(models["ours"].config, "vocab_size", 100)
    results: dict[str, Any] = {"attn_implementation": attn, "threads": torch.get_num_threads(), "batches": {}}
    for batch in args["batches"]:
        inputs = make_inputs(spec.name, batch, vocab_size=vocab)
        outs = {}
        for name, model in models.items():  # warm-up, and the outputs compared below
            outs[name] = model(**inputs)
        times: dict[str, list[float]] = {name: [] for name in models}
        order = list(models)
        begin = time.perf_counter()
        for rep in range(args["max_reps"]):
            for name in order[rep % len(order):] + order[: rep % len(order)]:
                seconds, _ = _timed(lambda m=models[name], x=inputs: m(**x))
                times[name].append(seconds)
            if rep + 1 >= args["min_reps"] and time.perf_counter() - begin > args["budget_s"]:
                break
        entry: dict[str, Any] = {"times": times, "median_s": {k: statistics.median(v) for k, v in times.items()}}
        for name in models:
            if name != "reference":
                diff, ok = _max_diff(outs[name], outs["reference"], spec.outputs)
                entry.setdefault("max_abs_diff", {})[name] = diff
                entry.setdefault("within_tolerance", {})[name] = ok
        results["batches"][str(batch)] = entry
    results["tolerance"] = TOLERANCE
    return results


# --------------------------------------------------------------------------------------------- preprocessing
def _interleaved(calls: dict[str, Callable[[], Any]], reps: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    outs = {name: fn() for name, fn in calls.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for rep in range(reps):
        for name in order[rep % 2:] + order[: rep % 2]:
            seconds, _ = _timed(calls[name])
            times[name].append(seconds)
    return times, outs


def task_tokenizer(args: dict[str, Any]) -> dict[str, Any]:
    """Fast-tokenizer throughput (sentences/s) on a batch with padding to ``"pt"`` tensors."""
    import torch
    import transformers

    import plugformers

    torch.set_num_threads(args["threads"])
    sentences = corpus(args["sentences"])
    toks = {
        "ours": plugformers.DistilBertTokenizerFast.from_pretrained(args["dir"]),
        "reference": transformers.DistilBertTokenizerFast.from_pretrained(args["dir"]),
    }
    calls = {k: (lambda t=t: t(sentences, padding=True, truncation=True, return_tensors="pt")) for k, t in toks.items()}
    times, outs = _interleaved(calls, args["reps"])
    same = all(torch.equal(outs["ours"][k], outs["reference"][k]) for k in ("input_ids", "attention_mask"))
    return {
        "times": times,
        "throughput": {k: len(sentences) / statistics.median(v) for k, v in times.items()},
        "identical_outputs": same,
        "shape": list(outs["ours"]["input_ids"].shape),
        "classes": {k: type(t).__name__ for k, t in toks.items()},
    }


def images(count: int) -> list[Any]:
    """``count`` deterministic RGB photograph-like images of ``PHOTO_HW`` (smooth gradients plus noise)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0 : PHOTO_HW[0], 0 : PHOTO_HW[1]].astype(np.float32)
    out = []
    for i in range(count):
        base = np.stack([(xx * (i + 1) / 7) % 256, (yy * (i + 2) / 5) % 256, ((xx + yy) / (i + 3)) % 256], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(noisy, "RGB"))
    return out


def task_image(args: dict[str, Any]) -> dict[str, Any]:
    """Image-processor throughput (images/s) on PIL images to ``"pt"`` tensors."""
    import torch

    torch.set_num_threads(args["threads"])
    spec = SPECS[args["family"]]
    assert spec.image_processor is not None
    procs = {"reference": _class("reference", spec.image_processor).from_pretrained(args["checkpoint"])}
    # Ours on the backend the reference runs (its Pillow one without torchvision), so that the numbers compare.
    backend = getattr(procs["reference"], "backend", "pil")
    procs["ours"] = _class("ours", spec.image_processor).from_pretrained(args["checkpoint"], backend=backend)
    batch = images(args["images"])
    calls = {k: (lambda p=p: p(batch, return_tensors="pt")) for k, p in procs.items()}
    # Our batched torch path on the same pixels, given as one uint8 (N, C, H, W) tensor as a data loader
    # (or torchvision's decoder) hands them over; building that tensor is not timed.
    import numpy as np

    if spec.torch_image_path:
        tensor_batch = torch.from_numpy(np.stack([np.asarray(im) for im in batch])).permute(0, 3, 1, 2).contiguous()
        calls["ours_torch"] = lambda: procs["ours"](tensor_batch, return_tensors="pt", use_torch=True)
    times, outs = _interleaved(calls, args["reps"])
    b = outs["reference"]["pixel_values"]
    diffs = {}
    for name in ("ours", "ours_torch"):
        if name in outs:
            a = outs[name]["pixel_values"]
            diffs[name] = float((a - b).abs().max()) if a.shape == b.shape else float("inf")
    return {
        "times": times,
        "throughput": {k: len(batch) / statistics.median(v) for k, v in times.items()},
        "max_abs_diff": diffs["ours"],
        "torch_path_max_abs_diff": diffs.get("ours_torch"),
        "shape": list(b.shape),
        "classes": {k: type(p).__name__ for k, p in procs.items()},
    }


def task_gpu(args: dict[str, Any]) -> dict[str, Any]:
    from _gpu import run_gpu_section

    return run_gpu_section(args)


def task_pipeline_prepare(args: dict[str, Any]) -> dict[str, Any]:
    from _pipelines import task_pipeline_prepare as prepare

    return prepare(args)


def task_pipeline(args: dict[str, Any]) -> dict[str, Any]:
    from _pipelines import task_pipeline as measure

    return measure(args)


def task_pipeline_latency(args: dict[str, Any]) -> dict[str, Any]:
    from _pipelines import task_pipeline_latency as measure

    return measure(args)


def task_predict_scaling(args: dict[str, Any]) -> dict[str, Any]:
    from _pipelines import task_predict_scaling as measure

    return measure(args)


def task_deploy_export(args: dict[str, Any]) -> dict[str, Any]:
    from _deploy import export_onnx

    return export_onnx(args)


def task_deploy(args: dict[str, Any]) -> dict[str, Any]:
    from _deploy import run_shape

    return run_shape(args)


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "prepare": task_prepare,
    "import": task_import,
    "load": task_load,
    "forward": task_forward,
    "tokenizer": task_tokenizer,
    "image": task_image,
    "gpu": task_gpu,
    "pipeline_prepare": task_pipeline_prepare,
    "pipeline": task_pipeline,
    "pipeline_latency": task_pipeline_latency,
    "predict_scaling": task_predict_scaling,
    "deploy_export": task_deploy_export,
    "deploy": task_deploy,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in TASKS:
        print(f"usage: {argv[0]} {{{','.join(TASKS)}}} JSON_ARGS", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    _emit(TASKS[argv[1]](json.loads(argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
