"""WordPiece tokenization in pure Python: basic tokenization, then greedy WordPiece from a vocab.txt.

A building block for families whose tokenizer is the BERT-style ``[CLS] A [SEP] B [SEP]`` WordPiece one:
a family subclasses :class:`PreTrainedWordPieceTokenizer` (and the fast twin in
:mod:`plugformers.tokenization_wordpiece_fast`) and names its model inputs. The basic tokenizer follows the
``tokenizers`` library's BertNormalizer + BertPreTokenizer exactly (character classes, accent stripping,
CJK splitting), so the Python and fast tokenizers give the same ids.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from plugformers.tokenization_utils import PreTrainedTokenizer
from plugformers.tokenization_utils_base import AddedToken, PreTrainedTokenizerBase, write_text_lines

__all__ = [
    "BasicTokenizer",
    "ClsSepSpecialTokensMixin",
    "PreTrainedWordPieceTokenizer",
    "WordpieceTokenizer",
    "load_vocab",
    "vocab_from_tokenizer_json",
]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.txt"}
SPECIAL_TOKEN_KWARGS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def load_vocab(vocab_file: str | os.PathLike[str]) -> dict[str, int]:
    """Read a WordPiece vocabulary (one token a line, id = line number); duplicates are an error."""
    path = os.fspath(vocab_file)
    vocab: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"Vocabulary file {path!r} is not UTF-8 text: {exc}") from exc
    if lines and lines[-1] == "":
        lines.pop()
    for index, line in enumerate(lines):
        token = line.rstrip("\r")
        if token in vocab:
            raise ValueError(
                f"Vocabulary file {path!r} lists the token {token!r} twice (lines {vocab[token] + 1} and {index + 1}); "
                "every token must appear once."
            )
        vocab[token] = index
    if not vocab:
        raise ValueError(f"Vocabulary file {path!r} is empty.")
    return vocab


# Word boundaries: whitespace that normalization keeps. Python's str.split() also cuts at the control characters
# U+000B, U+000C, U+001C..U+001F and U+0085, which BertNormalizer deletes, so "a\x1fb" is one word "ab".
_WORD_SEPARATORS = re.compile(r"[^\S\x0b\x0c\x1c-\x1f\x85]+")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or ch.isspace()


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    # Unassigned code points (Cn) are kept, as the fast backend and the reference keep them (then [UNK]).
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _lowercase(text: str) -> str:
    # Character by character, like the Rust normalizer (no context-dependent final sigma).
    return text.lower() if text.isascii() else "".join(ch.lower() for ch in text)


class BasicTokenizer:
    """Cleaning, optional lowercasing/accent stripping, CJK and punctuation splitting."""

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Iterable[str] | None = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
    ) -> None:
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents

    def normalize(self, text: str) -> str:
        """BertNormalizer: drop control characters, map whitespace to spaces, isolate CJK, accents, case."""
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                out.append(" ")
            elif self.tokenize_chinese_chars and _is_chinese_char(cp):
                out.extend((" ", ch, " "))
            else:
                out.append(ch)
        text = "".join(out)
        strip = self.strip_accents if self.strip_accents is not None else self.do_lower_case
        if strip:
            text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
        if self.do_lower_case:
            text = _lowercase(text)
        return text

    def tokenize(self, text: str, never_split: Iterable[str] | None = None) -> list[str]:
        """Split ``text`` into words and single punctuation characters."""
        keep = self.never_split | set(never_split or ())
        tokens: list[str] = []
        for word in _WORD_SEPARATORS.split(text):
            if not word:
                continue
            if word in keep:
                tokens.append(word)
                continue
            for piece in self.normalize(word).split():
                tokens.extend(self._split_on_punctuation(piece))
        return tokens

    @staticmethod
    def _split_on_punctuation(word: str) -> list[str]:
        pieces: list[str] = []
        current: list[str] = []
        for ch in word:
            if _is_punctuation(ch):
                if current:
                    pieces.append("".join(current))
                    current = []
                pieces.append(ch)
            else:
                current.append(ch)
        if current:
            pieces.append("".join(current))
        return pieces


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary."""

    def __init__(self, vocab: Mapping[str, int], unk_token: str, max_input_chars_per_word: int = 100) -> None:
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, word: str) -> list[str]:
        """WordPiece pieces of one word; the whole word becomes ``unk_token`` if it cannot be covered."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        if word in self.vocab:
            return [word]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.vocab:
                    found = candidate
                    break
                end -= 1
            if found is None:
                return [self.unk_token]
            pieces.append(found)
            start = end
        return pieces


class ClsSepSpecialTokensMixin(PreTrainedTokenizerBase):
    """The ``[CLS] A [SEP] (B [SEP])`` layout shared by the Python and fast WordPiece tokenizers.

    Listed before the backend class (``PreTrainedTokenizer`` or ``PreTrainedTokenizerFast``), so its methods
    win and ``super()`` reaches the backend's.
    """

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        first = [0] * (len(token_ids_0) + 2)
        if token_ids_1 is None:
            return first
        return first + [1] * (len(token_ids_1) + 1)

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        mask = [1] + [0] * len(token_ids_0) + [1]
        if token_ids_1 is not None:
            mask += [0] * len(token_ids_1) + [1]
        return mask


class PreTrainedWordPieceTokenizer(ClsSepSpecialTokensMixin, PreTrainedTokenizer):
    """``[CLS] A [SEP] B [SEP]`` with WordPiece ``##`` pieces; families subclass it and set ``model_input_names``.

    ``never_split`` tokens are registered as added tokens so that they are kept whole wherever they
    appear, which is also what the fast tokenizer does with them.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    padding_side = "right"

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | None = None,
        do_lower_case: bool = True,
        do_basic_tokenize: bool = True,
        never_split: Iterable[str] | None = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        max_input_chars_per_word: int = 100,
        vocab: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        if vocab is None:
            if vocab_file is None:
                raise ValueError(f"{type(self).__name__} needs a vocab_file (a vocab.txt with one token a line).")
            if not os.path.isfile(vocab_file):
                raise ValueError(f"Cannot find the vocabulary file {os.fspath(vocab_file)!r}.")
            self.vocab = load_vocab(vocab_file)
            source = repr(os.fspath(vocab_file))
        else:
            self.vocab = dict(vocab)
            source = "the given vocabulary"
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        if len(self.ids_to_tokens) != len(self.vocab) or set(self.ids_to_tokens) != set(range(len(self.vocab))):
            raise ValueError(f"The ids of {source} must be 0..{len(self.vocab) - 1}, each used once.")
        added = kwargs.get("added_tokens_decoder") or {}
        added_contents = {str(getattr(t, "content", t.get("content") if isinstance(t, dict) else t)) for t in added.values()}
        specials = {
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        for name, token in specials.items():
            if token is not None and str(token) not in self.vocab and str(token) not in added_contents:
                raise ValueError(
                    f"The special token {name}={str(token)!r} is not in {source}; add it to the vocabulary "
                    f"or pass {name}=<a token that is>."
                )
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word <= 0:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}.")
        self.do_lower_case = bool(do_lower_case)
        self.do_basic_tokenize = bool(do_basic_tokenize)
        self.never_split = list(never_split) if never_split else None
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.strip_accents = strip_accents
        self.max_input_chars_per_word = max_input_chars_per_word
        self.basic_tokenizer = BasicTokenizer(
            do_lower_case=self.do_lower_case,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            strip_accents=strip_accents,
        )
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, str(unk_token), max_input_chars_per_word)
        super().__init__(
            do_lower_case=self.do_lower_case,
            do_basic_tokenize=self.do_basic_tokenize,
            never_split=self.never_split,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            strip_accents=strip_accents,
            max_input_chars_per_word=max_input_chars_per_word,
            **kwargs,
        )
        if self.never_split:
            self._add_tokens(
                [AddedToken(t, normalized=False) for t in self.never_split if t not in self._added_tokens_encoder]
            )

    @classmethod
    def _prepare_loaded_kwargs(cls, kwargs: dict[str, Any], files: dict[str, str | None]) -> None:
        # A folder written by the reference's tokenizers backend may hold only tokenizer.json.
        if kwargs.get("vocab_file") is None and kwargs.get("vocab") is None and files.get("tokenizer_file"):
            kwargs["vocab"] = vocab_from_tokenizer_json(files["tokenizer_file"])

    # ----------------------------------------------------------------- vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.vocab)
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _vocab_lookup(self, token: str) -> int | None:
        return self.vocab.get(token)

    def _convert_token_to_id(self, token: str) -> int:
        idx = self.vocab.get(token)
        return self.vocab[str(self.unk_token)] if idx is None else idx

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, str(self.unk_token))

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        words = self.basic_tokenizer.tokenize(text) if self.do_basic_tokenize else text.split()
        pieces: list[str] = []
        for word in words:
            pieces.extend(self.wordpiece_tokenizer.tokenize(word))
        return pieces

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join WordPiece tokens: ``##`` pieces glue to the previous token, then per-token cleanup.

        This matches the tokenizers WordPiece decoder token for token, so both backends decode alike.
        """
        parts = []
        for i, token in enumerate(tokens):
            if i and token.startswith("##"):
                piece = token[2:]
            elif i:
                piece = " " + token
            else:
                piece = token
            parts.append(_cleanup(piece))
        return "".join(parts)

    # ----------------------------------------------------------------- saving
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write ``vocab.txt`` (one token a line, in id order)."""
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(f"Cannot write the vocabulary: {save_directory!r} is not a directory.")
        name = (f"{filename_prefix}-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        path = os.path.join(save_directory, name)
        write_text_lines(path, (self.ids_to_tokens[i] for i in range(len(self.ids_to_tokens))))
        return (path,)


_CLEANUPS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" do not", " don't"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def _cleanup(piece: str) -> str:
    for a, b in _CLEANUPS:
        piece = piece.replace(a, b)
    return piece


def vocab_from_tokenizer_json(path: str | None) -> dict[str, int]:
    """The WordPiece vocabulary stored in a tokenizer.json."""
    import json

    assert path is not None
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    model = data.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path} does not hold a WordPiece model, so a WordPiece tokenizer cannot read its vocabulary.")
    return {str(k): int(v) for k, v in model["vocab"].items()}
