"""The trained checkpoints installed plugins ship as package data, shown by ``plugformers demo``.

A plugin lists them in its registration (``checkpoints={name: "package:relative/folder"}``). Each folder
is a checkpoint in the reference layout that carries, as data, what the demo prints: ``eval_results.json``
with a ``"summary"`` line (how it was trained and scored) and ``"samples"`` (``{relative path: expected
label}``), and the sample files those paths name. The demo loads each checkpoint through the Auto class
its architecture is registered under and predicts every sample, timed, marking each ok or WRONG.
Nothing here knows a family or a dataset; nothing imports torch at module level.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugformers.vocabulary import CONFIG_NAME

__all__ = [
    "RESULTS_FILE",
    "ShippedCheckpoint",
    "checkpoint_folder",
    "load_checkpoint",
    "predict_label",
    "recorded_results",
    "shipped_checkpoints",
    "show_trained_models",
]

RESULTS_FILE = "eval_results.json"


@dataclass(frozen=True)
class ShippedCheckpoint:
    """One trained checkpoint a plugin ships: its name, family, plugin and folder."""

    name: str
    model_type: str
    plugin: str
    folder: Path


def checkpoint_folder(ref: str) -> Path:
    """The folder a ``"package:relative/folder"`` reference names, inside the installed package."""
    import importlib.resources

    package, _, relative = ref.partition(":")
    return Path(str(importlib.resources.files(package).joinpath(relative)))


def shipped_checkpoints() -> list[ShippedCheckpoint]:
    """Every checkpoint the installed plugins register, by name."""
    from plugformers.plugins import get_registry

    found = [
        ShippedCheckpoint(name, model_type, spec.plugin, checkpoint_folder(ref))
        for model_type, spec in list(get_registry().families.items())
        for name, ref in spec.checkpoints.items()
    ]
    return sorted(found, key=lambda c: c.name)


def recorded_results(folder: str | Path) -> dict[str, Any]:
    """The training run's results written next to a checkpoint (``eval_results.json``); ``{}`` if absent."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    return data


def load_checkpoint(folder: str | Path) -> tuple[Any, Any, str]:
    """``(model, preprocessor, modality)`` of a checkpoint folder, through the Auto classes its family uses."""
    import plugformers
    from plugformers.plugins import get_registry
    from plugformers.samples import PREPROCESSOR_AUTO

    config = plugformers.AutoConfig.from_pretrained(folder)
    spec = get_registry().family(config.model_type)
    keys = [k for arch in config.architectures or [] for k in spec.model_names().get(arch, [])] or list(spec.models)
    model = getattr(plugformers, keys[0]).from_pretrained(folder).eval()
    modality = spec.modality or ""
    if modality not in PREPROCESSOR_AUTO:
        raise ValueError(f"model type {spec.model_type!r} declares no modality, so no sample can be read for it.")
    return model, getattr(plugformers, PREPROCESSOR_AUTO[modality]).from_pretrained(folder), modality


def predict_label(model: Any, preprocessor: Any, modality: str, path: str | Path) -> tuple[str, float]:
    """The top label (by ``config.id2label``) and its probability for one sample file."""
    import torch

    from plugformers.samples import model_inputs, preprocess, read_sample

    batch = preprocess(modality, preprocessor, read_sample(modality, path))
    with torch.no_grad():
        logits = model(**model_inputs(model, batch)).logits[0]
    probs = logits.float().softmax(-1)
    top = int(probs.argmax())
    return model.config.id2label.get(top, str(top)), float(probs[top])


def show_trained_models() -> int:
    """Print each shipped checkpoint's recorded results and its predictions on its samples, with timings.

    Returns how many samples got a wrong label (0 when every prediction matches).
    """
    checkpoints = shipped_checkpoints()
    if not checkpoints:
        print("    (no installed plugin ships a trained checkpoint)")
    wrong = 0
    for ckpt in checkpoints:
        print(f"\n== trained checkpoint {ckpt.name} ({ckpt.model_type}, plugin {ckpt.plugin}; {ckpt.folder})")
        if not (ckpt.folder / CONFIG_NAME).is_file():
            print(f"    skipped: the plugin registers it, but {ckpt.folder} holds no {CONFIG_NAME}")
            continue
        start = time.perf_counter()
        model, preprocessor, modality = load_checkpoint(ckpt.folder)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"    {'load':<28} {time.perf_counter() - start:7.3f} s  ({type(model).__name__}, {n_params:,} parameters)")
        recorded = recorded_results(ckpt.folder)
        if recorded.get("summary"):
            print(f"    {'recorded':<28}            {recorded['summary']}")
        for relative, expected in (recorded.get("samples") or {}).items():
            start = time.perf_counter()
            label, score = predict_label(model, preprocessor, modality, ckpt.folder / relative)
            ok = label == str(expected)
            wrong += not ok
            mark = "ok" if ok else f"WRONG, expected {expected}"
            print(f"    {'predict ' + Path(relative).name:<28} {time.perf_counter() - start:7.3f} s  -> {label} ({score:.3f}) {mark}")
    return wrong
