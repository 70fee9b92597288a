"""Attention backends.

A backend computes softmax(q k^T * scaling + mask) v for tensors shaped ``(batch, heads, seq, head_dim)``.
``eager`` is plain PyTorch math (it can return the attention weights and apply a head mask); ``sdpa`` calls
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch can pick its flash or memory-efficient
kernels. Plugins add more through the ``plugformers_register_attention`` hook; models look a backend up by
the name in ``config._attn_implementation`` at forward time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

__all__ = ["additive_mask", "eager_attention", "get_attention_function", "sdpa_attention"]

AttentionFunction = Callable[..., tuple[torch.Tensor, "torch.Tensor | None"]]

#: Set while a padding-free (packed) batch runs (:mod:`plugformers.pipelines.packing`): it wraps the backend a
#: layer looks up so that attention stays within each packed sequence. Per thread and per call, never global.
PACKED_ATTENTION: ContextVar[Callable[[AttentionFunction], AttentionFunction] | None] = ContextVar(
    "plugformers_packed_attention", default=None
)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a ``(batch, k_len)`` 1/0 padding mask into a ``(batch, 1, 1, k_len)`` additive float mask.

    Kept positions get 0 and masked ones the most negative value of ``dtype``; built with tensor ops only,
    so it needs no host-device synchronisation and works under ``torch.compile``.
    """
    if mask.dim() != 2:
        raise ValueError(f"Expected a (batch, seq_len) attention mask, got shape {tuple(mask.shape)}.")
    keep = mask[:, None, None, :].to(torch.bool)
    zeros = torch.zeros((), dtype=dtype, device=mask.device)
    neg = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=mask.device)
    return torch.where(keep, zeros, neg)


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
    output = nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout if module.training else 0.0,
        scale=scaling,
    )
    return output, None


# Built-ins are resolved up front so that torch.compile(fullgraph=True) never traces a registry lookup.
_BUILTINS: dict[str, AttentionFunction] = {"eager": eager_attention, "sdpa": sdpa_attention}
_CACHE: dict[str, AttentionFunction] = dict(_BUILTINS)


def _forget(name: str | None = None) -> None:
    """Drop cached lookups (all, or one name that a plugin just overrode); built-ins stay resolvable."""
    if name is None:
        _CACHE.clear()
        _CACHE.update(_BUILTINS)
    else:
        _CACHE.pop(name, None)


def get_attention_function(name: str | None) -> AttentionFunction:
    """The backend registered under ``name`` (``None`` means ``"sdpa"``)."""
    name = name or "sdpa"
    fn = _CACHE.get(name)
    if fn is None:
        from plugformers.plugins import get_registry

        fn = get_registry().attention_function(name)
        _CACHE[name] = fn
    wrap = PACKED_ATTENTION.get()
    return fn if wrap is None else wrap(fn)


def available_attention_backends() -> list[str]:
    """Names of every registered backend (built-in and from plugins)."""
    from plugformers.plugins import get_registry

    return sorted(get_registry().attention_names())
