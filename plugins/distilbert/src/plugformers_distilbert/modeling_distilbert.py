"""DistilBERT: the encoder and its task heads, with the reference library's module and parameter names.

A DistilBERT encoder is word + position embeddings, then ``n_layers`` post-norm transformer blocks
(self-attention, residual, LayerNorm, feed-forward, residual, LayerNorm). The attribute names below
(``embeddings.word_embeddings``, ``transformer.layer.<i>.attention.q_lin``, ...) are exactly the
reference's, so checkpoints are interchangeable.
"""

from __future__ import annotations

import torch
from torch import nn

from plugformers.activations import get_activation
from plugformers.fast_path import PackLinear
from plugformers.masking_utils import prepare_attention_mask, prepare_head_mask
from plugformers.modeling_layers import GradientCheckpointingLayer, MultiHeadAttention
from plugformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from plugformers.modeling_utils import (
    PreTrainedModel,
    classification_loss,
    init_normal_weights,
    span_loss,
    text_input_shape,
)
from plugformers.output_capturing import Record, model_forward

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


class DistilBertSelfAttention(MultiHeadAttention):
    """Multi-head self-attention (``q_lin``, ``k_lin``, ``v_lin``, ``out_lin``)."""

    projections = {"query": "q_lin", "key": "k_lin", "value": "v_lin", "output": "out_lin"}
    size_fields = ("dim", "n_heads")

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config, config.dim, config.n_heads, dropout=config.attention_dropout)


class DistilBertFFN(nn.Module):
    """Position-wise feed-forward: ``lin1`` -> activation -> ``lin2`` -> dropout."""

    fast_path_plan = (PackLinear("lin1", activation="activation"), PackLinear("lin2"))

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.activation = get_activation(config.activation)
        self.dropout = nn.Dropout(config.dropout)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        chunk = self.chunk_size_feed_forward
        if chunk and hidden_states.shape[1] > chunk:
            # Chunking over the sequence trades speed for peak memory; the result is the same.
            return torch.cat([self._ff(part) for part in hidden_states.split(chunk, dim=1)], dim=1)
        return self._ff(hidden_states)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.lin2(self.activation(self.lin1(x))))


class TransformerBlock(GradientCheckpointingLayer):
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
        first_token_only: bool = False,
    ) -> torch.Tensor:
        """``(batch, seq, dim)`` -> the same shape, or ``(batch, 1, dim)`` for position 0 alone with
        ``first_token_only`` (which still attends to every position)."""
        residual = hidden_states[:, :1] if first_token_only else hidden_states
        query_states = residual if first_token_only else None
        attended, _ = self.attention(hidden_states, attention_mask, head_mask, query_states=query_states)
        attended = self.sa_layer_norm(attended + residual)
        return self.output_layer_norm(self.ffn(attended) + attended)


class DistilBertTransformer(nn.Module):
    """The stack of :class:`TransformerBlock` layers (``transformer.layer.<i>``)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.n_layers = config.n_layers
        self.layer = nn.ModuleList([TransformerBlock(config) for _ in range(config.n_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: list[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        head_mask = head_mask or [None] * len(self.layer)
        for block, layer_head_mask in zip(self.layer, head_mask):
            hidden_states = block(hidden_states, attention_mask, layer_head_mask)
        return hidden_states


class DistilBertPreTrainedModel(PreTrainedModel):
    """Shared base of the DistilBERT models: config class, weight initialisation, position embeddings."""

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    main_input_name = "input_ids"
    _no_split_modules = ["TransformerBlock"]
    # What these models support: declared once here, read by the host and the shared tests.
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    supports_compile_fullgraph = True
    supports_export = True
    supports_head_pruning = True
    supports_fast_path = True

    config: DistilBertConfig

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) for linear and embedding weights, zero biases, unit LayerNorms."""
        init_normal_weights(module, self.config.initializer_range)
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

    recorded_outputs = {
        "hidden_states": Record(TransformerBlock, with_input=True),
        "attentions": Record(DistilBertSelfAttention, index=1),
    }

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.embeddings = DistilBertEmbeddings(config)
        self.transformer = DistilBertTransformer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, new_embeddings: nn.Module) -> None:
        if not isinstance(new_embeddings, nn.Embedding):
            raise TypeError(f"The input embeddings must be an nn.Embedding, got {type(new_embeddings).__name__}.")
        self.embeddings.word_embeddings = new_embeddings

    @model_forward
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
    ) -> BaseModelOutput:
        """Encode ``input_ids`` (or ``inputs_embeds``) of shape ``(batch, seq)``; ``attention_mask`` is 1 for real tokens."""
        config = self.config
        batch, seq_len = text_input_shape(input_ids, inputs_embeds, config.dim, "dim")

        embeddings = self.embeddings(input_ids, inputs_embeds, position_ids)  # (batch, seq, dim)
        mask = prepare_attention_mask(attention_mask, batch, seq_len, embeddings.dtype)
        head_masks = prepare_head_mask(head_mask, config.n_layers, embeddings.dtype)
        return BaseModelOutput(last_hidden_state=self.transformer(embeddings, mask, head_masks))


class DistilBertForMaskedLM(DistilBertPreTrainedModel):
    """DistilBERT with a masked-language-modelling head whose decoder is tied to the word embeddings."""

    _tied_weights_keys = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.activation = get_activation(config.activation)
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

    @model_forward
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
    ) -> MaskedLMOutput:
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
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


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
        out = self.distilbert(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, position_ids=position_ids,
        )
        pooled = nn.functional.relu(self.pre_classifier(out.last_hidden_state[:, 0]))
        return self.classifier(self.dropout(pooled)), out


class DistilBertForSequenceClassification(_PooledClassifierMixin, DistilBertPreTrainedModel):
    """DistilBERT with a classification/regression head on the first token (``[CLS]``)."""

    first_token_only = True  # the classifier reads position 0 only: the last layer computes that row alone

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    @model_forward
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
    ) -> SequenceClassifierOutput:
        """``(batch, num_labels)`` logits; the loss follows ``config.problem_type`` (inferred when unset)."""
        logits, out = self._pooled_logits(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states, position_ids
        )
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels.to(logits.device), self.config, self.num_labels)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


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

    @model_forward
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
    ) -> QuestionAnsweringModelOutput:
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
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )


class DistilBertForTokenClassification(DistilBertPreTrainedModel):
    """DistilBERT with a per-token classifier (named-entity recognition and the like)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.post_init()

    @model_forward
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
    ) -> TokenClassifierOutput:
        """``(batch, seq, num_labels)`` logits; ``labels`` (-100 = ignored) give the cross-entropy loss."""
        out = self.distilbert(
            input_ids, attention_mask, head_mask, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, position_ids=position_ids,
        )
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1).to(logits.device))
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


class DistilBertForMultipleChoice(_PooledClassifierMixin, DistilBertPreTrainedModel):
    """DistilBERT scoring each of ``num_choices`` sequences per example from its first token."""

    first_token_only = True  # the classifier reads position 0 only: the last layer computes that row alone

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, 1)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    @model_forward
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
    ) -> MultipleChoiceModelOutput:
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
        return MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


# Names the reference uses for the building blocks, kept as aliases for code that imports them.
Embeddings = DistilBertEmbeddings
FFN = DistilBertFFN
Transformer = DistilBertTransformer
