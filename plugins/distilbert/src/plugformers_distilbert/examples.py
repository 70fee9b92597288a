"""Example inputs and an offline tokenizer for DistilBERT, named by the registration (tests, demo, export).

Imported only when the host or a test asks for them: registering the family stays free of torch.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path
from typing import Any

#: Length of the example token sequences; the last row of a batch is padded over its final three.
SEQ_LEN = 7
NUM_CHOICES = 3
_PADDED = 3


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Random token ids (last row padded when ``batch_size > 1``) and, with ``labels``, what the head's loss takes."""
    import torch

    from plugformers_distilbert.modeling_distilbert import (
        DistilBertForMaskedLM,
        DistilBertForMultipleChoice,
        DistilBertForQuestionAnswering,
        DistilBertForSequenceClassification,
        DistilBertForTokenClassification,
    )

    g = torch.Generator().manual_seed(0)
    choice = issubclass(model_class, DistilBertForMultipleChoice)
    shape = (batch_size, NUM_CHOICES, SEQ_LEN) if choice else (batch_size, SEQ_LEN)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    ids = torch.randint(1, config.vocab_size, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    if batch_size > 1:
        mask[-1, ..., SEQ_LEN - _PADDED :] = 0
    inputs: dict[str, Any] = {"input_ids": ids.masked_fill(mask == 0, pad), "attention_mask": mask}
    if not labels:
        return inputs
    if issubclass(model_class, DistilBertForMaskedLM):
        targets = torch.randint(0, config.vocab_size, shape, generator=g)
        inputs["labels"] = targets.masked_fill(mask == 0, -100)
    elif issubclass(model_class, DistilBertForTokenClassification):
        targets = torch.randint(0, config.num_labels, shape, generator=g)
        inputs["labels"] = targets.masked_fill(mask == 0, -100)
    elif issubclass(model_class, DistilBertForSequenceClassification):
        inputs["labels"] = torch.randint(0, config.num_labels, (batch_size,), generator=g)
    elif issubclass(model_class, DistilBertForQuestionAnswering):
        inputs["start_positions"] = torch.randint(0, SEQ_LEN - _PADDED, (batch_size,), generator=g)
        inputs["end_positions"] = inputs["start_positions"] + 1
    elif choice:
        inputs["labels"] = torch.randint(0, NUM_CHOICES, (batch_size,), generator=g)
    return inputs


def tiny_vocabulary() -> list[str]:
    """WordPiece tokens that spell any lowercase English sentence: specials, letters, digits and punctuation.

    Every letter and digit exists as a word start and as a ``##`` continuation, so no word is unknown.
    """
    chars = string.ascii_lowercase + string.digits
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *".,!?'\"-:;()"]


def example_preprocessor(config: Any) -> Any:
    """A fast tokenizer over :func:`tiny_vocabulary` (ids fit any config with ``vocab_size`` >= 88)."""
    from plugformers_distilbert.tokenization_distilbert_fast import DistilBertTokenizerFast

    vocab = tiny_vocabulary()
    if len(vocab) > config.vocab_size:
        raise ValueError(f"the example vocabulary has {len(vocab)} tokens, more than vocab_size={config.vocab_size}.")
    with tempfile.TemporaryDirectory(prefix="plugformers-distilbert-vocab-") as tmp:
        path = Path(tmp) / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        return DistilBertTokenizerFast(vocab_file=str(path))
