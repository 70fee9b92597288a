"""BERT's fast tokenizer: the host's fast WordPiece tokenizer, with segment (token type) ids."""

from __future__ import annotations

from plugformers.tokenization_wordpiece_fast import PreTrainedWordPieceTokenizerFast
from plugformers_bert.tokenization_bert import BertTokenizer

__all__ = ["BertTokenizerFast"]


class BertTokenizerFast(PreTrainedWordPieceTokenizerFast):
    """Same ids as :class:`BertTokenizer`, from the ``tokenizers`` library (reads ``tokenizer.json`` when present)."""

    slow_tokenizer_class = BertTokenizer
