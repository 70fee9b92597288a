"""DistilBERT's fast tokenizer: the host's fast WordPiece tokenizer, without token type ids."""

from __future__ import annotations

from plugformers.tokenization_wordpiece_fast import PreTrainedWordPieceTokenizerFast
from plugformers_distilbert.tokenization_distilbert import DistilBertTokenizer

__all__ = ["DistilBertTokenizerFast"]


class DistilBertTokenizerFast(PreTrainedWordPieceTokenizerFast):
    """Same ids as :class:`DistilBertTokenizer`, from the ``tokenizers`` library."""

    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = DistilBertTokenizer
