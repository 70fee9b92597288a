"""The opt-in inference fast path that the transformer families share.

Imported by the families' modeling modules only (it imports torch), never by ``import plugformers``.

A module that supports it sets ``supports_fast_path = True`` and sends its hot matmuls through
:func:`linear` (one layer, optionally with its activation fused) and :func:`fused_linear` (several layers that
read the same input, such as q/k/v, as one matmul). Until a model calls
:meth:`~plugformers.modeling_utils.PreTrainedModel.enable_fast_path`, both are the plain ``nn.Linear`` path.

Once enabled, each module keeps *derived* copies of its weights: the q|k|v weights concatenated, and on x86 CPUs
in float32 oneDNN's pre-packed (blocked) layout, which its linear kernel reads faster than a plain matrix and
which can carry a fused GELU or ReLU. The copies are rebuilt whenever a source weight changes (a training step,
``load_state_dict``, ``.to()``), are never part of the state dict, and are skipped whenever a gradient is
needed, under autocast, or while the model is being compiled, so the fast path never returns stale numbers and
never changes what is saved. Results agree with the plain path to float32 rounding.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

__all__ = [
    "FUSABLE_ACTIVATIONS", "disable", "enable", "fused_linear", "is_enabled", "linear", "onednn_available", "reset",
]

# Activations that the fast path applies inside the matmul kernel (exact GELU, not the tanh approximation).
FUSABLE_ACTIVATIONS = frozenset({"gelu", "relu"})

_STATE = "_plugformers_fast_path"


class _State:
    """A module's derived weights, keyed by the layers they come from. Copies and pickles start empty."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[tuple[int, ...], _Entry] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> _State:
        return _State()  # oneDNN's packed tensors cannot be copied; the copy rebuilds its own on first use

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_State, ())


class _Entry:
    __slots__ = ("bias", "packed", "signature", "weight")

    def __init__(self, signature: tuple[Any, ...], weight: Any, bias: Any, packed: Any) -> None:
        self.signature, self.weight, self.bias, self.packed = signature, weight, bias, packed


def enable(module: nn.Module) -> None:
    """Turn the fast path on for one module (its derived weights are built on first use)."""
    if _STATE not in module.__dict__:
        module.__dict__[_STATE] = _State()


def disable(module: nn.Module) -> None:
    """Turn it off and free the derived weights."""
    module.__dict__.pop(_STATE, None)


def is_enabled(module: nn.Module) -> bool:
    return module.__dict__.get(_STATE) is not None


def reset(module: nn.Module) -> None:
    """Forget the derived weights (for modules that replace their layers, e.g. when pruning heads)."""
    state = module.__dict__.get(_STATE)
    if state is not None:
        state.entries.clear()


@functools.lru_cache(maxsize=1)
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's pre-packed linear kernel (x86 CPU builds do)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        packed = torch.ops.mkldnn._reorder_linear_weight(torch.ones(3, 4), None)
        torch.ops.mkldnn._linear_pointwise(torch.ones(2, 4), packed, torch.zeros(3), "gelu", [], "none")
    except (AttributeError, RuntimeError):
        return False
    return True


def linear(owner: nn.Module, x: torch.Tensor, layer: nn.Linear, activation: str | None = None) -> torch.Tensor:
    """``activation(layer(x))``, through the fast path when ``owner`` has it on and it applies.

    ``activation`` is None or one of :data:`FUSABLE_ACTIVATIONS`; other activations are the caller's to apply.
    """
    out = _fast(owner, x, (layer,), activation)
    if out is not None:
        return out
    out = layer(x)
    if activation == "gelu":
        return nn.functional.gelu(out)
    return torch.relu(out) if activation == "relu" else out


def fused_linear(owner: nn.Module, x: torch.Tensor, *layers: nn.Linear) -> torch.Tensor | None:
    """The outputs of ``layers`` on the same ``x``, concatenated on the last axis, as one matmul.

    Returns None when the fast path is off or does not apply, so that the caller runs its plain code.
    """
    return _fast(owner, x, layers, None)


def _fast(owner: nn.Module, x: torch.Tensor, layers: tuple[nn.Linear, ...], activation: str | None) -> Any:
    if activation is not None and activation not in FUSABLE_ACTIVATIONS:
        raise ValueError(f"The fast path fuses only {sorted(FUSABLE_ACTIVATIONS)}, not {activation!r}.")
    state = owner.__dict__.get(_STATE)
    if state is None or torch.compiler.is_compiling() or torch.is_autocast_enabled(x.device.type):
        return None  # off, or compiling (the compiler fuses by itself), or autocast (it picks the matmul dtype)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in _params(layers))):
        return None  # gradients must reach the real weights
    entry = _entry(state, layers)
    if entry.packed is not None:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return None  # e.g. bfloat16 activations with float32 weights: left to the plain path
        attr, algorithm = (activation, "none" if activation == "gelu" else "") if activation else ("none", "")
        return torch.ops.mkldnn._linear_pointwise(x, entry.packed, entry.bias, attr, [], algorithm)
    out = torch.nn.functional.linear(x, entry.weight, entry.bias)
    if activation == "gelu":
        return torch.nn.functional.gelu(out)
    return torch.relu(out) if activation == "relu" else out


def _params(layers: tuple[nn.Linear, ...]) -> list[torch.Tensor]:
    return [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]


def _entry(state: _State, layers: tuple[nn.Linear, ...]) -> _Entry:
    """The derived weights for ``layers``, rebuilt when any source tensor changed since they were made."""
    params = _params(layers)
    first = layers[0].weight
    signature = (first.device, first.dtype, *((p._version, p.data_ptr()) for p in params))
    key = tuple(id(layer) for layer in layers)
    entry = state.entries.get(key)
    if entry is not None and entry.signature == signature:
        return entry
    with torch.no_grad():
        weight: torch.Tensor = first if len(layers) == 1 else torch.cat([layer.weight for layer in layers], dim=0)
        biases = [layer.bias for layer in layers]
        bias: torch.Tensor | None = None
        if len(layers) == 1:
            bias = biases[0]
        elif any(b is not None for b in biases):
            bias = torch.cat([b if b is not None else layer.weight.new_zeros(layer.out_features)
                              for b, layer in zip(biases, layers)])
        if first.device.type == "cpu" and first.dtype == torch.float32 and onednn_available():
            # On CPU only the packed copy is read: do not keep a second plain one.
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
            entry = _Entry(signature, None, bias.detach() if bias is not None else None, packed)
        else:
            entry = _Entry(signature, weight.detach(), bias.detach() if bias is not None else None, None)
    state.entries[key] = entry
    return entry
