"""What every tokenizer shares, whichever backend does the splitting.

:class:`PreTrainedTokenizerBase` owns the user-facing surface: ``__call__`` (single texts, pairs, batches,
pre-split words), padding and truncation options, special tokens and their ids, ``pad`` for data
collators, ``decode``, and saving/loading ``tokenizer_config.json`` / ``special_tokens_map.json`` in the
reference library's layout. The two backends (:mod:`plugformers.tokenization_utils`, pure Python, and
:mod:`plugformers.tokenization_utils_fast`, the ``tokenizers`` library) fill in the encoding itself.

This module must not import ``tokenizers`` or ``torch`` at import time.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, NamedTuple, TypeVar, Union, overload

import numpy as np

from plugformers.utils.hub import HubOptions, PushToHubMixin, folder_state, resolve_file
from plugformers.utils.io import atomic_directory, atomic_write_text, write_json
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import (
    ADDED_TOKENS_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
)

logger = get_logger(__name__)

__all__ = [
    "ADDED_TOKENS_FILE",
    "SPECIAL_TOKENS_MAP_FILE",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "VERY_LARGE_INTEGER",
    "AddedToken",
    "BatchEncoding",
    "CharSpan",
    "PaddingStrategy",
    "PreTrainedTokenizerBase",
    "TensorType",
    "TokenSpan",
    "TruncationStrategy",
]

# What the reference library stores as "no limit" in tokenizer_config.json (int(1e30)).
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)


TextInput = str
PreTokenizedInput = list[str]
EncodedInput = list[int]
TextOrPair = Union[str, tuple[str, str], list[str]]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class AddedToken:
    """A token added on top of the model vocabulary, with its matching options.

    ``normalized`` says whether it is matched on normalized (e.g. lowercased) text; ``special`` marks
    tokens that ``skip_special_tokens`` removes when decoding.
    """

    __slots__ = ("content", "lstrip", "normalized", "rstrip", "single_word", "special")

    def __init__(
        self,
        content: str,
        single_word: bool = False,
        lstrip: bool = False,
        rstrip: bool = False,
        normalized: bool | None = None,
        special: bool = False,
    ) -> None:
        if not isinstance(content, str):
            raise TypeError(f"AddedToken content must be a str, got {type(content).__name__}.")
        self.content = content
        self.single_word = bool(single_word)
        self.lstrip = bool(lstrip)
        self.rstrip = bool(rstrip)
        self.special = bool(special)
        self.normalized = (not self.special) if normalized is None else bool(normalized)

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        return (
            f'AddedToken("{self.content}", rstrip={self.rstrip}, lstrip={self.lstrip}, '
            f"single_word={self.single_word}, normalized={self.normalized}, special={self.special})"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AddedToken):
            return self.__getstate__() == other.__getstate__()
        if isinstance(other, str):
            return self.content == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.content)

    def __getstate__(self) -> dict[str, Any]:
        """The JSON form used in ``added_tokens_decoder``."""
        return {
            "content": self.content,
            "lstrip": self.lstrip,
            "normalized": self.normalized,
            "rstrip": self.rstrip,
            "single_word": self.single_word,
            "special": self.special,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in self.__slots__:
            setattr(self, key, state[key])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AddedToken:
        """Build from a saved dict (``added_tokens_decoder`` entries, tokenizer.json ``added_tokens``)."""
        if "content" not in data:
            raise ValueError(f"An added-token entry needs a 'content' field, got {dict(data)!r}.")
        return cls(
            data["content"],
            single_word=data.get("single_word", False),
            lstrip=data.get("lstrip", False),
            rstrip=data.get("rstrip", False),
            normalized=data.get("normalized"),
            special=data.get("special", False),
        )


_E = TypeVar("_E", bound="_StrEnum")


class _StrEnum(str, Enum):
    @classmethod
    def parse(cls: type[_E], value: Any, what: str) -> _E:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{value!r} is not a valid {what}; choose one of {allowed}.") from None


class PaddingStrategy(_StrEnum):
    """How ``__call__``/``pad`` pad: to the longest sequence, to ``max_length``, or not at all."""

    LONGEST = "longest"
    MAX_LENGTH = "max_length"
    DO_NOT_PAD = "do_not_pad"


class TruncationStrategy(_StrEnum):
    """Which sequence of a pair loses tokens when the input is too long."""

    ONLY_FIRST = "only_first"
    ONLY_SECOND = "only_second"
    LONGEST_FIRST = "longest_first"
    DO_NOT_TRUNCATE = "do_not_truncate"


class TensorType(_StrEnum):
    """The array types ``return_tensors`` can produce."""

    PYTORCH = "pt"
    NUMPY = "np"


def _is_tensor_like(value: Any) -> bool:
    return hasattr(value, "tolist") and not isinstance(value, (list, tuple))


def _to_py(value: Any) -> Any:
    """Tensors/arrays to (nested) Python lists, leaving lists alone."""
    if _is_tensor_like(value):
        return value.tolist()
    return value


def _tensor_type_of(value: Any) -> TensorType | None:
    """``np`` for numpy arrays and scalars, ``pt`` for torch tensors, None for Python values."""
    if isinstance(value, (np.ndarray, np.generic)):
        return TensorType.NUMPY
    if _is_tensor_like(value) and type(value).__module__.split(".")[0] == "torch":
        return TensorType.PYTORCH
    return None


def _as_tensor(value: Any, tensor_type: TensorType, key: str) -> Any:
    if tensor_type is TensorType.NUMPY:
        if isinstance(value, np.ndarray):
            return value
        try:
            return np.asarray(value, dtype=np.int64) if _is_int_nested(value) else np.asarray(value)
        except ValueError as exc:
            raise ValueError(
                f"Cannot make a rectangular array of {key!r}: the sequences have different lengths. "
                "Pass padding=True (and truncation=True) to get equal lengths."
            ) from exc
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if not isinstance(value, np.ndarray):
        value = _as_tensor(value, TensorType.NUMPY, key)
    if value.dtype == object:
        raise ValueError(
            f"Cannot make a tensor of {key!r}: the sequences have different lengths. "
            "Pass padding=True (and truncation=True) to get equal lengths."
        )
    return torch.from_numpy(np.ascontiguousarray(value))


def _is_int_nested(value: Any) -> bool:
    while isinstance(value, (list, tuple)):
        if not value:
            return True
        value = value[0]
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class CharSpan(NamedTuple):
    """Characters ``start`` (inclusive) to ``end`` (exclusive) of the original text."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Tokens ``start`` (inclusive) to ``end`` (exclusive) of an encoded row."""

    start: int
    end: int


class BatchEncoding(dict):
    """The result of encoding: a dict (``input_ids``, ``attention_mask``, ...) with attribute access.

    On the fast backend, ``encodings`` holds the ``tokenizers.Encoding`` of every row, which gives
    ``tokens(i)``, ``word_ids(i)`` and ``sequence_ids(i)``.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        encoding: Any = None,
        tensor_type: str | TensorType | None = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
    ) -> None:
        super().__init__(data or {})
        if encoding is not None and not isinstance(encoding, list):
            encoding = [encoding]
        self._encodings = encoding
        if n_sequences is None and encoding:
            n_sequences = encoding[0].n_sequences
        self._n_sequences = n_sequences
        self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    @property
    def n_sequences(self) -> int | None:
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    @property
    def encodings(self) -> list[Any] | None:
        """The ``tokenizers.Encoding`` of each row (fast backend), else None."""
        return self._encodings

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return super().__getitem__(item)
        if isinstance(item, int):
            if self._encodings is None:
                raise KeyError(
                    "Indexing a BatchEncoding by an integer returns a tokenizers.Encoding and needs a fast "
                    "tokenizer; use a key such as 'input_ids'."
                )
            return self._encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(f"Invalid BatchEncoding key {item!r}: use a str key or an int row index.")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no attribute or key {name!r}.") from None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": dict(self), "encodings": self._encodings, "n_sequences": self._n_sequences}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state["data"])
        self._encodings = state["encodings"]
        self._n_sequences = state["n_sequences"]

    def _encoding(self, batch_index: int, what: str) -> Any:
        if self._encodings is None:
            raise ValueError(f"{what}() needs a fast tokenizer (PreTrainedTokenizerFast); this came from a Python one.")
        if not -len(self._encodings) <= batch_index < len(self._encodings):
            raise IndexError(f"Batch index {batch_index} is out of range for {len(self._encodings)} rows.")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of row ``batch_index``."""
        return list(self._encoding(batch_index, "tokens").tokens)

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row ``batch_index``, the index of the word it came from (None for special tokens)."""
        return list(self._encoding(batch_index, "word_ids").word_ids)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token, 0/1 for the first/second sequence of a pair, None for special tokens."""
        return list(self._encoding(batch_index, "sequence_ids").sequence_ids)

    # The position helpers below take (index) for row 0 or (batch_index, index), as the reference does.
    def _token_at(self, batch_index: int, token_index: int | None, what: str) -> tuple[Any, int]:
        """The row's Encoding and the token index, counted from the row's end when negative."""
        if token_index is None:
            batch_index, token_index = 0, batch_index
        encoding = self._encoding(batch_index, what)
        if token_index < 0:
            token_index += len(encoding)
        if token_index < 0:
            raise IndexError(f"Token index {token_index - len(encoding)} is out of range for a row of {len(encoding)} tokens.")
        return encoding, token_index

    def token_to_word(self, batch_index: int, token_index: int | None = None) -> int | None:
        """The index of the word (in its own sequence) that a token came from; None for special tokens."""
        encoding, token_index = self._token_at(batch_index, token_index, "token_to_word")
        return encoding.token_to_word(token_index)

    def token_to_sequence(self, batch_index: int, token_index: int | None = None) -> int | None:
        """0 or 1: which sequence of the input a token belongs to; None for special tokens."""
        encoding, token_index = self._token_at(batch_index, token_index, "token_to_sequence")
        return encoding.token_to_sequence(token_index)

    def token_to_chars(self, batch_index: int, token_index: int | None = None) -> CharSpan | None:
        """The characters of its own text that a token covers; None for special tokens."""
        encoding, token_index = self._token_at(batch_index, token_index, "token_to_chars")
        span = encoding.token_to_chars(token_index)
        return None if span is None else CharSpan(*span)

    def word_to_tokens(
        self, batch_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        """The tokens a word of sequence ``sequence_index`` became; None if no token comes from that word."""
        if word_index is None:
            batch_index, word_index = 0, batch_index
        span = self._encoding(batch_index, "word_to_tokens").word_to_tokens(word_index, sequence_index)
        return None if span is None else TokenSpan(*span)

    def word_to_chars(
        self, batch_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan | None:
        """The characters of a word of sequence ``sequence_index``; None if there is no such word."""
        if word_index is None:
            batch_index, word_index = 0, batch_index
        span = self._encoding(batch_index, "word_to_chars").word_to_chars(word_index, sequence_index)
        return None if span is None else CharSpan(*span)

    def char_to_token(self, batch_index: int, char_index: int | None = None, sequence_index: int = 0) -> int | None:
        """The token covering a character of sequence ``sequence_index``; None for spaces and dropped characters."""
        if char_index is None:
            batch_index, char_index = 0, batch_index
        return self._encoding(batch_index, "char_to_token").char_to_token(char_index, sequence_index)

    def char_to_word(self, batch_index: int, char_index: int | None = None, sequence_index: int = 0) -> int | None:
        """The word holding a character of sequence ``sequence_index``; None for spaces and dropped characters."""
        if char_index is None:
            batch_index, char_index = 0, batch_index
        return self._encoding(batch_index, "char_to_word").char_to_word(char_index, sequence_index)

    def convert_to_tensors(
        self, tensor_type: str | TensorType | None = None, prepend_batch_axis: bool = False
    ) -> BatchEncoding:
        """Turn every value into a numpy array or torch tensor (``"np"`` / ``"pt"``) in place."""
        if tensor_type is None:
            return self
        tensor_type = TensorType.parse(tensor_type, "return_tensors value")
        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            self[key] = _as_tensor(value, tensor_type, key)
        return self

    def to(self, device: Any, non_blocking: bool = False) -> BatchEncoding:
        """Move the torch tensors to ``device`` (other values are kept as they are)."""
        import torch

        if not isinstance(device, (str, int, torch.device)):
            raise TypeError(f"BatchEncoding.to() takes a device (str, int or torch.device), got {type(device).__name__}.")
        for key, value in list(self.items()):
            if isinstance(value, torch.Tensor):
                self[key] = value.to(device=device, non_blocking=non_blocking)
        return self


def _check_text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a str, got {type(value).__name__}.")


def clean_lone_surrogates(text: str) -> str:
    """Replace unpaired UTF-16 surrogates (which cannot be encoded as UTF-8) by U+FFFD.

    Both backends do this, so they agree; the replacement keeps character offsets unchanged.
    """
    if _LONE_SURROGATE.search(text) is None:
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


class PreTrainedTokenizerBase(PushToHubMixin):
    """The backend-independent part of every tokenizer (see the module docstring)."""

    vocab_files_names: ClassVar[dict[str, str]] = {}
    # The class default; __init__ gives each instance its own copy (overridable with model_input_names=...).
    # As in the reference v5: token_type_ids only where a family asks for them.
    model_input_names: list[str] = ["input_ids", "attention_mask"]
    padding_side: str = "right"
    truncation_side: str = "right"
    slow_tokenizer_class: ClassVar[Any] = None
    _auto_class: ClassVar[str | None] = None
    is_fast: ClassVar[bool] = False

    SPECIAL_TOKENS_ATTRIBUTES: ClassVar[list[str]] = [
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
        "additional_special_tokens",
    ]

    def __init__(self, **kwargs: Any) -> None:
        self.init_inputs: tuple[Any, ...] = ()
        self.init_kwargs = copy.deepcopy({k: v for k, v in kwargs.items() if k != "added_tokens_decoder"})
        self.name_or_path = str(kwargs.pop("name_or_path", ""))
        model_max_length = kwargs.pop("model_max_length", None)
        self.model_max_length = int(model_max_length) if model_max_length is not None else VERY_LARGE_INTEGER
        padding_side = kwargs.pop("padding_side", type(self).padding_side)
        truncation_side = kwargs.pop("truncation_side", type(self).truncation_side)
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("left", "right"):
                raise ValueError(f"{name} must be 'left' or 'right', got {side!r}.")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        names = kwargs.pop("model_input_names", None)
        self.model_input_names = list(names) if names is not None else list(type(self).model_input_names)
        self.clean_up_tokenization_spaces = bool(kwargs.pop("clean_up_tokenization_spaces", False))
        self._split_special_tokens = bool(kwargs.pop("split_special_tokens", False))
        self._warned_too_long = False
        self._special_tokens: dict[str, str | AddedToken | None] = dict.fromkeys(self.SPECIAL_TOKENS_ATTRIBUTES[:-1])
        self._additional_special_tokens: list[str | AddedToken] = []
        for key in self.SPECIAL_TOKENS_ATTRIBUTES:
            if key in kwargs and kwargs[key] is not None:
                setattr(self, key, kwargs.pop(key))
            else:
                kwargs.pop(key, None)
        extra = kwargs.pop("extra_special_tokens", None)
        if extra:
            values = extra.values() if isinstance(extra, Mapping) else extra
            for tok in values:
                if str(tok) not in [str(t) for t in self._additional_special_tokens]:
                    self._additional_special_tokens.append(tok)
        # Unknown keywords (from newer configs, or family options) are kept for saving, not rejected.
        for key in ("tokenizer_class", "auto_map", "backend", "processor_class", "tokenizer_file", "name_or_path"):
            kwargs.pop(key, None)
        self._unused_init_kwargs = kwargs

    @property
    def split_special_tokens(self) -> bool:
        """Whether special tokens written in the text are split like ordinary text instead of matched whole."""
        return self._split_special_tokens

    @split_special_tokens.setter
    def split_special_tokens(self, value: bool) -> None:
        self._split_special_tokens = bool(value)
        self._on_split_special_tokens_set()

    def _on_split_special_tokens_set(self) -> None:
        """Hook for backends that keep their own copy of ``split_special_tokens`` (no-op here)."""

    # ----------------------------------------------------------------- lengths
    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # ----------------------------------------------------------------- special tokens
    def _get_special(self, name: str) -> str | None:
        value = self._special_tokens.get(name)
        return None if value is None else str(value)

    def _set_special(self, name: str, value: str | AddedToken | None) -> None:
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise TypeError(f"{name} must be a str or AddedToken, got {type(value).__name__}.")
        self._special_tokens[name] = value
        self._on_special_token_set(value)

    def _on_special_token_set(self, value: str | AddedToken | None) -> None:
        """Hook for backends that must register a newly set special token (no-op here)."""

    bos_token = property(lambda self: self._get_special("bos_token"), lambda self, v: self._set_special("bos_token", v))
    eos_token = property(lambda self: self._get_special("eos_token"), lambda self, v: self._set_special("eos_token", v))
    unk_token = property(lambda self: self._get_special("unk_token"), lambda self, v: self._set_special("unk_token", v))
    sep_token = property(lambda self: self._get_special("sep_token"), lambda self, v: self._set_special("sep_token", v))
    pad_token = property(lambda self: self._get_special("pad_token"), lambda self, v: self._set_special("pad_token", v))
    cls_token = property(lambda self: self._get_special("cls_token"), lambda self, v: self._set_special("cls_token", v))
    mask_token = property(
        lambda self: self._get_special("mask_token"), lambda self, v: self._set_special("mask_token", v)
    )

    @property
    def extra_special_tokens(self) -> list[str]:
        """Special tokens beyond the named ones (v5 name; ``additional_special_tokens`` is the same list)."""
        return [str(t) for t in self._additional_special_tokens]

    @extra_special_tokens.setter
    def extra_special_tokens(self, values: Iterable[str | AddedToken] | None) -> None:
        values = list(values or [])
        for v in values:
            if not isinstance(v, (str, AddedToken)):
                raise TypeError(f"extra_special_tokens entries must be str or AddedToken, got {type(v).__name__}.")
        self._additional_special_tokens = values
        for v in values:
            self._on_special_token_set(v)

    @property
    def additional_special_tokens(self) -> list[str]:
        """The v4 name of :attr:`extra_special_tokens`."""
        return self.extra_special_tokens

    @additional_special_tokens.setter
    def additional_special_tokens(self, values: Iterable[str | AddedToken] | None) -> None:
        self.extra_special_tokens = values

    def _token_id(self, token: str | None) -> int | None:
        return None if token is None else self.convert_tokens_to_ids(token)

    bos_token_id = property(lambda self: self._token_id(self.bos_token))
    eos_token_id = property(lambda self: self._token_id(self.eos_token))
    unk_token_id = property(lambda self: self._token_id(self.unk_token))
    sep_token_id = property(lambda self: self._token_id(self.sep_token))
    cls_token_id = property(lambda self: self._token_id(self.cls_token))
    mask_token_id = property(lambda self: self._token_id(self.mask_token))
    pad_token_type_id = 0

    @property
    def pad_token_id(self) -> int | None:
        return self._token_id(self.pad_token)

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(t) for t in self.extra_special_tokens]

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return self.extra_special_tokens_ids

    @property
    def special_tokens_map(self) -> dict[str, str | list[str]]:
        """The set special tokens as strings, keyed by attribute name."""
        out: dict[str, str | list[str]] = {}
        for name in self.SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            value = self._special_tokens.get(name)
            if value is not None:
                out[name] = str(value)
        if self._additional_special_tokens:
            out["additional_special_tokens"] = self.additional_special_tokens
        return out

    @property
    def special_tokens_map_extended(self) -> dict[str, Any]:
        """Like ``special_tokens_map`` but keeping :class:`AddedToken` objects."""
        out: dict[str, Any] = {}
        for name in self.SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            value = self._special_tokens.get(name)
            if value is not None:
                out[name] = value
        if self._additional_special_tokens:
            out["additional_special_tokens"] = list(self._additional_special_tokens)
        return out

    @property
    def all_special_tokens_extended(self) -> list[str | AddedToken]:
        seen: dict[str, str | AddedToken] = {}
        for name in self.SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            value = self._special_tokens.get(name)
            if value is not None and str(value) not in seen:
                seen[str(value)] = value
        for value in self._additional_special_tokens:
            if str(value) not in seen:
                seen[str(value)] = value
        return list(seen.values())

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token string once, in attribute order (bos, eos, unk, sep, pad, cls, mask, extras)."""
        return [str(t) for t in self.all_special_tokens_extended]

    @property
    def all_special_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    def add_special_tokens(
        self,
        special_tokens_dict: Mapping[str, str | AddedToken | Sequence[str | AddedToken]],
        replace_extra_special_tokens: bool = True,
        replace_additional_special_tokens: bool | None = None,
    ) -> int:
        """Set special tokens (``{"pad_token": "[PAD]", "extra_special_tokens": [...]}``).

        Tokens missing from the vocabulary are added; returns how many new ids were created. The v4 names
        ``additional_special_tokens`` / ``replace_additional_special_tokens`` still work. New ids follow the
        dict's order, except that an ``additional_special_tokens`` entry comes last, as in the reference.
        """
        if not isinstance(special_tokens_dict, Mapping):
            raise TypeError("add_special_tokens() takes a dict such as {'pad_token': '[PAD]'}.")
        replace = replace_extra_special_tokens if replace_additional_special_tokens is None else replace_additional_special_tokens
        allowed = [*self.SPECIAL_TOKENS_ATTRIBUTES[:-1], "extra_special_tokens", "additional_special_tokens"]
        items = [(k, v) for k, v in special_tokens_dict.items() if k != "additional_special_tokens"]
        if "additional_special_tokens" in special_tokens_dict:
            items.append(("additional_special_tokens", special_tokens_dict["additional_special_tokens"]))
        to_add: list[str | AddedToken] = []
        for key, value in items:
            if key not in allowed:
                raise ValueError(f"{key!r} is not a special-token attribute; use one of {', '.join(allowed)}.")
            if key in ("extra_special_tokens", "additional_special_tokens"):
                if isinstance(value, (str, AddedToken)) or not isinstance(value, Sequence):
                    raise TypeError(f"{key} must be a list of str or AddedToken.")
                values: list[str | AddedToken] = [self._as_special(v) for v in value]
                if replace:
                    new = values
                else:
                    known = set(self.additional_special_tokens)
                    new = list(self._additional_special_tokens) + [v for v in values if str(v) not in known]
                self._additional_special_tokens = new
                to_add.extend(values)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise TypeError(f"{key} must be a str or AddedToken, got {type(value).__name__}.")
                token = self._as_special(value)
                self._special_tokens[key] = token
                to_add.append(token)
        return self._add_tokens(to_add, special_tokens=True)

    @staticmethod
    def _as_special(value: str | AddedToken) -> AddedToken:
        if isinstance(value, AddedToken):
            if not value.special:
                value = copy.copy(value)
                value.special = True
            return value
        if not isinstance(value, str):
            raise TypeError(f"Special tokens must be str or AddedToken, got {type(value).__name__}.")
        return AddedToken(value, normalized=False, special=True)

    def add_tokens(self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False) -> int:
        """Add tokens to the vocabulary (those already known are skipped); returns how many were added."""
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
        for t in new_tokens:
            if not isinstance(t, (str, AddedToken)):
                raise TypeError(f"add_tokens() takes str or AddedToken values, got {type(t).__name__}.")
            if not str(t):
                raise ValueError("Cannot add an empty token.")
        return self._add_tokens(list(new_tokens), special_tokens=special_tokens)

    # ----------------------------------------------------------------- backend API (filled by subclasses)
    def _add_tokens(self, new_tokens: list[str | AddedToken], special_tokens: bool = False) -> int:
        raise NotImplementedError

    def get_vocab(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    # One token gives one id, a list or tuple of tokens a list. A str is itself a Sequence[str], so the general
    # Sequence case can only promise either.
    @overload
    def convert_tokens_to_ids(self, tokens: str) -> int: ...
    @overload
    def convert_tokens_to_ids(self, tokens: list[str] | tuple[str, ...]) -> list[int]: ...
    @overload
    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> int | list[int]: ...
    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        raise NotImplementedError

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        raise NotImplementedError

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any) -> list[str]:
        raise NotImplementedError

    def _encode_batch(
        self,
        batch: list[Any],
        *,
        is_pair: bool,
        add_special_tokens: bool,
        padding_strategy: PaddingStrategy,
        truncation_strategy: TruncationStrategy,
        max_length: int | None,
        stride: int,
        is_split_into_words: bool,
        pad_to_multiple_of: int | None,
        padding_side: str,
        return_tensors: TensorType | None,
        return_token_type_ids: bool,
        return_attention_mask: bool,
        return_overflowing_tokens: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
        return_length: bool,
        verbose: bool,
        batched: bool,
        split_special_tokens: bool,
    ) -> BatchEncoding:
        raise NotImplementedError

    def _decode(
        self, token_ids: list[int], skip_special_tokens: bool = False, **kwargs: Any
    ) -> str:
        raise NotImplementedError

    # ----------------------------------------------------------------- special-token layout (overridable)
    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """The model input for one sequence or a pair (the base adds no special tokens)."""
        if token_ids_1 is None:
            return list(token_ids_0)
        return list(token_ids_0) + list(token_ids_1)

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """Segment ids matching :meth:`build_inputs_with_special_tokens`."""
        if token_ids_1 is None:
            return [0] * len(token_ids_0)
        return [0] * len(token_ids_0) + [1] * len(token_ids_1)

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for special tokens, 0 for sequence tokens, for the ids that ``build_inputs_with_special_tokens`` would give."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "Pass only token_ids_0 when already_has_special_tokens=True (the ids already hold both sequences)."
                )
            special = set(self.all_special_ids)
            return [1 if i in special else 0 for i in token_ids_0]
        return [0] * len(self.build_inputs_with_special_tokens(list(token_ids_0), None if token_ids_1 is None else list(token_ids_1)))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens encoding one sequence (or a pair) adds."""
        return len(self.build_inputs_with_special_tokens([], [] if pair else None))

    # ----------------------------------------------------------------- strategies
    def _resolve_strategies(
        self,
        padding: bool | str | PaddingStrategy,
        truncation: bool | str | TruncationStrategy | None,
        max_length: int | None,
        pad_to_multiple_of: int | None,
        verbose: bool = True,
    ) -> tuple[PaddingStrategy, TruncationStrategy, int | None]:
        if padding is True:
            padding_strategy = PaddingStrategy.LONGEST
        elif padding is False or padding is None:
            padding_strategy = PaddingStrategy.DO_NOT_PAD
        else:
            padding_strategy = PaddingStrategy.parse(padding, "padding value")
        if truncation is None:
            # A bare max_length means "truncate" only when padding is off (False); with padding it is the pad target.
            truncation = max_length is not None and (padding is False or padding is None)
        if truncation is True:
            truncation_strategy = TruncationStrategy.LONGEST_FIRST
        elif truncation is False:
            truncation_strategy = TruncationStrategy.DO_NOT_TRUNCATE
        else:
            truncation_strategy = TruncationStrategy.parse(truncation, "truncation value")

        if max_length is None:
            if padding_strategy is PaddingStrategy.MAX_LENGTH or truncation_strategy is not TruncationStrategy.DO_NOT_TRUNCATE:
                if self.model_max_length >= LARGE_INTEGER:
                    if padding_strategy is PaddingStrategy.MAX_LENGTH:
                        raise ValueError(
                            "padding='max_length' needs a length to pad to, and this tokenizer has no "
                            "model_max_length: pass max_length=..., or padding=True to pad to the longest sequence."
                        )
                    truncation_strategy = TruncationStrategy.DO_NOT_TRUNCATE
                else:
                    max_length = self.model_max_length
        elif not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 0:
            raise ValueError(f"max_length must be a non-negative int, got {max_length!r}.")
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0:
                raise ValueError(
                    f"pad_to_multiple_of must be a positive int such as 8, got {pad_to_multiple_of!r}; "
                    "pass None to pad without rounding the length up."
                )
        if padding_strategy is not PaddingStrategy.DO_NOT_PAD and self.pad_token_id is None:
            raise ValueError(
                "This tokenizer has no pad token, so it cannot pad. Set one, e.g. "
                "tokenizer.pad_token = tokenizer.eos_token, or tokenizer.add_special_tokens({'pad_token': '[PAD]'})."
            )
        return padding_strategy, truncation_strategy, max_length

    # ----------------------------------------------------------------- encoding entry points
    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        text_target: Any = None,
        text_pair_target: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str | PaddingStrategy = False,
        truncation: bool | str | TruncationStrategy | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | TensorType | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Encode a text, a pair, a batch of texts or pairs, or pre-split words, into model inputs.

        ``split_special_tokens`` overrides the tokenizer's setting for this call.
        """
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__call__() got unexpected keyword arguments: {sorted(kwargs)}.")
        if text is None and text_target is None:
            raise ValueError("Pass `text` (and optionally `text_pair`) to encode.")
        common: dict[str, Any] = {
            "add_special_tokens": add_special_tokens,
            "padding": padding,
            "truncation": truncation,
            "max_length": max_length,
            "stride": stride,
            "is_split_into_words": is_split_into_words,
            "pad_to_multiple_of": pad_to_multiple_of,
            "padding_side": padding_side,
            "return_tensors": return_tensors,
            "return_token_type_ids": return_token_type_ids,
            "return_attention_mask": return_attention_mask,
            "return_overflowing_tokens": return_overflowing_tokens,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_offsets_mapping": return_offsets_mapping,
            "return_length": return_length,
            "verbose": verbose,
            "split_special_tokens": self.split_special_tokens if split_special_tokens is None else bool(split_special_tokens),
        }
        encodings = self._call_one(text, text_pair, **common) if text is not None else None
        if text_target is None:
            assert encodings is not None
            return encodings
        targets = self._call_one(text_target, text_pair_target, **common)
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _call_one(
        self,
        text: Any,
        text_pair: Any,
        *,
        is_split_into_words: bool,
        padding_side: str | None,
        return_tensors: str | TensorType | None,
        return_token_type_ids: bool | None,
        return_attention_mask: bool | None,
        stride: int,
        **kw: Any,
    ) -> BatchEncoding:
        batched = self._is_batched(text, is_split_into_words, "text")
        if text_pair is not None:
            pair_batched = self._is_batched(text_pair, is_split_into_words, "text_pair")
            if pair_batched != batched:
                raise ValueError("text and text_pair must both be single inputs or both be batches.")
            if batched and len(text) != len(text_pair):
                raise ValueError(
                    f"text has {len(text)} entries but text_pair has {len(text_pair)}; they must match."
                )
        if batched:
            items = list(text)
            if text_pair is not None:
                batch: list[Any] = [(a, b) for a, b in zip(items, text_pair)]
                is_pair = True
            elif items and all(isinstance(x, tuple) and len(x) == 2 for x in items) and not is_split_into_words:
                batch, is_pair = [tuple(x) for x in items], True
            elif is_split_into_words and items and all(
                isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], (list, tuple)) for x in items
            ):
                batch, is_pair = [tuple(x) for x in items], True
            else:
                batch, is_pair = items, False
        else:
            batch = [(text, text_pair)] if text_pair is not None else [text]
            is_pair = text_pair is not None
        for item in batch:
            for part in item if is_pair else (item,):
                self._validate_input(part, is_split_into_words)
        if not isinstance(stride, int) or stride < 0:
            raise ValueError(f"stride must be a non-negative int, got {stride!r}.")
        padding_strategy, truncation_strategy, max_length = self._resolve_strategies(
            kw.pop("padding"), kw.pop("truncation"), kw.pop("max_length"), kw["pad_to_multiple_of"], kw["verbose"]
        )
        n_special = self.num_special_tokens_to_add(pair=is_pair) if kw["add_special_tokens"] else 0
        if truncation_strategy is not TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None and max_length < n_special:
            raise ValueError(
                f"max_length={max_length} cannot hold the {n_special} special tokens this tokenizer adds, so no "
                f"truncation can reach it. Use max_length >= {n_special}, or add_special_tokens=False."
            )
        if truncation_strategy is not TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None and stride:
            # Checked up front, whatever the texts, as the fast backend (and the reference) do.
            room = max_length - self.num_special_tokens_to_add(pair=is_pair)
            if stride >= room:
                raise ValueError(
                    f"stride ({stride}) must be smaller than max_length ({max_length}) minus the "
                    f"{max_length - room} special tokens; use a smaller stride or a larger max_length."
                )
        if padding_side is None:
            padding_side = self.padding_side
        elif padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
        tensor_type = None if return_tensors is None else TensorType.parse(return_tensors, "return_tensors value")
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        return self._encode_batch(
            batch,
            is_pair=is_pair,
            padding_strategy=padding_strategy,
            truncation_strategy=truncation_strategy,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            padding_side=padding_side,
            return_tensors=tensor_type,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            batched=batched,
            **kw,
        )

    @staticmethod
    def _is_batched(value: Any, is_split_into_words: bool, name: str) -> bool:
        if isinstance(value, str):
            return False
        if isinstance(value, (list, tuple)):
            if is_split_into_words:
                return bool(value) and isinstance(value[0], (list, tuple))
            return True
        raise TypeError(
            f"{name} must be a str, a list of str, a list of (str, str) pairs, or (with is_split_into_words=True) "
            f"a list of words or a list of such lists; got {type(value).__name__}."
        )

    @staticmethod
    def _validate_input(value: Any, is_split_into_words: bool) -> None:
        if is_split_into_words:
            if not isinstance(value, (list, tuple)) or not all(isinstance(w, str) for w in value):
                raise TypeError("With is_split_into_words=True each input must be a list of str words.")
        elif not isinstance(value, str):
            if isinstance(value, (list, tuple)) and all(isinstance(i, int) for i in value):
                return  # already token ids
            raise TypeError(
                f"Each input must be a str (or a list of words with is_split_into_words=True), got {type(value).__name__}."
            )

    def encode(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The ``input_ids`` of one text (or pair)."""
        enc = self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            return_tensors=return_tensors,
            return_attention_mask=False,
            return_token_type_ids=False,
            **kwargs,
        )
        return enc["input_ids"]

    def encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        return self(text, text_pair, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence[Any], **kwargs: Any) -> BatchEncoding:
        return self(list(batch_text_or_text_pairs), **kwargs)

    def _warn_if_too_long(self, length: int, max_length: int | None, verbose: bool) -> None:
        if max_length is None and length > self.model_max_length and verbose and not self._warned_too_long:
            self._warned_too_long = True
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({length} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )

    # ----------------------------------------------------------------- truncation + model inputs (list level)
    def truncate_sequences(
        self,
        ids: list[int],
        pair_ids: list[int] | None = None,
        num_tokens_to_remove: int = 0,
        truncation_strategy: str | TruncationStrategy = "longest_first",
        stride: int = 0,
    ) -> tuple[list[int], list[int] | None, list[int]]:
        """Drop ``num_tokens_to_remove`` tokens; returns (ids, pair_ids, overflowing tokens)."""
        if num_tokens_to_remove <= 0:
            return ids, pair_ids, []
        strategy = TruncationStrategy.parse(truncation_strategy, "truncation value")
        overflowing: list[int] = []
        if strategy is TruncationStrategy.ONLY_FIRST or (
            strategy is TruncationStrategy.LONGEST_FIRST and pair_ids is None
        ):
            ids, overflowing = self._cut(ids, num_tokens_to_remove, stride, "first")
        elif strategy is TruncationStrategy.ONLY_SECOND:
            if pair_ids is None:
                raise ValueError(only_second_single_message(f" ({len(ids)} tokens, {num_tokens_to_remove} too many)"))
            pair_ids, overflowing = self._cut(pair_ids, num_tokens_to_remove, stride, "second")
        elif strategy is TruncationStrategy.LONGEST_FIRST:
            assert pair_ids is not None
            budget = len(ids) + len(pair_ids) - num_tokens_to_remove
            if budget < 0:
                raise ValueError(
                    f"max_length is too small for this pair: {num_tokens_to_remove} tokens must go but the texts "
                    f"have {len(ids) + len(pair_ids)}. Use a larger max_length (it must also hold the special tokens)."
                )
            n1, n2 = _longest_first_lengths(len(ids), len(pair_ids), budget)
            if self.truncation_side == "left":
                ids, pair_ids = ids[len(ids) - n1 :], pair_ids[len(pair_ids) - n2 :]
            else:
                ids, pair_ids = ids[:n1], pair_ids[:n2]
        return ids, pair_ids, overflowing

    def _cut(self, seq: list[int], remove: int, stride: int, which: str) -> tuple[list[int], list[int]]:
        """``seq`` less ``remove`` tokens on the truncation side, and the overflow (``stride`` tokens more)."""
        if len(seq) <= remove:
            raise ValueError(
                f"Truncation would leave nothing of the {which} text: {remove} tokens must go to fit "
                f"max_length and it has only {len(seq)}. Use a larger max_length (it must also hold the special "
                "tokens), or truncation=True, which cuts a pair from its longer text."
            )
        window = min(len(seq), stride + remove)
        if self.truncation_side == "left":
            return seq[remove:], seq[:window]
        return seq[:-remove], seq[-window:]

    def prepare_for_model(
        self,
        ids: list[int],
        pair_ids: list[int] | None = None,
        add_special_tokens: bool = True,
        truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        stride: int = 0,
        return_token_type_ids: bool = False,
        return_attention_mask: bool = True,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> list[dict[str, Any]]:
        """Truncate, add special tokens and build the per-sequence fields for one input (unpadded).

        Returns one row per window: with ``return_overflowing_tokens`` the overflow is encoded into
        further rows the way the fast backend does (``stride`` tokens of overlap).
        """
        pair = pair_ids is not None
        n_special = self.num_special_tokens_to_add(pair=pair) if add_special_tokens else 0
        total = len(ids) + (len(pair_ids) if pair_ids else 0) + n_special
        rows: list[tuple[list[int], list[int] | None]] = []
        if truncation_strategy is not TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None and total > max_length:
            if return_overflowing_tokens:
                rows = self._windows(ids, pair_ids, max_length - n_special, truncation_strategy, stride)
            else:
                a, b, _ = self.truncate_sequences(
                    ids, pair_ids, total - max_length, truncation_strategy=truncation_strategy, stride=stride
                )
                rows = [(a, b)]
        else:
            rows = [(ids, pair_ids)]
            self._warn_if_too_long(total, max_length, verbose)
        out = []
        for a, b in rows:
            if add_special_tokens:
                seq = self.build_inputs_with_special_tokens(a, b)
                types = self.create_token_type_ids_from_sequences(a, b)
                special = self.get_special_tokens_mask(a, b)
            else:
                seq = a + (b or [])
                types = [0] * len(a) + [1] * len(b or [])
                special = [0] * len(seq)
            row: dict[str, Any] = {"input_ids": seq}
            if return_token_type_ids:
                row["token_type_ids"] = types
            if return_special_tokens_mask:
                row["special_tokens_mask"] = special
            out.append(row)
        return out

    def _windows(
        self,
        ids: list[int],
        pair_ids: list[int] | None,
        budget: int,
        strategy: TruncationStrategy,
        stride: int,
    ) -> list[tuple[list[int], list[int] | None]]:
        """Split into overlapping windows, as the fast backend's overflow does."""
        if pair_ids is None and strategy is TruncationStrategy.ONLY_SECOND:
            raise ValueError(only_second_single_message(f" ({len(ids)} tokens, room for {budget})"))
        if pair_ids is None or strategy is TruncationStrategy.ONLY_FIRST:
            room = budget - (len(pair_ids) if pair_ids else 0)
            return [(w, pair_ids) for w in self._split_windows(ids, room, stride)]
        assert pair_ids is not None
        if strategy is TruncationStrategy.ONLY_SECOND:
            return [(ids, w) for w in self._split_windows(pair_ids, budget - len(ids), stride)]
        # longest_first: fix the lengths the fast backend settles on, window both sequences, then pair the
        # windows in the backend's order: the first windows of both, then each later first-text window with
        # every second-text window, then the first first-text window with the later second-text windows.
        n1, n2 = _longest_first_lengths(len(ids), len(pair_ids), budget)
        a0, *a_rest = self._split_windows(ids, n1, stride, allow_empty=True)
        b0, *b_rest = self._split_windows(pair_ids, n2, stride, allow_empty=True)
        rows: list[tuple[list[int], list[int] | None]] = [(a0, b0)]
        for a in a_rest:
            rows.append((a, b0))
            rows.extend((a, b) for b in b_rest)
        rows.extend((a0, b) for b in b_rest)
        return rows

    def _split_windows(self, ids: list[int], size: int, stride: int, allow_empty: bool = False) -> list[list[int]]:
        """Windows of ``size`` tokens overlapping by ``stride``; a sequence that fits stays whole, whatever the stride.

        With ``allow_empty`` a size of 0 gives an empty window and then the whole sequence, as the backend does.
        """
        if len(ids) <= size:
            return [list(ids)]
        if size == 0 and allow_empty:
            return [[], list(ids)]
        if size <= 0 or stride >= size:
            raise ValueError(
                f"Cannot truncate: max_length leaves room for {max(size, 0)} tokens of the sequence but stride is "
                f"{stride}; stride must be smaller than the room left. Use a larger max_length or smaller stride."
            )
        if len(ids) <= size:
            return [list(ids)]
        step = size - stride
        windows = []
        if self.truncation_side == "right":
            start = 0
            while True:
                windows.append(ids[start : start + size])
                if start + size >= len(ids):
                    break
                start += step
        else:
            end = len(ids)
            while True:
                windows.append(ids[max(0, end - size) : end])
                if end - size <= 0:
                    break
                end -= step
        return windows

    # ----------------------------------------------------------------- padding
    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str | PaddingStrategy = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | TensorType | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad one encoded input or a batch (a dict of lists, or a list of dicts, as data collators pass).

        Keys other than the model inputs (e.g. ``labels``) are kept as they are.
        """
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            keys = encoded_inputs[0].keys()
            for row in encoded_inputs:
                if row.keys() != keys:
                    raise ValueError("pad() got a list of dicts with different keys; every example needs the same keys.")
            first_row = encoded_inputs[0]
            if return_tensors is None:
                # Rows from a torch- or numpy-formatted dataset come back as the same kind of array.
                return_tensors = _tensor_type_of(first_row.get(self.model_input_names[0]))
            encoded_inputs = {k: [_to_py(row[k]) for row in encoded_inputs] for k in keys}
        if not isinstance(encoded_inputs, Mapping):
            raise TypeError(
                "pad() takes a BatchEncoding/dict of lists or a list of dicts, got " f"{type(encoded_inputs).__name__}."
            )
        main = self.model_input_names[0]
        if main not in encoded_inputs:
            raise ValueError(f"pad() needs {main!r} in the inputs; got keys {sorted(encoded_inputs)}.")
        data = {k: _to_py(v) for k, v in encoded_inputs.items()}
        if return_tensors is None and any(_is_tensor_like(v) for v in encoded_inputs.values()):
            first = next(v for v in encoded_inputs.values() if _is_tensor_like(v))
            return_tensors = _tensor_type_of(first)
        padding_strategy, _, max_length = self._resolve_strategies(padding, False, max_length, pad_to_multiple_of)
        if padding_side is None:
            padding_side = self.padding_side
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        required = data[main]
        if not required:
            if return_attention_mask:
                data["attention_mask"] = []
            return BatchEncoding(data, tensor_type=return_tensors)
        batched = isinstance(required[0], (list, tuple))
        if not batched:
            rows = [dict(data)]
        else:
            n = len(required)
            rows = [{k: v[i] for k, v in data.items()} for i in range(n)]
        if padding_strategy is PaddingStrategy.LONGEST:
            max_length = max(len(r[main]) for r in rows)
            padding_strategy = PaddingStrategy.MAX_LENGTH
        padded = [
            self._pad_row(r, max_length, padding_strategy, pad_to_multiple_of, padding_side, return_attention_mask)
            for r in rows
        ]
        if batched:
            out = {k: [r[k] for r in padded] for k in padded[0]}
        else:
            out = padded[0]
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_row(
        self,
        row: dict[str, Any],
        max_length: int | None,
        strategy: PaddingStrategy,
        pad_to_multiple_of: int | None,
        side: str,
        return_attention_mask: bool,
    ) -> dict[str, Any]:
        main = self.model_input_names[0]
        length = len(row[main])
        target = length if strategy is PaddingStrategy.DO_NOT_PAD or max_length is None else max(max_length, 0)
        if strategy is PaddingStrategy.DO_NOT_PAD:
            target = length
        if strategy is not PaddingStrategy.DO_NOT_PAD and pad_to_multiple_of and target % pad_to_multiple_of:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in row:
            row["attention_mask"] = [1] * length
        elif not return_attention_mask:
            row.pop("attention_mask", None)
        diff = target - length
        if diff <= 0:
            return row
        fill = {
            main: self.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": self.pad_token_type_id,
            "special_tokens_mask": 1,
            "offset_mapping": (0, 0),
            "word_ids": None,
        }
        for key in list(row):
            value = row[key]
            if key == "length" or not isinstance(value, list) or (key not in fill and key not in self.model_input_names):
                continue
            pad_value = fill.get(key, 0)
            extra = [pad_value] * diff
            row[key] = extra + value if side == "left" else value + extra
        return row

    # ----------------------------------------------------------------- decoding
    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str | list[str]:
        """Turn ids (list, array or tensor) back into text; a batch (list of lists, 2-D array) gives a list of texts."""
        ids = _to_py(token_ids)
        if isinstance(ids, (int, np.integer)):
            ids = [int(ids)]
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"decode() takes a list of ids (or an array/tensor), got {type(token_ids).__name__}.")
        if ids and isinstance(ids[0], (list, tuple)):
            return [
                self._decode_one(row, skip_special_tokens, clean_up_tokenization_spaces, **kwargs) for row in ids
            ]
        return self._decode_one(ids, skip_special_tokens, clean_up_tokenization_spaces, **kwargs)

    def _decode_one(
        self, ids: Any, skip_special_tokens: bool, clean_up_tokenization_spaces: bool | None, **kwargs: Any
    ) -> str:
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"decode() takes one sequence of ids per row, got {type(ids).__name__}.")
        for i in ids:
            if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
                raise TypeError(f"decode() takes integer ids, got {i!r}.")
            if i < 0:
                raise ValueError(f"decode() got a negative token id ({i}); ids must be >= 0.")
        text = self._decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens, **kwargs)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """``decode`` every row of a batch; a flat list of ids is one row."""
        rows = _to_py(sequences)
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"batch_decode() takes a list of id sequences, got {type(sequences).__name__}.")
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        return [self._decode_one(r, skip_special_tokens, clean_up_tokenization_spaces, **kwargs) for r in rows]

    @staticmethod
    def clean_up_tokenization(out_string: str) -> str:
        """Remove the spaces tokenization puts before punctuation and English contractions."""
        for a, b in (
            (" .", "."),
            (" ?", "?"),
            (" !", "!"),
            (" ,", ","),
            (" ' ", "'"),
            (" n't", "n't"),
            (" 'm", "'m"),
            (" 's", "'s"),
            (" 've", "'ve"),
            (" 're", "'re"),
        ):
            out_string = out_string.replace(a, b)
        return out_string

    # ----------------------------------------------------------------- saving
    def _config_special_token(self, value: str | AddedToken) -> str | dict[str, Any]:
        return str(value)

    def _tokenizer_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for key, value in self.init_kwargs.items():
            if key in self.vocab_files_names or key in ("tokenizer_file", "name_or_path", "tokenizer_object"):
                continue
            if isinstance(value, (str, int, float, bool, type(None), list, dict)):
                config[key] = value
        for key, value in self._unused_init_kwargs.items():
            if key in self.vocab_files_names or key in ("tokenizer_file", "tokenizer_object"):
                continue
            if isinstance(value, (str, int, float, bool, type(None), list, dict)):
                config.setdefault(key, value)
        for name in self.SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            value = self._special_tokens.get(name)
            if value is None:
                config.pop(name, None)
            else:
                config[name] = self._config_special_token(value)
        if self._additional_special_tokens:
            config["extra_special_tokens"] = self.additional_special_tokens
        config.pop("additional_special_tokens", None)
        config["added_tokens_decoder"] = {
            str(i): tok.__getstate__() for i, tok in sorted(self.added_tokens_decoder.items())
        }
        config["model_max_length"] = self.model_max_length
        config["padding_side"] = self.padding_side
        config["truncation_side"] = self.truncation_side
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        if self.split_special_tokens:
            config["split_special_tokens"] = True
        else:
            config.pop("split_special_tokens", None)
        if self.model_input_names != list(type(self).model_input_names):
            config["model_input_names"] = self.model_input_names
        name = type(self).__name__
        if self._auto_class is not None:
            config["auto_map"] = {self._auto_class: [None, name] if self.is_fast else [name, None]}
        elif name.endswith("Fast") and self.slow_tokenizer_class is not None:
            name = name[: -len("Fast")]
        config["tokenizer_class"] = name
        return config

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        legacy_format: bool | None = None,
        filename_prefix: str | None = None,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> tuple[str, ...]:
        """Write ``tokenizer_config.json``, ``special_tokens_map.json`` and the vocabulary files (atomically).

        Returns the paths of the files written.
        """
        if os.path.isfile(save_directory):
            raise NotADirectoryError(f"Cannot save the tokenizer into {os.fspath(save_directory)!r}: it is a file.")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        target = os.path.abspath(os.fspath(save_directory))
        before = folder_state(target) if push_to_hub else {}
        with atomic_directory(target) as staging:
            staging_str = os.fspath(staging)
            write_json(os.path.join(staging_str, prefix + TOKENIZER_CONFIG_FILE), self._tokenizer_config())
            write_json(os.path.join(staging_str, prefix + SPECIAL_TOKENS_MAP_FILE), self.special_tokens_map)
            written = [prefix + TOKENIZER_CONFIG_FILE, prefix + SPECIAL_TOKENS_MAP_FILE]
            written += self._save_files(staging_str, filename_prefix, legacy_format)
        paths = tuple(os.path.join(target, name) for name in written)
        if push_to_hub:
            self._push_saved_folder(target, before, kwargs.pop("repo_id", None), kwargs)
        return paths

    def _save_files(self, directory: str, filename_prefix: str | None, legacy_format: bool | None) -> list[str]:
        """Write the backend's files into ``directory``; returns their names relative to it."""
        return [os.path.basename(p) for p in self.save_vocabulary(directory, filename_prefix)]

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write the vocabulary file(s); families override this."""
        return ()

    # ----------------------------------------------------------------- loading
    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoTokenizer") -> None:
        """Record the Auto class this (custom) tokenizer is saved for, so that ``auto_map`` is written."""
        if not isinstance(auto_class, str):
            auto_class = auto_class.__name__
        if auto_class != "AutoTokenizer":
            raise ValueError(f"Tokenizers register with 'AutoTokenizer', got {auto_class!r}.")
        cls._auto_class = auto_class

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], *init_inputs: Any, **kwargs: Any
    ) -> Any:
        """Load from a folder written by ``save_pretrained`` (ours or the reference's) or a Hub repo.

        Keyword arguments override what ``tokenizer_config.json`` holds.
        """
        if not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
            raise TypeError(
                "from_pretrained() takes a folder path or Hub repo id, got "
                f"{type(pretrained_model_name_or_path).__name__}."
            )
        hub = HubOptions.pop_from(kwargs)
        kwargs.pop("trust_remote_code", None)
        kwargs.pop("_from_auto", None)
        source = os.fspath(pretrained_model_name_or_path)

        def find(name: str) -> str | None:
            return resolve_file(source, name, required=False, **hub.as_kwargs())

        if os.path.isfile(source):
            raise OSError(
                f"{source!r} is a file; pass the folder that holds the tokenizer files (tokenizer_config.json, ...)."
            )
        files: dict[str, str | None] = {key: find(name) for key, name in cls.vocab_files_names.items()}
        files["tokenizer_config_file"] = find(TOKENIZER_CONFIG_FILE)
        files["special_tokens_map_file"] = find(SPECIAL_TOKENS_MAP_FILE)
        files["added_tokens_file"] = find(ADDED_TOKENS_FILE)
        if "tokenizer_file" not in files:
            files["tokenizer_file"] = find(TOKENIZER_FILE)
        if not any(files.values()):
            expected = sorted({*cls.vocab_files_names.values(), TOKENIZER_CONFIG_FILE})
            raise OSError(
                f"Cannot load a {cls.__name__} from {source!r}: none of its files ({', '.join(expected)}) were found."
            )
        return cls._from_files(files, source, init_inputs, kwargs)

    @classmethod
    def _from_files(
        cls, files: dict[str, str | None], source: str, init_inputs: tuple[Any, ...], overrides: dict[str, Any]
    ) -> Any:
        config: dict[str, Any] = {}
        if files.get("tokenizer_config_file"):
            config = _read_json(files["tokenizer_config_file"])
            if not isinstance(config, dict):
                raise ValueError(f"{files['tokenizer_config_file']} must hold a JSON object.")
        saved_inputs = config.pop("init_inputs", ())
        init_inputs = init_inputs or tuple(saved_inputs)
        for key in ("tokenizer_class", "auto_map", "processor_class", "backend", "name_or_path"):
            config.pop(key, None)
        added_decoder_raw = config.pop("added_tokens_decoder", None)
        if files.get("special_tokens_map_file"):
            special_map = _read_json(files["special_tokens_map_file"])
            for key, value in special_map.items():
                if key not in config or config[key] is None:
                    config[key] = value
        for key in ("additional_special_tokens", "extra_special_tokens"):
            value = config.get(key)
            if isinstance(value, dict):
                config[key] = list(value.values())
        if "additional_special_tokens" in config:
            extras = config.pop("additional_special_tokens") or []
            config["extra_special_tokens"] = list(extras) + [
                t for t in config.get("extra_special_tokens") or [] if t not in extras
            ]
        for key in cls.SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            if isinstance(config.get(key), dict):
                config[key] = AddedToken.from_dict({"special": True, **config[key]})
        added_decoder: dict[int, AddedToken] = {}
        if isinstance(added_decoder_raw, dict):
            for idx, entry in added_decoder_raw.items():
                added_decoder[int(idx)] = AddedToken.from_dict(entry) if isinstance(entry, dict) else AddedToken(str(entry))
        elif files.get("tokenizer_file"):
            for entry in _read_json(files["tokenizer_file"]).get("added_tokens", []):
                added_decoder[int(entry["id"])] = AddedToken.from_dict(entry)
        if files.get("added_tokens_file"):
            for token, idx in _read_json(files["added_tokens_file"]).items():
                added_decoder.setdefault(int(idx), AddedToken(token, normalized=True))
        for key, path in files.items():
            if key in cls.vocab_files_names or key == "tokenizer_file":
                if path is not None:
                    config[key] = path
        config.update(overrides)
        config["name_or_path"] = source
        config["added_tokens_decoder"] = added_decoder
        cls._prepare_loaded_kwargs(config, files)
        tok = cls(*init_inputs, **config)
        tok.init_inputs = tuple(init_inputs)
        return tok

    @classmethod
    def _prepare_loaded_kwargs(cls, kwargs: dict[str, Any], files: dict[str, str | None]) -> None:
        """Hook: let a backend fill in what a folder layout lacks (e.g. a vocabulary only in tokenizer.json)."""

    # ----------------------------------------------------------------- misc
    def __repr__(self) -> str:
        added = "\n".join(f"\t{i}: {tok!r}," for i, tok in sorted(self.added_tokens_decoder.items()))
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, is_fast={self.is_fast}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map}, "
            f"added_tokens_decoder={{\n{added}\n}})"
        )


def only_second_single_message(detail: str = "") -> str:
    """The error for truncation='only_second' on a single text that must be cut (shared by both backends)."""
    return (
        "truncation='only_second' cuts the second text of a pair, but this input is a single text longer than "
        f"max_length{detail}. Pass text_pair=..., or use truncation=True (longest_first) or 'only_first' for single texts."
    )


def _longest_first_lengths(len1: int, len2: int, budget: int) -> tuple[int, int]:
    """How many tokens of each sequence ``longest_first`` keeps, exactly as the tokenizers library decides.

    The shorter sequence keeps what it can up to half the budget, the longer one gets the rest.
    """
    short = min(len1, len2)
    keep_long = short if short > budget else max(short, budget - short)
    keep_short = short
    if keep_short + keep_long > budget:
        keep_short = budget // 2
        keep_long = keep_short + budget % 2
    if len1 > len2:
        keep_short, keep_long = keep_long, keep_short
    return min(len1, keep_short), min(len2, keep_long)


def _read_json(path: str | None) -> Any:
    assert path is not None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def write_text_lines(path: str, lines: Iterable[str]) -> None:
    """Write one entry a line (vocabulary files) atomically."""
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))
