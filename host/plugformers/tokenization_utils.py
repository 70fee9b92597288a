"""The pure-Python tokenizer backend (:class:`PreTrainedTokenizer`).

A family subclass implements ``_tokenize`` (text to token strings), ``_convert_token_to_id``,
``_convert_id_to_token``, ``get_vocab``/``vocab_size`` and ``save_vocabulary``; this class adds the
added-token handling (matched before ``_tokenize`` sees the text), batching, truncation, padding and
decoding. It deliberately does not import the ``tokenizers`` library.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from plugformers.tokenization_utils_base import (
    AddedToken,
    BatchEncoding,
    PaddingStrategy,
    PreTrainedTokenizerBase,
    TensorType,
    TruncationStrategy,
    clean_lone_surrogates,
)

__all__ = ["PreTrainedTokenizer"]


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class PreTrainedTokenizer(PreTrainedTokenizerBase):
    """Base class of the pure-Python tokenizers (see the module docstring)."""

    is_fast = False

    def __init__(self, **kwargs: Any) -> None:
        self._ready = False
        self._added_tokens_decoder: dict[int, AddedToken] = {}
        self._added_tokens_encoder: dict[str, int] = {}
        # Matchers of all added tokens and of the non-special ones only (used when special tokens are split).
        self._added_pattern: re.Pattern[str] | None = None
        self._plain_pattern: re.Pattern[str] | None = None
        self._lower_map: dict[str, AddedToken] = {}
        added = kwargs.pop("added_tokens_decoder", None) or {}
        for idx, token in added.items():
            if isinstance(token, dict):
                token = AddedToken.from_dict(token)
            elif isinstance(token, str):
                token = AddedToken(token)
            if not isinstance(token, AddedToken):
                raise TypeError(f"added_tokens_decoder values must be AddedToken or dicts, got {type(token).__name__}.")
            self._added_tokens_decoder[int(idx)] = token
            self._added_tokens_encoder[token.content] = int(idx)
        super().__init__(**kwargs)
        self._ready = True
        missing = [t for t in self.all_special_tokens_extended if str(t) not in self._added_tokens_encoder]
        self._add_tokens(missing, special_tokens=True)
        self._update_added_pattern()

    # ----------------------------------------------------------------- to be provided by families
    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} must implement _tokenize().")

    def _convert_token_to_id(self, token: str) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement _convert_token_to_id().")

    def _convert_id_to_token(self, index: int) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement _convert_id_to_token().")

    def _vocab_lookup(self, token: str) -> int | None:
        """The id of ``token`` in the model vocabulary (not added tokens), or None."""
        return self.get_vocab().get(token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens back into text (families with sub-word markers override this)."""
        return " ".join(tokens)

    # ----------------------------------------------------------------- added tokens
    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._added_tokens_decoder.items()))

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {tok.content: idx for idx, tok in sorted(self._added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    def __len__(self) -> int:
        extra = sum(1 for idx in self._added_tokens_decoder if idx >= self.vocab_size)
        return self.vocab_size + extra

    def _on_special_token_set(self, value: str | AddedToken | None) -> None:
        # A special token set after construction is matched as a whole only if the vocabulary knows it;
        # add_special_tokens() is the way to create a new id.
        if not getattr(self, "_ready", False) or value is None or str(value) in self._added_tokens_encoder:
            return
        if self._vocab_lookup(str(value)) is not None:
            self._add_tokens([value], special_tokens=True)

    def _add_tokens(self, new_tokens: list[str | AddedToken], special_tokens: bool = False) -> int:
        added = 0
        for token in new_tokens:
            if isinstance(token, str):
                token = AddedToken(token, normalized=not special_tokens, special=special_tokens)
            elif special_tokens and not token.special:
                token = AddedToken(token.content, token.single_word, token.lstrip, token.rstrip, token.normalized, True)
            if not token.content:
                continue
            if token.content in self._added_tokens_encoder:
                known = self._added_tokens_encoder[token.content]
                if special_tokens and not self._added_tokens_decoder[known].special:
                    self._added_tokens_decoder[known] = token
                continue
            idx = self._vocab_lookup(token.content)
            if idx is None:
                idx = len(self)
                added += 1
            self._added_tokens_decoder[idx] = token
            self._added_tokens_encoder[token.content] = idx
        self._update_added_pattern()
        return added

    def _lowercases(self) -> bool:
        return bool(getattr(self, "do_lower_case", False))

    def _update_added_pattern(self) -> None:
        tokens = sorted(self._added_tokens_decoder.values(), key=lambda t: len(t.content), reverse=True)
        lower = self._lowercases()

        def matcher(chosen: list[AddedToken]) -> re.Pattern[str] | None:
            if not chosen:
                return None
            parts = [f"(?i:{re.escape(t.content)})" if lower and t.normalized else re.escape(t.content) for t in chosen]
            return re.compile("|".join(parts))

        self._added_pattern = matcher(tokens)
        self._plain_pattern = matcher([t for t in tokens if not t.special])
        self._lower_map = {t.content.lower(): t for t in tokens if lower and t.normalized}

    def _match_token(self, matched: str) -> AddedToken:
        idx = self._added_tokens_encoder.get(matched)
        if idx is not None:
            return self._added_tokens_decoder[idx]
        return self._lower_map[matched.lower()]

    def _split_on_added_tokens(
        self, text: str, split_special_tokens: bool | None = None
    ) -> list[tuple[str, AddedToken | None]]:
        """Cut ``text`` into (piece, token) parts: ``token`` is set where an added token matched.

        With ``split_special_tokens`` (default: the tokenizer's setting) special tokens are not matched.
        """
        if split_special_tokens is None:
            split_special_tokens = self.split_special_tokens
        pattern = self._plain_pattern if split_special_tokens else self._added_pattern
        if pattern is None or not text:
            return [(text, None)]
        parts: list[tuple[str, AddedToken | None]] = []
        pos = 0
        strip_next = False
        for m in pattern.finditer(text):
            token = self._match_token(m.group(0))
            start, end = m.span()
            if token.single_word and (
                (start > 0 and _is_word_char(text[start - 1])) or (end < len(text) and _is_word_char(text[end]))
            ):
                continue
            before = text[pos:start]
            if strip_next:
                before = before.lstrip()
            if token.lstrip:
                before = before.rstrip()
            if before:
                parts.append((before, None))
            parts.append((token.content, token))
            strip_next = token.rstrip
            pos = end
        rest = text[pos:]
        if strip_next:
            rest = rest.lstrip()
        if rest:
            parts.append((rest, None))
        return parts

    # ----------------------------------------------------------------- tokenize / ids
    def tokenize(
        self,
        text: str,
        pair: str | None = None,
        add_special_tokens: bool = False,
        split_special_tokens: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Split ``text`` into token strings (added tokens are kept whole)."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize() takes a str, got {type(text).__name__}.")
        text = clean_lone_surrogates(text)
        tokens: list[str] = []
        for piece, token in self._split_on_added_tokens(text, split_special_tokens):
            if token is not None:
                tokens.append(token.content)
            else:
                tokens.extend(self._tokenize(piece, **kwargs))
        if pair is not None or add_special_tokens:
            ids_a = self.convert_tokens_to_ids(tokens)
            ids_b = None if pair is None else self.convert_tokens_to_ids(self.tokenize(pair, split_special_tokens=split_special_tokens))
            if add_special_tokens:
                return self.convert_ids_to_tokens(self.build_inputs_with_special_tokens(ids_a, ids_b))
            return tokens + self.convert_ids_to_tokens(ids_b or [])
        return tokens

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: str) -> int:
        idx = self._added_tokens_encoder.get(token)
        if idx is not None:
            return idx
        return self._convert_token_to_id(token)

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> Any:
        if isinstance(ids, int):
            tok = self._added_tokens_decoder.get(ids)
            return tok.content if tok is not None else self._convert_id_to_token(ids)
        special = set(self.all_special_ids) if skip_special_tokens else set()
        out = []
        for i in ids:
            i = int(i)
            if i in special:
                continue
            tok = self._added_tokens_decoder.get(i)
            out.append(tok.content if tok is not None else self._convert_id_to_token(i))
        return out

    def _input_ids(self, value: Any, is_split_into_words: bool, split_special_tokens: bool) -> list[int]:
        if isinstance(value, str):
            return self.convert_tokens_to_ids(self.tokenize(value, split_special_tokens=split_special_tokens))
        if is_split_into_words:
            ids: list[int] = []
            for word in value:
                ids.extend(self.convert_tokens_to_ids(self.tokenize(word, split_special_tokens=split_special_tokens)))
            return ids
        return [int(i) for i in value]

    # ----------------------------------------------------------------- batching
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
        if return_offsets_mapping:
            raise NotImplementedError(
                "return_offsets_mapping needs a fast tokenizer (PreTrainedTokenizerFast); "
                f"{type(self).__name__} is a pure-Python one."
            )
        rows: list[dict[str, Any]] = []
        mapping: list[int] = []
        for n, item in enumerate(batch):
            first, second = item if is_pair else (item, None)
            ids = self._input_ids(first, is_split_into_words, split_special_tokens)
            pair_ids = None if second is None else self._input_ids(second, is_split_into_words, split_special_tokens)
            produced = self.prepare_for_model(
                ids,
                pair_ids,
                add_special_tokens=add_special_tokens,
                truncation_strategy=truncation_strategy,
                max_length=max_length,
                stride=stride,
                return_token_type_ids=return_token_type_ids,
                return_attention_mask=return_attention_mask,
                return_overflowing_tokens=return_overflowing_tokens,
                return_special_tokens_mask=return_special_tokens_mask,
                verbose=verbose,
            )
            if not return_overflowing_tokens:
                produced = produced[:1]
            rows.extend(produced)
            mapping.extend([n] * len(produced))
        keys = list(rows[0]) if rows else ["input_ids"]
        data: dict[str, Any] = {k: [r[k] for r in rows] for k in keys}
        if return_attention_mask:
            data["attention_mask"] = [[1] * len(r["input_ids"]) for r in rows]
        if padding_strategy is not PaddingStrategy.DO_NOT_PAD and rows:
            target = max_length
            if padding_strategy is PaddingStrategy.LONGEST:
                target = max(len(r["input_ids"]) for r in rows)
            data = dict(
                self.pad(
                    data,
                    padding="max_length",
                    max_length=target,
                    pad_to_multiple_of=pad_to_multiple_of,
                    padding_side=padding_side,
                    return_attention_mask=return_attention_mask,
                )
            )
        ordered = {k: data[k] for k in self._output_order(data)}
        if return_overflowing_tokens:
            ordered["overflow_to_sample_mapping"] = mapping
        if return_length:
            ordered["length"] = [len(ids) for ids in ordered["input_ids"]]
        if not batched and not return_overflowing_tokens and return_tensors is None:
            return BatchEncoding({k: (v if k == "length" else v[0]) for k, v in ordered.items()})
        return BatchEncoding(ordered, tensor_type=return_tensors)

    @staticmethod
    def _output_order(data: dict[str, Any]) -> list[str]:
        order = ["input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"]
        return [k for k in order if k in data] + [k for k in data if k not in order]

    # ----------------------------------------------------------------- decoding
    def _skipped_ids(self) -> set[int]:
        """What ``decode(skip_special_tokens=True)`` drops: the special tokens and every added token marked special."""
        return set(self.all_special_ids) | {i for i, tok in self._added_tokens_decoder.items() if tok.special}

    def _decode(self, token_ids: list[int], skip_special_tokens: bool = False, **kwargs: Any) -> str:
        special = self._skipped_ids() if skip_special_tokens else set()
        limit = len(self)
        tokens = []
        for i in token_ids:
            if i in special or i >= limit:
                continue  # ids outside the vocabulary are dropped, as the fast backend does
            tok = self._added_tokens_decoder.get(i)
            tokens.append(tok.content if tok is not None else self._convert_id_to_token(i))
        return self.convert_tokens_to_string(tokens)
