"""Export a model to ONNX or to a ``torch.export`` program, checked against eager PyTorch before it is kept.

:func:`export` takes a model (or a checkpoint folder / Hub repository id), traces it with ``torch.export``
on the example inputs its family registers, writes ``model.onnx`` (the dynamo ONNX exporter) or
``model.pt2`` (``torch.export.save``) with the config and preprocessing files beside it, then runs the
written file (onnxruntime for ONNX, ``torch.export.load`` for ``.pt2``) on example inputs at two batch sizes
and refuses to keep it if any output differs from eager beyond the tolerance of its dtype. Nothing here
names a model family: the inputs come from the registry, the input names from ``forward``, the output
names from the model's output class.

Every axis the model allows to vary is dynamic: ``torch.export`` is asked to keep every input axis symbolic
(``Dim.AUTO``) and keeps those the code does not tie to a constant (batch always; sequence, audio length
or image size where the family's code allows). ``onnx``, ``onnxscript`` and ``onnxruntime`` are imported
only when an ONNX export runs.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from plugformers.vocabulary import (
    AUTO_MODEL_CLASSES,
    CONFIG_NAME,
    EXPORT_FORMATS,
    MODALITIES,
    PICKLE_WEIGHTS_INDEX_NAME,
    PICKLE_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    auto_classes_for_task,
    closest,
)

__all__ = [
    "FORMATS",
    "ONNX_FILE",
    "TOLERANCES",
    "TORCH_EXPORT_FILE",
    "ExportError",
    "ExportResult",
    "VerificationError",
    "export",
    "onnx_requirements",
]

FORMATS = tuple(EXPORT_FORMATS)
ONNX_FILE = EXPORT_FORMATS["onnx"]
TORCH_EXPORT_FILE = EXPORT_FORMATS["torch-export"]

#: Largest difference allowed between the exported file and eager PyTorch, per dtype: ``|a - b| <= tol +
#: tol * |b|`` on every output element (float32: the parity tolerance of the test suite; the half
#: precisions: a few units in the last place of values near 1, since both sides round differently).
TOLERANCES: dict[torch.dtype, float] = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}

#: The packages an ONNX export needs, with the versions it was tested with (``pip install`` hint).
ONNX_PACKAGES = {"onnx": "onnx>=1.17", "onnxscript": "onnxscript>=0.5", "onnxruntime": "onnxruntime>=1.20"}

# Names given to the dynamic axes of a modality's main input, by axis position from the end.
_AXIS_NAMES: dict[str, dict[int, str]] = {
    "text": {-1: "sequence"},
    "image": {-2: "height", -1: "width"},
    "audio": {-1: "audio_length"},
}
_WEIGHT_FILES = {SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, PICKLE_WEIGHTS_NAME, PICKLE_WEIGHTS_INDEX_NAME}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".pt2")


class ExportError(RuntimeError):
    """The model could not be exported (or the export's prerequisites are missing); the message says why."""


class VerificationError(ExportError):
    """The exported file's outputs differ from eager PyTorch beyond the tolerance; nothing was written."""

    def __init__(self, message: str, max_abs_diff: float) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


@dataclass
class ExportResult:
    """What :func:`export` wrote and how it was checked."""

    path: Path
    format: str
    model_class: str
    dtype: torch.dtype
    input_names: list[str]
    output_names: list[str]
    #: ``{input name: {axis: name}}`` for every axis that may vary at run time.
    dynamic_axes: dict[str, dict[int, str]]
    #: The tolerance the outputs were held to, and one entry per verification run.
    tolerance: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        """The largest difference to eager over every checked output (0.0 when not verified)."""
        return max((c["max_abs_diff"] for c in self.checks), default=0.0)

    def summary(self) -> str:
        """A few lines for people: the file, inputs with their dynamic axes, outputs, verification."""

        def axes(name: str) -> str:
            found = self.dynamic_axes.get(name, {})
            return f"{name}[{', '.join(found[a] for a in sorted(found))}]" if found else name

        def shapes(check: dict[str, Any]) -> str:
            return ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in check["shapes"].items())

        lines = [
            f"wrote {self.path} ({self.format}, {self.model_class}, {str(self.dtype).removeprefix('torch.')})",
            f"inputs   {', '.join(axes(n) for n in self.input_names)} (dynamic axes in brackets)",
            f"outputs  {', '.join(self.output_names)}",
        ]
        lines += [
            f"verified {shapes(c)}: max abs diff {c['max_abs_diff']:.2e} (tolerance {self.tolerance:g})" for c in self.checks
        ] or ["not verified"]
        return "\n".join(lines)


# ----- the public entry point --------------------------------------------------------------------------


def export(
    model: nn.Module | str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    format: str = "onnx",
    dtype: torch.dtype | str | None = None,
    opset: int | None = None,
    task: str | None = None,
    auto_class: str | None = None,
    inputs: Mapping[str, Any] | Callable[[int], Mapping[str, Any]] | None = None,
    preprocessor: Any = None,
    verify: bool = True,
    tolerance: float | None = None,
    batch_sizes: tuple[int, int] = (2, 3),
    revision: str | None = None,
) -> ExportResult:
    """Export ``model`` into ``output_dir`` as ``model.onnx`` or ``model.pt2``, verified against eager.

    ``model`` is a loaded model, or a checkpoint folder / Hub repository id, loaded through the Auto class
    ``auto_class`` names, or the first that serves ``task``, or else the class in its config's
    ``architectures``. ``format`` is ``"onnx"`` or ``"torch-export"``; ``dtype`` converts the model first
    (``"float32"``, ``"float16"``, ``"bfloat16"``); ``opset`` picks the ONNX opset (default: the exporter's).

    The inputs are the family's registered example inputs (``example_inputs`` in its plugin's registration)
    at ``batch_sizes[0]`` for tracing; ``inputs`` replaces them with a dict of forward keyword arguments, or
    a function of the batch size returning one. Verification runs the written file at both batch sizes (the
    second with every other dynamic axis shortened) and raises :class:`VerificationError` if an output
    differs from eager by more than ``tolerance`` (default: :data:`TOLERANCES` of the dtype); the folder is
    then left as it was. The config and, for a checkpoint, its preprocessing files are copied beside the
    model; ``preprocessor`` (a tokenizer, image processor...) is saved there too.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}{closest(format, FORMATS)}; formats: {', '.join(FORMATS)}.")
    if len(batch_sizes) != 2 or min(batch_sizes) < 1:
        raise ExportError(f"batch_sizes must be two positive sizes, got {batch_sizes!r}.")
    if format == "onnx":
        _require_onnx(verify)
    target_dtype = _parse_dtype(dtype)
    folder: Path | None = None
    if isinstance(model, (str, os.PathLike)):
        folder = _local_folder(os.fspath(model), revision)
        model = _load(folder, task=task, auto_class=auto_class, dtype=target_dtype)
    elif task is not None or auto_class is not None:
        raise ExportError("task and auto_class choose the class of a checkpoint; pass them with a folder, not a model.")
    if not isinstance(model, nn.Module):
        raise ExportError(f"export takes a model or a checkpoint folder, got {type(model).__name__}.")
    if target_dtype is not None:
        model = model.to(target_dtype)
    model.eval()
    dtype_now = _model_dtype(model)
    if format == "onnx" and verify and dtype_now == torch.bfloat16:
        raise ExportError(
            "onnxruntime's CPU provider has no bfloat16 kernels, so a bfloat16 ONNX file cannot be verified: export "
            "float32 or float16, use format 'torch-export', or pass verify=False (--no-verify)."
        )
    tol = TOLERANCES.get(dtype_now, 1e-4) if tolerance is None else tolerance
    make_inputs = _input_factory(model, inputs)
    flat = _Flat(model, _cast_floats(make_inputs(batch_sizes[0]), dtype_now))
    program = _trace(flat)
    axes = _dynamic_axes(program, flat)
    with torch.no_grad():
        output_names = [name for name, _ in _named_outputs(flat.call(flat.example_args))]
    result = ExportResult(
        path=Path(output_dir) / EXPORT_FORMATS[format],
        format=format,
        model_class=type(model).__name__,
        dtype=dtype_now,
        input_names=list(flat.names),
        output_names=output_names,
        dynamic_axes={name: {axis: label for axis, (label, _) in per.items()} for name, per in axes.items()},
        tolerance=tol,
    )
    from plugformers.utils.io import atomic_directory

    with atomic_directory(output_dir) as staging:
        written = staging / result.path.name
        if format == "onnx":
            _write_onnx(program, written, flat, output_names, axes, opset, result)
            run = _onnx_runner(written) if verify else None
        else:
            with _quiet():
                torch.export.save(program, str(written))
            run = _pt2_runner(written) if verify else None
        if run is not None:
            samples = [dict(zip(flat.names, flat.example_args))]
            samples.append(_shorten(_cast_floats(make_inputs(batch_sizes[1]), dtype_now), flat, axes, program))
            for batch, sample in zip(batch_sizes, samples):
                result.checks.append(_check(flat, run, sample, batch, output_names, tol))
        _copy_side_files(model, folder, staging, preprocessor)
        result.files = sorted(p.name for p in staging.iterdir())
    return result


def onnx_requirements() -> dict[str, str | None]:
    """The installed version of each package an ONNX export needs (None where it is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ONNX_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


# ----- loading -----------------------------------------------------------------------------------------


def _require_onnx(verify: bool) -> None:
    needed = [n for n in ONNX_PACKAGES if n != "onnxruntime" or verify]
    missing = [n for n in needed if importlib.util.find_spec(n) is None]
    if missing:
        pins = " ".join(f"'{ONNX_PACKAGES[n]}'" for n in missing)
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            f"pip install {pins} (or pip install 'plugformers[onnx]')."
        )


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ExportError(f"dtype must be a floating-point torch dtype such as 'float32' or 'bfloat16', got {dtype!r}.")
    return value


def _local_folder(source: str, revision: str | None) -> Path:
    if os.path.isdir(source):
        return Path(source)
    from plugformers.utils.hub import is_offline, looks_like_repo_id

    if not looks_like_repo_id(source):
        raise ExportError(f"{source!r} is neither a folder nor a Hub repository id.")
    import huggingface_hub

    try:
        return Path(huggingface_hub.snapshot_download(source, revision=revision, local_files_only=is_offline()))
    except Exception as exc:
        raise ExportError(f"cannot fetch {source!r}: {exc}") from exc


def _load(folder: Path, *, task: str | None, auto_class: str | None, dtype: torch.dtype | None) -> nn.Module:
    """The checkpoint in ``folder`` through the Auto class asked for, the task's, or its architectures'."""
    from plugformers import auto
    from plugformers.configuration_utils import PretrainedConfig
    from plugformers.plugins import get_registry

    config = auto.AutoConfig.from_pretrained(folder)
    assert isinstance(config, PretrainedConfig)
    registry = get_registry()
    spec = registry.family_for_config_class(type(config))
    registered = set(spec.models) if spec is not None else set()
    if auto_class is not None:
        if auto_class not in AUTO_MODEL_CLASSES:
            raise ExportError(f"unknown Auto class {auto_class!r}{closest(auto_class, AUTO_MODEL_CLASSES)}.")
        chosen: Any = getattr(auto, auto_class)
    elif task is not None:
        try:
            candidates = auto_classes_for_task(task)
        except KeyError as exc:
            raise ExportError(str(exc.args[0])) from exc
        usable = [c for c in candidates if c in registered]
        if not usable:
            raise ExportError(
                f"{config.model_type!r} has no model for task {task!r} (Auto classes {', '.join(candidates)}); "
                f"it registers {', '.join(sorted(registered)) or 'none'}."
            )
        chosen = getattr(auto, usable[0])
    else:
        architectures = getattr(config, "architectures", None) or []
        chosen = None
        for name in architectures:
            if name in registry.names:
                chosen = registry.resolve_name(name)
                break
        if chosen is None:
            chosen = auto.AutoModel
    try:
        return chosen.from_pretrained(folder, dtype=dtype)  # type: ignore[no-any-return]
    except Exception as exc:
        raise ExportError(f"cannot load {folder} with {getattr(chosen, '__name__', chosen)}: {exc}") from exc


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


# ----- inputs and outputs ------------------------------------------------------------------------------


def _input_factory(model: nn.Module, given: Any) -> Callable[[int], Mapping[str, Any]]:
    """``f(batch_size) -> forward keyword inputs``: the caller's, else the family's registered example inputs."""
    if callable(given):
        return given  # type: ignore[no-any-return]
    if given is not None:
        fixed = dict(given)
        return lambda batch_size: _rebatch(fixed, batch_size)
    from plugformers.plugins import get_registry

    spec = get_registry().model_class_family(type(model))
    if spec is None or spec.example_inputs is None:
        owner = f"the {spec.model_type!r} plugin" if spec is not None else "no plugin (it is not registered)"
        raise ExportError(
            f"{type(model).__name__} has no example inputs: {owner} registers no example_inputs. "
            "Pass inputs= (a dict of forward keyword arguments, or a function of the batch size returning one)."
        )
    config = getattr(model, "config", None)
    return lambda batch_size: spec.build_example_inputs(config, type(model), batch_size=batch_size, labels=False)


def _rebatch(inputs: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """``inputs`` with every tensor's first axis cut or tiled to ``batch_size`` (for a fixed user dict)."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            reps = math.ceil(batch_size / value.shape[0])
            value = value.repeat(reps, *([1] * (value.dim() - 1)))[:batch_size]
        out[name] = value
    return out


def _cast_floats(inputs: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    return {
        k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in inputs.items()
    }


class _Flat(nn.Module):
    """``model`` as a function of its tensor inputs, positional in ``forward``'s order, returning a flat tuple.

    Keyword inputs that are not tensors (flags) are fixed at their example values; ``None`` ones are left out.
    """

    def __init__(self, model: nn.Module, example: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        order = list(inspect.signature(model.forward).parameters)
        tensors = [k for k, v in example.items() if isinstance(v, torch.Tensor)]
        unknown = [k for k in example if k not in order and "kwargs" not in order]
        if unknown:
            raise ExportError(f"{type(model).__name__}.forward takes no argument {unknown[0]!r}{closest(unknown[0], order)}.")
        self.names = sorted(tensors, key=lambda k: order.index(k) if k in order else len(order))
        self.constants = {k: v for k, v in example.items() if k not in tensors and v is not None}
        if "return_dict" in order:
            self.constants["return_dict"] = True
        if not self.names:
            raise ExportError(f"the example inputs of {type(model).__name__} hold no tensor.")
        self.example_args = self.args(example)

    def args(self, inputs: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
        return tuple(inputs[name] for name in self.names)

    def call(self, args: tuple[torch.Tensor, ...]) -> Any:
        return self.model(**dict(zip(self.names, args)), **self.constants)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for _, t in _named_outputs(self.call(args)))


def _named_outputs(output: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """The tensors of a model output with names: field names, ``name.i`` inside tuples; ``None`` fields left out."""
    if isinstance(output, torch.Tensor):
        return [(prefix or "output", output)]
    items: Any
    if isinstance(output, Mapping):
        items = output.items()
    elif isinstance(output, (tuple, list)):
        items = ((str(i), v) for i, v in enumerate(output))
    else:
        return []
    named: list[tuple[str, torch.Tensor]] = []
    for key, value in items:
        if value is not None:
            named += _named_outputs(value, f"{prefix}.{key}" if prefix else str(key))
    return named


# ----- tracing -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress and warn about their own internals: keep the user's terminal clean."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _trace(flat: _Flat) -> torch.export.ExportedProgram:
    """``torch.export`` of ``flat``, every input axis left for the exporter to keep dynamic where the code allows."""
    from torch.export import Dim

    dynamic = tuple({axis: Dim.AUTO for axis in range(t.dim())} for t in flat.example_args)
    try:
        with _quiet(), torch.no_grad():
            return torch.export.export(flat, flat.example_args, dynamic_shapes=(dynamic,), strict=False)
    except Exception as exc:
        raise ExportError(f"torch.export could not trace {type(flat.model).__name__}: {_first_line(exc)}") from exc


#: ``{input name: {axis: (axis name, the exporter's symbol)}}``
Axes = dict[str, dict[int, tuple[str, str]]]


def _dynamic_axes(program: torch.export.ExportedProgram, flat: _Flat) -> Axes:
    """The input axes ``program`` kept symbolic, named: batch, then the modality's own axes, then by input."""
    from plugformers.plugins import get_registry

    spec = get_registry().model_class_family(type(flat.model))
    modality = spec.modality if spec is not None else None
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    symbols: dict[str, list[tuple[str, int, int]]] = {}  # symbol -> [(input, axis, rank)]
    for name, node_name in zip(flat.names, program.graph_signature.user_inputs):
        shape = placeholders[node_name].meta["val"].shape
        for axis, size in enumerate(shape):
            if isinstance(size, torch.SymInt) and size.node.expr.is_Symbol:
                symbols.setdefault(str(size.node.expr), []).append((name, axis, len(shape)))
    own_inputs = MODALITIES.get(modality or "", ())
    own_names = _AXIS_NAMES.get(modality or "", {})
    named: dict[str, str] = {}
    for symbol, places in symbols.items():
        if any(axis == 0 for _, axis, _ in places):
            named[symbol] = "batch"
            continue
        for name, axis, rank in places:
            label = own_names.get(axis - rank) if name in own_inputs else None
            if label is not None:
                named[symbol] = label
                break
        else:
            name, axis, _ = places[0]
            named[symbol] = f"{name}_axis{axis}"
    axes: Axes = {}
    for symbol, places in symbols.items():
        for name, axis, _ in places:
            axes.setdefault(name, {})[axis] = (named[symbol], symbol)
    return axes


# ----- writing and running -----------------------------------------------------------------------------


def _write_onnx(
    program: torch.export.ExportedProgram, path: Path, flat: _Flat, output_names: list[str], axes: Axes,
    opset: int | None, result: ExportResult,
) -> None:
    try:
        with _quiet():
            onnx_program = torch.onnx.export(
                program, dynamo=True, opset_version=opset, input_names=list(flat.names), output_names=output_names,
                optimize=True,
            )
    except Exception as exc:
        raise ExportError(f"the ONNX exporter could not convert {type(flat.model).__name__}: {_first_line(exc)}") from exc
    assert onnx_program is not None
    onnx_program.rename_axes({symbol: label for per_input in axes.values() for label, symbol in per_input.values()})
    from plugformers import __version__

    onnx_program.model.metadata_props.update(
        {"plugformers.version": __version__, "plugformers.model_class": result.model_class}
    )
    with _quiet():
        onnx_program.save(str(path))


Runner = Callable[[tuple[torch.Tensor, ...]], list[torch.Tensor]]


def _onnx_runner(path: Path) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise VerificationError(
            f"onnxruntime cannot load the exported file, so it was not kept: {_first_line(exc)} (its CPU kernels "
            "cover float32 fully, float16 and bfloat16 hardly: export float32, or use format 'torch-export').",
            math.inf,
        ) from exc
    names = [i.name for i in session.get_inputs()]

    def run(args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        feeds = {name: t.detach().cpu().numpy() for name, t in zip(names, args)}
        return [torch.from_numpy(out) for out in session.run(None, feeds)]

    return run


def _pt2_runner(path: Path) -> Runner:
    module = torch.export.load(str(path)).module()

    def run(args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        with torch.no_grad():
            return list(module(*args))

    return run


def _shorten(sample: dict[str, Any], flat: _Flat, axes: Axes, program: torch.export.ExportedProgram) -> dict[str, Any]:
    """``sample`` with every dynamic axis but the batch cut by about a quarter (within what the program allows)."""
    lows = {str(sym): int(r.lower) for sym, r in program.range_constraints.items() if math.isfinite(float(r.lower))}
    lengths: dict[str, int] = {}
    for name, per_input in axes.items():
        for axis, (label, symbol) in per_input.items():
            if label != "batch" and symbol not in lengths:
                size = int(sample[name].shape[axis])
                lengths[symbol] = max(lows.get(symbol, 1), size - max(1, size // 4))
    out = dict(sample)
    for name, per_input in axes.items():
        for axis, (_label, symbol) in per_input.items():
            if symbol in lengths:
                out[name] = out[name].narrow(axis, 0, lengths[symbol])
    return out


def _check(
    flat: _Flat, run: Runner, sample: Mapping[str, Any], batch_size: int, names: list[str], tolerance: float
) -> dict[str, Any]:
    """Run the exported file and eager on ``sample``; raise :class:`VerificationError` past ``tolerance``."""
    args = flat.args(sample)
    with torch.no_grad():
        expected = list(flat(*args))
    try:
        got = run(args)
    except Exception as exc:
        raise VerificationError(
            f"the exported {type(flat.model).__name__} failed to run at batch {batch_size} "
            f"(input shapes {[tuple(a.shape) for a in args]}): {_first_line(exc)}", math.inf
        ) from exc
    if len(got) != len(expected):
        raise VerificationError(f"the exported model returns {len(got)} outputs, eager {len(expected)}.", math.inf)
    diffs: dict[str, float] = {}
    bad: list[str] = []
    for name, a, b in zip(names, got, expected):
        a = a.to(b.device)
        if a.shape != b.shape:
            raise VerificationError(
                f"output {name!r} at batch {batch_size} has shape {tuple(a.shape)}, eager {tuple(b.shape)}.", math.inf
            )
        if not b.is_floating_point():
            diffs[name] = 0.0 if torch.equal(a, b.to(a.dtype)) else math.inf
        else:
            a32, b32 = a.float(), b.float()
            diff = (a32 - b32).abs()
            diffs[name] = float(diff.max()) if diff.numel() else 0.0
            if diff.numel() and not bool((diff <= tolerance + tolerance * b32.abs()).all()):
                bad.append(name)
        if math.isinf(diffs[name]) or math.isnan(diffs[name]):
            bad.append(name)
    worst = max(diffs.values(), default=0.0)
    if bad:
        detail = ", ".join(f"{n} {diffs[n]:.3g}" for n in bad)
        raise VerificationError(
            f"the exported {type(flat.model).__name__} differs from eager PyTorch at batch {batch_size}: "
            f"max abs diff {worst:.3g} (tolerance {tolerance:g} + {tolerance:g} x |eager|; outputs over it: {detail}); "
            "nothing was written.",
            worst,
        )
    return {
        "batch_size": batch_size,
        "shapes": {n: list(t.shape) for n, t in zip(flat.names, args)},
        "max_abs_diff": worst,
        "per_output": diffs,
    }


def _copy_side_files(model: nn.Module, folder: Path | None, staging: Path, preprocessor: Any) -> None:
    """The config and preprocessing files beside the exported model (never the weights)."""
    if folder is not None:
        for entry in sorted(folder.iterdir()):
            name = entry.name
            if not entry.is_file() or name.startswith(".") or name in _WEIGHT_FILES or name.endswith(_WEIGHT_SUFFIXES):
                continue
            shutil.copyfile(entry, staging / name)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "save_pretrained"):
        config.save_pretrained(staging)
    elif folder is not None and (folder / CONFIG_NAME).is_file():
        shutil.copyfile(folder / CONFIG_NAME, staging / CONFIG_NAME)
    if preprocessor is not None:
        preprocessor.save_pretrained(staging)
