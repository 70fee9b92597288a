"""BERT tokenizers against the reference library: same ids, segment ids, masks and decodes; folders load both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

from bert_minilm import minilm_folder  # noqa: E402
from plugformers_bert.tokenization_bert import BertTokenizer  # noqa: E402
from plugformers_bert.tokenization_bert_fast import BertTokenizerFast  # noqa: E402
from test_bert_tokenization import CORPUS, PAIRS, write_vocab  # noqa: E402

import plugformers  # noqa: E402

OURS = (BertTokenizer, BertTokenizerFast)
OPTIONS = [{}, {"do_lower_case": False}, {"do_lower_case": False, "strip_accents": True}, {"tokenize_chinese_chars": False}]
MIXED = [
    "Hello, World! It's a naïve café in Zürich — 3.14 > 2.71?",
    "Tokyo 東京 and São Paulo; emoji 🤗 here",
    "UNAFFABLE unaffable Un-Affable [MASK] [SEP]",
    "  leading and trailing spaces\t\n",
    "x" * 120,
]


def _encode(tok: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return dict(tok(*args, **kwargs).items())


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_ids_segments_and_decode_match_reference(tmp_path: Path, options: dict[str, Any]) -> None:
    vocab = str(write_vocab(tmp_path))
    ref = transformers.BertTokenizer(vocab, **options)
    kwargs = {"padding": True, "return_special_tokens_mask": True}
    firsts, seconds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    expected = _encode(ref, CORPUS, **kwargs)
    expected_pairs = _encode(ref, firsts, seconds, truncation=True, max_length=10, **kwargs)
    assert "token_type_ids" in expected_pairs
    for cls in OURS:
        ours = cls(vocab, **options)
        assert _encode(ours, CORPUS, **kwargs) == expected, cls.__name__
        assert _encode(ours, firsts, seconds, truncation=True, max_length=10, **kwargs) == expected_pairs
        for ids in expected_pairs["input_ids"]:
            for skip in (False, True):
                assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
        assert ours.all_special_tokens == ref.all_special_tokens and ours.get_vocab() == ref.get_vocab()


def test_our_folders_load_in_reference(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    texts = [*CORPUS, "Hello brandnewtoken <extra> World"]
    for cls in OURS:
        ours = cls(vocab, do_lower_case=False, model_max_length=20)
        ours.add_tokens(["brandnewtoken"])
        ours.add_special_tokens({"additional_special_tokens": ["<extra>"]})
        folder = tmp_path / cls.__name__
        ours.save_pretrained(folder)
        for ref_cls in (transformers.AutoTokenizer, transformers.BertTokenizer):
            ref = ref_cls.from_pretrained(folder)
            assert ref(texts, texts[::-1])["input_ids"] == ours(texts, texts[::-1])["input_ids"]
            assert ref(texts, texts[::-1])["token_type_ids"] == ours(texts, texts[::-1])["token_type_ids"]
            assert ref.model_max_length == 20 and len(ref) == len(ours)


def test_reference_folders_load_in_ours(tmp_path: Path) -> None:
    ref = transformers.BertTokenizer(str(write_vocab(tmp_path)), do_lower_case=False, model_max_length=20)
    ref.add_tokens(["brandnewtoken"])
    ref.save_pretrained(tmp_path / "ref")
    texts = [*CORPUS, "Hello brandnewtoken World"]
    for loaded in (*(cls.from_pretrained(tmp_path / "ref") for cls in OURS), plugformers.AutoTokenizer.from_pretrained(tmp_path / "ref")):
        assert _encode(loaded, texts, texts[::-1]) == _encode(ref, texts, texts[::-1]), type(loaded).__name__
        assert loaded.model_max_length == 20 and len(loaded) == len(ref)


def test_real_checkpoint_tokenizer_matches_reference() -> None:
    """all-MiniLM-L6-v2's folder (vocab.txt, tokenizer.json with a fixed 128-token padding set in it)."""
    folder = minilm_folder()
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    ours = plugformers.AutoTokenizer.from_pretrained(folder)
    slow = plugformers.AutoTokenizer.from_pretrained(folder, use_fast=False)
    for tok in (ours, slow):
        assert _encode(tok, MIXED) == _encode(ref, MIXED)
        assert _encode(tok, MIXED, MIXED[::-1], padding=True) == _encode(ref, MIXED, MIXED[::-1], padding=True)
        assert _encode(tok, MIXED, truncation=True, max_length=12, padding="max_length") == _encode(
            ref, MIXED, truncation=True, max_length=12, padding="max_length"
        )
        for ids in ref(MIXED)["input_ids"]:
            assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
