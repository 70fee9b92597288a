"""The ``plugformers`` command: list plugins, inspect a checkpoint, run a prediction, walk through the demo.

Errors print one line and exit non-zero; ``--debug`` shows the traceback. ``plugformers plugins`` never
imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plugformers.vocabulary import AUTO_MODEL_CLASSES, CONFIG_NAME, EXPORT_FORMATS, TASKS

__all__ = ["main"]


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


def _tasks(architectures: list[str]) -> list[str]:
    """The tasks of the checkpoint's classes, from the Auto classes their families register them under."""
    from plugformers.plugins import get_registry

    registry = get_registry()
    return list(dict.fromkeys(task for arch in architectures for task in registry.tasks_of(arch)))


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
                        dtype = str(sl.get_dtype())
                        if not dtype.startswith(("F", "BF")):
                            continue  # integer buffers saved with the weights (position ids, counters) are no parameters
                        n = 1
                        for d in sl.get_shape():
                            n *= d
                        params += n
                        dtypes.add(dtype)
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


def cmd_predict(args: argparse.Namespace) -> int:
    from plugformers.predict import PredictError, run

    args.checkpoint = str(_local_folder(args.checkpoint, args))
    try:
        return run(args)
    except PredictError as exc:
        raise CLIError(str(exc)) from exc


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

    p = sub.add_parser("predict", parents=[debug], help="run a checkpoint over texts, images or audio as a batch job")
    from plugformers.predict import add_arguments

    add_arguments(p, _positive_int)
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
