"""What this CPU multiplies natively, and the int8 linear layer built on it.

:func:`cpu_support` reads the instruction set once (bfloat16/float16 matrix instructions, 8-bit dot products);
:class:`Int8Linear` replaces an ``nn.Linear`` with int8 weights (one scale per output row) and activations
quantized per token at every call, through oneDNN's int8 linear kernels; :func:`fuse_int8` joins several such
layers that read the same input into one matmul (the fast path's fused projections).
:mod:`plugformers.precision` is the switch that puts these into a model.
"""

from __future__ import annotations

import functools
import platform
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CpuSupport", "Int8Linear", "cpu_support", "fuse_int8"]

# /proc/cpuinfo flags (x86 "flags", Arm "Features") that matter here.
_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
_FP16_FLAGS = ("amx_fp16", "avx512_fp16", "fphp")
_VNNI_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp")
_TINY = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class CpuSupport:
    """What this CPU offers for reduced precision, from ``/proc/cpuinfo`` and torch's dispatch level."""

    cpu: str
    #: The vector instruction set torch dispatches to (``torch.backends.cpu.get_cpu_capability()``).
    capability: str
    #: The relevant instruction-set flags the CPU reports.
    flags: tuple[str, ...]
    #: Native bfloat16 matrix instructions (AMX-BF16, AVX512-BF16 or Arm BF16): bfloat16 pays off.
    bf16: bool
    #: Native float16 matrix instructions (AMX-FP16, AVX512-FP16, Arm FP16 arithmetic).
    fp16: bool
    #: 8-bit dot-product instructions (VNNI, AMX-INT8, Arm DotProd): int8 activations may use all 8 bits.
    int8_dot: bool
    #: Which int8 linear kernel :class:`Int8Linear` uses here: ``"onednn"`` or ``"fbgemm"``/``"qnnpack"``.
    int8_kernel: str

    def describe(self) -> str:
        """One line for people: the CPU, torch's level, what each precision runs on."""
        found = ", ".join(self.flags) or "none"
        bf16 = "native (bf16 matrix instructions)" if self.bf16 else "emulated: slower than float32"
        dot = "8-bit dot products" if self.int8_dot else "no 8-bit dot products: 7-bit weights"
        return (
            f"{self.cpu}: torch dispatch {self.capability}; reduced-precision flags {found}; bfloat16 {bf16}; "
            f"int8 via {self.int8_kernel} ({dot})"
        )


def _cpuinfo_flags() -> tuple[str, str]:
    """``(model name, flags)`` from /proc/cpuinfo (Linux), else the platform's processor name and no flags."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), ""
    name, flags = platform.processor() or platform.machine(), ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and name in ("", platform.processor() or platform.machine()):
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = value
    return name, flags


@functools.lru_cache(maxsize=1)
def cpu_support() -> CpuSupport:
    """Detect once what this CPU offers (the answer is cached for the process)."""
    name, raw = _cpuinfo_flags()
    present = set(raw.split())
    capability = str(torch.backends.cpu.get_cpu_capability())
    flags = tuple(f for f in (*_BF16_FLAGS, *_FP16_FLAGS, *_VNNI_FLAGS) if f in present)
    bf16 = any(f in present for f in _BF16_FLAGS) or "AMX" in capability.upper()
    return CpuSupport(
        cpu=name,
        capability=capability,
        flags=flags,
        bf16=bf16,
        fp16=any(f in present for f in _FP16_FLAGS),
        int8_dot=any(f in present for f in _VNNI_FLAGS),
        int8_kernel="onednn" if _onednn_int8_available() else torch.backends.quantized.engine,
    )


# ----- int8 linear layers ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _onednn_int8_available() -> bool:
    """Whether this torch build runs oneDNN's int8 linear (x86 builds do)."""
    try:
        packed = torch.ops.onednn.qlinear_prepack(torch.ones(2, 4, dtype=torch.int8), None)
        torch.ops.onednn.qlinear_pointwise.tensor(
            torch.ones(3, 4, dtype=torch.uint8), torch.ones(()), torch.zeros((), dtype=torch.int64), packed,
            torch.ones(2), torch.zeros(2, dtype=torch.int64), None, 1.0, 0, torch.float32, "none", [None], "",
        )
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def _activation_levels() -> int:
    """The largest uint8 code activations use: all 255 on every CPU (see :func:`_weight_levels`)."""
    return 255


def _weight_levels() -> int:
    """The largest int8 weight magnitude: 127 with 8-bit dot products; 63 where u8 x s8 pairs are summed in int16.

    Without VNNI (AVX2) two products ``u8 * s8`` are added in a saturating int16: 255-level activations with
    63-level weights keep every pair sum below 2**15. Of the two halves the weights (one scale per output row)
    lose less to one bit fewer: on all-MiniLM-L6-v2 (434 sentences) the worst cosine to float32 was 0.9927 this
    way against 0.9876 with 127 levels on both sides.
    """
    return 127 if cpu_support().int8_dot else 63


def _quantize_rows(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row of ``x`` (one token) as uint8 codes over its own range (which holds 0): codes, scales, zero points.

    One scale per token, not one per tensor: a few tokens with large activations (common after a layer
    norm) would otherwise leave every other token a handful of codes. Besides its row minima and maxima,
    ``x / scale + zero + 0.5`` truncated to uint8. The scale spans ``levels - 1``
    steps and the zero point is rounded up, so every value lands in ``[0, levels]`` with half a step to
    spare on both sides, and truncation after adding one half rounds to the nearest code.
    """
    # amin and amax apart: torch.aminmax over one dimension took 15x their time together (torch 2.13, CPU).
    high = x.amax(dim=-1, keepdim=True).clamp_(min=0)
    scale = (high - x.amin(dim=-1, keepdim=True).clamp_(max=0)).div_(levels - 1).clamp_(min=_TINY)
    inverse = scale.reciprocal()
    zero = (high * inverse).sub_(levels - 1).neg_().ceil_()  # -low / scale, from high and the span
    # mul then add_, and float -> int16 -> uint8: the same codes in 0.5x and 0.4x the time of addcmul and of a
    # direct float -> uint8 cast (torch 2.13, x86: that cast is not vectorised; 1024 x 3072, 2 threads).
    codes = torch.mul(x, inverse).add_(zero + 0.5).to(torch.int16).to(torch.uint8)
    return codes, scale, zero


class _Kernel:
    """Packed int8 weights of one matmul (possibly several layers' rows stacked) and how to run it.

    With oneDNN: ``codes @ W8.T`` accumulated in int32 and scaled per output row by oneDNN, then per token
    ``scale * (that - zero * rowsum(W)) + bias`` in one rank-2 update, where ``rowsum(W)`` is the dequantized
    weights' sum per output (precomputed with the bias as ``correction``).
    """

    __slots__ = ("correction", "kind", "levels", "packed", "scales", "zeros")

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.scales = scales.float().contiguous()
        self.levels = _activation_levels()
        bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach().float()
        if _onednn_int8_available():
            self.kind = "onednn"
            self.packed = torch.ops.onednn.qlinear_prepack(weight.contiguous(), None)
            self.zeros = torch.zeros(weight.shape[0], dtype=torch.int64)
            self.correction = torch.stack([bias, -(weight.float().sum(1) * self.scales)])
        else:
            self.kind = "quantized"
            self.packed = _pack_quantized(weight, self.scales, bias)

    def __call__(self, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
        shape = x.shape
        flat = x.detach().reshape(-1, shape[-1]).float()
        if self.kind == "onednn":
            codes, scale, zero = _quantize_rows(flat, self.levels)
            acc = torch.ops.onednn.qlinear_pointwise.tensor(
                codes, _ONE, _ZERO, self.packed, self.scales, self.zeros, None, 1.0, 0, torch.float32, "none", [None], ""
            )
            out = acc.mul_(scale).addmm_(torch.cat([torch.ones_like(scale), scale * zero], 1), self.correction)
        else:
            reduce_range = torch.backends.quantized.engine in ("fbgemm", "x86")
            out = torch.ops.quantized.linear_dynamic(flat, self.packed, reduce_range)
        if activation is not None:
            out = _ACTIVATIONS[activation](out)
        return out.reshape(*shape[:-1], out.shape[-1]).to(x.dtype)


_ONE = torch.ones((), dtype=torch.float32)
_ZERO = torch.zeros((), dtype=torch.int64)
_ACTIVATIONS = {"gelu": nn.functional.gelu, "relu": torch.relu}


def _pack_quantized(weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> Any:
    """FBGEMM/QNNPACK's packed weights (deprecated quantized tensors: only where oneDNN has no int8 linear)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zeros = torch.zeros(weight.shape[0], dtype=torch.int64)
        quantized = torch._make_per_channel_quantized_tensor(weight, scales.double(), zeros, 0)
        return torch.ops.quantized.linear_prepack(quantized, bias)


class Int8Linear(nn.Module):
    """Inference-only stand-in for an ``nn.Linear``: int8 weights, activations quantized at every call.

    Each output row keeps its own scale (``max |w| / 127``, or 63 without 8-bit dot products); the input is
    mapped to uint8 over its own range on each call. Built by :func:`to_inference`; holds no parameters, so a model that has these layers
    cannot be trained or saved (save the float model instead).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float().cpu()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        levels = _weight_levels()
        self.weight_scale = (weight.abs().amax(dim=1) / levels).clamp(min=_TINY)
        self.weight_int8 = torch.round(weight / self.weight_scale[:, None]).clamp(-levels, levels).to(torch.int8)
        self.bias = None if linear.bias is None else linear.bias.detach().float().cpu()
        self.kernel = _Kernel(self.weight_int8, self.weight_scale, self.bias)

    def forward(self, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
        """``activation(x @ W.T + b)`` in int8; ``activation`` is None, ``"gelu"`` or ``"relu"``."""
        return self.kernel(x, activation)

    @property
    def weight(self) -> torch.Tensor:
        """The int8 weight back in float32, for code that reads a linear layer's weight itself (say, as a kernel
        of a 1-d convolution): such code then computes in float32 with the int8-rounded values."""
        return self.weight_int8.float() * self.weight_scale[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, kernel={self.kernel.kind}"


def fuse_int8(layers: Sequence[Int8Linear]) -> _Kernel:
    """One kernel computing every layer of ``layers`` on the same input, outputs side by side (q|k|v)."""
    weight = torch.cat([layer.weight_int8 for layer in layers])
    scales = torch.cat([layer.weight_scale for layer in layers])
    biases = [layer.bias if layer.bias is not None else torch.zeros(layer.out_features) for layer in layers]
    bias = torch.cat(biases) if any(layer.bias is not None for layer in layers) else None
    return _Kernel(weight, scales, bias)
