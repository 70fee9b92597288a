"""DistilBERT tokenizers against the reference library: same ids/masks/decodes, folders load both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

from plugformers_distilbert.tokenization_distilbert import DistilBertTokenizer  # noqa: E402
from plugformers_distilbert.tokenization_distilbert_fast import DistilBertTokenizerFast  # noqa: E402
from test_tokenization_distilbert import CORPUS, PAIRS, write_vocab  # noqa: E402

OURS = (DistilBertTokenizer, DistilBertTokenizerFast)
OPTIONS = [{}, {"do_lower_case": False}, {"do_lower_case": False, "strip_accents": True}, {"strip_accents": False}]
# The reference's tokenizers backend cannot take lone surrogates at all; ours replace them.
REF_CORPUS = [t for t in CORPUS if "\ud800" not in t and "\udfff" not in t]
REF_PAIRS = [(a, b) for a, b in PAIRS if a in REF_CORPUS and b in REF_CORPUS]


def _encode(tok: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in tok(*args, **kwargs).items()}


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_ids_masks_and_decode_match_reference(tmp_path: Path, options: dict[str, Any]) -> None:
    vocab = str(write_vocab(tmp_path))
    ref = transformers.DistilBertTokenizer(vocab, **options)
    kwargs = {"padding": True, "return_special_tokens_mask": True, "return_token_type_ids": True}
    expected = _encode(ref, REF_CORPUS, **kwargs)
    firsts, seconds = [p[0] for p in REF_PAIRS], [p[1] for p in REF_PAIRS]
    expected_pairs = _encode(ref, firsts, seconds, truncation=True, max_length=10, **kwargs)
    for cls in OURS:
        ours = cls(vocab, **options)
        assert _encode(ours, REF_CORPUS, **kwargs) == expected, cls.__name__
        assert _encode(ours, firsts, seconds, truncation=True, max_length=10, **kwargs) == expected_pairs
        for ids in expected["input_ids"]:
            for skip in (False, True):
                assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
        assert ours.all_special_tokens == ref.all_special_tokens
        assert ours.all_special_ids == ref.all_special_ids
        assert len(ours) == len(ref) and ours.get_vocab() == ref.get_vocab()


def test_padding_left_and_tensors_match_reference(tmp_path: Path) -> None:
    vocab = str(write_vocab(tmp_path))
    ref = transformers.DistilBertTokenizer(vocab, padding_side="left")
    expected = ref(REF_CORPUS[:6], padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    for cls in OURS:
        got = cls(vocab, padding_side="left")(
            REF_CORPUS[:6], padding="max_length", max_length=12, truncation=True, return_tensors="pt"
        )
        assert sorted(got) == sorted(expected)
        for key in expected:
            assert got[key].tolist() == expected[key].tolist(), key


def test_our_folders_load_in_reference(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    for cls in OURS:
        ours = cls(vocab, do_lower_case=False, model_max_length=20)
        ours.add_tokens(["brandnewtoken"])
        ours.add_special_tokens({"additional_special_tokens": ["<extra>"]})
        folder = tmp_path / cls.__name__
        ours.save_pretrained(folder)
        for ref_cls in (transformers.AutoTokenizer, transformers.DistilBertTokenizer):
            ref = ref_cls.from_pretrained(folder)
            texts = [*REF_CORPUS, "Hello brandnewtoken <extra> World"]
            assert ref(texts)["input_ids"] == ours(texts)["input_ids"]
            assert ref.model_max_length == 20 and len(ref) == len(ours)
            assert "<extra>" in ref.all_special_tokens


def test_reference_folders_load_in_ours(tmp_path: Path) -> None:
    vocab = str(write_vocab(tmp_path))
    ref = transformers.DistilBertTokenizer(vocab, do_lower_case=False, model_max_length=20)
    ref.add_tokens(["brandnewtoken"])
    ref.add_special_tokens({"additional_special_tokens": ["<extra>"]})
    ref.save_pretrained(tmp_path / "ref")
    texts = [*REF_CORPUS, "Hello brandnewtoken <extra> World"]
    for cls in OURS:
        ours = cls.from_pretrained(tmp_path / "ref")
        assert ours(texts)["input_ids"] == ref(texts)["input_ids"], cls.__name__
        assert ours.model_max_length == 20 and len(ours) == len(ref)
        assert ours.all_special_tokens == ref.all_special_tokens
        ids = ref("Hello brandnewtoken <extra> World")["input_ids"]
        assert ours.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)


def _both(tmp_path: Path, **options: Any) -> tuple[Any, list[Any]]:
    vocab = str(write_vocab(tmp_path))
    return transformers.DistilBertTokenizer(vocab, **options), [cls(vocab, **options) for cls in OURS]


def test_max_length_with_padding_is_the_pad_target_not_a_cut(tmp_path: Path) -> None:
    ref, ours = _both(tmp_path)
    texts = REF_CORPUS[:6]
    for options in (
        {"padding": "max_length", "max_length": 5},
        {"padding": True, "max_length": 5},
        {"padding": "longest", "max_length": 5},
        {"max_length": 5},
    ):
        expected = _encode(ref, texts, **options)
        for tok in ours:
            assert _encode(tok, texts, **options) == expected, (type(tok).__name__, options)


def _plain(value: Any) -> Any:
    """Arrays/tensors to (kind, nested lists) so results of different libraries compare."""
    if hasattr(value, "tolist"):
        return (type(value).__module__.split(".")[0], value.tolist())
    return value


def test_pad_like_a_data_collator(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import numpy as np

    ref, ours = _both(tmp_path)
    ids = [ref(t)["input_ids"] for t in REF_CORPUS[:4]]
    cases: list[tuple[list[dict[str, Any]], dict[str, Any]]] = [
        ([{"input_ids": torch.tensor(i)} for i in ids], {}),
        ([{"input_ids": np.array(i)} for i in ids], {}),
        ([{"input_ids": torch.tensor(i), "labels": torch.tensor(n)} for n, i in enumerate(ids)], {}),
        ([{"input_ids": i} for i in ids], {"padding": False, "pad_to_multiple_of": 4}),
        ([{"input_ids": i} for i in ids], {"padding": True, "pad_to_multiple_of": 4}),
        ([{"input_ids": i} for i in ids], {"padding": "max_length", "max_length": 30, "return_tensors": "pt"}),
    ]
    for rows, options in cases:
        expected = {k: _plain(v) for k, v in ref.pad(rows, **options).items()}
        for tok in ours:
            got = {k: _plain(v) for k, v in tok.pad(rows, **options).items()}
            assert got == expected, (type(tok).__name__, options)


def test_split_special_tokens_matches_reference(tmp_path: Path) -> None:
    vocab = str(write_vocab(tmp_path))
    text = ["hello [MASK] world [SEP]", "[CLS][PAD] x"]
    ref = transformers.DistilBertTokenizer(vocab)
    ref_split = transformers.DistilBertTokenizer(vocab, split_special_tokens=True)
    for cls in OURS:
        ours = cls(vocab)
        for flag in (True, False):
            assert _encode(ours, text, split_special_tokens=flag) == _encode(ref, text, split_special_tokens=flag)
        assert _encode(cls(vocab, split_special_tokens=True), text) == _encode(ref_split, text)
        cls(vocab, split_special_tokens=True).save_pretrained(tmp_path / cls.__name__)
        assert transformers.AutoTokenizer.from_pretrained(tmp_path / cls.__name__).split_special_tokens is True
    ref_split.save_pretrained(tmp_path / "ref")
    for cls in OURS:
        assert _encode(cls.from_pretrained(tmp_path / "ref"), text) == _encode(ref_split, text)


def test_python_whitespace_chars_match_reference(tmp_path: Path) -> None:
    ref, ours = _both(tmp_path)
    texts = [f"hello{ch}world un{ch}affable" for ch in map(chr, range(0x110000)) if ch.isspace()]
    expected = _encode(ref, texts)
    for tok in ours:
        assert _encode(tok, texts) == expected, type(tok).__name__


def test_tokens_added_as_special_match_reference(tmp_path: Path) -> None:
    ref, ours = _both(tmp_path)
    for tok in (ref, *ours):
        tok.add_tokens(["<sp>"], special_tokens=True)
    ids = ref("a <sp> b")["input_ids"]
    for tok in ours:
        assert tok("a <sp> b")["input_ids"] == ids
        for skip in (True, False):
            assert tok.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
            assert tok.convert_ids_to_tokens(ids, skip_special_tokens=skip) == ref.convert_ids_to_tokens(
                ids, skip_special_tokens=skip
            )
        assert tok.get_special_tokens_mask(ids, already_has_special_tokens=True) == ref.get_special_tokens_mask(
            ids, already_has_special_tokens=True
        )


def test_batch_encoding_position_helpers_match_reference(tmp_path: Path) -> None:
    vocab = str(write_vocab(tmp_path))
    ref = transformers.DistilBertTokenizer(vocab)
    ours = DistilBertTokenizerFast(vocab)
    firsts, seconds = ["hello world unaffable", "the quick brown fox"], ["dog", "a b c"]
    expected, got = ref(firsts, seconds, padding=True), ours(firsts, seconds, padding=True)
    for row in range(2):
        n = len(expected["input_ids"][row])
        for i in range(n):
            for name in ("token_to_word", "token_to_sequence", "token_to_chars"):
                assert getattr(got, name)(row, i) == getattr(expected, name)(row, i), (name, row, i)
        for seq in (0, 1):
            for w in range(4):
                assert got.word_to_tokens(row, w, seq) == expected.word_to_tokens(row, w, seq)
                if expected.word_to_tokens(row, w, seq) is not None:
                    assert got.word_to_chars(row, w, seq) == expected.word_to_chars(row, w, seq)
            for c in range(25):
                assert got.char_to_word(row, c, seq) == expected.char_to_word(row, c, seq)
                assert got.char_to_token(row, c, seq) == expected.char_to_token(row, c, seq)
    single_ref, single = ref("hello world"), ours("hello world")
    assert single.word_to_tokens(1) == single_ref.word_to_tokens(1)
    assert type(single.word_to_tokens(1)).__name__ == type(single_ref.word_to_tokens(1)).__name__ == "TokenSpan"
    assert type(single.token_to_chars(1)).__name__ == type(single_ref.token_to_chars(1)).__name__ == "CharSpan"


def test_decode_batches_match_reference(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ref, ours = _both(tmp_path)
    rows = ref(REF_CORPUS[:5], padding=True)["input_ids"]
    inputs = [rows, torch.tensor(rows), rows[0], torch.tensor(rows[0]), [[]], [], rows[0][1]]
    for tok in ours:
        for value in inputs:
            for skip in (False, True):
                assert tok.decode(value, skip_special_tokens=skip) == ref.decode(value, skip_special_tokens=skip)
                if not isinstance(value, int) and len(value):  # the reference rejects [] and a bare id here
                    assert tok.batch_decode(value, skip_special_tokens=skip) == ref.batch_decode(
                        value, skip_special_tokens=skip
                    )


def test_extra_special_tokens_match_reference(tmp_path: Path) -> None:
    ref, ours = _both(tmp_path)
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"extra_special_tokens": ["<e1>", "<e2>"]}, {}),
        ({"extra_special_tokens": ["<e3>"]}, {}),
        ({"extra_special_tokens": ["<e4>", "<e3>"]}, {"replace_extra_special_tokens": False}),
        ({"additional_special_tokens": ["<a1>"]}, {}),
        ({"additional_special_tokens": ["<a>"], "bos_token": "<b>"}, {}),
        ({"extra_special_tokens": ["<x1>"], "eos_token": "<eos>"}, {}),
        ({"eos_token": "<eos2>", "extra_special_tokens": ["<x2>"], "bos_token": "<b2>"}, {}),
    ]
    for tok in ours:
        for tokens, options in steps:
            assert tok.add_special_tokens(tokens, **options) == ref.add_special_tokens(tokens, **options), tokens
            assert tok.extra_special_tokens == ref.extra_special_tokens
            assert tok.extra_special_tokens_ids == ref.extra_special_tokens_ids
            assert tok.all_special_tokens == ref.all_special_tokens and tok.get_vocab() == ref.get_vocab()
        ref, _ = _both(tmp_path)
    folder = tmp_path / "ref"
    ref = transformers.DistilBertTokenizer(str(write_vocab(tmp_path)), extra_special_tokens=["<i1>"])
    ref.save_pretrained(folder)
    for cls in OURS:
        loaded = cls.from_pretrained(folder)
        assert loaded.extra_special_tokens == ["<i1>"] and loaded.get_vocab() == ref.get_vocab()


def test_only_second_on_single_texts_matches_reference_when_nothing_is_cut(tmp_path: Path) -> None:
    ref, ours = _both(tmp_path)
    texts = ["hello world", "the quick brown fox"]
    expected = _encode(ref, texts, truncation="only_second", max_length=10)
    for tok in ours:
        assert _encode(tok, texts, truncation="only_second", max_length=10) == expected
        # The reference's fast tokenizer refuses too when it would have to cut a single text.
        with pytest.raises(Exception):  # noqa: B017
            ref(texts, truncation="only_second", max_length=4)
        with pytest.raises(ValueError, match="text_pair"):
            tok(texts, truncation="only_second", max_length=4)


def _outcome(tok: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        enc = tok(*args, **kwargs)
    except BaseException as exc:  # the reference's backend raises plain Exceptions or Rust panics; ours ValueError
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        return "error"
    return enc["input_ids"], enc.get("overflow_to_sample_mapping")


def test_overflow_windows_match_reference_on_random_cases(tmp_path: Path) -> None:
    import random

    ref, ours = _both(tmp_path)
    words = ["hello", "world", "the", "quick", "brown", "fox", "unaffable", "a", "b", "c", "dog"]
    rng = random.Random(1)
    for _ in range(150):
        first = " ".join(rng.choices(words, k=rng.randint(0, 10)))
        # Not empty: the reference's fast tokenizer drops a single text_pair="" (its Python one keeps it).
        second = " ".join(rng.choices(words, k=rng.randint(1, 10)))
        options = {
            "truncation": rng.choice(["longest_first", "only_first", "only_second"]),
            "max_length": rng.randint(5, 16),
            "stride": rng.randint(0, 3),
            "return_overflowing_tokens": True,
        }
        side = rng.choice(["left", "right"])
        for tok in (ref, *ours):
            tok.truncation_side = side
        expected = _outcome(ref, first, second, **options)
        for tok in ours:
            assert _outcome(tok, first, second, **options) == expected, (type(tok).__name__, first, second, options, side)
