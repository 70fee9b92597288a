"""Attention backends.

A backend computes softmax(q k^T * scaling + mask) v for tensors shaped ``(batch, heads, seq, head_dim)``.
``eager`` is plain PyTorch math (it can return the attention weights and apply a head mask); ``sdpa`` calls
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch can pick its flash or memory-efficient
kernels. Plugins add more through the ``plugformers_register_attention`` hook; models look a backend up by
the name in ``config._attn_implementation`` at forward time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from plugformers.masking_utils import additive_mask
from plugformers.plugins import get_registry

__all__ = ["additive_mask", "available_attention_backends", "eager_attention", "get_attention_function", "sdpa_attention"]

AttentionFunction = Callable[..., tuple[torch.Tensor, "torch.Tensor | None"]]


def eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float,
    dropout: float = 0.0,
    head_mask: torch.Tensor | None = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reference math: returns ``(output (b, h, q, d), weights (b, h, q, k) or None)``."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (b, h, q, k)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    if head_mask is not None:
        weights = weights * head_mask
    output = torch.matmul(weights, value)  # (b, h, q, d)
    return output, (weights if output_attentions else None)


def sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float,
    dropout: float = 0.0,
    head_mask: torch.Tensor | None = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fused attention; falls back to :func:`eager_attention` for the weights or a head mask."""
    if output_attentions or head_mask is not None:
        return eager_attention(
            module,
            query,
            key,
            value,
            attention_mask,
            scaling=scaling,
            dropout=dropout,
            head_mask=head_mask,
            output_attentions=output_attentions,
        )
    if attention_mask is not None and attention_mask.dtype != query.dtype:
        attention_mask = attention_mask.to(query.dtype)
    if _short_cpu_inference(query, key):
        return eager_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout)
    output = nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout if module.training else 0.0,
        scale=scaling,
    )
    return output, None


#: Up to this many query and key positions, CPU inference computes attention as two matmuls and a softmax.
#: torch 2.13's fused CPU kernel is made for long sequences: at 12 heads of 32 dimensions, 32 sequences of 20
#: or 40 tokens took it 3.6x and 2.8x the time of the plain math, 80 tokens the same time, 128 tokens 1.0x.
SHORT_ATTENTION = 64


def _short_cpu_inference(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether the plain math beats the fused kernel here: short sequences on the CPU, no gradients, not traced
    (a compiled or exported graph keeps the fused call, and its sequence length stays symbolic)."""
    if torch.is_grad_enabled() or query.device.type != "cpu" or torch.jit.is_tracing():
        return False
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    return query.shape[-2] <= SHORT_ATTENTION and key.shape[-2] <= SHORT_ATTENTION


def get_attention_function(name: str | None) -> AttentionFunction:
    """The backend registered under ``name`` (``None`` means ``"sdpa"``).

    The plugin registry resolves each name once and keeps the function (a plugin that overrides a name replaces
    it there), so a lookup in ``forward`` is a dictionary read that ``torch.compile`` traces through.
    """
    return get_registry().attention_function(name or "sdpa")


def available_attention_backends() -> list[str]:
    """Names of every registered backend (built-in and from plugins)."""
    return sorted(get_registry().attention_names())
