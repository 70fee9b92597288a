"""Activation names DistilBERT configs may use beyond the ones the host provides.

The reference library accepts a few more names in ``config.activation`` than the common host table
(``gelu_10``, ``laplace``, ``relu2``, ``prelu``, ``xielu``, ...). They are defined here so that every
configuration the reference can build also builds here, with the same numbers and the same parameter names.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from plugformers.activations import get_activation

__all__ = ["distilbert_activation"]


class ClippedGELU(nn.Module):
    """Exact GELU clipped to ``[low, high]`` (``gelu_10`` clips to +-10, useful for int8 ranges)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(nn.functional.gelu(x), self.low, self.high)


class ErfGELU(nn.Module):
    """Exact GELU written out with ``erf`` (``gelu_python``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class TanhGELUFormula(nn.Module):
    """Tanh-approximated GELU written out term by term (``gelu_python_tanh`` / ``gelu_accurate``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Laplace(nn.Module):
    """Gaussian CDF around ``mu`` with width ``sigma``, a smooth ReLU**2 replacement (``laplace``)."""

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
    """xIELU: a quadratic positive branch and an expm1 negative branch with two learnable slopes.

    The parameters ``alpha_p``/``alpha_n`` (stored through an inverse softplus) and the buffers
    ``beta``/``eps`` are bfloat16 and carry the reference's names, so checkpoints load both ways.
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


_EXTRA: dict[str, Callable[[], nn.Module]] = {
    "gelu_10": lambda: ClippedGELU(-10.0, 10.0),
    "gelu_python": ErfGELU,
    "gelu_python_tanh": TanhGELUFormula,
    "gelu_accurate": TanhGELUFormula,
    "laplace": Laplace,
    "relu2": ReLUSquared,
    "sqrtsoftplus": SqrtSoftplus,
    "hardswish": nn.Hardswish,
    "prelu": nn.PReLU,
    "xielu": XIELU,
}


def distilbert_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name``: the family extras first, then the host table.

    An unknown name raises a KeyError that lists every accepted name.
    """
    factory = _EXTRA.get(name)
    if factory is not None:
        return factory()
    try:
        return get_activation(name)
    except KeyError:
        from plugformers.activations import ACT2FN

        known = sorted({*ACT2FN.keys(), *_EXTRA})
        raise KeyError(f"Unknown activation {name!r} in DistilBertConfig.activation; choose one of {known}.") from None
