"""The ``tokenizers``-backed tokenizer (:class:`PreTrainedTokenizerFast`), reading/writing tokenizer.json.

Batches are encoded, truncated and padded inside the Rust library in one call, and tensors are built
from the encodings in one numpy conversion per field, so large padded batches stay fast.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tokenizers
from tokenizers import Tokenizer

from plugformers.tokenization_utils_base import (
    TOKENIZER_FILE,
    AddedToken,
    BatchEncoding,
    PaddingStrategy,
    PreTrainedTokenizerBase,
    TensorType,
    TruncationStrategy,
    clean_lone_surrogates,
    only_second_single_message,
)

__all__ = ["PreTrainedTokenizerFast"]


def _to_backend_token(token: str | AddedToken, special: bool) -> tokenizers.AddedToken:
    if isinstance(token, str):
        token = AddedToken(token, normalized=not special, special=special)
    return tokenizers.AddedToken(
        token.content,
        single_word=token.single_word,
        lstrip=token.lstrip,
        rstrip=token.rstrip,
        normalized=token.normalized,
        special=special or token.special,
    )


def _from_backend_token(token: tokenizers.AddedToken) -> AddedToken:
    return AddedToken(
        token.content,
        single_word=token.single_word,
        lstrip=token.lstrip,
        rstrip=token.rstrip,
        normalized=token.normalized,
        special=token.special,
    )


def _is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def _explain_backend_error(message: str, strategy: TruncationStrategy, max_length: int | None) -> str:
    """Our wording, with the fix, for the backend's truncation errors; other errors keep the backend's text."""
    if "Second sequence not provided" in message:
        return only_second_single_message()
    if "Sequence to truncate too short" in message:
        which = "second" if strategy is TruncationStrategy.ONLY_SECOND else "first"
        return (
            f"truncation={strategy.value!r} would have to remove more tokens than the {which} text has to fit "
            f"max_length={max_length}; use a larger max_length, or truncation=True (longest_first), which cuts both texts."
        )
    return f"The tokenizers backend could not encode the input: {message}"


class PreTrainedTokenizerFast(PreTrainedTokenizerBase):
    """Base class of the tokenizers-backed tokenizers.

    Build it from a ``tokenizers.Tokenizer`` (``tokenizer_object=``), a ``tokenizer.json``
    (``tokenizer_file=``), or, in a family subclass, from its vocabulary files (override
    :meth:`_build_backend`).
    """

    is_fast = True
    vocab_files_names = {"tokenizer_file": TOKENIZER_FILE}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        tokenizer_object = kwargs.pop("tokenizer_object", None)
        tokenizer_file = kwargs.pop("tokenizer_file", None)
        added = kwargs.pop("added_tokens_decoder", None) or {}
        if tokenizer_object is not None:
            if not isinstance(tokenizer_object, Tokenizer):
                raise TypeError(f"tokenizer_object must be a tokenizers.Tokenizer, got {type(tokenizer_object).__name__}.")
            backend = copy.deepcopy(tokenizer_object)
        elif tokenizer_file is not None:
            backend = self._load_tokenizer_file(os.fspath(tokenizer_file))
        else:
            backend = self._build_backend(*args, **kwargs)
        backend.no_truncation()
        backend.no_padding()
        self._tokenizer = backend
        backend.encode_special_tokens = bool(kwargs.get("split_special_tokens", False))
        self._ready = False
        super().__init__(**kwargs)
        self._ready = True
        for _idx, token in sorted(added.items()):
            if isinstance(token, dict):
                token = AddedToken.from_dict(token)
            content = str(token)
            if backend.token_to_id(content) is None:
                self._add_tokens([token], special_tokens=bool(getattr(token, "special", False)))
        specials = [t for t in self.all_special_tokens_extended if not self._is_backend_special(str(t))]
        if specials:
            self._add_tokens(specials, special_tokens=True)

    @staticmethod
    def _load_tokenizer_file(path: str) -> Tokenizer:
        try:
            return Tokenizer.from_file(path)
        except Exception as exc:
            raise ValueError(f"Cannot read the tokenizer file {path!r}: {exc}") from exc

    def _build_backend(self, *args: Any, **kwargs: Any) -> Tokenizer:
        """Build the ``tokenizers.Tokenizer`` from vocabulary files; families override this."""
        raise ValueError(
            f"{type(self).__name__} needs a tokenizer_object, a tokenizer_file (tokenizer.json) or, for family "
            "classes, its vocabulary file."
        )

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tokenizer

    @property
    def can_save_slow_tokenizer(self) -> bool:
        return type(self).save_vocabulary is not PreTrainedTokenizerBase.save_vocabulary

    # ----------------------------------------------------------------- vocabulary and added tokens
    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return {i: _from_backend_token(t) for i, t in sorted(self._tokenizer.get_added_tokens_decoder().items())}

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {t.content: i for i, t in self.added_tokens_decoder.items()}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    def _on_split_special_tokens_set(self) -> None:
        self._tokenizer.encode_special_tokens = self.split_special_tokens

    def _is_backend_special(self, content: str) -> bool:
        return any(t.content == content and t.special for t in self._tokenizer.get_added_tokens_decoder().values())

    def _on_special_token_set(self, value: str | AddedToken | None) -> None:
        if not getattr(self, "_ready", False) or value is None or self._is_backend_special(str(value)):
            return
        if self._tokenizer.token_to_id(str(value)) is not None:
            self._add_tokens([value], special_tokens=True)

    def _add_tokens(self, new_tokens: list[str | AddedToken], special_tokens: bool = False) -> int:
        converted = [_to_backend_token(t, special_tokens) for t in new_tokens if str(t)]
        if not converted:
            return 0
        if special_tokens:
            return self._tokenizer.add_special_tokens(converted)
        return self._tokenizer.add_tokens(converted)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: str) -> int | None:
        idx = self._tokenizer.token_to_id(token)
        if idx is None:
            unk = self.unk_token
            return None if unk is None else self._tokenizer.token_to_id(unk)
        return idx

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> Any:
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in special]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self._tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def tokenize(
        self,
        text: str,
        pair: str | None = None,
        add_special_tokens: bool = False,
        split_special_tokens: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """The token strings of ``text`` (and ``pair``)."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise TypeError("tokenize() takes str inputs.")
        pair = None if pair is None else clean_lone_surrogates(pair)
        backend = self._tokenizer
        if split_special_tokens is not None:
            backend.encode_special_tokens = bool(split_special_tokens)
        try:
            return list(backend.encode(clean_lone_surrogates(text), pair, add_special_tokens=add_special_tokens).tokens)
        finally:
            backend.encode_special_tokens = self.split_special_tokens

    # ----------------------------------------------------------------- special-token layout from the post-processor
    def _layout(self, pair: bool) -> list[tuple[int, int, int | None]]:
        """(id, type id, sequence index or None) per slot of the backend's template, one slot per sequence."""
        backend = self._tokenizer
        one = backend.encode(["a"], is_pretokenized=True, add_special_tokens=False)
        other = backend.encode(["a"], is_pretokenized=True, add_special_tokens=False) if pair else None
        enc = backend.post_process(one, other, add_special_tokens=True)
        slots: list[tuple[int, int, int | None]] = []
        runs = 0
        previous_special = True
        for idx, type_id, special in zip(enc.ids, enc.type_ids, enc.special_tokens_mask):
            if special:
                slots.append((idx, type_id, None))
            elif previous_special:
                slots.append((idx, type_id, runs))
                runs += 1
            previous_special = bool(special)
        return slots

    def _fill_layout(self, ids0: list[int], ids1: list[int] | None, what: str) -> list[int]:
        out: list[int] = []
        for idx, type_id, seq in self._layout(ids1 is not None):
            if seq is None:
                out.append({"ids": idx, "types": type_id, "mask": 1}[what])
            else:
                part = ids0 if seq == 0 else (ids1 or [])
                if what == "ids":
                    out.extend(part)
                else:
                    out.extend([type_id if what == "types" else 0] * len(part))
        return out

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """Special tokens placed as the backend's post-processor places them."""
        return self._fill_layout(list(token_ids_0), None if token_ids_1 is None else list(token_ids_1), "ids")

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        return self._fill_layout(list(token_ids_0), None if token_ids_1 is None else list(token_ids_1), "types")

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        return self._fill_layout(list(token_ids_0), None if token_ids_1 is None else list(token_ids_1), "mask")

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    # ----------------------------------------------------------------- encoding
    def _configure_backend(
        self,
        padding_strategy: PaddingStrategy,
        truncation_strategy: TruncationStrategy,
        max_length: int | None,
        stride: int,
        pad_to_multiple_of: int | None,
        padding_side: str,
    ) -> None:
        backend = self._tokenizer
        if truncation_strategy is TruncationStrategy.DO_NOT_TRUNCATE or max_length is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(
                max_length, stride=stride, strategy=truncation_strategy.value, direction=self.truncation_side
            )
        if padding_strategy is PaddingStrategy.DO_NOT_PAD:
            backend.no_padding()
        else:
            backend.enable_padding(
                direction=padding_side,
                pad_id=self.pad_token_id,
                pad_type_id=self.pad_token_type_id,
                pad_token=self.pad_token,
                length=max_length if padding_strategy is PaddingStrategy.MAX_LENGTH else None,
                pad_to_multiple_of=pad_to_multiple_of,
            )

    @staticmethod
    def _clean_inputs(batch: list[Any], is_pair: bool, is_split_into_words: bool) -> list[Any]:
        def clean(value: Any) -> Any:
            if isinstance(value, str):
                return clean_lone_surrogates(value)
            if is_split_into_words:
                return [clean_lone_surrogates(w) for w in value]
            raise TypeError("Fast tokenizers encode text; pass str inputs (token ids cannot be re-encoded).")

        if is_pair:
            return [(clean(a), clean(b)) for a, b in batch]
        return [clean(x) for x in batch]

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
        inputs = self._clean_inputs(batch, is_pair, is_split_into_words)
        truncating = truncation_strategy is not TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None
        if truncating and not is_pair and add_special_tokens and max_length == self.num_special_tokens_to_add():
            # No room for any token of a single text; the backend would quietly return only the special tokens
            # where the Python backend raises.
            plain = self._tokenizer.encode_batch(inputs, add_special_tokens=False, is_pretokenized=is_split_into_words)
            if any(len(e) for e in plain):
                raise ValueError(
                    f"Truncation would leave nothing of the text: max_length={max_length} holds only the special "
                    "tokens. Use a larger max_length (it must also hold the special tokens)."
                )
        try:
            self._configure_backend(
                padding_strategy, truncation_strategy, max_length, stride, pad_to_multiple_of, padding_side
            )
            self._tokenizer.encode_special_tokens = split_special_tokens
            encodings = self._tokenizer.encode_batch(
                inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
            )
        except BaseException as exc:
            if isinstance(exc, Exception) or _is_panic(exc):
                raise ValueError(_explain_backend_error(str(exc), truncation_strategy, max_length)) from None
            raise
        finally:
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()
            self._tokenizer.encode_special_tokens = self.split_special_tokens

        mapping: list[int] | None = None
        if return_overflowing_tokens:
            flat = []
            mapping = []
            for n, enc in enumerate(encodings):
                flat.append(enc)
                flat.extend(enc.overflowing)
                mapping.extend([n] * (1 + len(enc.overflowing)))
            encodings = flat
        if truncation_strategy is TruncationStrategy.DO_NOT_TRUNCATE and self.model_max_length < 10**20 and encodings:
            self._warn_if_too_long(max(len(e) for e in encodings), None, verbose)

        data: dict[str, Any] = {"input_ids": self._field(encodings, "ids", return_tensors)}
        if return_token_type_ids:
            data["token_type_ids"] = self._field(encodings, "type_ids", return_tensors)
        if return_attention_mask:
            data["attention_mask"] = self._field(encodings, "attention_mask", return_tensors)
        if return_special_tokens_mask:
            data["special_tokens_mask"] = self._field(encodings, "special_tokens_mask", return_tensors)
        if return_offsets_mapping:
            data["offset_mapping"] = self._field(encodings, "offsets", return_tensors)
        if mapping is not None:
            data["overflow_to_sample_mapping"] = mapping
        if return_length:
            data["length"] = [len(e) for e in encodings]
        if not batched and not return_overflowing_tokens and return_tensors is None:
            single = {k: (v if k == "length" else v[0]) for k, v in data.items()}
            return BatchEncoding(single, encoding=encodings, n_sequences=2 if is_pair else 1)
        return BatchEncoding(data, encoding=encodings, tensor_type=return_tensors, n_sequences=2 if is_pair else 1)

    @staticmethod
    def _field(encodings: list[Any], name: str, return_tensors: TensorType | None) -> Any:
        rows = [getattr(e, name) for e in encodings]
        if return_tensors is None:
            return rows
        lengths = {len(r) for r in rows}
        if len(lengths) > 1:
            raise ValueError(
                f"Cannot make a rectangular tensor of {name!r}: the sequences have different lengths "
                f"({min(lengths)} to {max(lengths)}). Pass padding=True (and truncation=True) to get equal lengths."
            )
        return np.array(rows, dtype=np.int64)

    # ----------------------------------------------------------------- decoding
    def _decode(self, token_ids: list[int], skip_special_tokens: bool = False, **kwargs: Any) -> str:
        return self._tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)

    # ----------------------------------------------------------------- saving
    def _save_files(self, directory: str, filename_prefix: str | None, legacy_format: bool | None) -> list[str]:
        names: list[str] = []
        if legacy_format is not False and self.can_save_slow_tokenizer:
            names += [os.path.basename(p) for p in self.save_vocabulary(directory, filename_prefix)]
        if legacy_format is not True:
            name = (f"{filename_prefix}-" if filename_prefix else "") + TOKENIZER_FILE
            target = os.path.join(directory, name)
            if os.path.lexists(target):
                os.unlink(target)  # never rewrite a file in place: it may be shared with the live folder
            self._tokenizer.save(target, pretty=True)
            names.append(name)
        return names
