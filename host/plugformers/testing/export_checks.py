"""Export every registered model class and verify it, for test suites (the conformance "onnx" check).

Each export traces the model with symbolic shapes, which is pure-Python work of a few seconds per tiny model,
so :func:`export_classes` spreads the classes over worker processes (one per CPU core, two at most by
default) and returns one :class:`~plugformers.exporting.ExportResult` (or the error it raised) per class.
A class whose registration ``skips`` the check is not exported; its reason comes back instead.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ClassExport", "export_class", "export_classes"]

#: The conformance check each export format answers for.
CHECK_OF_FORMAT = {"onnx": "onnx", "torch-export": "export"}


@dataclass
class ClassExport:
    """How one registered class fared: exported (``result``), refused (``error``) or skipped (``skipped``)."""

    model_type: str
    class_name: str
    format: str
    result: Any = None
    error: str | None = None
    skipped: str | None = None


def export_class(model_type: str, class_name: str, output_dir: str, format: str = "onnx") -> ClassExport:
    """Build ``class_name`` of ``model_type`` at its tiny config and export it with its registered example inputs."""
    import torch

    from plugformers.exporting import export
    from plugformers.plugins import get_registry, import_object

    spec = get_registry().family(model_type)
    reason = spec.skips.get(class_name, {}).get(CHECK_OF_FORMAT[format])
    if reason:
        return ClassExport(model_type, class_name, format, skipped=reason)
    torch.manual_seed(0)
    model_class = import_object(spec.models[spec.model_names()[class_name][0]])
    model = model_class(spec.build_config(tiny=True)).eval()
    try:
        result = export(model, output_dir, format=format)
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return ClassExport(model_type, class_name, format, error=text)
    return ClassExport(model_type, class_name, format, result=result)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def export_classes(
    jobs: Iterable[tuple[str, str, str]], output_root: str | os.PathLike[str], *, workers: int | None = None
) -> dict[tuple[str, str], ClassExport]:
    """Run :func:`export_class` for every ``(model_type, class name, format)``, in ``workers`` processes.

    Each export writes into its own folder under ``output_root``. ``workers`` defaults to the CPU count, at
    most 2; 1 runs everything in this process.
    """
    jobs = list(jobs)
    count = workers if workers is not None else max(1, min(2, os.cpu_count() or 1))
    folders = [str(Path(output_root) / f"{fmt}-{name}") for _, name, fmt in jobs]
    if count <= 1 or len(jobs) <= 1:
        done = [export_class(t, n, d, f) for (t, n, f), d in zip(jobs, folders)]
        return {(d.class_name, d.format): d for d in done}
    # "spawn": a forked child would inherit this process's OpenMP and torch threads mid-flight.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=count, mp_context=context, initializer=_worker_init) as pool:
        futures: list[Future[ClassExport]] = [
            pool.submit(export_class, t, n, d, f) for (t, n, f), d in zip(jobs, folders)
        ]
        results = [f.result() for f in futures]
    return {(r.class_name, r.format): r for r in results}
