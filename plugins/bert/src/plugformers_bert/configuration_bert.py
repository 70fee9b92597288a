"""`BertConfig`: the hyper-parameters of a BERT model, saved as ``config.json``.

Field names, defaults and the printed/saved JSON are the reference library's (``bert-base-uncased``'s
shape by default), so configuration files move freely between the two. Keys that older checkpoints carry
and the model does not read (``position_embedding_type``, ``gradient_checkpointing``, ...) are kept and
written back unchanged. This module does not import torch.
"""

from __future__ import annotations

from typing import Any

from plugformers.configuration_utils import ConfigError, PretrainedConfig

__all__ = ["BertConfig"]

_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob")
_SWITCHES = ("use_cache", "is_decoder", "add_cross_attention", "tie_word_embeddings")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class BertConfig(PretrainedConfig):
    """Configuration of :class:`~plugformers_bert.modeling_bert.BertModel` and its heads.

    ``hidden_size`` is the width of every layer, ``num_hidden_layers``/``num_attention_heads`` the depth and
    heads, ``intermediate_size`` the feed-forward width, ``type_vocab_size`` the number of segment (token type)
    ids. ``classifier_dropout`` is the dropout before the classification heads (``None``: ``hidden_dropout_prob``).
    ``is_decoder=True`` makes the self-attention causal (each position sees itself and the ones before it).
    """

    model_type = "bert"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int | None = 0,
        use_cache: bool = True,
        classifier_dropout: float | None = None,
        is_decoder: bool = False,
        add_cross_attention: bool = False,
        bos_token_id: int | None = None,
        eos_token_id: int | list[int] | None = None,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.pad_token_id = pad_token_id
        self.use_cache = use_cache
        self.classifier_dropout = classifier_dropout
        self.is_decoder = is_decoder
        self.add_cross_attention = add_cross_attention
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.tie_word_embeddings = tie_word_embeddings
        self.validate()
        super().__init__(**kwargs)

    def validate(self) -> None:
        """Refuse values no BERT can be built from, with a message naming the field."""
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"BertConfig.{name} must be a positive int, got {value!r}.")
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"BertConfig.{name} must be a probability in [0, 1], got {value!r}.")
        if self.classifier_dropout is not None and (
            not _is_number(self.classifier_dropout) or not 0.0 <= self.classifier_dropout <= 1.0
        ):
            raise ConfigError(
                f"BertConfig.classifier_dropout must be None or a probability in [0, 1], got {self.classifier_dropout!r}."
            )
        if not isinstance(self.hidden_act, str) or not self.hidden_act:
            raise ConfigError(f"BertConfig.hidden_act must be an activation name, got {self.hidden_act!r}.")
        if not _is_number(self.layer_norm_eps) or self.layer_norm_eps <= 0:
            raise ConfigError(f"BertConfig.layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}.")
        if not _is_number(self.initializer_range) or self.initializer_range < 0:
            raise ConfigError(f"BertConfig.initializer_range must be a non-negative number, got {self.initializer_range!r}.")
        pad = self.pad_token_id
        if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < self.vocab_size):
            raise ConfigError(
                f"BertConfig.pad_token_id must be None or an id in [0, vocab_size={self.vocab_size}), got {pad!r}."
            )
        for name in _SWITCHES:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"BertConfig.{name} must be true or false, got {getattr(self, name)!r}.")
