"""The ``plugformers`` command: list plugins, inspect a checkpoint, run a prediction, walk through the demo.

Errors print one line and exit non-zero; ``--debug`` shows the traceback. ``plugformers plugins`` never
imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plugformers.vocabulary import (
    AUTO_MODEL_CLASSES,
    CONFIG_NAME,
    EXPORT_FORMATS,
    TASKS,
    auto_classes_for_task,
)

__all__ = ["main"]

# The tasks `predict` runs; what each reads and the Auto classes that serve it come from the vocabulary.
_PREDICT_TASKS = (
    "text-classification",
    "token-classification",
    "question-answering",
    "fill-mask",
    "image-classification",
    "image-segmentation",
    "automatic-speech-recognition",
    "audio-classification",
)
TEXT_TASKS, IMAGE_TASKS, AUDIO_TASKS = (
    tuple(t for t in _PREDICT_TASKS if TASKS[t].modality == modality) for modality in ("text", "image", "audio")
)
_TASK_AUTO = {task: auto_classes_for_task(task) for task in _PREDICT_TASKS}


class CLIError(Exception):
    """A user-facing error: printed as one line."""


# ----- plugins ---------------------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    from plugformers.plugins import get_registry

    registry = get_registry()
    plugins = [info.as_dict() for info in registry.plugins.values()]
    if args.json:
        print(json.dumps({"plugins": plugins, "overrides": registry.overrides}, indent=2))
        return 0
    rows = [("NAME", "DISTRIBUTION", "VERSION", "STATUS", "MODEL TYPES")]
    for p in plugins:
        rows.append((p["name"], p["distribution"], p["version"], p["status"], ", ".join(p["model_types"]) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for p in plugins:
        if p["classes"]:
            print(f"\n{p['name']}: {', '.join(p['classes'])}")
        for err in p["errors"]:
            print(f"  ! {p['name']}: {err}")
    for line in registry.overrides:
        print(f"  override: {line}")
    return 0


# ----- info ------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CLIError(f"{path} does not hold a JSON object")
    return data


def _architectures(data: dict[str, Any]) -> list[str]:
    """``architectures`` from a config.json as a list of names (a lone string counts as one name)."""
    value = data.get("architectures") or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CLIError(f"config.json has an invalid architectures entry: {value!r} (expected a list of names)")
    return value


def _local_folder(source: str, args: argparse.Namespace) -> Path:
    """The checkpoint as a local folder: the folder itself, or a Hub snapshot downloaded through the cache."""
    if os.path.isdir(source):
        return Path(source)
    from plugformers.utils.hub import is_offline, looks_like_repo_id

    if not looks_like_repo_id(source):
        raise CLIError(f"{source!r} is neither a folder nor a Hub repository id")
    import huggingface_hub

    try:
        return Path(
            huggingface_hub.snapshot_download(
                source, revision=getattr(args, "revision", None), local_files_only=is_offline()
            )
        )
    except Exception as exc:
        raise CLIError(f"cannot fetch {source!r}: {exc}") from exc


def cmd_info(args: argparse.Namespace) -> int:
    from plugformers.plugins import get_registry

    folder = _local_folder(args.checkpoint, args)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CLIError(f"{folder} has no config.json")
    data = _read_json(config_path)
    model_type = data.get("model_type", "?")
    registry = get_registry()
    spec = registry.families.get(model_type)
    plugin = registry.plugins.get(spec.plugin) if spec else None
    params = 0
    dtypes: set[str] = set()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            from safetensors import safe_open

            try:
                with safe_open(str(folder / name), framework="np") as f:
                    for key in f.keys():
                        sl = f.get_slice(key)
                        n = 1
                        for d in sl.get_shape():
                            n *= d
                        params += n
                        dtypes.add(str(sl.get_dtype()))
            except Exception as exc:
                raise CLIError(f"cannot read weights file {folder / name}: {exc}") from exc
    architectures = _architectures(data)
    info = {
        "checkpoint": str(folder),
        "model_type": model_type,
        "architectures": architectures,
        "tasks": _tasks(architectures),
        "heads_available": sorted(spec.models) if spec else [],
        "parameters": params,
        "weight_dtypes": sorted(dtypes),
        "config_dtype": data.get("dtype") or data.get("torch_dtype"),
        "plugin": None if plugin is None else {"name": plugin.name, "distribution": plugin.distribution, "version": plugin.version},
        "labels": len(data.get("id2label") or {}),
        "files": sorted(os.listdir(folder)),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"checkpoint     {info['checkpoint']}")
    print(f"model type     {model_type}" + ("" if spec else "   (no installed plugin serves it)"))
    print(f"architectures  {', '.join(info['architectures']) or '-'}")
    print(f"tasks          {', '.join(info['tasks']) or '-'}")
    print(f"parameters     {params:,}")
    print(f"dtype          {', '.join(info['weight_dtypes']) or '-'} (config: {info['config_dtype']})")
    if plugin:
        print(f"served by      {plugin.name} ({plugin.distribution} {plugin.version})")
    print(f"files          {', '.join(info['files'])}")
    return 0


# ----- predict ---------------------------------------------------------------------------------------------


def _tasks(architectures: list[str]) -> list[str]:
    """The tasks of the checkpoint's classes, from the Auto classes their families register them under."""
    from plugformers.plugins import get_registry

    registry = get_registry()
    return list(dict.fromkeys(task for arch in architectures for task in registry.tasks_of(arch)))


def _infer_task(architectures: list[str]) -> str:
    for task in _tasks(architectures):
        if task in _TASK_AUTO:
            return task
    raise CLIError(f"cannot infer the task from architectures {architectures}; pass --task")


def _task_auto_class(task: str, data: dict[str, Any]) -> str:
    """The Auto class that loads the checkpoint for ``task``: one its family registers a model under, if any."""
    from plugformers.plugins import get_registry

    candidates = _TASK_AUTO[task]
    model_type = data.get("model_type")
    spec = get_registry().families.get(model_type) if isinstance(model_type, str) else None
    if spec is not None:
        keys = [k for arch in _architectures(data) for k in spec.model_names().get(arch, [])] + list(spec.models)
        return next((k for k in keys if k in candidates), candidates[0])
    return candidates[0]


def _softmax_top(logits: Any, id2label: dict[Any, str], k: int) -> list[dict[str, Any]]:
    probs = logits.float().softmax(-1)
    values, indices = probs.topk(min(k, probs.shape[-1]))
    return [
        {"label": id2label.get(int(i), id2label.get(str(int(i)), str(int(i)))), "score": round(float(v), 4)}
        for v, i in zip(values, indices)
    ]


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    import plugformers

    folder = _local_folder(args.checkpoint, args)
    data = _read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else {}
    task = args.task or _infer_task(_architectures(data))
    if task not in _TASK_AUTO:
        raise CLIError(f"unknown task {task!r}; choose one of {sorted(_TASK_AUTO)}")
    auto = getattr(plugformers, _task_auto_class(task, data))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda was asked for, but no CUDA device is available")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = auto.from_pretrained(folder, dtype=dtype, device_map=args.device)
    config = model.config
    id2label = config.id2label
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    if task in TEXT_TASKS:
        tokenizer = plugformers.AutoTokenizer.from_pretrained(folder)
        texts = args.inputs
        if task == "question-answering":
            if len(texts) != 2:
                raise CLIError("question-answering takes two inputs: the question and the context")
            enc = tokenizer(texts[0], texts[1], return_tensors="pt", truncation=True).to(args.device)
            with torch.no_grad():
                out = model(**enc)
            start_i = int(out.start_logits[0].argmax())
            end_i = int(out.end_logits[0][start_i:].argmax()) + start_i
            answer = tokenizer.decode(enc["input_ids"][0][start_i : end_i + 1], skip_special_tokens=True)
            results.append({"question": texts[0], "answer": answer})
        else:
            for text in _progress(texts, "texts"):
                enc = tokenizer(text, return_tensors="pt", truncation=True).to(args.device)
                with torch.no_grad():
                    out = model(**enc)
                if task == "text-classification":
                    results.append({"input": text, "top": _softmax_top(out.logits[0], id2label, args.top_k)})
                elif task == "token-classification":
                    ids = enc["input_ids"][0].tolist()
                    labels = out.logits[0].argmax(-1).tolist()
                    tokens = tokenizer.convert_ids_to_tokens(ids)
                    special = set(tokenizer.all_special_ids)
                    results.append(
                        {
                            "input": text,
                            "tokens": [
                                {"token": t, "label": id2label.get(lab, str(lab))}
                                for t, lab, i in zip(tokens, labels, ids)
                                if i not in special
                            ],
                        }
                    )
                else:
                    mask_id = tokenizer.mask_token_id
                    positions = (enc["input_ids"][0] == mask_id).nonzero().flatten().tolist()
                    if not positions:
                        raise CLIError(f"fill-mask needs {tokenizer.mask_token} in the text: {text!r}")
                    fills = []
                    for pos in positions:
                        probs = out.logits[0, pos].float().softmax(-1)
                        values, indices = probs.topk(min(args.top_k, probs.shape[-1]))
                        fills.append(
                            [{"token": tokenizer.convert_ids_to_tokens(int(i)), "score": round(float(v), 4)} for v, i in zip(values, indices)]
                        )
                    results.append({"input": text, "fills": fills})
    elif task in IMAGE_TASKS:
        processor = plugformers.AutoImageProcessor.from_pretrained(folder)
        from PIL import Image

        used_overlays: set[Path] = set()
        for path in _progress(args.inputs, "images"):
            image = _open_image(path, Image)
            batch = processor(image, return_tensors="pt").to(args.device)
            pixel = batch["pixel_values"].to(dtype) if dtype is not None else batch["pixel_values"]
            with torch.no_grad():
                out = model(pixel_values=pixel)
            if task == "image-classification":
                results.append({"input": path, "top": _softmax_top(out.logits[0], id2label, args.top_k)})
            else:
                seg = processor.post_process_semantic_segmentation(out, target_sizes=[image.size[::-1]])[0]
                overlay = _overlay_path(Path(args.output_dir or "."), Path(path).stem, used_overlays)
                _write_overlay(image, seg, overlay)
                classes = sorted({int(c) for c in seg.unique().tolist()})
                results.append(
                    {"input": path, "classes": [id2label.get(c, str(c)) for c in classes], "overlay": str(overlay)}
                )
    else:
        from plugformers.audio_utils import load_wav

        processor = plugformers.AutoProcessor.from_pretrained(folder) if task == "automatic-speech-recognition" else None
        extractor = plugformers.AutoFeatureExtractor.from_pretrained(folder)
        for path in _progress(args.inputs, "audio files"):
            audio, rate = load_wav(path)
            feats = extractor(audio, sampling_rate=rate, return_tensors="pt").to(args.device)
            values = feats["input_values"].to(dtype) if dtype is not None else feats["input_values"]
            with torch.no_grad():
                out = model(input_values=values)
            if task == "automatic-speech-recognition":
                ids = out.logits[0].argmax(-1)
                assert processor is not None
                # As the reference's speech pipeline does: the transcription leaves out <s>, </s>, <unk>.
                text = processor.batch_decode(ids[None], skip_special_tokens=True)[0]
                results.append({"input": path, "text": text})
            else:
                results.append({"input": path, "top": _softmax_top(out.logits[0], id2label, args.top_k)})
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"task": task, "results": results, "seconds": round(elapsed, 3)}, indent=2))
    else:
        for r in results:
            print(_format_result(task, r))
        print(f"({task}, {len(results)} input(s), {elapsed:.2f} s on {args.device})", file=sys.stderr)
    return 0


def _open_image(path: str, image_module: Any) -> Any:
    try:
        with image_module.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read image {path!r}: {exc}") from exc


def _overlay_path(folder: Path, stem: str, used: set[Path]) -> Path:
    """``<stem>.segmentation.png`` in ``folder``; inputs sharing a stem in one run get ``-2``, ``-3``... suffixes."""
    path = folder / f"{stem}.segmentation.png"
    n = 1
    while path in used:
        n += 1
        path = folder / f"{stem}-{n}.segmentation.png"
    used.add(path)
    return path


def _write_overlay(image: Any, seg: Any, path: Path) -> None:
    """Blend one colour per class over the photo and save it as a PNG, atomically."""
    import io

    import numpy as np
    from PIL import Image

    from plugformers.utils.io import atomic_write_bytes

    rng = np.random.default_rng(0)
    palette = rng.integers(0, 255, size=(int(seg.max()) + 2, 3), dtype=np.uint8)
    colors = palette[seg.cpu().numpy().clip(min=0)]
    blended = (0.5 * np.asarray(image, dtype=np.float32) + 0.5 * colors).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _format_result(task: str, r: dict[str, Any]) -> str:
    if "top" in r:
        tops = ", ".join(f"{t['label']} ({t['score']:.3f})" for t in r["top"])
        return f"{r['input']}: {tops}"
    if "text" in r:
        return f"{r['input']}: {r['text']}"
    if "answer" in r:
        return f"{r['question']} -> {r['answer']}"
    if "fills" in r:
        return f"{r['input']}: " + " | ".join(", ".join(f"{c['token']} ({c['score']:.3f})" for c in f) for f in r["fills"])
    if "tokens" in r:
        return f"{r['input']}: " + " ".join(f"{t['token']}/{t['label']}" for t in r["tokens"])
    if "classes" in r:
        return f"{r['input']}: {', '.join(r['classes'])} (overlay: {r['overlay']})"
    return json.dumps(r)


def _progress(items: Sequence[str], what: str) -> Any:
    """A progress bar on stderr for long batches (tqdm ships with huggingface_hub)."""
    if len(items) < 8:
        return items
    try:
        from tqdm.auto import tqdm

        return tqdm(items, desc=what, file=sys.stderr)
    except ImportError:
        return items


# ----- export ----------------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from plugformers.exporting import export

    result = export(
        args.checkpoint,
        args.output_dir,
        format=args.format,
        dtype=args.dtype,
        opset=args.opset,
        task=args.task,
        auto_class=args.auto_class,
        verify=not args.no_verify,
        tolerance=args.tolerance,
        revision=args.revision,
    )
    if args.json:
        print(json.dumps({
            "path": str(result.path), "format": result.format, "model_class": result.model_class,
            "dtype": str(result.dtype).removeprefix("torch."), "inputs": result.input_names,
            "outputs": result.output_names, "dynamic_axes": result.dynamic_axes, "tolerance": result.tolerance,
            "max_abs_diff": result.max_abs_diff, "checks": result.checks, "files": result.files,
        }, indent=2))
    else:
        print(result.summary())
    return 0


# ----- demo ------------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from plugformers.demo import run_demo

    return run_demo(output_dir=args.output_dir, families=args.family or None, small=args.small)


# ----- entry point -----------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plugformers", description="Transformers-compatible models as plugins.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # --debug is also accepted after the command; SUPPRESS keeps a missing one from resetting the global flag.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", parents=[debug], help="list installed plugins, their model types, classes and load errors")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("info", parents=[debug], help="describe a checkpoint folder or Hub repo")
    p.add_argument("checkpoint")
    p.add_argument("--revision")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", parents=[debug], help="run a checkpoint on texts, image files or WAV files")
    p.add_argument("checkpoint")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--task", choices=sorted(_TASK_AUTO))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--top-k", type=_positive_int, default=3, help="how many labels or fills to show (default 3)")
    p.add_argument("--revision")
    p.add_argument("--output-dir", help="where segmentation overlays are written (default: current folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export", parents=[debug],
        help="export a checkpoint to ONNX or a torch.export program, checked against eager PyTorch",
    )
    p.add_argument("checkpoint")
    p.add_argument("output_dir")
    p.add_argument("--format", choices=sorted(EXPORT_FORMATS), default="onnx", help="model.onnx (default) or model.pt2")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="convert the weights first")
    p.add_argument("--opset", type=_positive_int, help="ONNX opset (default: the exporter's)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--task", choices=sorted(TASKS), help="export the model that serves this task")
    which.add_argument("--auto-class", choices=sorted(AUTO_MODEL_CLASSES), help="load through this Auto class")
    p.add_argument("--tolerance", type=float, help="largest difference to eager allowed (default: 1e-4 in float32)")
    p.add_argument("--no-verify", action="store_true", help="skip running the exported file against eager")
    p.add_argument("--revision")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", parents=[debug], help="walk through every installed family: build, save, reload, preprocess, run")
    p.add_argument("--output-dir", default=None, help="keep the saved checkpoints here (default: a temporary folder)")
    p.add_argument("--family", action="append", help="only this model type (repeatable)")
    p.add_argument("--small", action="store_true", help="use small configs instead of the defaults (faster)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("plugformers: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"plugformers: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
