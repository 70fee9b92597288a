"""One vector per input from per-position hidden states, shared by the text, image and audio embedding tasks.

:func:`pool` averages (``"mean"``), takes the first position (``"cls"``) or the per-dimension maximum
(``"max"``) over the positions a mask marks as real, and optionally scales the result to unit length.

:func:`sentence_folder_defaults` reads what a folder written by sentence-transformers says about its
embedding (``modules.json``, the pooling module's ``config.json``, ``sentence_bert_config.json``), so that
``pipeline("feature-extraction", model=<that folder>)`` computes the same vectors without arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["POOLINGS", "check_pooling", "pool", "sentence_folder_defaults"]

#: The pooling modes every embedding task takes (``None``: no pooling, per-position output).
POOLINGS: tuple[str, ...] = ("mean", "cls", "max")

# The pooling modes a sentence-transformers pooling config may switch on, and ours for each (None: not offered).
_FOLDER_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": None,
    "pooling_mode_weightedmean_tokens": None,
    "pooling_mode_lasttoken": None,
}


def check_pooling(value: Any, allowed: Sequence[str] = POOLINGS) -> Any:
    """``value`` when it is None or one of ``allowed``; else a ValueError naming the choices."""
    if value is not None and value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"pooling must be None or one of {shown}, got {value!r}.")
    return value


def pool(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str, normalize: bool) -> torch.Tensor:
    """``(batch, dim)`` float32 vectors from ``(batch, positions, dim)`` states; ``mask`` ``(batch, positions)``
    marks the real positions (None: all are real). Padded positions never count, so a vector does not depend
    on what else shares its batch."""
    if mask is None:
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    weights = mask.to(hidden.dtype)[..., None]
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "mean":
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    elif pooling == "max":
        pooled = hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min).amax(1)
    else:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}.")
    pooled = pooled.float()
    return torch.nn.functional.normalize(pooled, p=2, dim=-1) if normalize else pooled


def sentence_folder_defaults(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"pooling", "normalize", "max_length"}`` of a sentence-transformers folder; ``{}`` for any other folder.

    Only the keys the folder decides are present. A folder whose modules plugformers cannot reproduce (a dense
    projection after pooling, a pooling mode without an equivalent here) raises a ValueError naming the module:
    its vectors would silently differ from sentence-transformers' otherwise.
    """
    root = Path(folder)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return {}
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{modules_file} is not valid JSON: {exc}") from exc
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise ValueError(f"{modules_file} must be a list of {{'type', 'path'}} objects.")
    found: dict[str, Any] = {"pooling": None, "normalize": False}
    for module in modules:
        kind = str(module["type"]).rsplit(".", 1)[-1]
        where = root / str(module.get("path") or "")
        if kind == "Transformer":
            length = _json(where / "sentence_bert_config.json").get("max_seq_length")
            if isinstance(length, int) and length > 0:
                found["max_length"] = length
        elif kind == "Pooling":
            found["pooling"] = _folder_pooling(where / "config.json")
        elif kind == "Normalize":
            found["normalize"] = True
        else:
            raise ValueError(
                f"{modules_file} has a {kind} module ({module['type']}); plugformers reproduces Transformer, "
                "Pooling and Normalize only. Pass pooling= explicitly to embed with the encoder alone."
            )
    return found


def _folder_pooling(path: Path) -> str:
    config = _json(path)
    on = [key for key, value in config.items() if key.startswith("pooling_mode_") and value is True]
    if len(on) != 1 or _FOLDER_MODES.get(on[0]) is None:
        raise ValueError(
            f"{path} switches on pooling {', '.join(on) or 'none'}; plugformers reproduces exactly one of "
            f"{', '.join(k for k, v in _FOLDER_MODES.items() if v)}. Pass pooling= explicitly to override."
        )
    return str(_FOLDER_MODES[on[0]])


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}
