"""Reduced-precision CPU inference, opt in: bfloat16 weights and activations, or int8 linear layers.

:func:`to_inference` (also :meth:`PreTrainedModel.to_inference`) is the one switch. ``dtype="bfloat16"``
converts the model and casts floating-point inputs to it; it pays off where the CPU multiplies bfloat16
natively (AMX or AVX512-BF16 on x86, the BF16 extension on Arm; :func:`cpu_support` says what this CPU has)
and is emulated, slower than float32, elsewhere. ``quantize="int8"`` replaces every ``nn.Linear`` but the
attention blocks' value projections (the most sensitive, see :func:`_kept_in_float`) by an :class:`Int8Linear`:
weights rounded once to int8 with one scale per output row, activations quantized at every call with one scale and zero point per token (dynamic quantization), products accumulated in int32.
It works on every CPU.

The int8 kernels are oneDNN's (``torch.ops.onednn.qlinear_prepack`` / ``qlinear_pointwise``, the ones
PyTorch's own x86 int8 path runs after compilation) fed with plain int8 tensors. torch 2.13 deprecates
``torch.ao.quantization.quantize_dynamic`` and the quantized tensors it builds on, and names torchao as the
replacement, whose eager CPU path (``torch._int_mm``) took 68x the float32 time of one DistilBERT-sized
matmul here; on a CPU where oneDNN has no int8 linear, FBGEMM/QNNPACK's dynamic linear (one activation
scale per tensor) is used instead. ``quantize_dynamic``'s single activation scale per tensor left
all-MiniLM-L6-v2 sentence embeddings at cosine 0.93 to float32; one per token keeps them above 0.99 on average, and float32 value projections on every sentence measured. The
model's fast path keeps working on top: q, k and v stay one (int8) matmul that quantizes its input once.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from plugformers.cpu_kernels import CpuSupport, Int8Linear, cpu_support, fuse_int8
from plugformers.vocabulary import QUANTIZE_MODES

__all__ = ["QUANTIZE_MODES", "CpuSupport", "Int8Linear", "cpu_support", "fuse_int8", "to_inference"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_INFERENCE_ATTR = "_plugformers_inference"


# ----- the switch --------------------------------------------------------------------------------------


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype in _DTYPES.values()):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}.")


def _cast_inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    dtype = getattr(module, _INFERENCE_ATTR)["dtype"]

    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
            return value.to(dtype)
        return value

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def to_inference(
    model: nn.Module, dtype: torch.dtype | str | None = None, quantize: str | None = None, *, fast_path: bool = False
) -> nn.Module:
    """Prepare ``model`` for CPU inference in reduced precision, in place; returns it (in eval mode).

    ``dtype``: ``"bfloat16"`` (or ``"float16"``) converts weights and buffers, and floating-point inputs
    are cast to it on every call; warns where this CPU has no native matrix instructions for it.
    ``quantize="int8"``: every ``nn.Linear`` becomes an :class:`Int8Linear` (computing in float32 around
    int8 matmuls, so it is not combined with a half-precision ``dtype``); the model can no longer be
    trained or saved. ``fast_path=True`` also calls ``enable_fast_path()`` where the model has one (it
    may be called later instead: both orders give the same model).
    """
    target = _parse_dtype(dtype)
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} or None, got {quantize!r}.")
    if quantize is not None and target not in (None, torch.float32):
        raise ValueError(
            f"quantize={quantize!r} runs float32 around int8 matmuls; it cannot be combined with dtype={target}."
        )
    model.eval()
    from plugformers import fast_path as fast

    # Fast forms hold derived weights of the float layers: take them off while layers change, then put them back.
    was_fast = any(fast.is_enabled(m) for m in model.modules())
    disable = getattr(model, "disable_fast_path", None)
    if was_fast and callable(disable):
        disable()
    support = cpu_support()
    if target is not None and target != torch.float32:
        native = support.bf16 if target == torch.bfloat16 else support.fp16
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        if on_cpu and not native:
            warnings.warn(
                f"{target} inference on a CPU without {target} matrix instructions is emulated and slower than "
                f"float32 ({support.describe()}).",
                RuntimeWarning,
                stacklevel=2,
            )
        model.to(target)
    if quantize == "int8":
        if any(p.device.type != "cpu" for p in model.parameters()):
            raise ValueError("quantize='int8' runs on the CPU: move the model there first (model.to('cpu')).")
        _replace_linears(model)
    state = model.__dict__.setdefault(_INFERENCE_ATTR, {"dtype": None, "quantize": None, "hook": None})
    if target is not None:
        state["dtype"] = target
        if state["hook"] is None:
            state["hook"] = model.register_forward_pre_hook(_cast_inputs, with_kwargs=True)
    if quantize is not None:
        state["quantize"] = quantize
    enable = getattr(model, "enable_fast_path", None)
    if (fast_path or was_fast) and callable(enable) and getattr(model, "supports_fast_path", False):
        enable()
    return model


def _kept_in_float(model: nn.Module) -> set[int]:
    """The linear layers int8 leaves in float32: the value projections of the host's attention blocks.

    Measured on all-MiniLM-L6-v2 over 600 sentences of the guides: all layers in int8 gave a minimum cosine of
    0.9876 to float32; the value projections alone in float32 (a twelfth of the matmul work) 0.9935, the
    query and key projections 0.9867, the feed-forward output 0.9906.
    """
    from plugformers.modeling_layers import MultiHeadAttention

    return {id(m.projection("value")) for m in model.modules() if isinstance(m, MultiHeadAttention)}


def _replace_linears(module: nn.Module, keep: set[int] | None = None) -> None:
    keep = _kept_in_float(module) if keep is None else keep
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear and id(child) not in keep:
            setattr(module, name, Int8Linear(child))
        else:
            _replace_linears(child, keep)


def inference_settings(model: nn.Module) -> dict[str, Any]:
    """``{"dtype": ..., "quantize": ...}`` as set by :func:`to_inference` (both None for a plain model)."""
    state = model.__dict__.get(_INFERENCE_ATTR) or {}
    return {"dtype": state.get("dtype"), "quantize": state.get("quantize")}
