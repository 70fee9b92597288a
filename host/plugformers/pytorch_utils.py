"""Small torch helpers shared by families: attention-head pruning."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["find_pruneable_heads_and_indices", "prune_linear_layer"]


def find_pruneable_heads_and_indices(
    heads: Iterable[int], n_heads: int, head_size: int, already_pruned_heads: set[int]
) -> tuple[set[int], torch.LongTensor]:
    """Which heads still exist to prune, and the row indices of the projection to keep.

    ``heads`` are numbered in the original model; ``already_pruned_heads`` shifts them to the current layout.
    """
    heads = set(heads) - already_pruned_heads
    for h in heads:
        if not 0 <= h < n_heads + len(already_pruned_heads):
            raise ValueError(f"Cannot prune head {h}: the layer has heads 0..{n_heads + len(already_pruned_heads) - 1}.")
    mask = torch.ones(n_heads, head_size)
    for head in heads:
        shifted = head - sum(1 for h in already_pruned_heads if h < head)
        mask[shifted] = 0
    index = torch.arange(n_heads * head_size)[mask.view(-1).eq(1)].long()
    return heads, index  # type: ignore[return-value]


def prune_linear_layer(layer: nn.Linear, index: torch.LongTensor, dim: int = 0) -> nn.Linear:
    """A new Linear keeping only the rows (``dim=0``) or columns (``dim=1``) of ``layer`` listed in ``index``."""
    index = index.to(layer.weight.device)  # type: ignore[assignment]
    weight = layer.weight.index_select(dim, index).detach().clone()
    bias = None
    if layer.bias is not None:
        bias = (layer.bias if dim == 1 else layer.bias[index]).detach().clone()
    size = list(layer.weight.size())
    size[dim] = len(index)
    new = nn.Linear(size[1], size[0], bias=layer.bias is not None).to(layer.weight.device, layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.weight.requires_grad = layer.weight.requires_grad
    if bias is not None:
        new.bias.requires_grad = layer.bias.requires_grad
    return new
