"""`DistilBertConfig`: the hyper-parameters of a DistilBERT model, saved as ``config.json``.

Field names, defaults and the printed/saved JSON are the reference library's, so configuration files move
freely between the two. This module does not import torch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from plugformers.configuration_utils import ConfigError, PretrainedConfig

__all__ = ["DistilBertConfig"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"DistilBertConfig.{name} must be a positive int, got {value!r}.")
    return value


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"DistilBertConfig.{name} must be a number between 0 and 1, got {value!r}.")
    return value


class DistilBertConfig(PretrainedConfig):
    """Configuration of DistilBERT models (defaults give ``distilbert-base-uncased``'s shape).

    ``dim`` is the hidden size, ``hidden_dim`` the feed-forward size, ``n_layers``/``n_heads`` the depth
    and attention heads; ``sinusoidal_pos_embds=True`` fills the position table with fixed sinusoids.
    ``hidden_size``, ``num_attention_heads`` and ``num_hidden_layers`` are aliases of the short names.
    """

    model_type = "distilbert"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
    }

    def __init__(
        self,
        vocab_size: int = 30522,
        max_position_embeddings: int = 512,
        sinusoidal_pos_embds: bool = False,
        n_layers: int = 6,
        n_heads: int = 12,
        dim: int = 768,
        hidden_dim: int = 4 * 768,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation: str = "gelu",
        initializer_range: float = 0.02,
        qa_dropout: float = 0.1,
        seq_classif_dropout: float = 0.2,
        pad_token_id: int | None = 0,
        eos_token_id: int | list[int] | None = None,
        bos_token_id: int | None = None,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        # Accept the long aliases as constructor arguments too (``DistilBertConfig(hidden_size=64)``).
        for alias, name in type(self).attribute_map.items():
            if alias in kwargs:
                value = kwargs.pop(alias)
                if name == "dim":
                    dim = value
                elif name == "n_heads":
                    n_heads = value
                else:
                    n_layers = value
        self.vocab_size = _positive_int("vocab_size", vocab_size)
        self.max_position_embeddings = _positive_int("max_position_embeddings", max_position_embeddings)
        if not isinstance(sinusoidal_pos_embds, bool):
            raise ConfigError(f"DistilBertConfig.sinusoidal_pos_embds must be true or false, got {sinusoidal_pos_embds!r}.")
        self.sinusoidal_pos_embds = sinusoidal_pos_embds
        self.n_layers = _positive_int("n_layers", n_layers)
        self.n_heads = _positive_int("n_heads", n_heads)
        self.dim = _positive_int("dim", dim)
        self.hidden_dim = _positive_int("hidden_dim", hidden_dim)
        self.dropout = _probability("dropout", dropout)
        self.attention_dropout = _probability("attention_dropout", attention_dropout)
        if not isinstance(activation, str) or not activation:
            raise ConfigError(f"DistilBertConfig.activation must be an activation name, got {activation!r}.")
        self.activation = activation
        if isinstance(initializer_range, bool) or not isinstance(initializer_range, (int, float)) or initializer_range < 0:
            raise ConfigError(f"DistilBertConfig.initializer_range must be a non-negative number, got {initializer_range!r}.")
        self.initializer_range = initializer_range
        self.qa_dropout = _probability("qa_dropout", qa_dropout)
        self.seq_classif_dropout = _probability("seq_classif_dropout", seq_classif_dropout)
        if pad_token_id is not None and (
            isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int) or not 0 <= pad_token_id < vocab_size
        ):
            raise ConfigError(
                f"DistilBertConfig.pad_token_id must be None or an id in [0, vocab_size={vocab_size}), got {pad_token_id!r}."
            )
        self.pad_token_id = pad_token_id
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.tie_word_embeddings = bool(tie_word_embeddings)
        super().__init__(**kwargs)
