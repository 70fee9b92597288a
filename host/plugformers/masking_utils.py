"""Attention and head masks, checked and brought into the form the attention backends take.

A model calls :func:`prepare_attention_mask` once per forward and hands the result to every layer; the
attention backends (:mod:`plugformers.attention`) add it to the scores. Everything here is tensor arithmetic
without host-device synchronisation, so it runs unchanged under ``torch.compile``.

Packed (padding-free) batches: several sequences laid end to end in one row of ``(1, total)`` tokens, described
by :class:`PackedSequences`. While :func:`packing` holds one for the current thread, the shared attention block
(:class:`plugformers.modeling_layers.MultiHeadAttention`) attends within each sequence only, and the last
layer of a first-token head is not trimmed (every sequence's first position is needed). A family that takes
``cu_seqlens`` itself can also get the equivalent block-diagonal mask from :func:`prepare_attention_mask`.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

__all__ = [
    "PackedSequences",
    "additive_mask",
    "packed_sequences",
    "packing",
    "prepare_attention_mask",
    "prepare_head_mask",
]

_local = threading.local()


class PackedSequences:
    """Where each of several sequences lies in one packed row, from the cumulative lengths ``[0, n1, n1 + n2, ...]``."""

    def __init__(self, cu_seqlens: torch.Tensor | Sequence[int]) -> None:
        bounds = [int(v) for v in (cu_seqlens.tolist() if isinstance(cu_seqlens, torch.Tensor) else cu_seqlens)]
        if len(bounds) < 2 or bounds[0] != 0 or any(b < a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"cu_seqlens must rise from 0 through the cumulative lengths, got {bounds}.")
        self.cu_seqlens = bounds
        self.lengths = [b - a for a, b in itertools.pairwise(bounds)]
        self.total = bounds[-1]
        self._groups: dict[torch.device, list[torch.Tensor]] = {}
        self._padded: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        # Several lengths share one attention call when padding them to the longest at most doubles its work.
        self.longest, work = max(self.lengths), sum(n * n for n in self.lengths)
        self.pad_attention = len(set(self.lengths)) > 1 and len(self.lengths) * self.longest**2 <= 2 * work

    @classmethod
    def from_lengths(cls, lengths: Sequence[int]) -> PackedSequences:
        bounds = [0]
        for n in lengths:
            bounds.append(bounds[-1] + int(n))
        return cls(bounds)

    def position_ids(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``(1, total)``: 0, 1, ... restarting at each sequence."""
        return torch.cat([torch.arange(n, device=device) for n in self.lengths])[None, :]

    def groups(self, device: torch.device) -> list[torch.Tensor]:
        """Token indices ``(sequences, length)`` per distinct length: one fused attention call each."""
        if device not in self._groups:
            starts: dict[int, list[int]] = {}
            for start, n in zip(self.cu_seqlens, self.lengths):
                if n:
                    starts.setdefault(n, []).append(start)
            self._groups[device] = [
                torch.tensor(s, device=device)[:, None] + torch.arange(n, device=device)[None, :] for n, s in starts.items()
            ]
        return self._groups[device]

    def attend(
        self,
        backend: Callable[..., tuple[torch.Tensor, Any]],
        module: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``backend`` applied within each sequence of ``(1, heads, total, head_dim)`` tensors; same shape out.

        Sequences of one length share one call. Sequences of several lengths also do when padding them to the
        longest at most doubles the attention's work (length-sorted batches), with the padding keys masked:
        one call instead of one per length. Only the attention sees that padding; the layers around it still
        run on the real tokens alone.
        """
        if self.pad_attention:
            gather, scatter, mask = self.padded(query.device, query.dtype)
            # (1, heads, total, dim) -> (heads, sequences, longest, dim) -> (sequences, heads, longest, dim)
            q, k, v = (
                t[0].index_select(1, gather).unflatten(1, (len(self.lengths), self.longest)).transpose(0, 1)
                for t in (query, key, value)
            )
            part, _ = backend(module, q, k, v, mask, **{**kwargs, "output_attentions": False})
            # (sequences, heads, longest, dim) -> (heads, sequences * longest, dim) -> (1, heads, total, dim)
            flat = part.transpose(0, 1).reshape(part.shape[1], -1, part.shape[-1])
            return flat.index_select(1, scatter)[None].to(query.dtype)
        out = query.new_empty((*query.shape[:3], value.shape[-1]))
        for index in self.groups(query.device):
            # (heads, sequences, length, dim) -> (sequences, heads, length, dim)
            q, k, v = (t[0][:, index].transpose(0, 1) for t in (query, key, value))
            part, _ = backend(module, q, k, v, None, **{**kwargs, "output_attentions": False})
            out[0][:, index] = part.transpose(0, 1).to(out.dtype)
        return out

    def padded(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sequences padded to the longest: which packed token each slot reads ``(sequences * longest,)``
        (padding slots read token 0, masked out), where each packed token sits among the
        ``sequences * longest`` slots ``(total,)``, and the additive key mask ``(sequences, 1, 1, longest)``."""
        if (device, dtype) not in self._padded:
            lengths = torch.tensor(self.lengths, device=device)
            slots = torch.arange(self.longest, device=device)
            keep = slots[None, :] < lengths[:, None]
            starts = torch.tensor(self.cu_seqlens[:-1], device=device)
            gather = torch.where(keep, starts[:, None] + slots[None, :], 0).flatten()
            scatter = torch.arange(keep.numel(), device=device).reshape(keep.shape)[keep]
            self._padded[(device, dtype)] = gather, scatter, _additive(keep[:, None, None, :], dtype)
        return self._padded[(device, dtype)]

    def block_mask(self, dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
        """The equivalent additive mask ``(1, 1, total, total)``: each sequence sees only itself."""
        owner = torch.repeat_interleave(torch.arange(len(self.lengths), device=device), torch.tensor(self.lengths, device=device))
        return _additive((owner[:, None] == owner[None, :])[None, None], dtype)


def packed_sequences() -> PackedSequences | None:
    """The packed sequences the current thread's forward runs over, if any (see :func:`packing`)."""
    return getattr(_local, "packed", None)


@contextlib.contextmanager
def packing(sequences: PackedSequences | None) -> Iterator[None]:
    """Run the forwards inside this block over ``sequences`` packed in one row (this thread only)."""
    previous = packed_sequences()
    _local.packed = sequences
    try:
        yield
    finally:
        _local.packed = previous


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
    cu_seqlens: torch.Tensor | Sequence[int] | PackedSequences | None = None,
) -> torch.Tensor | None:
    """The additive float mask for self-attention over ``seq_len`` positions, or None when nothing is hidden.

    ``attention_mask`` is what the user passed: ``(batch, seq_len)`` with 1 for real and 0 for padding
    positions (becomes ``(batch, 1, 1, seq_len)``), or a 4-D mask broadcastable to ``(batch, 1, seq_len,
    seq_len)`` with one row per query (e.g. causal), boolean (True = attend) or already additive.

    ``cu_seqlens`` is the entry for packed (padding-free) batches: several sequences laid end to end in one
    row (``batch_size`` 1), ``cu_seqlens`` holding their cumulative lengths ``[0, n1, n1 + n2, ...]``; each
    sequence attends only to itself (a block-diagonal mask; the position ids must restart per sequence). Faster
    than the mask: run the forward inside :func:`packing`, where the shared attention block attends per sequence.
    """
    if cu_seqlens is not None:
        sequences = cu_seqlens if isinstance(cu_seqlens, PackedSequences) else PackedSequences(cu_seqlens)
        if attention_mask is not None or batch_size != 1 or seq_len != sequences.total:
            raise ValueError(
                f"With cu_seqlens the batch is one packed row of {sequences.total} tokens and no attention_mask; "
                f"got batch_size={batch_size}, seq_len={seq_len}, attention_mask={'given' if attention_mask is not None else None}."
            )
        device = cu_seqlens.device if isinstance(cu_seqlens, torch.Tensor) else None
        return sequences.block_mask(dtype, device)
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
