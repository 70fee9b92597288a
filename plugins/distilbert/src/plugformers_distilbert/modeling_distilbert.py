"""DistilBERT: the encoder and its task heads, with the reference library's module and parameter names.

A DistilBERT encoder is word + position embeddings, then ``n_layers`` post-norm transformer blocks
(self-attention, residual, LayerNorm, feed-forward, residual, LayerNorm). The attribute names below
(``embeddings.word_embeddings``, ``transformer.layer.<i>.attention.q_lin``, ...) are exactly the
reference's, so checkpoints are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from plugformers import fast_path
from plugformers.attention import additive_mask, get_attention_function
from plugformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from plugformers.modeling_utils import PreTrainedModel, classification_loss
from plugformers.pytorch_utils import find_pruneable_heads_and_indices, prune_linear_layer
from plugformers.utils.logging import get_logger

from .activations_distilbert import distilbert_activation
from .configuration_distilbert import DistilBertConfig

__all__ = [
    "DistilBertForMaskedLM",
    "DistilBertForMultipleChoice",
    "DistilBertForQuestionAnswering",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertModel",
    "DistilBertPreTrainedModel",
]

logger = get_logger(__name__)


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """The fixed ``(n_pos, dim)`` position table: sin on even columns, cos on odd ones.

    Column ``j`` uses the frequency ``10000 ** (-2 * (j // 2) / dim)``; computed in float64 and rounded
    once, which is how the reference builds it.
    """
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.empty(n_pos, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.to(torch.float32)


class DistilBertEmbeddings(nn.Module):
    """Word embeddings plus (learned or sinusoidal) position embeddings, then LayerNorm and dropout."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if input_ids is not None:
            _check_token_ids(input_ids, self.word_embeddings.num_embeddings)
            inputs_embeds = self.word_embeddings(input_ids)
        assert inputs_embeds is not None
        seq_len = inputs_embeds.shape[1]
        if position_ids is None:
            n_pos = self.position_embeddings.num_embeddings
            if seq_len > n_pos:
                raise ValueError(
                    f"Sequence length {seq_len} is longer than max_position_embeddings={n_pos}; "
                    "truncate the input (for example tokenizer(..., truncation=True))."
                )
            position_ids = torch.arange(seq_len, device=inputs_embeds.device)[None, :]
        embeddings = inputs_embeds + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


def _check_token_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """Refuse ids outside ``[0, vocab_size)`` with a clear message.

    Only on CPU and outside compilation: there the check costs no device synchronisation; on CUDA the
    embedding kernel's own assertion stays the guard, so the forward never waits on the device.
    """
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
    if input_ids.device.type != "cpu" or torch.compiler.is_compiling() or input_ids.numel() == 0:
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(f"Token id {bad} is out of range for the vocabulary of size {vocab_size} (ids must be in [0, {vocab_size})).")


class DistilBertSelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections (``q_lin``, ``k_lin``, ``v_lin``, ``out_lin``).

    With the model's fast path on, q, k and v come from one matmul (see :mod:`plugformers.fast_path`).
    """

    supports_fast_path = True

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        if config.dim % config.n_heads != 0:
            raise ValueError(f"config.n_heads ({config.n_heads}) must divide config.dim ({config.dim}) evenly.")
        self.config = config
        self.n_heads = config.n_heads
        self.dim = config.dim
        self.attention_head_size = config.dim // config.n_heads
        self.scaling = self.attention_head_size**-0.5
        self.q_lin = nn.Linear(config.dim, config.dim)
        self.k_lin = nn.Linear(config.dim, config.dim)
        self.v_lin = nn.Linear(config.dim, config.dim)
        self.out_lin = nn.Linear(config.dim, config.dim)
        self.dropout = nn.Dropout(config.attention_dropout)
        self.pruned_heads: set[int] = set()
        # Resolve the backends now: the first lookup imports through the plugin registry, which
        # torch.compile(fullgraph=True) cannot trace; later lookups are plain cache hits.
        for name in {"eager", "sdpa", config._attn_implementation or "sdpa"}:
            get_attention_function(name)

    def prune_heads(self, heads: list[int]) -> None:
        """Remove attention heads (numbered as in the unpruned layer) from the projections."""
        if not heads:
            return
        heads_set, index = find_pruneable_heads_and_indices(heads, self.n_heads, self.attention_head_size, self.pruned_heads)
        self.q_lin = prune_linear_layer(self.q_lin, index)
        self.k_lin = prune_linear_layer(self.k_lin, index)
        self.v_lin = prune_linear_layer(self.v_lin, index)
        self.out_lin = prune_linear_layer(self.out_lin, index, dim=1)
        self.n_heads -= len(heads_set)
        self.dim = self.attention_head_size * self.n_heads
        self.pruned_heads |= heads_set
        fast_path.reset(self)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        query_states: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query_states`` (default: every position of ``hidden_states``) to ``hidden_states``."""
        batch, k_len, _ = hidden_states.shape
        head = self.attention_head_size
        qkv = fast_path.fused_linear(self, hidden_states, self.q_lin, self.k_lin, self.v_lin) if query_states is None else None
        if qkv is not None:
            # (batch, k_len, 3 * dim) -> 3 x (batch, heads, k_len, head)
            query, key, value = qkv.view(batch, k_len, 3, self.n_heads, head).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            queries = hidden_states if query_states is None else query_states
            q = fast_path.linear(self, queries, self.q_lin)
            k, v = fast_path.linear(self, hidden_states, self.k_lin), fast_path.linear(self, hidden_states, self.v_lin)
            query = q.view(batch, queries.shape[1], self.n_heads, head).transpose(1, 2)
            key = k.view(batch, k_len, self.n_heads, head).transpose(1, 2)
            value = v.view(batch, k_len, self.n_heads, head).transpose(1, 2)

        attention = get_attention_function(self.config._attn_implementation)
        context, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.dropout.p if self.training else 0.0,
            head_mask=head_mask,
            output_attentions=output_attentions,
        )
        context = context.transpose(1, 2).reshape(batch, query.shape[2], self.n_heads * head)
        return fast_path.linear(self, context, self.out_lin), weights


class DistilBertFFN(nn.Module):
    """Position-wise feed-forward: ``lin1`` -> activation -> ``lin2`` -> dropout."""

    supports_fast_path = True

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.activation = distilbert_activation(config.activation)
        # The fast path can run the activation inside the first matmul when it is one it knows.
        self._fusable_activation = config.activation if config.activation in fast_path.FUSABLE_ACTIVATIONS else None
        self.dropout = nn.Dropout(config.dropout)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        chunk = self.chunk_size_feed_forward
        if chunk and hidden_states.shape[1] > chunk:
            # Chunking over the sequence trades speed for peak memory; the result is the same.
            return torch.cat([self._ff(part) for part in hidden_states.split(chunk, dim=1)], dim=1)
        return self._ff(hidden_states)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        if self._fusable_activation is not None:
            hidden = fast_path.linear(self, x, self.lin1, self._fusable_activation)
        else:
            hidden = self.activation(fast_path.linear(self, x, self.lin1))
        return self.dropout(fast_path.linear(self, hidden, self.lin2))


class TransformerBlock(nn.Module):
    """One post-norm encoder layer: attention + residual + LayerNorm, FFN + residual + LayerNorm."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.attention = DistilBertSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.ffn = DistilBertFFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        first_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``first_token_only`` computes the output of position 0 only (all positions are still attended to)."""
        residual = hidden_states[:, :1] if first_token_only else hidden_states
        if first_token_only and attention_mask is not None and attention_mask.shape[-2] > 1:
            # A 4-D mask has one row per query; only position 0 queries here.
            attention_mask = attention_mask[..., :1, :]
        attended, weights = self.attention(
            hidden_states,
            attention_mask,
            head_mask,
            output_attentions,
            query_states=residual if first_token_only else None,
        )
        attended = self.sa_layer_norm(attended + residual)
        output = self.output_layer_norm(self.ffn(attended) + attended)
        return output, weights


class DistilBertTransformer(nn.Module):
    """The stack of :class:`TransformerBlock` layers (``transformer.layer.<i>``)."""

    # Set by PreTrainedModel.gradient_checkpointing_enable().
    _gradient_checkpointing_func: Callable[..., Any]

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.n_layers = config.n_layers
        self.layer = nn.ModuleList([TransformerBlock(config) for _ in range(config.n_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        first_token_only: bool = False,
    ) -> BaseModelOutput:
        all_hidden: tuple[torch.Tensor, ...] | None = (hidden_states,) if output_hidden_states else None
        all_attentions: tuple[torch.Tensor, ...] | None = () if output_attentions else None
        last = len(self.layer) - 1
        for i, block in enumerate(self.layer):
            layer_head_mask = head_mask[i] if head_mask is not None else None
            trim = first_token_only and i == last
            if self.gradient_checkpointing and self.training:
                hidden_states, weights = self._gradient_checkpointing_func(
                    block.__call__, hidden_states, attention_mask, layer_head_mask, output_attentions, trim
                )
            else:
                hidden_states, weights = block(hidden_states, attention_mask, layer_head_mask, output_attentions, trim)
            if all_hidden is not None:
                all_hidden = (*all_hidden, hidden_states)
            if all_attentions is not None and weights is not None:
                all_attentions = (*all_attentions, weights)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden, attentions=all_attentions)


class DistilBertPreTrainedModel(PreTrainedModel):
    """Shared base of the DistilBERT models: config class, weight initialisation, position embeddings."""

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    main_input_name = "input_ids"
    _no_split_modules = ["TransformerBlock"]
    _supports_sdpa = True
    supports_gradient_checkpointing = True

    config: DistilBertConfig

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) for linear and embedding weights, zero biases, unit LayerNorms."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, DistilBertEmbeddings):
            with torch.no_grad():
                if self.config.sinusoidal_pos_embds:
                    table = sinusoidal_table(module.position_embeddings.num_embeddings, module.position_embeddings.embedding_dim)
                    module.position_embeddings.weight.copy_(table)

    def _embeddings(self) -> DistilBertEmbeddings:
        embeddings = getattr(self, self.base_model_prefix, self).embeddings
        assert isinstance(embeddings, DistilBertEmbeddings)
        return embeddings

    def get_position_embeddings(self) -> nn.Embedding:
        """The position embedding table of the encoder."""
        return self._embeddings().position_embeddings

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        """Grow or shrink the position table to ``new_num_position_embeddings`` rows.

        Learned tables keep their existing rows (new rows are initialised like fresh weights); sinusoidal
        tables are recomputed for the new length.
        """
        if isinstance(new_num_position_embeddings, bool) or not isinstance(new_num_position_embeddings, int) or new_num_position_embeddings <= 0:
            raise ValueError(f"new_num_position_embeddings must be a positive int, got {new_num_position_embeddings!r}.")
        embeddings = self._embeddings()
        old = embeddings.position_embeddings
        if new_num_position_embeddings == old.num_embeddings:
            return
        new = nn.Embedding(new_num_position_embeddings, old.embedding_dim, device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            if self.config.sinusoidal_pos_embds:
                new.weight.copy_(sinusoidal_table(new_num_position_embeddings, old.embedding_dim))
            else:
                nn.init.normal_(new.weight, mean=0.0, std=self.config.initializer_range)
                keep = min(old.num_embeddings, new_num_position_embeddings)
                new.weight[:keep] = old.weight[:keep]
        embeddings.position_embeddings = new
        self.config.max_position_embeddings = new_num_position_embeddings


class DistilBertModel(DistilBertPreTrainedModel):
    """The bare DistilBERT encoder: returns the hidden states of the last layer."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.embeddings = DistilBertEmbeddings(config)
        self.transformer = DistilBertTransformer(config)
        # A checkpoint saved after prune_heads records the pruned heads; build the same (smaller) layers.
        pruned = getattr(config, "pruned_heads", None) or {}
        if pruned:
            self._prune_heads({int(layer): list(heads) for layer, heads in pruned.items()})
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, new_embeddings: nn.Module) -> None:
        if not isinstance(new_embeddings, nn.Embedding):
            raise TypeError(f"The input embeddings must be an nn.Embedding, got {type(new_embeddings).__name__}.")
        self.embeddings.word_embeddings = new_embeddings

    def _prune_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        """Prune ``{layer: [heads]}`` (the host's ``prune_heads`` calls this)."""
        for layer, heads in heads_to_prune.items():
            if not 0 <= layer < len(self.transformer.layer):
                raise ValueError(f"Cannot prune heads of layer {layer}: the model has layers 0..{len(self.transformer.layer) - 1}.")
            block = self.transformer.layer[layer]
            assert isinstance(block, TransformerBlock)
            block.attention.prune_heads(list(heads))

    def _head_mask(self, head_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """``(n_heads,)`` or ``(n_layers, n_heads)`` 1/0 mask -> ``(n_layers, 1, n_heads, 1, 1)`` multipliers."""
        if head_mask is None:
            return None
        n_layers = self.config.n_layers
        if head_mask.dim() == 1:
            head_mask = head_mask[None, :].expand(n_layers, -1)
        elif head_mask.dim() != 2 or head_mask.shape[0] != n_layers:
            raise ValueError(
                f"head_mask must have shape (n_heads,) or (n_layers={n_layers}, n_heads), got {tuple(head_mask.shape)}."
            )
        return head_mask[:, None, :, None, None].to(dtype)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
        _first_token_only: bool = False,
    ) -> BaseModelOutput | tuple[torch.Tensor, ...]:
        """Encode ``input_ids`` (or ``inputs_embeds``) of shape ``(batch, seq)``; ``attention_mask`` is 1 for real tokens."""
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict

        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got both or neither).")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}.")
            batch, seq_len = input_ids.shape
        else:
            assert inputs_embeds is not None
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.dim:
                raise ValueError(
                    f"inputs_embeds must have shape (batch, seq_len, dim={config.dim}), got {tuple(inputs_embeds.shape)}."
                )
            batch, seq_len = inputs_embeds.shape[:2]

        embeddings = self.embeddings(input_ids, inputs_embeds, position_ids)
        mask = self._attention_mask(attention_mask, batch, seq_len, embeddings.dtype)
        out = self.transformer(
            embeddings,
            mask,
            self._head_mask(head_mask, embeddings.dtype),
            output_attentions,
            output_hidden_states,
            first_token_only=_first_token_only and not output_attentions and not output_hidden_states,
        )
        return out if return_dict else out.to_tuple()

    @staticmethod
    def _attention_mask(
        attention_mask: torch.Tensor | None, batch: int, seq_len: int, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """Check the user's mask and make it additive: ``(batch, seq)`` 1/0, or a 4-D bool/additive float mask."""
        if attention_mask is None:
            return None
        if attention_mask.dim() == 2:
            if tuple(attention_mask.shape) != (batch, seq_len):
                raise ValueError(
                    f"attention_mask has shape {tuple(attention_mask.shape)} but the inputs are (batch={batch}, seq_len={seq_len})."
                )
            return additive_mask(attention_mask, dtype)
        if attention_mask.dim() == 4:
            b, _, q, k = attention_mask.shape
            if b not in (1, batch) or q not in (1, seq_len) or k != seq_len:
                raise ValueError(
                    f"A 4-D attention_mask must be broadcastable to (batch={batch}, 1, {seq_len}, {seq_len}), got {tuple(attention_mask.shape)}."
                )
            if attention_mask.dtype == torch.bool:
                zeros = torch.zeros((), dtype=dtype, device=attention_mask.device)
                neg = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)
                return torch.where(attention_mask, zeros, neg)
            return attention_mask.to(dtype)
        raise ValueError(f"attention_mask must be (batch, seq_len) or 4-D, got shape {tuple(attention_mask.shape)}.")


def _return(output: Any, return_dict: bool | None, config: DistilBertConfig) -> Any:
    use_dict = config.use_return_dict if return_dict is None else return_dict
    return output if use_dict else output.to_tuple()


class DistilBertForMaskedLM(DistilBertPreTrainedModel):
    """DistilBERT with a masked-language-modelling head whose decoder is tied to the word embeddings."""

    _tied_weights_keys = ["vocab_projector.weight"]

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.activation = distilbert_activation(config.activation)
        # The fast path can run the activation inside the first matmul when it is one it knows.
        self._fusable_activation = config.activation if config.activation in fast_path.FUSABLE_ACTIVATIONS else None
        self.distilbert = DistilBertModel(config)
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.distilbert.get_input_embeddings()

    def set_input_embeddings(self, new_embeddings: nn.Module) -> None:
        self.distilbert.set_input_embeddings(new_embeddings)

    def get_output_embeddings(self) -> nn.Linear:
        return self.vocab_projector

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        if not isinstance(new_embeddings, nn.Linear):
            raise TypeError(f"The output embeddings must be an nn.Linear, got {type(new_embeddings).__name__}.")
        self.vocab_projector = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> MaskedLMOutput | tuple[torch.Tensor, ...]:
        """Vocabulary logits for every position; ``labels`` (-100 = ignored) give the cross-entropy loss."""
        out = self.distilbert(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, position_ids=position_ids,
        )
        x = self.vocab_layer_norm(self.activation(self.vocab_transform(out.last_hidden_state)))
        logits = self.vocab_projector(x)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device))
        result = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return _return(result, return_dict, self.config)


class _PooledClassifierMixin:
    """First-token pooling shared by the sequence-classification and multiple-choice heads."""

    distilbert: DistilBertModel
    pre_classifier: nn.Linear
    classifier: nn.Linear
    dropout: nn.Dropout

    def _pooled_logits(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        head_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
        position_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, BaseModelOutput]:
        # Only position 0 feeds the classifier, so the last layer computes that row alone (same numbers).
        out = self.distilbert(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, position_ids=position_ids, _first_token_only=True,
        )
        pooled = nn.functional.relu(self.pre_classifier(out.last_hidden_state[:, 0]))
        return self.classifier(self.dropout(pooled)), out


class DistilBertForSequenceClassification(_PooledClassifierMixin, DistilBertPreTrainedModel):
    """DistilBERT with a classification/regression head on the first token (``[CLS]``)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """``(batch, num_labels)`` logits; the loss follows ``config.problem_type`` (inferred when unset)."""
        logits, out = self._pooled_logits(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states, position_ids
        )
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels.to(logits.device), self.config, self.num_labels)
        result = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return _return(result, return_dict, self.config)


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel):
    """DistilBERT with a span head: start and end logits for every position."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        if config.num_labels != 2:
            raise ValueError(f"DistilBertForQuestionAnswering needs config.num_labels == 2 (start, end), got {config.num_labels}.")
        self.distilbert = DistilBertModel(config)
        self.qa_outputs = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.qa_dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> QuestionAnsweringModelOutput | tuple[torch.Tensor, ...]:
        """Start/end logits; with both positions given, the mean of the two cross-entropies.

        Positions outside the sequence are clamped to ``seq_len`` and ignored by the loss.
        """
        out = self.distilbert(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, position_ids=position_ids,
        )
        logits = self.qa_outputs(self.dropout(out.last_hidden_state))
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            start = start_positions.reshape(-1).clamp(0, ignored).to(start_logits.device)
            end = end_positions.reshape(-1).clamp(0, ignored).to(end_logits.device)
            loss = (
                nn.functional.cross_entropy(start_logits, start, ignore_index=ignored)
                + nn.functional.cross_entropy(end_logits, end, ignore_index=ignored)
            ) / 2
        result = QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )
        return _return(result, return_dict, self.config)


class DistilBertForTokenClassification(DistilBertPreTrainedModel):
    """DistilBERT with a per-token classifier (named-entity recognition and the like)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> TokenClassifierOutput | tuple[torch.Tensor, ...]:
        """``(batch, seq, num_labels)`` logits; ``labels`` (-100 = ignored) give the cross-entropy loss."""
        out = self.distilbert(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, position_ids=position_ids,
        )
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1).to(logits.device))
        result = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return _return(result, return_dict, self.config)


class DistilBertForMultipleChoice(_PooledClassifierMixin, DistilBertPreTrainedModel):
    """DistilBERT scoring each of ``num_choices`` sequences per example from its first token."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, 1)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> MultipleChoiceModelOutput | tuple[torch.Tensor, ...]:
        """Inputs are ``(batch, num_choices, seq)``; returns ``(batch, num_choices)`` logits and the choice loss."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got both or neither).")
        source = input_ids if input_ids is not None else inputs_embeds
        assert source is not None
        expected = 3 if input_ids is not None else 4
        if source.dim() != expected:
            name = "input_ids" if input_ids is not None else "inputs_embeds"
            raise ValueError(f"{name} for multiple choice must have {expected} dimensions (batch, num_choices, seq_len, ...), got {tuple(source.shape)}.")
        num_choices = source.shape[1]
        flat_ids = input_ids.reshape(-1, input_ids.shape[-1]) if input_ids is not None else None
        flat_embeds = inputs_embeds.reshape(-1, *inputs_embeds.shape[-2:]) if inputs_embeds is not None else None
        flat_mask = attention_mask.reshape(-1, attention_mask.shape[-1]) if attention_mask is not None else None
        flat_pos = position_ids.reshape(-1, position_ids.shape[-1]) if position_ids is not None and position_ids.dim() > 2 else position_ids
        logits, out = self._pooled_logits(
            flat_ids, flat_mask, head_mask, flat_embeds, output_attentions, output_hidden_states, flat_pos
        )
        logits = logits.view(-1, num_choices)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        result = MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return _return(result, return_dict, self.config)


# Names the reference uses for the building blocks, kept as aliases for code that imports them.
Embeddings = DistilBertEmbeddings
FFN = DistilBertFFN
Transformer = DistilBertTransformer
