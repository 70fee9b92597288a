"""Generic tokenizer checks that every family's tokenizer tests reuse.

A family test class mixes in :class:`TokenizerTesterMixin` and sets ``tokenizer_class`` /
``rust_tokenizer_class`` plus the factories ``get_tokenizer(tmp_path, **kwargs)`` and
``get_rust_tokenizer(tmp_path, **kwargs)`` (tiny vocabularies written into ``tmp_path``). Either
class may be None when a family has only one backend. ``corpus`` and ``pair_corpus`` can be extended.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["TokenizerTesterMixin"]


class TokenizerTesterMixin:
    """pytest-style mixin: generic save/load, padding, truncation, special-token and slow==fast checks."""

    tokenizer_class: ClassVar[Any] = None
    rust_tokenizer_class: ClassVar[Any] = None
    corpus: ClassVar[list[str]] = [
        "",
        "   ",
        "hello world",
        "Hello, World!",
        "the quick brown fox",
        "a\x00b\tc\nd",
        "caf\u00e9 na\u00efve",
        "\u4f60\u597d",
        "emoji \U0001f917 here",
        "lone \ud800 surrogate",
    ]
    pair_corpus: ClassVar[list[tuple[str, str]]] = [("hello world", "the fox"), ("a", ""), ("Hello!", "world, hello")]

    # -- factories (override in the family test class)
    def get_tokenizer(self, tmp_path: Path, **kwargs: Any) -> Any:
        raise NotImplementedError

    def get_rust_tokenizer(self, tmp_path: Path, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _all(self, tmp_path: Path, **kwargs: Any) -> list[Any]:
        import pytest

        out = []
        if self.tokenizer_class is not None:
            out.append(self.get_tokenizer(tmp_path, **kwargs))
        if self.rust_tokenizer_class is not None:
            out.append(self.get_rust_tokenizer(tmp_path, **kwargs))
        if not out:
            pytest.skip("no tokenizer class set")
        return out

    def _pair(self, tmp_path: Path, **kwargs: Any) -> tuple[Any, Any]:
        import pytest

        if self.tokenizer_class is None or self.rust_tokenizer_class is None:
            pytest.skip("needs both a Python and a fast tokenizer")
        return self.get_tokenizer(tmp_path, **kwargs), self.get_rust_tokenizer(tmp_path, **kwargs)

    # -- save / load
    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        for n, tok in enumerate(self._all(tmp_path)):
            tok.add_tokens(["brandnewtoken"])
            tok.model_max_length = 32
            save_dir = tmp_path / f"saved{n}"
            files = tok.save_pretrained(save_dir)
            for f in files:
                assert os.path.isfile(f), f
            names = set(os.listdir(save_dir))
            assert {"tokenizer_config.json", "special_tokens_map.json"} <= names
            assert set(type(tok).vocab_files_names.values()) & names
            config = json.loads((save_dir / "tokenizer_config.json").read_text())
            assert config["model_max_length"] == 32
            assert config["tokenizer_class"] in (type(tok).__name__, type(tok).__name__.removesuffix("Fast"))
            assert "added_tokens_decoder" in config
            loaded = type(tok).from_pretrained(save_dir)
            assert loaded.model_max_length == 32
            assert len(loaded) == len(tok)
            assert loaded.get_vocab() == tok.get_vocab()
            assert loaded.special_tokens_map == tok.special_tokens_map
            texts = [*self.corpus, "x brandnewtoken y"]
            assert loaded(texts)["input_ids"] == tok(texts)["input_ids"]
            # A second save over the first replaces it cleanly.
            tok.save_pretrained(save_dir)
            assert not [p for p in os.listdir(tmp_path) if ".staging-" in p]

    def test_cross_backend_load(self, tmp_path: Path) -> None:
        slow, fast = self._pair(tmp_path)
        slow.save_pretrained(tmp_path / "slow")
        fast.save_pretrained(tmp_path / "fast")
        from_slow = self.rust_tokenizer_class.from_pretrained(tmp_path / "slow")
        from_fast = self.tokenizer_class.from_pretrained(tmp_path / "fast")
        assert from_slow(self.corpus)["input_ids"] == slow(self.corpus)["input_ids"]
        assert from_fast(self.corpus)["input_ids"] == fast(self.corpus)["input_ids"]

    def test_from_pretrained_overrides_and_errors(self, tmp_path: Path) -> None:
        import pytest

        for n, tok in enumerate(self._all(tmp_path)):
            tok.save_pretrained(tmp_path / f"d{n}")
            loaded = type(tok).from_pretrained(tmp_path / f"d{n}", model_max_length=7, padding_side="left")
            assert loaded.model_max_length == 7 and loaded.padding_side == "left"
            with pytest.raises(OSError):
                type(tok).from_pretrained(tmp_path / "does-not-exist-here")
            (tmp_path / "empty").mkdir(exist_ok=True)
            with pytest.raises(OSError):
                type(tok).from_pretrained(tmp_path / "empty")

    # -- encoding contracts
    def test_special_tokens_layout(self, tmp_path: Path) -> None:
        for tok in self._all(tmp_path):
            ids = tok.encode("hello world", add_special_tokens=False)
            full = tok.encode("hello world")
            assert full == tok.build_inputs_with_special_tokens(ids)
            assert len(full) - len(ids) == tok.num_special_tokens_to_add()
            mask = tok.get_special_tokens_mask(ids)
            assert len(mask) == len(full)
            assert [m for m, i in zip(mask, full) if m == 0] == [0] * len(ids)
            assert tok.get_special_tokens_mask(full, already_has_special_tokens=True) == mask
            enc = tok("hello world", return_special_tokens_mask=True)
            assert enc["special_tokens_mask"] == mask
            pair = tok.build_inputs_with_special_tokens(ids, ids)
            assert len(pair) == 2 * len(ids) + tok.num_special_tokens_to_add(pair=True)
            assert len(tok.create_token_type_ids_from_sequences(ids, ids)) == len(pair)
            for name in ("unk_token", "pad_token"):
                value = getattr(tok, name)
                if value is not None:
                    assert getattr(tok, name + "_id") == tok.convert_tokens_to_ids(value)
                    assert value in tok.all_special_tokens
            assert tok.all_special_ids == tok.convert_tokens_to_ids(tok.all_special_tokens)

    def test_padding_sides_and_lengths(self, tmp_path: Path) -> None:
        import pytest

        texts = ["hello world the quick", "hello"]
        for tok in self._all(tmp_path):
            pad = tok.pad_token_id
            right = tok(texts, padding=True)
            lengths = [len(tok.encode(t)) for t in texts]
            assert [len(r) for r in right["input_ids"]] == [max(lengths)] * 2
            assert right["attention_mask"][1] == [1] * lengths[1] + [0] * (max(lengths) - lengths[1])
            assert right["input_ids"][1][lengths[1] :] == [pad] * (max(lengths) - lengths[1])
            left = tok(texts, padding=True, padding_side="left")
            assert left["input_ids"][1] == [pad] * (max(lengths) - lengths[1]) + tok.encode(texts[1])
            tok.padding_side = "left"
            assert tok(texts, padding=True)["input_ids"] == left["input_ids"]
            tok.padding_side = "right"
            fixed = tok(texts, padding="max_length", max_length=12)
            assert all(len(r) == 12 for r in fixed["input_ids"])
            multiple = tok(texts, padding=True, pad_to_multiple_of=8)
            assert all(len(r) % 8 == 0 for r in multiple["input_ids"])
            unpadded = tok(texts)
            assert [len(r) for r in unpadded["input_ids"]] == lengths
            with pytest.raises(ValueError):
                tok(texts, padding="sideways")

    def test_truncation_strategies(self, tmp_path: Path) -> None:
        import pytest

        first, second = "hello world " * 4, "the quick brown fox"
        for tok in self._all(tmp_path):
            n_pair = tok.num_special_tokens_to_add(pair=True)
            a = tok.encode(first, add_special_tokens=False)
            b = tok.encode(second, add_special_tokens=False)
            limit = n_pair + len(b) + 2
            out = tok(first, second, truncation="only_first", max_length=limit)["input_ids"]
            assert len(out) == limit
            assert tok(first, second, truncation="longest_first", max_length=limit)["input_ids"].__len__() == limit
            out2 = tok(first, second, truncation="only_second", max_length=n_pair + len(a) + 1)["input_ids"]
            assert len(out2) == n_pair + len(a) + 1
            single = tok(first, truncation=True, max_length=5)["input_ids"]
            assert len(single) == 5
            assert tok(first, truncation=False, max_length=5)["input_ids"] == tok.encode(first)
            tok.truncation_side = "left"
            left = tok(first, truncation=True, max_length=5, add_special_tokens=False)["input_ids"]
            assert left == a[-5:]
            tok.truncation_side = "right"
            assert tok(first, truncation=True, max_length=5, add_special_tokens=False)["input_ids"] == a[:5]
            with pytest.raises(ValueError):
                tok(first, second, truncation="only_second", max_length=n_pair + len(a))

    def test_pairs_batches_and_pretokenized(self, tmp_path: Path) -> None:
        import pytest

        for tok in self._all(tmp_path):
            firsts = [p[0] for p in self.pair_corpus]
            seconds = [p[1] for p in self.pair_corpus]
            batch = tok(firsts, seconds)["input_ids"]
            assert batch == [tok(a, b)["input_ids"] for a, b in self.pair_corpus]
            assert tok(list(self.pair_corpus))["input_ids"] == batch
            words = ["hello", "world"]
            assert tok(words, is_split_into_words=True)["input_ids"] == tok("hello world")["input_ids"]
            assert tok([words, ["hello"]], is_split_into_words=True)["input_ids"][1] == tok("hello")["input_ids"]
            with pytest.raises(ValueError):
                tok(["a", "b"], ["c"])
            with pytest.raises(TypeError):
                tok(123)

    def test_return_types(self, tmp_path: Path) -> None:
        import pytest

        torch = pytest.importorskip("torch")
        for tok in self._all(tmp_path):
            texts = ["hello world", "hello"]
            pt = tok(texts, padding=True, return_tensors="pt")
            assert isinstance(pt["input_ids"], torch.Tensor) and pt["input_ids"].dtype == torch.int64
            assert pt.input_ids.shape == pt.attention_mask.shape
            npy = tok(texts, padding=True, return_tensors="np")
            assert isinstance(npy["input_ids"], np.ndarray)
            assert np.array_equal(npy["input_ids"], pt["input_ids"].numpy())
            single = tok("hello world", return_tensors="pt")
            assert single["input_ids"].shape[0] == 1
            assert pt.to("cpu") is pt
            with pytest.raises(ValueError):
                tok(texts, return_tensors="pt")  # ragged without padding
            with pytest.raises(ValueError):
                tok(texts, return_tensors="tf")
            enc = tok("hello world", return_attention_mask=False, return_token_type_ids=True, return_length=True)
            assert "attention_mask" not in enc and len(enc["token_type_ids"]) == len(enc["input_ids"])
            assert enc["length"] == [len(enc["input_ids"])]

    def test_pad_method(self, tmp_path: Path) -> None:
        import pytest

        torch = pytest.importorskip("torch")
        for tok in self._all(tmp_path):
            rows = [tok("hello world the fox"), tok("hello")]
            rows[0]["labels"], rows[1]["labels"] = 1, 0
            padded = tok.pad(rows, return_tensors="pt")
            assert padded["input_ids"].shape == padded["attention_mask"].shape
            assert padded["input_ids"][1, -1].item() == tok.pad_token_id
            assert padded["labels"].tolist() == [1, 0]
            again = tok.pad({"input_ids": [r["input_ids"] for r in rows]}, padding="max_length", max_length=16)
            assert all(len(r) == 16 for r in again["input_ids"])
            tensors = tok.pad({"input_ids": torch.tensor([[5, 6]])}, padding="max_length", max_length=4)
            assert isinstance(tensors["input_ids"], torch.Tensor) and tensors["input_ids"].shape == (1, 4)

    def test_decode(self, tmp_path: Path) -> None:
        import pytest

        for tok in self._all(tmp_path):
            ids = tok.encode("hello world")
            assert tok.decode(ids, skip_special_tokens=True) == "hello world"
            for special in tok.all_special_ids:
                assert special not in tok.encode(tok.decode(ids, skip_special_tokens=True), add_special_tokens=False)
            assert tok.batch_decode([ids, ids], skip_special_tokens=True) == ["hello world"] * 2
            assert tok.decode(np.array(ids), skip_special_tokens=True) == "hello world"
            assert tok.decode([]) == ""
            with pytest.raises(TypeError):
                tok.decode("hello")
            with pytest.raises(ValueError):
                tok.decode([-1])

    def test_added_tokens(self, tmp_path: Path) -> None:
        import pytest

        for tok in self._all(tmp_path):
            before = len(tok)
            assert tok.add_tokens(["brandnewtoken", "brandnewtoken"]) == 1
            assert len(tok) == before + 1
            new_id = tok.convert_tokens_to_ids("brandnewtoken")
            assert new_id == before
            assert new_id in tok.encode("hello brandnewtoken world")
            assert tok.add_special_tokens({"additional_special_tokens": ["<extra>"]}) == 1
            assert "<extra>" in tok.all_special_tokens
            ids = tok.encode("hello <extra> world")
            assert tok.convert_tokens_to_ids("<extra>") in ids
            assert "<extra>" not in tok.decode(ids, skip_special_tokens=True)
            assert tok.get_added_vocab()["brandnewtoken"] == new_id
            with pytest.raises(ValueError):
                tok.add_special_tokens({"not_a_token": "x"})

    def test_odd_inputs_do_not_crash(self, tmp_path: Path) -> None:
        for tok in self._all(tmp_path):
            for text in ["", " ", "\t\n\r", "\x00\x01\x7f", "\ud800", "a\udfffb", "\u200b"]:
                enc = tok(text)
                assert enc["input_ids"][: 1] is not None
                tok.decode(enc["input_ids"])
            assert tok.encode("", add_special_tokens=False) == []

    def test_too_long_warning(self, tmp_path: Path) -> None:
        import logging

        class Collect(logging.Handler):
            def __init__(self) -> None:
                super().__init__(logging.WARNING)
                self.messages: list[str] = []

            def emit(self, record: logging.LogRecord) -> None:
                self.messages.append(record.getMessage())

        for tok in self._all(tmp_path, model_max_length=4):
            handler = Collect()
            root = logging.getLogger("plugformers")
            root.addHandler(handler)
            try:
                tok("hello world " * 5)
                tok("hello world " * 5)
            finally:
                root.removeHandler(handler)
            warned = [m for m in handler.messages if "longer than the specified maximum" in m]
            assert len(warned) == 1, type(tok).__name__
            assert len(tok("hello world " * 5, truncation=True)["input_ids"]) == 4

    def test_slow_fast_equivalence(self, tmp_path: Path) -> None:
        slow, fast = self._pair(tmp_path)
        options = {"return_special_tokens_mask": True, "return_token_type_ids": True}
        for text in self.corpus:
            a, b = slow(text, **options), fast(text, **options)
            assert dict(a) == dict(b), text
            assert slow.decode(a["input_ids"]) == fast.decode(b["input_ids"]), text
            assert slow.decode(a["input_ids"], skip_special_tokens=True) == fast.decode(
                b["input_ids"], skip_special_tokens=True
            ), text
            assert slow.tokenize(text) == fast.tokenize(text), text
        firsts = [p[0] for p in self.pair_corpus]
        seconds = [p[1] for p in self.pair_corpus]
        for side in ("right", "left"):
            a = slow(firsts, seconds, padding=True, padding_side=side, **options)
            b = fast(firsts, seconds, padding=True, padding_side=side, **options)
            assert dict(a) == dict(b)
        a = slow(self.corpus, truncation=True, max_length=6, padding="max_length", **options)
        b = fast(self.corpus, truncation=True, max_length=6, padding="max_length", **options)
        assert dict(a) == dict(b)

    def test_repr_and_sizes(self, tmp_path: Path) -> None:
        for tok in self._all(tmp_path):
            text = repr(tok)
            assert type(tok).__name__ in text and "added_tokens_decoder" in text
            assert len(tok) >= tok.vocab_size
            vocab = tok.get_vocab()
            assert len(vocab) == len(tok)
            some = next(iter(vocab))
            assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(some)) == some
