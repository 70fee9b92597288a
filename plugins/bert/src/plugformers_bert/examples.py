"""Example inputs and an offline tokenizer for BERT, named by the registration (tests, demo, export).

Imported only when the host or a test asks for them: registering the family stays free of torch.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path
from typing import Any

#: Length of the example token sequences: a first segment of FIRST_SEGMENT tokens, then the second one.
SEQ_LEN = 7
FIRST_SEGMENT = 4
NUM_CHOICES = 3
#: The last row of a batch is padded over its final PADDED positions.
PADDED = 2


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Seeded token ids for a two-segment text (``token_type_ids`` 0 then 1; the last row padded when
    ``batch_size > 1``) and, with ``labels``, what the head's loss takes."""
    import torch

    from plugformers_bert import modeling_bert as m

    g = torch.Generator().manual_seed(0)
    choice = issubclass(model_class, m.BertForMultipleChoice)
    shape = (batch_size, NUM_CHOICES, SEQ_LEN) if choice else (batch_size, SEQ_LEN)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    mask = torch.ones(shape, dtype=torch.long)
    if batch_size > 1:
        mask[-1, ..., SEQ_LEN - PADDED :] = 0
    ids = torch.randint(1, config.vocab_size, shape, generator=g).masked_fill(mask == 0, pad)
    types = torch.zeros(shape, dtype=torch.long)
    if config.type_vocab_size > 1:
        types[..., FIRST_SEGMENT:] = 1
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types * mask}
    if not labels:
        return inputs
    per_example = (batch_size,)
    if issubclass(model_class, (m.BertForMaskedLM, m.BertForPreTraining)):
        inputs["labels"] = torch.randint(0, config.vocab_size, shape, generator=g).masked_fill(mask == 0, -100)
    if issubclass(model_class, m.BertForPreTraining):
        inputs["next_sentence_label"] = torch.randint(0, 2, per_example, generator=g)
    elif issubclass(model_class, m.BertForNextSentencePrediction):
        inputs["labels"] = torch.randint(0, 2, per_example, generator=g)
    elif issubclass(model_class, m.BertForTokenClassification):
        inputs["labels"] = torch.randint(0, config.num_labels, shape, generator=g).masked_fill(mask == 0, -100)
    elif issubclass(model_class, m.BertForSequenceClassification):
        inputs["labels"] = torch.randint(0, config.num_labels, per_example, generator=g)
    elif issubclass(model_class, m.BertForQuestionAnswering):
        inputs["start_positions"] = torch.randint(0, SEQ_LEN - PADDED, per_example, generator=g)
        inputs["end_positions"] = inputs["start_positions"] + 1
    elif choice:
        inputs["labels"] = torch.randint(0, NUM_CHOICES, per_example, generator=g)
    return inputs


def tiny_vocabulary() -> list[str]:
    """A WordPiece vocabulary that spells any lowercase English text: the five specials, then every letter and
    digit as a word start and as a ``##`` continuation, then punctuation (so no word is unknown)."""
    pieces = string.ascii_lowercase + string.digits
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces, *("##" + p for p in pieces), *string.punctuation]


def example_preprocessor(config: Any) -> Any:
    """A fast tokenizer over :func:`tiny_vocabulary` (its ids fit any config with ``vocab_size`` >= 109)."""
    from plugformers_bert.tokenization_bert_fast import BertTokenizerFast

    vocab = tiny_vocabulary()
    if len(vocab) > config.vocab_size:
        raise ValueError(f"the example vocabulary has {len(vocab)} tokens, more than vocab_size={config.vocab_size}.")
    with tempfile.TemporaryDirectory(prefix="plugformers-bert-vocab-") as tmp:
        path = Path(tmp) / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        return BertTokenizerFast(vocab_file=str(path))
