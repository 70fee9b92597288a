"""Activation functions by the names configs use (``"gelu"``, ``"relu"``, ...)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["ACT2FN", "get_activation"]


class GELUTanh(nn.Module):
    """GELU with the tanh approximation (``gelu_new`` / ``gelu_pytorch_tanh`` in configs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x, approximate="tanh")


class FastGELU(nn.Module):
    """The tanh GELU written with the 0.7978845608 constant folded in (``gelu_fast``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the GELU approximation CLIP-style checkpoints were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ExactGELUNew(nn.Module):
    """``gelu_new`` as the original GPT code writes it (tanh approximation with sqrt(2/pi))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "gelu_new": ExactGELUNew,
    "gelu_fast": FastGELU,
    "gelu_pytorch_tanh": GELUTanh,
    "quick_gelu": QuickGELU,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "mish": nn.Mish,
    "linear": nn.Identity,
    "elu": nn.ELU,
}


class _ActivationTable(dict):  # type: ignore[type-arg]
    """``ACT2FN[name]`` builds a fresh module per lookup; unknown names give a clear KeyError."""

    def __getitem__(self, name: str) -> nn.Module:
        factory = _FACTORIES.get(name)
        if factory is None:
            raise KeyError(f"Unknown activation {name!r}; choose one of {sorted(_FACTORIES)}.")
        return factory()

    def __contains__(self, name: object) -> bool:
        return name in _FACTORIES

    def keys(self):  # type: ignore[override]
        return _FACTORIES.keys()


ACT2FN = _ActivationTable()


def get_activation(name: str) -> nn.Module:
    """A new activation module for ``name``."""
    return ACT2FN[name]
