"""Building blocks the model families share: the base class of a repeated layer, and multi-head attention.

A family subclasses them and keeps its own names (the checkpoints' names): a layer is a
:class:`GradientCheckpointingLayer` with the family's ``forward``; an attention module is a
:class:`MultiHeadAttention` that says what its four projections are called.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from plugformers import fast_path
from plugformers.attention import get_attention_function
from plugformers.configuration_utils import ConfigError
from plugformers.masking_utils import packed_sequences
from plugformers.output_capturing import first_token_layer, is_recording
from plugformers.pytorch_utils import find_pruneable_heads_and_indices, prune_linear_layer

__all__ = ["GradientCheckpointingLayer", "MultiHeadAttention"]


class GradientCheckpointingLayer(nn.Module):
    """Base class of a family's repeated block (a transformer layer, a convolution layer of a feature encoder).

    Calling a layer is where two things are handled once for every family, so that the stacks simply loop
    over their layers:

    - while gradient checkpointing is on (``model.gradient_checkpointing_enable()``) and the layer is training,
      its activations are recomputed in the backward pass instead of being stored;
    - while a head that reads only the first position runs (``first_token_only`` on its class, see
      :func:`plugformers.output_capturing.model_forward`), the last layer of its encoder gets
      ``first_token_only=True``: its ``forward`` then computes position 0 alone (still attending to every position);
      not while a packed batch runs (:func:`plugformers.masking_utils.packing`), whose row holds many first positions.
    """

    gradient_checkpointing: bool = False
    _gradient_checkpointing_func: Callable[..., Any] = functools.partial(checkpoint, use_reentrant=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if first_token_layer() is self and packed_sequences() is None:
            kwargs["first_token_only"] = True
        if self.gradient_checkpointing and self.training:
            # Keyword arguments bound first: reentrant checkpointing takes positional inputs only.
            return self._gradient_checkpointing_func(functools.partial(super().__call__, **kwargs), *args)
        return super().__call__(*args, **kwargs)


_UNPROJECTED = nn.Identity()


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention: ``softmax(q k^T / sqrt(head_dim) + mask) v`` per head, then the
    output projection.

    The scores are computed by the backend that ``config._attn_implementation`` names (``"eager"``, ``"sdpa"`` or a
    plugin's, looked up at forward time, so ``model.set_attn_implementation()`` switches it). Heads can be pruned
    (:meth:`prune_heads`) and silenced by a head mask; the weights are returned while attentions are recorded
    (``output_attentions``). With the model's fast path on, q, k and v come from one matmul
    (:class:`plugformers.fast_path.FuseQKV`).

    A family subclass sets :attr:`projections` to its checkpoint's names and passes the sizes::

        class DistilBertSelfAttention(MultiHeadAttention):
            projections = {"query": "q_lin", "key": "k_lin", "value": "v_lin", "output": "out_lin"}

            def __init__(self, config):
                super().__init__(config, config.dim, config.n_heads, dropout=config.attention_dropout)
    """

    #: Attribute name of each projection ("query", "key", "value", "output"), in the order they are created.
    #: A family whose checkpoints keep the output projection in another module (BERT's ``attention.output.dense``)
    #: leaves "output" out: the module then returns the heads' outputs concatenated, unprojected, and that
    #: family prunes the other module's input columns itself when heads are pruned.
    projections: ClassVar[dict[str, str]] = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "output": "o_proj"}
    fast_path_plan: ClassVar[tuple[fast_path.FastPathStep, ...]] = (fast_path.FuseQKV(),)
    #: The config fields that hold the width and the number of heads, named when they do not divide evenly.
    size_fields: ClassVar[tuple[str, str]] = ("hidden_size", "num_attention_heads")

    def __init__(
        self, config: Any, hidden_size: int, num_heads: int, *, dropout: float = 0.0, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        if num_heads <= 0 or hidden_size % num_heads != 0:
            # Checked here, not in the config: as in the reference, such a config loads and saves, only no model
            # can be built from it.
            width, heads = self.size_fields
            raise ConfigError(
                f"{type(config).__name__}.{width} ({hidden_size}) must be a multiple of {heads} ({num_heads}): "
                f"each attention head gets {width} / {heads} features. Change one of them to build "
                f"{type(self).__name__}."
            )
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = dropout
        self.pruned_heads: set[int] = set()
        inner = num_heads * self.head_dim
        for role, name in self.projections.items():
            if role == "output":
                setattr(self, name, nn.Linear(inner, hidden_size))
            else:
                setattr(self, name, nn.Linear(hidden_size, inner, bias=qkv_bias))
        # The first lookup of a backend goes through the plugin registry's import; do it now, outside any
        # torch.compile trace.
        for name in {"eager", "sdpa", config._attn_implementation or "sdpa"}:
            get_attention_function(name)

    def projection(self, role: str) -> nn.Module:
        """The ``"query"``, ``"key"``, ``"value"`` or ``"output"`` projection (the identity for an output it does not own)."""
        if role == "output" and role not in self.projections:
            return _UNPROJECTED
        layer: nn.Module = self._modules[self.projections[role]]  # type: ignore[assignment]
        return layer

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape  # (batch, length, heads * head_dim) -> (batch, heads, length, head_dim)
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def project_qkv(
        self,
        hidden_states: torch.Tensor,
        query_states: torch.Tensor | None = None,
        key_states: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values, each ``(batch, heads, length, head_dim)``."""
        queries = hidden_states if query_states is None else query_states
        keys = hidden_states if key_states is None else key_states
        return (
            self._heads(self.projection("query")(queries)),
            self._heads(self.projection("key")(keys)),
            self._heads(self.projection("value")(hidden_states)),
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        *,
        query_states: torch.Tensor | None = None,
        key_states: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query_states`` to ``hidden_states``.

        ``hidden_states`` ``(batch, k_len, hidden)`` gives the values, and the keys unless ``key_states`` (same
        shape) is passed; ``query_states`` ``(batch, q_len, hidden)`` defaults to ``hidden_states``. With fewer
        queries than positions, they are the first ``q_len`` positions as far as a per-query (4-D) mask goes.
        ``attention_mask`` is additive and broadcastable to ``(batch, heads, q_len or k_len, k_len)``;
        ``head_mask`` multiplies the weights, ``(1, heads, 1, 1)``.

        Returns the output ``(batch, q_len, hidden)`` and, while attentions are recorded, the weights
        ``(batch, heads, q_len, k_len)`` (else None).
        """
        query, key, value = self.project_qkv(hidden_states, query_states, key_states)
        q_len = query.shape[2]
        if attention_mask is not None and attention_mask.shape[-2] > q_len:
            attention_mask = attention_mask[..., :q_len, :]  # one mask row per query
        attend = get_attention_function(self.config._attn_implementation)
        options = {"scaling": self.scaling, "dropout": self.attention_dropout if self.training else 0.0, "head_mask": head_mask}
        packed = packed_sequences()
        if packed is not None and query.shape[0] == 1 and q_len == key.shape[2] == packed.total:
            # A packed batch (plugformers.masking_utils.packing): attend within each sequence, not across them.
            context, weights = packed.attend(attend, self, query, key, value, **options), None
        else:
            context, weights = attend(
                self, query, key, value, attention_mask, **options, output_attentions=is_recording("attentions")
            )
        # (batch, heads, q_len, head_dim) -> (batch, q_len, heads * head_dim)
        context = context.transpose(1, 2).reshape(context.shape[0], q_len, -1)
        return self.projection("output")(context), weights

    def prune_heads(self, heads: list[int] | set[int]) -> None:
        """Remove attention heads (numbered as in the unpruned layer) from the four projections."""
        if not heads:
            return
        found, index = find_pruneable_heads_and_indices(heads, self.num_heads, self.head_dim, self.pruned_heads)
        for role, name in self.projections.items():
            setattr(self, name, prune_linear_layer(getattr(self, name), index, dim=1 if role == "output" else 0))
        self.num_heads -= len(found)
        self.pruned_heads |= found
        fast_path.refresh(self)
