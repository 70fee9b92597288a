"""The fast WordPiece tokenizer: BertNormalizer + BertPreTokenizer + WordPiece in the tokenizers library.

Built from a vocab.txt alone, or loaded from a tokenizer.json (which then wins over vocab.txt). Families
subclass :class:`PreTrainedWordPieceTokenizerFast` beside their Python tokenizer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from plugformers.tokenization_utils_base import AddedToken, write_text_lines
from plugformers.tokenization_utils_fast import PreTrainedTokenizerFast
from plugformers.tokenization_wordpiece import (
    ClsSepSpecialTokensMixin,
    PreTrainedWordPieceTokenizer,
    load_vocab,
)

__all__ = ["PreTrainedWordPieceTokenizerFast"]


class PreTrainedWordPieceTokenizerFast(ClsSepSpecialTokensMixin, PreTrainedTokenizerFast):
    """Fast twin of :class:`~plugformers.tokenization_wordpiece.PreTrainedWordPieceTokenizer` (same ids).

    Options left as None (``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars``) keep what a
    loaded tokenizer.json says; given values rewrite its normalizer.
    """

    vocab_files_names = {"vocab_file": "vocab.txt", "tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    padding_side = "right"
    slow_tokenizer_class = PreTrainedWordPieceTokenizer

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | None = None,
        tokenizer_file: str | os.PathLike[str] | None = None,
        do_lower_case: bool | None = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        tokenize_chinese_chars: bool | None = None,
        strip_accents: bool | None = None,
        never_split: Iterable[str] | None = None,
        max_input_chars_per_word: int | None = None,
        **kwargs: Any,
    ) -> None:
        explicit_strip = strip_accents is not None
        tokenizer_object = kwargs.pop("tokenizer_object", None)
        if tokenizer_object is None and tokenizer_file is None:
            if vocab_file is None:
                raise ValueError(
                    f"{type(self).__name__} needs a vocab_file (vocab.txt) or a tokenizer_file (tokenizer.json)."
                )
            tokenizer_object = self._backend_from_vocab(
                os.fspath(vocab_file),
                do_lower_case=True if do_lower_case is None else do_lower_case,
                strip_accents=strip_accents,
                tokenize_chinese_chars=True if tokenize_chinese_chars is None else tokenize_chinese_chars,
                max_input_chars_per_word=100 if max_input_chars_per_word is None else max_input_chars_per_word,
                unk_token=unk_token,
                cls_token=cls_token,
                sep_token=sep_token,
                specials=(pad_token, mask_token),
                added=kwargs.get("added_tokens_decoder") or {},
            )
        elif tokenizer_object is None:
            tokenizer_object = self._load_tokenizer_file(os.fspath(tokenizer_file))  # type: ignore[arg-type]
        state = _normalizer_state(tokenizer_object)
        lower = state.get("lowercase", True) if do_lower_case is None else bool(do_lower_case)
        chinese = state.get("handle_chinese_chars", True) if tokenize_chinese_chars is None else bool(tokenize_chinese_chars)
        strip = strip_accents if explicit_strip else state.get("strip_accents", strip_accents)
        if state.get("type", "BertNormalizer") == "BertNormalizer" and (
            state.get("lowercase") != lower or state.get("handle_chinese_chars") != chinese or state.get("strip_accents") != strip
        ):
            tokenizer_object.normalizer = normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=chinese, strip_accents=strip, lowercase=lower
            )
        model = tokenizer_object.model
        if max_input_chars_per_word is not None and isinstance(model, models.WordPiece):
            model.max_input_chars_per_word = int(max_input_chars_per_word)
        self.do_lower_case = lower
        self.tokenize_chinese_chars = chinese
        self.strip_accents = strip
        self.never_split = list(never_split) if never_split else None
        self.max_input_chars_per_word = getattr(model, "max_input_chars_per_word", max_input_chars_per_word)
        super().__init__(
            tokenizer_object=tokenizer_object,
            do_lower_case=lower,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            tokenize_chinese_chars=chinese,
            strip_accents=strip,
            never_split=self.never_split,
            **kwargs,
        )
        if self.never_split:
            known = self.added_tokens_encoder
            self._add_tokens([AddedToken(t, normalized=False) for t in self.never_split if t not in known])

    @staticmethod
    def _backend_from_vocab(
        vocab_file: str,
        *,
        do_lower_case: bool,
        strip_accents: bool | None,
        tokenize_chinese_chars: bool,
        max_input_chars_per_word: int,
        unk_token: str,
        cls_token: str,
        sep_token: str,
        specials: tuple[str, ...],
        added: dict[int, Any],
    ) -> Tokenizer:
        if not os.path.isfile(vocab_file):
            raise ValueError(f"Cannot find the vocabulary file {vocab_file!r}.")
        vocab = load_vocab(vocab_file)
        added_contents = {str(getattr(t, "content", t.get("content") if isinstance(t, dict) else t)) for t in added.values()}
        for token in (unk_token, cls_token, sep_token, *specials):
            if token is not None and str(token) not in vocab and str(token) not in added_contents:
                raise ValueError(f"The special token {str(token)!r} is not in the vocabulary file {vocab_file!r}.")
        for token in (unk_token, cls_token, sep_token):
            if str(token) not in vocab:
                raise ValueError(f"{str(token)!r} must be in the vocabulary file {vocab_file!r}, not only an added token.")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word <= 0:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}.")
        backend = Tokenizer(
            models.WordPiece(vocab, unk_token=str(unk_token), max_input_chars_per_word=max_input_chars_per_word)
        )
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
            lowercase=do_lower_case,
        )
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        cls, sep = str(cls_token), str(sep_token)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
        )
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        return backend

    # ----------------------------------------------------------------- saving
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write ``vocab.txt`` from the WordPiece model (so the Python tokenizer can load the folder too)."""
        vocab = self._tokenizer.model.get_vocab() if hasattr(self._tokenizer.model, "get_vocab") else None
        if vocab is None:
            vocab = self._tokenizer.get_vocab(with_added_tokens=False)
        ordered = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in ordered] != list(range(len(ordered))):
            raise ValueError("The WordPiece vocabulary ids are not 0..n-1, so it cannot be written as a vocab.txt.")
        name = (f"{filename_prefix}-" if filename_prefix else "") + "vocab.txt"
        path = os.path.join(save_directory, name)
        write_text_lines(path, (t for t, _ in ordered))
        return (path,)


def _normalizer_state(backend: Tokenizer) -> dict[str, Any]:
    normalizer = backend.normalizer
    if normalizer is None:
        return {"type": None}
    try:
        return json.loads(normalizer.__getstate__())
    except (TypeError, ValueError):
        return {"type": type(normalizer).__name__}
