"""BERT: the encoder, its pooler and the task heads, with the reference library's module and parameter names.

A BERT encoder sums word, position and segment (token type) embeddings, normalises them, and runs
``num_hidden_layers`` post-norm transformer layers: self-attention, projection, residual, LayerNorm, then
feed-forward, residual, LayerNorm. The pooler is a tanh layer on the first token (``[CLS]``). The attribute
names below (``embeddings.token_type_embeddings``, ``encoder.layer.<i>.attention.self.query``,
``cls.predictions.decoder``, ...) are exactly the reference's, so checkpoints are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from plugformers import fast_path
from plugformers.activations import get_activation
from plugformers.fast_path import PackLinear
from plugformers.masking_utils import prepare_attention_mask, prepare_head_mask
from plugformers.modeling_layers import GradientCheckpointingLayer, MultiHeadAttention
from plugformers.modeling_outputs import (
    MaskedLMOutput,
    ModelOutput,
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
from plugformers.pytorch_utils import find_pruneable_heads_and_indices, prune_linear_layer

from .configuration_bert import BertConfig

__all__ = [
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "BertForMaskedLM",
    "BertForMultipleChoice",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForPreTrainingOutput",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertPreTrainedModel",
    "NextSentencePredictorOutput",
]

Tensors = tuple[torch.Tensor, ...]


# ----- outputs (the reference's classes, field for field) ---------------------------------------------------


@dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """What :class:`BertModel` returns: the last layer's states and the pooled ``[CLS]`` vector.

    ``cache`` and ``cross_attentions`` belong to the reference's decoder mode (key/value cache, attention to an
    encoder), which is not supported: ``cache`` is always None and ``cross_attentions`` an empty tuple when
    attentions are asked for (as in the reference's encoder), else None.
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: Tensors | None = None
    cache: Any = None
    attentions: Tensors | None = None
    cross_attentions: Tensors | None = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    """``logits`` ``(batch, 2)``: index 0 scores "B follows A", index 1 "B is a random sentence"."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    """Both pretraining objectives: masked-token logits per position and next-sentence logits per example.

    ``loss`` is the sum of the two cross-entropies (given both label sets).
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


# ----- embeddings ---------------------------------------------------------------------------------------------


def _check_ids(name: str, ids: torch.Tensor, size: int, what: str) -> None:
    """Refuse ids outside ``[0, size)`` with a message naming the input (on CPU outside compilation only,
    where the check costs no device synchronisation; elsewhere the embedding kernel's own check stands)."""
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer ids, got dtype {ids.dtype}.")
    if ids.device.type != "cpu" or torch.compiler.is_compiling() or ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= size:
        raise ValueError(f"{name} holds {low if low < 0 else high}, outside [0, {size}): {what}.")


class BertEmbeddings(nn.Module):
    """Word + segment + position embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if input_ids is not None:
            vocab = self.word_embeddings.num_embeddings
            _check_ids("input_ids", input_ids, vocab, f"the vocabulary has {vocab} tokens")
            inputs_embeds = self.word_embeddings(input_ids)
        assert inputs_embeds is not None
        batch, seq_len = inputs_embeds.shape[:2]
        if position_ids is None:
            n_pos = self.position_embeddings.num_embeddings
            if seq_len > n_pos:
                raise ValueError(
                    f"Sequence length {seq_len} is longer than max_position_embeddings={n_pos}; "
                    "truncate the input (for example tokenizer(..., truncation=True))."
                )
            position_ids = torch.arange(seq_len, device=inputs_embeds.device)[None, :]
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, seq_len), dtype=torch.long, device=inputs_embeds.device)
        else:
            types = self.token_type_embeddings.num_embeddings
            _check_ids("token_type_ids", token_type_ids, types, f"the config has type_vocab_size={types} segment ids")
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


# ----- the encoder --------------------------------------------------------------------------------------------


class BertSelfAttention(MultiHeadAttention):
    """Multi-head self-attention over the ``query``, ``key`` and ``value`` projections, on the host's block.

    BERT's checkpoints keep the attention's output projection one module up, in :class:`BertSelfOutput`
    (``attention.output.dense``, beside the residual LayerNorm), so ``projections`` names no ``"output"``: this
    module returns the heads' outputs concatenated, and pruning heads also removes the matching input columns
    of ``attention.output.dense``.
    """

    projections = {"query": "query", "key": "key", "value": "value"}

    def __init__(self, config: BertConfig, output: BertSelfOutput) -> None:
        super().__init__(
            config, config.hidden_size, config.num_attention_heads, dropout=config.attention_probs_dropout_prob
        )
        self.__dict__["_output"] = output  # a reference, not a child: the block keeps its checkpoint name

    def prune_heads(self, heads: list[int] | set[int]) -> None:
        if not heads:
            return
        _, index = find_pruneable_heads_and_indices(heads, self.num_heads, self.head_dim, self.pruned_heads)
        output: BertSelfOutput = self.__dict__["_output"]
        output.dense = prune_linear_layer(output.dense, index, dim=1)
        fast_path.refresh(output)
        super().prune_heads(heads)


class BertSelfOutput(nn.Module):
    """The attention's output projection (``dense``), dropout, then residual + LayerNorm."""

    fast_path_plan = (PackLinear("dense"),)

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    """Self-attention (``self``) followed by its output block (``output``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        output = BertSelfOutput(config)
        self.self = BertSelfAttention(config, output)
        self.output = output

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        first_token_only: bool = False,
    ) -> torch.Tensor:
        """``first_token_only`` computes position 0 alone (which still attends to every position)."""
        residual = hidden_states[:, :1] if first_token_only else hidden_states
        context, _ = self.self(hidden_states, attention_mask, head_mask, query_states=residual if first_token_only else None)
        return self.output(context, residual)  # type: ignore[no-any-return]


class BertIntermediate(nn.Module):
    """The feed-forward block's widening projection (``dense``) and activation."""

    fast_path_plan = (PackLinear("dense", activation="intermediate_act_fn"),)

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))  # type: ignore[no-any-return]


class BertOutput(nn.Module):
    """The feed-forward block's narrowing projection (``dense``), dropout, then residual + LayerNorm."""

    fast_path_plan = (PackLinear("dense"),)

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(GradientCheckpointingLayer):
    """One post-norm encoder layer: attention block, then feed-forward block (``intermediate`` + ``output``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        first_token_only: bool = False,
    ) -> torch.Tensor:
        """``(batch, seq, hidden)`` -> the same shape, or ``(batch, 1, hidden)`` for position 0 alone with
        ``first_token_only``."""
        attended = self.attention(hidden_states, attention_mask, head_mask, first_token_only)
        chunk = self.chunk_size_feed_forward
        if chunk and attended.shape[1] > chunk:
            # Chunking over the sequence trades speed for peak memory; the result is the same.
            return torch.cat([self._feed_forward(part) for part in attended.split(chunk, dim=1)], dim=1)
        return self._feed_forward(attended)

    def _feed_forward(self, attended: torch.Tensor) -> torch.Tensor:
        return self.output(self.intermediate(attended), attended)  # type: ignore[no-any-return]


class BertEncoder(nn.Module):
    """The stack of :class:`BertLayer` (``encoder.layer.<i>``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: list[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        for layer, layer_head_mask in zip(self.layer, head_mask or [None] * len(self.layer)):
            hidden_states = layer(hidden_states, attention_mask, layer_head_mask)
        return hidden_states



class BertPooler(nn.Module):
    """``tanh(dense(h[CLS]))``: the sentence vector the next-sentence and classification heads read."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


# ----- prediction heads ---------------------------------------------------------------------------------------


class BertPredictionHeadTransform(nn.Module):
    """``LayerNorm(act(dense(h)))`` before the vocabulary projection."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """Vocabulary logits: the transform, then ``decoder`` (its weight tied to the word embeddings and its bias
    to ``bias`` when ``config.tie_word_embeddings``, as in the reference)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    """The masked-language-modelling head alone (``cls.predictions``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)  # type: ignore[no-any-return]


class BertOnlyNSPHead(nn.Module):
    """The next-sentence head alone (``cls.seq_relationship``) on the pooled output."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled_output)  # type: ignore[no-any-return]


class BertPreTrainingHeads(nn.Module):
    """Both pretraining heads (``cls.predictions`` and ``cls.seq_relationship``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# ----- models -------------------------------------------------------------------------------------------------


class BertPreTrainedModel(PreTrainedModel):
    """Shared base of the BERT models: config class, capabilities, weight initialisation, checkpoint names."""

    config_class = BertConfig
    base_model_prefix = "bert"
    main_input_name = "input_ids"
    _no_split_modules = ["BertEmbeddings", "BertLayer"]
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    supports_compile_fullgraph = True
    supports_export = True
    supports_head_pruning = True
    supports_fast_path = True
    # Checkpoints written by older reference versions store the position-id buffer, which is rebuilt here.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.position_ids$"]

    config: BertConfig

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) for linear and embedding weights, zero biases, unit LayerNorms."""
        init_normal_weights(module, self.config.initializer_range)
        if isinstance(module, BertLMPredictionHead):
            nn.init.zeros_(module.bias)


def _causal(attention_mask: torch.Tensor | None, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
    """A decoder's mask: the user's padding mask (or 4-D bool mask) and "nothing after the query position".

    A 4-D float mask is taken as the whole mask, as given (``prepare_attention_mask`` checks its shape).
    """
    lower = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()[None, None]
    if attention_mask is None:
        return lower
    if attention_mask.dim() == 2 and tuple(attention_mask.shape) == (batch, seq_len):
        return attention_mask[:, None, None, :].to(torch.bool) & lower
    return attention_mask & lower if attention_mask.dtype == torch.bool and attention_mask.dim() == 4 else attention_mask


class BertModel(BertPreTrainedModel):
    """The bare BERT encoder: the last layer's hidden states and (with the pooler) the pooled ``[CLS]`` vector.

    ``add_pooling_layer=False`` leaves the pooler out (the heads that read every position do).
    """

    recorded_outputs = {
        "hidden_states": Record(BertLayer, with_input=True),
        "attentions": Record(BertSelfAttention, index=1),
        # The reference fills this from a decoder's ``crossattention`` modules; an encoder has none, so it is an
        # empty tuple whenever attentions are asked for, as there.
        "cross_attentions": Record(BertSelfAttention, index=1, name="crossattention"),
    }

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        if config.add_cross_attention:
            raise NotImplementedError(
                "BertConfig.add_cross_attention=True (a BERT decoder attending to an encoder) is not supported by "
                "plugformers-bert; build the model with add_cross_attention=False."
            )
        kind = getattr(config, "position_embedding_type", "absolute")
        if kind not in (None, "absolute"):
            raise NotImplementedError(
                f"BertConfig.position_embedding_type={kind!r} is not supported: plugformers-bert (like the reference "
                "library since version 5) has absolute position embeddings only."
            )
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
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
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """Encode ``input_ids`` (or ``inputs_embeds``) of shape ``(batch, seq)``.

        ``attention_mask`` is 1 for real tokens and 0 for padding (or a 4-D bool or additive float mask);
        ``token_type_ids`` say which text of a pair a token belongs to (default: all 0); ``head_mask`` (1 keeps,
        0 silences) applies per head, ``(heads,)`` or ``(layers, heads)``.
        """
        config = self.config
        batch, seq_len = text_input_shape(input_ids, inputs_embeds, config.hidden_size)
        if token_type_ids is not None and tuple(token_type_ids.shape) != (batch, seq_len):
            raise ValueError(
                f"token_type_ids has shape {tuple(token_type_ids.shape)} but the inputs are (batch={batch}, seq_len={seq_len})."
            )

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (batch, seq, hidden)
        if config.is_decoder:
            attention_mask = _causal(attention_mask, batch, seq_len, embeddings.device)
        mask = prepare_attention_mask(attention_mask, batch, seq_len, embeddings.dtype)
        head_masks = prepare_head_mask(head_mask, len(self.encoder.layer), embeddings.dtype)
        sequence_output = self.encoder(embeddings, mask, head_masks)
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
        )


class _BertHead(BertPreTrainedModel):
    """Shared plumbing of the task heads: run ``self.bert`` and hand back its output as a dataclass."""

    bert: BertModel

    def _encode(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        head_mask: torch.Tensor | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        out: BaseModelOutputWithPoolingAndCrossAttentions = self.bert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states, return_dict=True,
        )  # fmt: skip
        return out


class _MaskedLMTying(_BertHead):
    """The heads with ``cls.predictions``: its decoder is the output embedding, tied to the word embeddings."""

    cls: nn.Module
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def _predictions(self) -> BertLMPredictionHead:
        head = self.cls.predictions
        assert isinstance(head, BertLMPredictionHead)
        return head

    def get_output_embeddings(self) -> nn.Linear:
        return self._predictions().decoder

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        if not isinstance(new_embeddings, nn.Linear):
            raise TypeError(f"The output embeddings must be an nn.Linear, got {type(new_embeddings).__name__}.")
        self._predictions().decoder = new_embeddings
        self.tie_weights()

    def tie_weights(self) -> None:
        """Tie the decoder's weight to the word embeddings and ``cls.predictions.bias`` to its bias."""
        super().tie_weights()
        head = self._predictions()
        if self.config.tie_word_embeddings and head.decoder.bias is not None:
            head.bias = head.decoder.bias  # the decoder's (e.g. just resized) bias is the one kept

    def _mlm_loss(self, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        if labels is None:
            return None
        return nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device))


def _nsp_loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    if labels is None:
        return None
    return nn.functional.cross_entropy(logits.view(-1, 2), labels.reshape(-1).to(logits.device))


class BertForPreTraining(_MaskedLMTying):
    """BERT with both pretraining heads: masked-token prediction and next-sentence prediction."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BertForPreTrainingOutput:
        """``labels`` (-100 = ignored) per position and ``next_sentence_label`` (0: B follows A, 1: random B)
        per example; with both given, ``loss`` is the sum of the two cross-entropies."""
        out = self._encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        assert out.pooler_output is not None
        prediction_logits, relationship_logits = self.cls(out.last_hidden_state, out.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            mlm = self._mlm_loss(prediction_logits, labels)
            nsp = _nsp_loss(relationship_logits, next_sentence_label)
            assert mlm is not None and nsp is not None
            loss = mlm + nsp
        return BertForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=relationship_logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class BertForMaskedLM(_MaskedLMTying):
    """BERT with a masked-language-modelling head (``cls.predictions``) and no pooler."""

    _keys_to_ignore_on_load_unexpected = [*BertPreTrainedModel._keys_to_ignore_on_load_unexpected, r"^(bert\.)?pooler\."]

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput:
        """Vocabulary logits for every position; ``labels`` (-100 = ignored) give the cross-entropy loss."""
        out = self._encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.cls(out.last_hidden_state)
        return MaskedLMOutput(
            loss=self._mlm_loss(logits, labels), logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


class BertForNextSentencePrediction(_BertHead):
    """BERT with the next-sentence head on the pooled ``[CLS]`` vector."""

    first_token_only = True  # the pooler reads [CLS] only: the last layer computes that position alone

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertOnlyNSPHead(config)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> NextSentencePredictorOutput:
        """``(batch, 2)`` logits; ``labels`` (0: B follows A, 1: B is random) give the cross-entropy loss."""
        out = self._encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.cls(out.pooler_output)
        return NextSentencePredictorOutput(
            loss=_nsp_loss(logits, labels), logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


def _classifier_dropout(config: BertConfig) -> nn.Dropout:
    return nn.Dropout(config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout)


class BertForSequenceClassification(_BertHead):
    """BERT with a classification/regression layer on the pooled ``[CLS]`` vector."""

    first_token_only = True  # the pooler reads [CLS] only: the last layer computes that position alone

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput:
        """``(batch, num_labels)`` logits; the loss follows ``config.problem_type`` (inferred when unset)."""
        out = self._encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels.to(logits.device), self.config, self.num_labels)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


class BertForMultipleChoice(_BertHead):
    """BERT scoring each of ``num_choices`` sequences per example from its pooled ``[CLS]`` vector."""

    first_token_only = True  # the pooler reads [CLS] only: the last layer computes that position alone

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultipleChoiceModelOutput:
        """Inputs are ``(batch, num_choices, seq)``; returns ``(batch, num_choices)`` logits and the choice loss."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got both or neither).")
        name, source = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
        assert source is not None
        expected = 3 if input_ids is not None else 4
        if source.dim() != expected:
            raise ValueError(
                f"{name} for multiple choice must have {expected} dimensions (batch, num_choices, seq_len, ...), "
                f"got {tuple(source.shape)}."
            )
        num_choices = source.shape[1]

        def flat(t: torch.Tensor | None, keep: int = 1) -> torch.Tensor | None:
            """Merge the batch and choice axes: ``(batch, choices, *rest)`` -> ``(batch * choices, *rest)``."""
            return t if t is None or t.dim() <= keep + 1 else t.reshape(-1, *t.shape[-keep:])

        out = self._encode(
            flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids), flat(inputs_embeds, keep=2),
            head_mask, output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        return MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


class BertForTokenClassification(_BertHead):
    """BERT with a per-token classifier (named-entity recognition and the like) and no pooler."""

    _keys_to_ignore_on_load_unexpected = BertForMaskedLM._keys_to_ignore_on_load_unexpected

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput:
        """``(batch, seq, num_labels)`` logits; ``labels`` (-100 = ignored) give the cross-entropy loss."""
        out = self._encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1).to(logits.device))
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


class BertForQuestionAnswering(_BertHead):
    """BERT with a span head: start and end logits for every position (no pooler)."""

    _keys_to_ignore_on_load_unexpected = BertForMaskedLM._keys_to_ignore_on_load_unexpected

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        if config.num_labels != 2:
            raise ValueError(f"BertForQuestionAnswering needs config.num_labels == 2 (start, end), got {config.num_labels}.")
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput:
        """Start/end logits; with both positions given, the mean of the two cross-entropies.

        Positions outside the sequence are clamped to ``seq_len`` and ignored by the loss.
        """
        out = self._encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.qa_outputs(out.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )  # fmt: skip
