"""Data collators: turn a list of examples into one batch for ``DataLoader(..., collate_fn=...)``.

The class names, arguments and outputs are those of the reference library's collators, so fine-tuning
code that builds them ports unchanged. Examples are dicts (a tokenizer's output, a row of a
``datasets.Dataset`` in any format) or, for masked language modelling, bare sequences of token ids.
Batches come back as torch tensors (``return_tensors="pt"``) or NumPy arrays (``"np"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from plugformers.tokenization_utils_base import PaddingStrategy, PreTrainedTokenizerBase

__all__ = [
    "DataCollatorForLanguageModeling",
    "DataCollatorForTokenClassification",
    "DataCollatorWithPadding",
    "DefaultDataCollator",
    "default_data_collator",
]

IGNORE_INDEX = -100
"""The label value that the models' cross-entropy losses skip (padding, unmasked tokens)."""

_TENSOR_TYPES = ("pt", "np")


def _check_return_tensors(value: Any) -> str:
    if value not in _TENSOR_TYPES:
        raise ValueError(f"return_tensors must be one of {list(_TENSOR_TYPES)}, got {value!r}.")
    return str(value)


def _check_tokenizer(tokenizer: Any, collator: str) -> None:
    if not callable(getattr(tokenizer, "pad", None)):
        raise TypeError(f"{collator} needs a tokenizer (something with a pad() method), got {type(tokenizer).__name__}.")


def _rows(features: Sequence[Any], collator: str) -> list[Mapping[str, Any]]:
    """The examples as mappings (objects such as dataclasses give their attributes); refuses an empty batch."""
    if not isinstance(features, Sequence) or isinstance(features, (str, bytes)) or not features:
        raise ValueError(f"{collator} needs a non-empty list of examples, got {features!r}.")
    return [row if isinstance(row, Mapping) else vars(row) for row in features]


def _to_list(value: Any) -> Any:
    return value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else value


def _to_numpy(batch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _stack(values: list[Any], return_tensors: str) -> Any:
    """One array from one key's values across the batch, keeping the element type of arrays that come in."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        stacked = torch.stack(values)
        return stacked if return_tensors == "pt" else stacked.numpy()
    if isinstance(first, np.ndarray):
        array = np.stack(values)
        return torch.from_numpy(array) if return_tensors == "pt" else array
    return torch.tensor(values) if return_tensors == "pt" else np.array(values)


def _label_array(values: list[Any], return_tensors: str) -> Any:
    """Labels as int64 when the first one is an integer, float32 otherwise (a regression target)."""
    values = [_to_list(v) for v in values]
    probe = values[0]
    while isinstance(probe, list) and probe:
        probe = probe[0]
    integer = isinstance(probe, (int, np.integer)) and not isinstance(probe, bool)
    if return_tensors == "pt":
        return torch.tensor(values, dtype=torch.long if integer else torch.float32)
    return np.array(values, dtype=np.int64 if integer else np.float32)


def default_data_collator(features: Sequence[Any], return_tensors: str = "pt") -> dict[str, Any]:
    """Stack examples whose values already have equal shapes (no padding).

    ``label`` or, failing that, ``label_ids`` becomes ``labels`` (int64 for integers, float32 otherwise);
    every other key is stacked as it is, and keys holding ``None`` or strings are left out.
    """
    return_tensors = _check_return_tensors(return_tensors)
    rows = _rows(features, "default_data_collator")
    first = rows[0]
    batch: dict[str, Any] = {}
    for label_key in ("label", "label_ids"):
        if first.get(label_key) is not None:
            batch["labels"] = _label_array([row[label_key] for row in rows], return_tensors)
            break
    for key, value in first.items():
        if key in ("label", "label_ids") or value is None or isinstance(value, str):
            continue
        batch[key] = _stack([row[key] for row in rows], return_tensors)
    return batch


@dataclass
class DefaultDataCollator:
    """:func:`default_data_collator` as an object, with the tensor type chosen once."""

    return_tensors: str = "pt"

    def __call__(self, features: Sequence[Any], return_tensors: str | None = None) -> dict[str, Any]:
        return default_data_collator(features, return_tensors or self.return_tensors)


def _rename_labels(batch: dict[str, Any]) -> dict[str, Any]:
    """The models take ``labels``; datasets often call the column ``label`` or ``label_ids``."""
    for key in ("label", "label_ids"):
        if key in batch:
            if "labels" in batch:
                raise ValueError(f"The examples hold both {key!r} and 'labels'; keep one of them.")
            batch["labels"] = batch.pop(key)
    return batch


def _pad(collator: Any, rows: Sequence[Mapping[str, Any]], return_tensors: str) -> dict[str, Any]:
    """``rows`` padded by the collator's tokenizer with its padding settings."""
    batch = collator.tokenizer.pad(
        rows,
        padding=collator.padding,
        max_length=collator.max_length,
        pad_to_multiple_of=collator.pad_to_multiple_of,
        return_tensors=return_tensors,
    )
    return dict(batch)


@dataclass
class DataCollatorWithPadding:
    """Pad tokenized examples to one length with the tokenizer's ``pad()``.

    ``padding``, ``max_length`` and ``pad_to_multiple_of`` mean what they mean to the tokenizer
    (``True``/``"longest"``: the longest example; ``"max_length"``: ``max_length``). A ``label`` or
    ``label_ids`` column comes back as ``labels``.
    """

    tokenizer: PreTrainedTokenizerBase
    padding: bool | str | PaddingStrategy = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        _check_tokenizer(self.tokenizer, type(self).__name__)
        _check_return_tensors(self.return_tensors)

    def __call__(self, features: Sequence[Any]) -> dict[str, Any]:
        return _rename_labels(_pad(self, _rows(features, type(self).__name__), self.return_tensors))


def _pad_rows(rows: list[list[int]], length: int, value: int, side: str) -> list[list[int]]:
    return [[value] * (length - len(r)) + r if side == "left" else r + [value] * (length - len(r)) for r in rows]


@dataclass
class DataCollatorForTokenClassification:
    """Pad tokenized examples and their per-token labels (``labels`` or ``label``) to one length.

    Labels are padded with ``label_pad_token_id`` (-100, which the losses skip) on the tokenizer's
    padding side, so each label stays aligned with its token.
    """

    tokenizer: PreTrainedTokenizerBase
    padding: bool | str | PaddingStrategy = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = IGNORE_INDEX
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        _check_tokenizer(self.tokenizer, type(self).__name__)
        _check_return_tensors(self.return_tensors)

    def __call__(self, features: Sequence[Any]) -> dict[str, Any]:
        rows = _rows(features, type(self).__name__)
        label_key = "label" if "label" in rows[0] else "labels"
        labels = [_to_list(row[label_key]) for row in rows] if label_key in rows[0] else None
        inputs = [{k: v for k, v in row.items() if k != label_key} for row in rows]
        batch = _pad(self, inputs, "pt")
        if labels is not None:
            main = self.tokenizer.model_input_names[0]
            length = batch[main].shape[1]
            if any(len(row) > length for row in labels):
                raise ValueError(
                    f"An example has more labels than tokens ({max(map(len, labels))} > {length}); "
                    "token classification needs one label per token."
                )
            padded = _pad_rows(labels, length, self.label_pad_token_id, self.tokenizer.padding_side)
            batch[label_key] = torch.tensor(padded, dtype=torch.long)
        return batch if self.return_tensors == "pt" else _to_numpy(batch)


@dataclass
class DataCollatorForLanguageModeling:
    """Batches for language-model training: masked (``mlm=True``) or next-token (``mlm=False``).

    With ``mlm=True`` each token that is neither special nor padding is picked with probability
    ``mlm_probability``; a picked token becomes the mask token with probability ``mask_replace_prob``,
    a random token with probability ``random_replace_prob``, and stays as it is otherwise (the usual
    80/10/10 rule). ``labels`` hold the original ids at picked positions and -100 elsewhere.
    ``whole_word_mask=True`` picks words instead, each with probability ``mlm_probability``, and masks
    every token of a picked word, always with the mask token (as the reference does: a word half replaced by
    random pieces would tell the model where it ends). Words come from the examples' ``offset_mapping``
    (tokenize with ``return_offsets_mapping=True``): a token whose text starts where the previous one's ends
    continues its word. With
    ``mlm=False``, ``labels`` are the inputs with -100 at padding (the model shifts them itself).
    ``seed`` makes the masking reproducible: a collator with the same seed gives the same batches
    in the same order (each DataLoader worker adds its worker id to the seed).
    """

    tokenizer: PreTrainedTokenizerBase
    mlm: bool = True
    whole_word_mask: bool = False
    mlm_probability: float | None = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    seed: int | None = None
    _generator: torch.Generator | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_tokenizer(self.tokenizer, type(self).__name__)
        _check_return_tensors(self.return_tensors)
        if self.whole_word_mask:
            if not self.mlm:
                raise ValueError("whole_word_mask=True masks words for masked language modelling; it needs mlm=True.")
            if self.mask_replace_prob != 1 or self.random_replace_prob != 0:
                warnings.warn(
                    "whole_word_mask=True replaces every token of a picked word with the mask token: "
                    f"mask_replace_prob={self.mask_replace_prob} and random_replace_prob={self.random_replace_prob} "
                    "become 1 and 0.",
                    UserWarning,
                    stacklevel=3,
                )
                self.mask_replace_prob, self.random_replace_prob = 1.0, 0.0
        if self.mlm and self.tokenizer.mask_token is None:
            raise ValueError(
                "mlm=True needs a tokenizer with a mask token, and this one has none; "
                "set tokenizer.mask_token or pass mlm=False for next-token labels."
            )
        for name in ("mlm_probability", "mask_replace_prob", "random_replace_prob"):
            value = getattr(self, name)
            if value is None and name == "mlm_probability" and not self.mlm:
                continue
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}.")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob must not exceed 1, got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}."
            )

    def _rng(self) -> torch.Generator | None:
        """The collator's own generator when seeded (offset by the DataLoader worker id), else torch's global one."""
        if self.seed is None:
            return None
        if self._generator is None:
            info = torch.utils.data.get_worker_info()
            self._generator = torch.Generator().manual_seed(self.seed + (info.id if info is not None else 0))
        return self._generator

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        if not isinstance(examples, Sequence) or not examples:
            raise ValueError(f"{type(self).__name__} needs a non-empty list of examples, got {examples!r}.")
        offsets = self._offsets(examples) if self.whole_word_mask else None
        if isinstance(examples[0], Mapping):
            rows = list(examples)
            if offsets is not None:  # offsets are read above; the tokenizer pads only what the model takes
                rows = [{k: v for k, v in e.items() if k != "offset_mapping"} for e in rows]
            batch = dict(self.tokenizer.pad(rows, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"))
        else:
            batch = {"input_ids": self._pad_ids(examples)}
        special = batch.pop("special_tokens_mask", None)
        if offsets is not None:
            batch["input_ids"], batch["labels"] = self._mask_words(batch["input_ids"], special, offsets)
        elif self.mlm:
            batch["input_ids"], batch["labels"] = self.torch_mask_tokens(batch["input_ids"], special)
        else:
            labels = batch["input_ids"].clone()
            if self.tokenizer.pad_token_id is not None:
                labels[labels == self.tokenizer.pad_token_id] = IGNORE_INDEX
            batch["labels"] = labels
        return batch if self.return_tensors == "pt" else _to_numpy(batch)

    def _offsets(self, examples: Sequence[Any]) -> list[list[tuple[int, int]]]:
        """Each example's ``(start, end)`` character span per token, for whole-word masking."""
        if not all(isinstance(e, Mapping) and "offset_mapping" in e for e in examples):
            raise ValueError(
                "whole_word_mask=True finds words from each example's offset_mapping, and these examples have "
                "none: tokenize them with return_offsets_mapping=True (a fast tokenizer)."
            )
        spans = []
        for e in examples:
            offsets = _to_list(e["offset_mapping"])
            if len(offsets) != len(_to_list(e["input_ids"])):
                raise ValueError(
                    f"An example has {len(offsets)} offsets for {len(_to_list(e['input_ids']))} tokens; "
                    "offset_mapping must hold one (start, end) pair per token."
                )
            spans.append([(int(a), int(b)) for a, b in offsets])
        return spans

    def _mask_words(
        self, inputs: torch.Tensor, special_tokens_mask: Any, offsets: list[list[tuple[int, int]]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked copies of ``inputs`` and their labels, whole words at a time (see the class docstring)."""
        probability = self._probability()
        labels = inputs.clone()
        words = torch.full(inputs.shape, -1, dtype=torch.long)  # each token's word number in its row; -1: none
        for row, spans in enumerate(offsets):
            shift = inputs.shape[1] - len(spans) if self.tokenizer.padding_side == "left" else 0
            count, end = -1, -1
            for i, (start, stop) in enumerate(spans):
                if stop <= start:  # a special token (empty span): the next token starts a new word
                    end = -1
                    continue
                if start != end:
                    count += 1
                words[row, shift + i] = count
                end = stop
        words[self._special(labels, special_tokens_mask)] = -1
        draws = torch.bernoulli(torch.full(inputs.shape, probability), generator=self._rng()).bool()
        picked = (words >= 0) & draws.gather(1, words.clamp(min=0))  # one draw per word
        labels[~picked] = IGNORE_INDEX
        inputs = inputs.clone()
        inputs[picked] = self.tokenizer.mask_token_id
        return inputs, labels

    def _probability(self) -> float:
        """How often a token (or a word) is picked: ``mlm_probability``, 0.15 when it is None."""
        return float(self.mlm_probability) if self.mlm_probability is not None else 0.15

    def _special(self, labels: torch.Tensor, special_tokens_mask: Any) -> torch.Tensor:
        """Special tokens and padding: never masked."""
        if special_tokens_mask is None:
            special = torch.tensor(
                [self.tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True) for row in labels.tolist()],
                dtype=torch.bool,
            )
        else:
            special = torch.as_tensor(special_tokens_mask).bool()
        if self.tokenizer.pad_token_id is not None:
            special |= labels == self.tokenizer.pad_token_id
        return special

    def _pad_ids(self, examples: Sequence[Any]) -> torch.Tensor:
        rows = [_to_list(e) for e in examples]
        length = max(len(r) for r in rows)
        multiple = self.pad_to_multiple_of
        if multiple and length % multiple:
            length += multiple - length % multiple
        if any(len(r) != length for r in rows):
            pad_id = self.tokenizer.pad_token_id
            if pad_id is None:
                raise ValueError(
                    "The examples have different lengths and the tokenizer has no pad token to pad them with; "
                    "set tokenizer.pad_token."
                )
            rows = _pad_rows(rows, length, pad_id, self.tokenizer.padding_side)
        return torch.tensor(rows, dtype=torch.long)

    def torch_mask_tokens(
        self, inputs: torch.Tensor, special_tokens_mask: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked copies of ``inputs`` and their labels, by the rule in the class docstring."""
        probability = self._probability()
        generator = self._rng()
        inputs = inputs.clone()
        labels = inputs.clone()
        special = self._special(labels, special_tokens_mask)
        chance = torch.full(labels.shape, probability).masked_fill_(special, 0.0)
        picked = torch.bernoulli(chance, generator=generator).bool()
        labels[~picked] = IGNORE_INDEX
        to_mask = torch.bernoulli(torch.full(labels.shape, self.mask_replace_prob), generator=generator).bool() & picked
        inputs[to_mask] = self.tokenizer.mask_token_id
        rest = 1.0 - self.mask_replace_prob
        if rest > 0 and self.random_replace_prob > 0:
            share = min(self.random_replace_prob / rest, 1.0)
            to_random = torch.bernoulli(torch.full(labels.shape, share), generator=generator).bool()
            to_random &= picked & ~to_mask
            words = torch.randint(len(self.tokenizer), labels.shape, dtype=torch.long, generator=generator)
            inputs[to_random] = words[to_random]
        return inputs, labels

