"""BERT's pure-Python tokenizer: the host's WordPiece tokenizer, with segment (token type) ids."""

from __future__ import annotations

from plugformers.tokenization_wordpiece import PreTrainedWordPieceTokenizer

__all__ = ["BertTokenizer"]


class BertTokenizer(PreTrainedWordPieceTokenizer):
    """``[CLS] A [SEP] B [SEP]`` with WordPiece ``##`` pieces; ``token_type_ids`` mark the second text with 1s."""
