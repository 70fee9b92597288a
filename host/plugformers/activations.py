"""Activation functions by the names configs use (``"gelu"``, ``"relu"``, ``"gelu_10"``, ``"xielu"``, ...).

Every name the reference library accepts in a config builds here, with the same numbers and, for the ones
with weights (``prelu``, ``xielu``), the same parameter names.
"""

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
    """The tanh-approximated GELU written out term by term, as the original GPT code does (``gelu_new``,
    ``gelu_python_tanh``, ``gelu_accurate``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class ClippedGELU(nn.Module):
    """Exact GELU clipped to ``[low, high]`` (``gelu_10`` clips to +-10, which keeps int8 ranges small)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(nn.functional.gelu(x), self.low, self.high)


class ErfGELU(nn.Module):
    """Exact GELU written out with ``erf`` (``gelu_python``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class Laplace(nn.Module):
    """Gaussian CDF around ``mu`` with width ``sigma``, a smooth replacement for ReLU squared (``laplace``)."""

    mu = 0.707107
    sigma = 0.282095

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1.0 + torch.erf((x - self.mu).div(self.sigma * math.sqrt(2.0))))


class ReLUSquared(nn.Module):
    """``relu(x) ** 2`` (``relu2``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(nn.functional.relu(x))


class SqrtSoftplus(nn.Module):
    """``sqrt(softplus(x))`` (``sqrtsoftplus``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x).sqrt()


class XIELU(nn.Module):
    """xIELU: a quadratic positive branch and an expm1 negative branch with two learnable slopes (``xielu``).

    The parameters ``alpha_p``/``alpha_n`` (stored through an inverse softplus) and the buffers ``beta``/``eps``
    are bfloat16 under the reference's names, so checkpoints that carry them load both ways.
    """

    beta: torch.Tensor
    eps: torch.Tensor

    def __init__(self, alpha_p_init: float = 0.8, alpha_n_init: float = 0.8, beta: float = 0.5, eps: float = -1e-6) -> None:
        super().__init__()
        dtype = torch.bfloat16

        def inverse_softplus(v: float) -> torch.Tensor:
            return torch.log(torch.expm1(torch.tensor(v, dtype=dtype))).unsqueeze(0)

        self.alpha_p = nn.Parameter(inverse_softplus(alpha_p_init))
        self.alpha_n = nn.Parameter(inverse_softplus(alpha_n_init - beta))
        self.register_buffer("beta", torch.tensor(beta, dtype=dtype))
        self.register_buffer("eps", torch.tensor(eps, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha_p = nn.functional.softplus(self.alpha_p)
        alpha_n = self.beta + nn.functional.softplus(self.alpha_n)
        positive = alpha_p * x * x + self.beta * x
        negative = (torch.expm1(torch.min(x, self.eps)) - x) * alpha_n + self.beta * x
        return torch.where(x > 0, positive, negative)


_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "gelu_new": ExactGELUNew,
    "gelu_python_tanh": ExactGELUNew,
    "gelu_accurate": ExactGELUNew,
    "gelu_python": ErfGELU,
    "gelu_10": lambda: ClippedGELU(-10.0, 10.0),
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
    "laplace": Laplace,
    "relu2": ReLUSquared,
    "sqrtsoftplus": SqrtSoftplus,
    "hardswish": nn.Hardswish,
    "prelu": nn.PReLU,
    "xielu": XIELU,
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
