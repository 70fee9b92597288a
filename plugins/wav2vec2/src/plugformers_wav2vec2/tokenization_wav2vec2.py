"""`Wav2Vec2CTCTokenizer`: a character vocabulary (``vocab.json``) with CTC decoding.

Text is split into characters, spaces becoming the word delimiter (``|``). Decoding a CTC output
collapses repeated ids, drops the blank (the pad token) and can report where each character and word
starts and ends, in output frames. Pure Python; no torch import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from plugformers.tokenization_utils import PreTrainedTokenizer
from plugformers.tokenization_utils_base import AddedToken, _to_py
from plugformers.utils.io import write_json

__all__ = ["Wav2Vec2CTCTokenizer", "Wav2Vec2CTCTokenizerOutput"]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}


@dataclass
class Wav2Vec2CTCTokenizerOutput:
    """Decoded text plus, on request, character and word offsets (frame indices, end exclusive).

    For ``batch_decode`` every field holds one entry per sequence.
    """

    text: Any
    char_offsets: Any = None
    word_offsets: Any = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def _read_vocab(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Vocabulary file {os.fspath(path)!r} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise OSError(f"Cannot read the vocabulary file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ValueError(f"Vocabulary file {os.fspath(path)!r} must hold a non-empty JSON object {{token: id}}.")
    return data


def _char_offsets(repetitions: list[int], chars: list[str], blank: str | None) -> list[dict[str, Any]]:
    """Start/end frame of every grouped character, blanks dropped."""
    offsets = []
    end = 0
    for char, count in zip(chars, repetitions):
        start, end = end, end + count
        if char != blank:
            offsets.append({"char": char, "start_offset": start, "end_offset": end})
    return offsets


def _word_offsets(char_offsets: list[dict[str, Any]], delimiter: str) -> list[dict[str, Any]]:
    """Merge consecutive non-delimiter characters into words with their first start and last end."""
    words: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for item in char_offsets:
        if item["char"] == delimiter:
            if current is not None:
                words.append(current)
                current = None
            continue
        if current is None:
            current = {"word": item["char"], "start_offset": item["start_offset"], "end_offset": item["end_offset"]}
        else:
            current["word"] += item["char"]
            current["end_offset"] = item["end_offset"]
    if current is not None:
        words.append(current)
    return words


class Wav2Vec2CTCTokenizer(PreTrainedTokenizer):
    """Character-level CTC tokenizer over ``vocab.json`` (``{token: id}``, or ``{lang: {token: id}}``).

    ``word_delimiter_token`` stands for a space; ``pad_token`` is the CTC blank. With ``do_lower_case``
    text is upper-cased before lookup (the usual vocabularies are upper case) and decoded text is
    lower-cased. ``target_lang`` picks one vocabulary of a multi-lingual file (MMS checkpoints).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | None = None,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        word_delimiter_token: str | None = "|",
        replace_word_delimiter_char: str = " ",
        do_lower_case: bool = False,
        target_lang: str | None = None,
        **kwargs: Any,
    ) -> None:
        if vocab_file is None:
            raise ValueError("Wav2Vec2CTCTokenizer needs vocab_file= (a vocab.json of {token: id}).")
        self.vocab_file = os.fspath(vocab_file)
        self.vocab = _read_vocab(vocab_file)
        self.target_lang = target_lang
        self.do_lower_case = do_lower_case
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self._word_delimiter_token = str(word_delimiter_token) if word_delimiter_token is not None else None
        self.encoder = self._select_vocab(target_lang)
        self.decoder = {v: k for k, v in self.encoder.items()}

        added: dict[int, AddedToken] = dict(kwargs.pop("added_tokens_decoder", None) or {})
        known = set(self.encoder) | {str(t) for t in added.values()}
        for name, token, role in (
            ("word_delimiter_token", word_delimiter_token, "it stands for a space between words"),
            ("pad_token", pad_token, "it is the CTC blank"),
        ):
            if token is not None and str(token) not in known:
                raise ValueError(
                    f"The vocabulary {self.vocab_file!r} has no {name} {str(token)!r} ({role}). Add it to "
                    f"vocab.json, or pass {name}= naming the token your vocabulary uses."
                )
        # Special tokens of the vocabulary are matched whole in text, eating the spaces around them.
        in_use = {str(t) for t in added.values()}
        for token in (pad_token, bos_token, eos_token, unk_token):
            if token is not None and str(token) not in in_use and str(token) in self.encoder:
                added[self.encoder[str(token)]] = AddedToken(str(token), lstrip=True, rstrip=True, normalized=False)
        if self._word_delimiter_token is not None and self._word_delimiter_token not in in_use:
            delimiter_id = self.encoder.get(self._word_delimiter_token)
            if delimiter_id is not None:
                added[delimiter_id] = AddedToken(self._word_delimiter_token, normalized=False, special=True)
        super().__init__(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            word_delimiter_token=word_delimiter_token,
            replace_word_delimiter_char=replace_word_delimiter_char,
            do_lower_case=do_lower_case,
            target_lang=target_lang,
            added_tokens_decoder=added,
            **kwargs,
        )

    def _select_vocab(self, target_lang: str | None) -> dict[str, int]:
        nested = all(isinstance(v, dict) for v in self.vocab.values())
        if target_lang is not None:
            if not nested or target_lang not in self.vocab:
                langs = sorted(self.vocab) if nested else []
                raise ValueError(
                    f"target_lang={target_lang!r} is not in {self.vocab_file!r}"
                    + (f"; it has {langs}." if langs else " (it holds a single vocabulary; drop target_lang).")
                )
            table = self.vocab[target_lang]
        elif nested:
            raise ValueError(
                f"{self.vocab_file!r} holds one vocabulary per language ({sorted(self.vocab)[:8]}...); "
                "pass target_lang= to pick one."
            )
        else:
            table = self.vocab
        bad = [k for k, v in table.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise ValueError(f"Vocabulary {self.vocab_file!r}: ids must be non-negative ints; bad entries {bad[:5]}.")
        return dict(table)

    def set_target_lang(self, target_lang: str) -> None:
        """Switch to another language's vocabulary of a multi-lingual ``vocab.json``."""
        self.encoder = self._select_vocab(target_lang)
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.target_lang = target_lang
        self.init_kwargs["target_lang"] = target_lang

    # ----- vocabulary -----------------------------------------------------------------------------------

    @property
    def word_delimiter_token(self) -> str | None:
        return self._word_delimiter_token

    @word_delimiter_token.setter
    def word_delimiter_token(self, value: str | None) -> None:
        self._word_delimiter_token = None if value is None else str(value)

    @property
    def word_delimiter_token_id(self) -> int | None:
        return None if self._word_delimiter_token is None else self.convert_tokens_to_ids(self._word_delimiter_token)

    @property
    def vocab_size(self) -> int:
        return len(self.decoder)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.encoder)
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _vocab_lookup(self, token: str) -> int | None:
        return self.encoder.get(token)

    @property
    def all_special_tokens_extended(self) -> list[str | AddedToken]:
        """The named special tokens, then the word delimiter (as the reference lists them)."""
        tokens = super().all_special_tokens_extended
        delimiter = getattr(self, "_word_delimiter_token", None)
        if delimiter is not None and delimiter not in [str(t) for t in tokens]:
            tokens.append(delimiter)
        return tokens

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        out = dict(super().special_tokens_map)
        if self._word_delimiter_token is not None:
            out["word_delimiter_token"] = self._word_delimiter_token
        return out

    # ----- encoding -------------------------------------------------------------------------------------

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        if self.do_lower_case:
            text = text.upper()
        delimiter = self._word_delimiter_token if self._word_delimiter_token is not None else " "
        return list(text.replace(" ", delimiter))

    def _convert_token_to_id(self, token: str) -> int:
        idx = self.encoder.get(token)
        if idx is not None:
            return idx
        unk = self.encoder.get(str(self.unk_token)) if self.unk_token is not None else None
        if unk is None:
            raise ValueError(f"{token!r} is not in the vocabulary and the tokenizer has no unk_token to map it to.")
        return unk

    def _convert_id_to_token(self, index: int) -> str:
        token = self.decoder.get(index)
        if token is None:
            raise ValueError(f"Token id {index} is not in the vocabulary (ids 0..{len(self) - 1}).")
        return token

    # ----- decoding -------------------------------------------------------------------------------------

    def convert_tokens_to_string(  # type: ignore[override]
        self,
        tokens: list[str],
        group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
    ) -> dict[str, Any]:
        """CTC collapse: merge repeats (``group_tokens``), drop blanks, delimiter -> space; optional offsets."""
        if not tokens:
            return {"text": "", "char_offsets": [], "word_offsets": []}
        if group_tokens:
            groups = [(token, len(list(run))) for token, run in groupby(tokens)]
            chars = [g[0] for g in groups]
            repetitions = [g[1] for g in groups]
        else:
            chars, repetitions = list(tokens), [1] * len(tokens)
        blank = str(self.pad_token) if self.pad_token is not None else None
        delimiter = self._word_delimiter_token
        kept = [self.replace_word_delimiter_char if c == delimiter else c for c in chars if c != blank]

        char_offsets = word_offsets = None
        if output_char_offsets or output_word_offsets:
            char_offsets = _char_offsets(repetitions, chars, blank)
            for item, char in zip(char_offsets, kept):
                item["char"] = char
            if output_word_offsets:
                word_offsets = _word_offsets(char_offsets, self.replace_word_delimiter_char)
            if not output_char_offsets:
                char_offsets = None

        text = (" " if spaces_between_special_tokens else "").join(kept).strip()
        if self.do_lower_case:
            text = text.lower()
        return {"text": text, "char_offsets": char_offsets, "word_offsets": word_offsets}

    def _decode(  # type: ignore[override]
        self,
        token_ids: list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
    ) -> str | Wav2Vec2CTCTokenizerOutput:
        limit = len(self)
        for i in token_ids:
            if not 0 <= i < limit:
                raise ValueError(
                    f"Token id {i} is outside the vocabulary (ids 0..{limit - 1}). Labels padded with -100 must "
                    "get the pad token back before decoding: labels[labels == -100] = tokenizer.pad_token_id."
                )
        # The word delimiter is special but stands for a space, so skipping special tokens keeps it.
        skipped = self._skipped_ids() - {self.word_delimiter_token_id} if skip_special_tokens else set()
        tokens = self.convert_ids_to_tokens([i for i in token_ids if i not in skipped])
        result = self.convert_tokens_to_string(
            tokens,
            group_tokens=group_tokens,
            spaces_between_special_tokens=spaces_between_special_tokens,
            output_char_offsets=output_char_offsets,
            output_word_offsets=output_word_offsets,
        )
        text = result["text"]
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            text = self.clean_up_tokenization(text)
        if output_char_offsets or output_word_offsets:
            return Wav2Vec2CTCTokenizerOutput(text, result["char_offsets"], result["word_offsets"])
        return text

    def decode(  # type: ignore[override]
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        **kwargs: Any,
    ) -> str | Wav2Vec2CTCTokenizerOutput:
        """Decode one CTC output (ids per frame); with offsets, returns a :class:`Wav2Vec2CTCTokenizerOutput`.

        Offsets count output frames: multiply by ``model.config.inputs_to_logits_ratio /
        feature_extractor.sampling_rate`` to get seconds.
        """
        ids = _to_py(token_ids)
        if isinstance(ids, int):
            ids = [ids]
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"decode() takes a list of ids (or an array/tensor), got {type(token_ids).__name__}.")
        if ids and isinstance(ids[0], (list, tuple)):
            raise TypeError("decode() takes one sequence of ids; use batch_decode() for a batch.")
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"decode() takes integer ids, got {i!r}.")
        return self._decode(
            [int(i) for i in ids],
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            output_char_offsets=output_char_offsets,
            output_word_offsets=output_word_offsets,
            **kwargs,
        )

    def batch_decode(  # type: ignore[override]
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        **kwargs: Any,
    ) -> list[str] | Wav2Vec2CTCTokenizerOutput:
        """``decode`` each row; with offsets, one :class:`Wav2Vec2CTCTokenizerOutput` holding lists."""
        rows = _to_py(sequences)
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"batch_decode() takes a list of id sequences, got {type(sequences).__name__}.")
        decoded = [
            self.decode(
                row,
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                output_char_offsets=output_char_offsets,
                output_word_offsets=output_word_offsets,
                **kwargs,
            )
            for row in rows
        ]
        if not (output_char_offsets or output_word_offsets):
            return decoded  # type: ignore[return-value]
        return Wav2Vec2CTCTokenizerOutput(
            text=[d.text for d in decoded],  # type: ignore[union-attr]
            char_offsets=[d.char_offsets for d in decoded] if output_char_offsets else None,  # type: ignore[union-attr]
            word_offsets=[d.word_offsets for d in decoded] if output_word_offsets else None,  # type: ignore[union-attr]
        )

    # ----- saving ---------------------------------------------------------------------------------------

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(f"Cannot save the vocabulary: {save_directory!r} is not a folder.")
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"])
        write_json(path, self.vocab if self.target_lang is not None else self.encoder)
        return (path,)
