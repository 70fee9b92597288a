"""DistilBERT's pure-Python tokenizer: the host's WordPiece tokenizer, without token type ids."""

from __future__ import annotations

from plugformers.tokenization_wordpiece import PreTrainedWordPieceTokenizer

__all__ = ["DistilBertTokenizer"]


class DistilBertTokenizer(PreTrainedWordPieceTokenizer):
    """BERT's tokenizer (``[CLS] A [SEP] B [SEP]``, WordPiece ``##`` pieces); DistilBERT takes no segment ids."""

    model_input_names = ["input_ids", "attention_mask"]
