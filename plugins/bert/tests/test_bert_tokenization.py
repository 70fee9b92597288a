"""BERT tokenizers: the shared tokenizer contracts, segment ids for text pairs, files and the Auto class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from plugformers_bert.tokenization_bert import BertTokenizer
from plugformers_bert.tokenization_bert_fast import BertTokenizerFast

import plugformers
from plugformers.testing.tokenizer_tests import TokenizerTesterMixin

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "##es", "jump", "##s", "over",
    "lazy", "dog", ",", ".", "!", "?", "'", "a", "b", "c", "un", "##aff", "##able", "hello", "world", "cafe", "café",
    "你", "好", "is", "it", "Hello",
]  # fmt: skip
CORPUS = [
    "",
    "hello world",
    "Hello, World!",
    "the quick brown fox jumps over the lazy dog.",
    "unaffable foxes?",
    "café Cafe\u0301 cafe",
    "你好 a b c",
    "is it [MASK] ?",
]
PAIRS = list(zip(CORPUS, CORPUS[3:] + CORPUS[:3]))
OURS = (BertTokenizer, BertTokenizerFast)


def write_vocab(folder: Path, tokens: list[str] = VOCAB) -> Path:
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


class TestBertTokenizers(TokenizerTesterMixin):
    tokenizer_class = BertTokenizer
    rust_tokenizer_class = BertTokenizerFast
    corpus = CORPUS
    pair_corpus = PAIRS

    def get_tokenizer(self, tmp_path: Path, **kwargs: Any) -> BertTokenizer:
        return BertTokenizer(write_vocab(tmp_path), **kwargs)

    def get_rust_tokenizer(self, tmp_path: Path, **kwargs: Any) -> BertTokenizerFast:
        return BertTokenizerFast(write_vocab(tmp_path), **kwargs)


@pytest.mark.parametrize("cls", OURS)
def test_pairs_get_segment_ids(tmp_path: Path, cls: type) -> None:
    tok = cls(write_vocab(tmp_path))
    assert tok.model_input_names == ["input_ids", "token_type_ids", "attention_mask"]
    enc = tok("hello world", "the fox")
    # [CLS] hello world [SEP] | the fox [SEP]
    assert enc["input_ids"] == [2, 26, 27, 3, 5, 8, 3]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert tok("hello")["token_type_ids"] == [0, 0, 0]
    padded = tok(["hello", "hello world"], ["fox", "the dog"], padding=True)
    assert padded["token_type_ids"] == [[0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1]]
    assert padded["attention_mask"][0] == [1, 1, 1, 1, 1, 0, 0]
    assert tok.decode(enc["input_ids"]) == "[CLS] hello world [SEP] the fox [SEP]"


def test_slow_equals_fast_on_pairs_with_truncation(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    slow, fast = BertTokenizer(vocab), BertTokenizerFast(vocab)
    firsts, seconds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    for options in ({"padding": True}, {"truncation": True, "max_length": 8, "padding": "max_length"}):
        assert dict(slow(firsts, seconds, **options)) == dict(fast(firsts, seconds, **options)), options


def test_saved_folder_names_bert_and_loads_through_auto(tmp_path: Path) -> None:
    fast = BertTokenizerFast(write_vocab(tmp_path), do_lower_case=False, model_max_length=32)
    names = sorted(Path(f).name for f in fast.save_pretrained(tmp_path / "out"))
    assert names == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer" and config["do_lower_case"] is False
    (tmp_path / "out" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    auto = plugformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    slow = plugformers.AutoTokenizer.from_pretrained(tmp_path / "out", use_fast=False)
    assert type(auto) is BertTokenizerFast and type(slow) is BertTokenizer
    for tok in (auto, slow):
        assert tok("Hello world", "fox")["input_ids"] == fast("Hello world", "fox")["input_ids"]
        assert tok.model_max_length == 32
