"""DistilBERT tokenizers: the shared tokenizer contracts, slow == fast on a mixed corpus, file handling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from plugformers_distilbert.tokenization_distilbert import DistilBertTokenizer
from plugformers_distilbert.tokenization_distilbert_fast import DistilBertTokenizerFast

from plugformers.testing.tokenizer_tests import TokenizerTesterMixin

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[FOO]", "the", "quick", "brown", "fox", "##es", "jump", "##s",
    "over", "lazy", "dog", ",", ".", "!", "?", "'", "-", "(", ")", "$", "a", "b", "c", "d", "##a", "##b", "##c",
    "un", "##aff", "##able", "hello", "world", "here", "emoji", "e", "cafe", "café", "naive", "naïve", "你", "好",
    "世", "do", "not", "n", "t", "s", "x", "##x", "Hello", "HELLO", "World", "über", "uber", "i", "##i", "\U0001f917",
    "lone", "surrogate", "stanbul", "##stanbul",
]

CORPUS = [
    "",
    "   ",
    "\t\n",
    "hello world",
    "Hello, World!",
    "HELLO wOrLd?",
    "café Über über cafe naïve",
    "Cafe\u0301 e\u0301",
    "你好世界",
    "mixed你好text",
    "emoji \U0001f917 here \U0001f917\U0001f917",
    "a\x00b\x07c\u200bd\x7f e",
    "x" * 150,
    "unaffable " * 3,
    "the quick brown fox jumps over the lazy dog.",
    "do not , don't it's (a)-$b$",
    "[CLS] hello [SEP] [MASK] x",
    "hello[MASK]x",
    "hello [FOO] world x[FOO]y",
    "ΣΑΣ σας İstanbul",
    "lone \ud800 surrogate \udfff",
    "tab\tnew\nline\r\u3000ideographic\u00a0nbsp",
]
PAIRS = list(zip(CORPUS, CORPUS[5:] + CORPUS[:5]))


def write_vocab(tmp_path: Path, tokens: list[str] = VOCAB, name: str = "vocab.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


class TestDistilBertTokenizers(TokenizerTesterMixin):
    tokenizer_class = DistilBertTokenizer
    rust_tokenizer_class = DistilBertTokenizerFast
    corpus = CORPUS
    pair_corpus = PAIRS

    def get_tokenizer(self, tmp_path: Path, **kwargs: Any) -> DistilBertTokenizer:
        return DistilBertTokenizer(write_vocab(tmp_path), **kwargs)

    def get_rust_tokenizer(self, tmp_path: Path, **kwargs: Any) -> DistilBertTokenizerFast:
        return DistilBertTokenizerFast(write_vocab(tmp_path), **kwargs)


OPTIONS = [
    {},
    {"do_lower_case": False},
    {"do_lower_case": False, "strip_accents": True},
    {"strip_accents": False},
    {"tokenize_chinese_chars": False},
    {"never_split": ["[FOO]", "Hello"]},
    {"max_input_chars_per_word": 5},
    {"padding_side": "left"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_slow_equals_fast_on_mixed_corpus(tmp_path: Path, options: dict[str, Any]) -> None:
    vocab = write_vocab(tmp_path)
    slow, fast = DistilBertTokenizer(vocab, **options), DistilBertTokenizerFast(vocab, **options)
    extra = {"return_special_tokens_mask": True, "return_token_type_ids": True, "padding": True}
    a, b = slow(CORPUS, **extra), fast(CORPUS, **extra)
    assert dict(a) == dict(b)
    for text, ids in zip(CORPUS, a["input_ids"]):
        assert slow.tokenize(text) == fast.tokenize(text), text
        for skip in (False, True):
            assert slow.decode(ids, skip_special_tokens=skip) == fast.decode(ids, skip_special_tokens=skip), text
    firsts, seconds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    assert dict(slow(firsts, seconds, **extra)) == dict(fast(firsts, seconds, **extra))
    cut = {"truncation": True, "max_length": 9, "padding": "max_length", "return_special_tokens_mask": True}
    assert dict(slow(firsts, seconds, **cut)) == dict(fast(firsts, seconds, **cut))


def test_known_tokenization(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    for tok in (DistilBertTokenizer(vocab), DistilBertTokenizerFast(vocab)):
        assert tok.tokenize("UNaffable Foxes, hello!") == ["un", "##aff", "##able", "fox", "##es", ",", "hello", "!"]
        assert tok.tokenize("café") == ["cafe"]  # lowercasing strips accents by default
        assert tok.tokenize("x" * 101) == ["[UNK]"]
        assert tok("hello", "world")["input_ids"] == [2, 35, 3, 36, 3]
        assert "token_type_ids" not in tok("hello")
        assert tok.model_input_names == ["input_ids", "attention_mask"]
        cased = type(tok)(vocab, do_lower_case=False)
        assert cased.tokenize("café Hello") == ["café", "Hello"]
        assert type(tok)(vocab, do_lower_case=False, strip_accents=True).tokenize("café") == ["cafe"]
        assert type(tok)(vocab, never_split=["Hello"]).tokenize("Hello hello") == ["Hello", "hello"]
        assert type(tok)(vocab, max_input_chars_per_word=3).tokenize("fox foxes") == ["fox", "[UNK]"]
        assert tok.decode(tok.encode("hello , world .")) == "[CLS] hello, world. [SEP]"


def test_vocab_errors_name_file_and_token(tmp_path: Path) -> None:
    dup = write_vocab(tmp_path, [*VOCAB, "hello"], "dup.txt")
    no_unk = write_vocab(tmp_path, [t for t in VOCAB if t != "[UNK]"], "nounk.txt")
    for cls in (DistilBertTokenizer, DistilBertTokenizerFast):
        with pytest.raises(ValueError, match=r"dup\.txt.*'hello'"):
            cls(dup)
        with pytest.raises(ValueError, match=r"\[UNK\].*nounk\.txt"):
            cls(no_unk)
        with pytest.raises(ValueError, match="vocab"):
            cls(tmp_path / "missing.txt")
        with pytest.raises(ValueError):
            cls()


def test_saved_files_and_reference_layouts(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    fast = DistilBertTokenizerFast(vocab, do_lower_case=False, model_max_length=64)
    files = fast.save_pretrained(tmp_path / "out")
    names = sorted(Path(f).name for f in files)
    assert names == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "DistilBertTokenizer"
    assert config["do_lower_case"] is False and config["model_max_length"] == 64
    assert config["added_tokens_decoder"]["0"]["content"] == "[PAD]"
    assert (tmp_path / "out" / "vocab.txt").read_text().split("\n")[:-1] == VOCAB
    # The reference's tokenizers backend may write only tokenizer.json + tokenizer_config.json.
    only_json = tmp_path / "only_json"
    only_json.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (only_json / name).write_bytes((tmp_path / "out" / name).read_bytes())
    # ... and older folders only vocab.txt + tokenizer_config.json.
    only_vocab = tmp_path / "only_vocab"
    only_vocab.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        (only_vocab / name).write_bytes((tmp_path / "out" / name).read_bytes())
    text = "Hello World café"
    expected = fast(text)["input_ids"]
    for folder in (only_json, only_vocab):
        for cls in (DistilBertTokenizer, DistilBertTokenizerFast):
            loaded = cls.from_pretrained(folder)
            assert loaded(text)["input_ids"] == expected, (folder.name, cls.__name__)
            assert loaded.do_lower_case is False
    overridden = DistilBertTokenizerFast.from_pretrained(only_json, do_lower_case=True)
    assert overridden.tokenize("HELLO") == ["hello"]


def test_offsets_overflow_and_word_ids(tmp_path: Path) -> None:
    fast = DistilBertTokenizerFast(write_vocab(tmp_path))
    enc = fast(["hello world", "unaffable fox"], return_offsets_mapping=True)
    assert enc["offset_mapping"][0] == [(0, 0), (0, 5), (6, 11), (0, 0)]
    assert enc.word_ids(1) == [None, 0, 0, 0, 1, None]
    assert enc.tokens(1) == ["[CLS]", "un", "##aff", "##able", "fox", "[SEP]"]
    assert enc.encodings is not None and len(enc.encodings) == 2
    words = fast(["hello", "unaffable"], is_split_into_words=True)
    assert words.word_ids() == [None, 0, 1, 1, 1, None]
    over = fast(
        ["a b c d e f", "a"], max_length=5, truncation=True, stride=1, return_overflowing_tokens=True
    )
    assert over["overflow_to_sample_mapping"] == [0, 0, 0, 1]
    assert over["input_ids"][0] == [2, 25, 26, 27, 3]
    assert over["input_ids"][1][:2] == [2, 27]  # one token of overlap
    with pytest.raises(ValueError, match="stride"):
        fast("a b c d", max_length=4, truncation=True, stride=2, return_overflowing_tokens=True)
    slow = DistilBertTokenizer(write_vocab(tmp_path))
    with pytest.raises(NotImplementedError, match="fast"):
        slow("hello", return_offsets_mapping=True)
    slow_over = slow(["a b c d e f", "a"], max_length=5, truncation=True, stride=1, return_overflowing_tokens=True)
    assert slow_over["input_ids"] == over["input_ids"]
    with pytest.raises(ValueError, match="fast"):
        slow(["hello"]).word_ids(0)


def test_lone_surrogates_are_replaced_like_on_both_backends(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    for tok in (DistilBertTokenizer(vocab), DistilBertTokenizerFast(vocab)):
        assert tok("a\ud800b")["input_ids"] == tok("ab")["input_ids"]
        assert tok(["x \udc00", "\ud83d"], padding=True)["input_ids"] == [[2, 52, 3], [2, 3, 0]]


def _python_whitespace() -> list[str]:
    """Every character Python's str.split() cuts at (controls, separators and spaces alike)."""
    return [chr(cp) for cp in range(0x110000) if chr(cp).isspace()]


def test_every_python_whitespace_char_matches_fast(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path)
    slow, fast = DistilBertTokenizer(vocab), DistilBertTokenizerFast(vocab)
    chars = _python_whitespace()
    assert "\x1c" in chars and "\x85" in chars and "\u3000" in chars
    for ch in chars:
        for text in (f"hello{ch}world", f"un{ch}affable", f"{ch}a{ch}{ch}b{ch}"):
            assert slow(text)["input_ids"] == fast(text)["input_ids"], repr(ch)
            assert slow.tokenize(text) == fast.tokenize(text), repr(ch)
