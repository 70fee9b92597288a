"""Attention and head masks, checked and brought into the form the attention backends take.

A model calls :func:`prepare_attention_mask` once per forward and hands the result to every layer; the
attention backends (:mod:`plugformers.attention`) add it to the scores. Everything here is tensor arithmetic
without host-device synchronisation, so it runs unchanged under ``torch.compile``.
"""

from __future__ import annotations

import torch

__all__ = ["additive_mask", "prepare_attention_mask", "prepare_head_mask"]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a ``(batch, k_len)`` 1/0 padding mask into a ``(batch, 1, 1, k_len)`` additive float mask.

    Kept positions get 0 and masked ones the most negative value of ``dtype``.
    """
    if mask.dim() != 2:
        raise ValueError(f"Expected a (batch, seq_len) attention mask, got shape {tuple(mask.shape)}.")
    return _additive(mask[:, None, None, :].to(torch.bool), dtype)


def _additive(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    zeros = torch.zeros((), dtype=dtype, device=keep.device)
    neg = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=keep.device)
    return torch.where(keep, zeros, neg)


def prepare_attention_mask(
    attention_mask: torch.Tensor | None,
    batch_size: int,
    seq_len: int,
    dtype: torch.dtype,
    *,
    cu_seqlens: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The additive float mask for self-attention over ``seq_len`` positions, or None when nothing is hidden.

    ``attention_mask`` is what the user passed: ``(batch, seq_len)`` with 1 for real and 0 for padding
    positions (becomes ``(batch, 1, 1, seq_len)``), or a 4-D mask broadcastable to ``(batch, 1, seq_len,
    seq_len)`` with one row per query (e.g. causal), boolean (True = attend) or already additive.

    ``cu_seqlens`` is the entry for packed (padding-free) batches: several sequences laid end to end in one
    row, ``cu_seqlens`` holding their cumulative lengths ``[0, n1, n1 + n2, ...]``; each sequence would attend
    only to itself (a block-diagonal mask). Packing is not implemented yet.
    """
    if cu_seqlens is not None:
        raise NotImplementedError("Packed sequences (cu_seqlens) are not supported yet; pad the batch instead.")
    if attention_mask is None:
        return None
    shape = tuple(attention_mask.shape)
    if attention_mask.dim() == 2 and shape == (batch_size, seq_len):
        return additive_mask(attention_mask, dtype)
    if attention_mask.dim() == 4:
        b, _, q, k = shape
        if b in (1, batch_size) and q in (1, seq_len) and k == seq_len:
            if attention_mask.dtype == torch.bool:
                return _additive(attention_mask, dtype)
            return attention_mask.to(dtype)
    raise ValueError(
        f"attention_mask has shape {shape}, but attention_mask must have shape (batch_size, seq_len) = "
        f"{(batch_size, seq_len)} of 1/0, or be a 4-D bool or additive float mask broadcastable to "
        f"{(batch_size, 1, seq_len, seq_len)}."
    )


def prepare_head_mask(
    head_mask: torch.Tensor | None, num_layers: int, dtype: torch.dtype
) -> list[torch.Tensor | None]:
    """One multiplier per layer for the attention weights: ``(heads,)`` or ``(layers, heads)`` 1/0 -> ``(1, heads, 1, 1)``.

    A 1 keeps a head and a 0 silences it; a 1-D mask applies to every layer.
    """
    if head_mask is None:
        return [None] * num_layers
    if head_mask.dim() == 1:
        head_mask = head_mask[None, :].expand(num_layers, -1)
    elif head_mask.dim() != 2 or head_mask.shape[0] != num_layers:
        raise ValueError(
            f"head_mask must have shape (num_heads,) or (num_layers={num_layers}, num_heads), got {tuple(head_mask.shape)}."
        )
    return list(head_mask.to(dtype)[:, None, :, None, None].unbind(0))
