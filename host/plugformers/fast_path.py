"""The opt-in inference fast path that the model families share.

Imported by the families' modeling modules only (it imports torch), never by ``import plugformers``.

A module that supports it sets ``supports_fast_path = True`` and sends its hot layers through
:func:`linear` (one layer, optionally with its activation fused), :func:`fused_linear` (several layers that
read the same input, such as q/k/v, as one matmul) and :func:`conv_bn` (a convolution and the batch norm after
it). Until a model calls :meth:`~plugformers.modeling_utils.PreTrainedModel.enable_fast_path`, these are the
plain layers.

Once enabled, each module keeps *derived* copies of its weights: the q|k|v weights concatenated, and on x86 CPUs
with AVX-512 in float32 oneDNN's pre-packed (blocked) layout, which its linear kernel reads faster than a plain
matrix and which can carry a fused GELU or ReLU (see :func:`onednn_preferred`); for convolutions, the weight with
the batch norm's inference-time scale folded in, in channels-last layout (oneDNN's and cuDNN's preferred one),
and the norm's shift as a bias. The copies are rebuilt whenever a source weight changes (a training step,
``load_state_dict``, ``.to()``), are never part of the state dict, and are skipped whenever a gradient is
needed, under autocast, while the model is being compiled or traced, and for weights made under
``torch.inference_mode()`` (which have no version counter to watch), so the fast path never returns stale
numbers and never changes what is saved. Results agree with the plain path to float32 rounding.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from plugformers.utils.env import env_switch

__all__ = [
    "FUSABLE_ACTIVATIONS", "conv_bn", "disable", "enable", "fused_linear", "is_enabled", "linear", "onednn_available",
    "onednn_preferred", "reset",
]

# Activations that the fast path applies inside the matmul kernel (exact GELU, not the tanh approximation).
FUSABLE_ACTIVATIONS = frozenset({"gelu", "relu"})

_STATE = "_plugformers_fast_path"
ONEDNN_ENV = "PLUGFORMERS_FAST_PATH_ONEDNN"


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


def _cpu_has_avx512() -> bool:
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return capability.startswith("AVX512") or "AMX" in capability


def onednn_preferred() -> bool:
    """Whether float32 CPU matmuls on the fast path read oneDNN-packed weights (else plain ones, q|k|v still fused).

    Only where that pays off. On an AVX2-only x86 CPU (2026-12-01, one thread) oneDNN's packed kernel took
    1.00-1.11x the time of torch's ``addmm`` at DistilBERT, ViT and Wav2Vec2 shapes and its fused GELU 1.26-1.62x
    the time of ``addmm`` then ``gelu``, which made ``enable_fast_path()`` 13-27% slower than the plain model; on
    the machine of the earlier benchmark runs (its instruction set was not recorded) it took 0.72-1.00x. So by
    default oneDNN is used where torch reports AVX-512 or AMX. ``PLUGFORMERS_FAST_PATH_ONEDNN=1`` or ``0``
    overrides that; it is read whenever derived weights are built.
    """
    setting = env_switch(ONEDNN_ENV)
    wanted = _cpu_has_avx512() if setting is None else setting
    return wanted and onednn_available()


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


def conv_bn(
    owner: nn.Module,
    x: torch.Tensor,
    conv: nn.Conv2d,
    norm: nn.BatchNorm2d | None = None,
    activation: nn.Module | None = None,
) -> torch.Tensor:
    """``activation(norm(conv(x)))``; through the fast path when ``owner`` has it on and it applies.

    The fast path runs one convolution with ``norm``'s running statistics and affine parameters folded into the
    weight and bias, on channels-last tensors, and returns a channels-last result (same values and shape; call
    ``.contiguous()`` before ``.view()``). A norm in training mode uses batch statistics, so it is never folded.
    """
    out = _fast_conv(owner, x, conv, norm)
    if out is None:
        out = conv(x)
        if norm is not None:
            out = norm(out)
    return activation(out) if activation is not None else out


def _usable_state(owner: nn.Module, x: torch.Tensor, params: list[torch.Tensor]) -> _State | None:
    """The module's state when the fast path may run on ``x``, else None."""
    state = owner.__dict__.get(_STATE)
    if state is None or torch.compiler.is_compiling() or torch.is_autocast_enabled(x.device.type):
        return None  # off, or compiling (the compiler fuses by itself), or autocast (it picks the matmul dtype)
    if torch.jit.is_tracing():
        return None  # a trace would keep today's derived weights as constants, stale after the next update
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return None  # gradients must reach the real weights
    if any(p.is_inference() for p in params):
        return None  # inference tensors have no version counter, so a changed weight could not be noticed
    return state


def _fast(owner: nn.Module, x: torch.Tensor, layers: tuple[nn.Linear, ...], activation: str | None) -> Any:
    if activation is not None and activation not in FUSABLE_ACTIVATIONS:
        raise ValueError(f"The fast path fuses only {sorted(FUSABLE_ACTIVATIONS)}, not {activation!r}.")
    params = _params(layers)
    state = _usable_state(owner, x, params)
    if state is None:
        return None
    entry = _entry(state, tuple(id(layer) for layer in layers), params, lambda: _build_linear(layers))
    if entry.packed is not None:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return None  # e.g. bfloat16 activations with float32 weights: left to the plain path
        attr, algorithm = (activation, "none" if activation == "gelu" else "") if activation else ("none", "")
        return torch.ops.mkldnn._linear_pointwise(x, entry.packed, entry.bias, attr, [], algorithm)
    out = torch.nn.functional.linear(x, entry.weight, entry.bias)
    if activation == "gelu":
        return torch.nn.functional.gelu(out)
    return torch.relu(out) if activation == "relu" else out


def _fast_conv(owner: nn.Module, x: torch.Tensor, conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> Any:
    if conv.padding_mode != "zeros" or x.dim() != 4 or isinstance(conv.padding, str):
        return None
    if norm is not None and (norm.training or norm.running_mean is None or norm.running_var is None):
        return None  # batch statistics, not foldable
    params = [p for p in (conv.weight, conv.bias) if p is not None]
    if norm is not None:
        params += [t for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var) if t is not None]
    state = _usable_state(owner, x, params)
    if state is None or x.dtype != conv.weight.dtype:
        return None
    entry = _entry(state, (id(conv), id(norm)), params, lambda: _build_conv(conv, norm))
    x = x.contiguous(memory_format=torch.channels_last)
    return torch.nn.functional.conv2d(x, entry.weight, entry.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _params(layers: tuple[nn.Linear, ...]) -> list[torch.Tensor]:
    return [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]


def _entry(state: _State, key: tuple[int, ...], sources: list[torch.Tensor], build: Any) -> _Entry:
    """The derived weights under ``key``, rebuilt by ``build()`` when any of ``sources`` changed since."""
    first = sources[0]
    signature = (first.device, first.dtype, *((t._version, t.data_ptr()) for t in sources))
    entry = state.entries.get(key)
    if entry is None or entry.signature != signature:
        with torch.no_grad():
            weight, bias, packed = build()
        entry = state.entries[key] = _Entry(signature, weight, bias, packed)
    return entry


def _build_linear(layers: tuple[nn.Linear, ...]) -> tuple[Any, Any, Any]:
    """q|k|v-style concatenated weight and bias; where oneDNN is preferred, only its packed weight is kept."""
    first = layers[0].weight
    weight: torch.Tensor = first if len(layers) == 1 else torch.cat([layer.weight for layer in layers], dim=0)
    biases = [layer.bias for layer in layers]
    bias: torch.Tensor | None = None
    if len(layers) == 1:
        bias = biases[0]
    elif any(b is not None for b in biases):
        bias = torch.cat([b if b is not None else layer.weight.new_zeros(layer.out_features)
                          for b, layer in zip(biases, layers)])
    bias = bias.detach() if bias is not None else None
    if first.device.type == "cpu" and first.dtype == torch.float32 and onednn_preferred():
        # On CPU only the packed copy is read: do not keep a second plain one.
        return None, bias, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
    return weight.detach(), bias, None


def _build_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> tuple[Any, Any, Any]:
    """The convolution with ``norm`` folded in: w * s and (b - mean) * s + shift, s = gamma / sqrt(var + eps)."""
    weight, bias = conv.weight.detach(), conv.bias.detach() if conv.bias is not None else None
    if norm is not None:
        assert norm.running_mean is not None and norm.running_var is not None
        dtype = torch.promote_types(weight.dtype, torch.float32)  # fold half-precision weights in float32
        scale = torch.rsqrt(norm.running_var.to(dtype) + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.to(dtype)
        shift = -norm.running_mean.to(dtype) * scale
        if bias is not None:
            shift = shift + bias.to(dtype) * scale
        if norm.bias is not None:
            shift = shift + norm.bias.to(dtype)
        weight = (weight.to(dtype) * scale[:, None, None, None]).to(weight.dtype)
        bias = shift.to(weight.dtype)
    return weight.contiguous(memory_format=torch.channels_last), bias, None
