"""PreTrainedTokenizerFast on a tiny WordPiece tokenizers object: offsets, overflow, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from plugformers.tokenization_utils_base import BatchEncoding, CharSpan, TokenSpan
from plugformers.tokenization_utils_fast import PreTrainedTokenizerFast

VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", "a", "b", "c"])}


def backend() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(VOCAB, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.decoder = decoders.WordPiece()
    return tok


def make(**kwargs: object) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend(), unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", **kwargs
    )


def test_layout_comes_from_post_processor() -> None:
    tok = make()
    assert tok.num_special_tokens_to_add() == 2 and tok.num_special_tokens_to_add(pair=True) == 3
    assert tok.build_inputs_with_special_tokens([9, 10], [11]) == [2, 9, 10, 3, 11, 3]
    assert tok.create_token_type_ids_from_sequences([9, 10], [11]) == [0, 0, 0, 0, 1, 1]
    assert tok.get_special_tokens_mask([9, 10], [11]) == [1, 0, 0, 1, 0, 1]
    assert tok("a b", "c", return_token_type_ids=True)["token_type_ids"] == [0, 0, 0, 0, 1, 1]


def test_offsets_word_ids_and_sequence_ids() -> None:
    tok = make()
    enc = tok(["Hello unaffable", "a"], ["b", "b"], return_offsets_mapping=True, padding=True)
    assert enc["offset_mapping"][0] == [(0, 0), (0, 5), (6, 8), (8, 11), (11, 15), (0, 0), (0, 1), (0, 0)]
    assert enc.word_ids(0) == [None, 0, 1, 1, 1, None, 0, None]
    assert enc.sequence_ids(1)[:5] == [None, 0, None, 1, None]
    assert enc.tokens(0)[:3] == ["[CLS]", "hello", "un"]
    assert enc.char_to_token(0, 7) == 2
    assert enc.n_sequences == 2 and enc.is_fast


def test_overflow_and_stride_errors() -> None:
    tok = make()
    enc = tok(["a b c a b c", "a"], max_length=5, truncation=True, stride=1, return_overflowing_tokens=True, padding=True)
    assert enc["overflow_to_sample_mapping"] == [0, 0, 0, 1]
    assert enc["input_ids"][1] == [2, 11, 9, 10, 3]
    assert enc["input_ids"][3] == [2, 9, 3, 0, 0]
    with pytest.raises(ValueError, match="stride"):
        tok("a b c", max_length=3, truncation=True, stride=1, return_overflowing_tokens=True)


def test_tokenizer_json_round_trip_and_errors(tmp_path: Path) -> None:
    tok = make(model_max_length=8)
    tok.add_tokens(["newword"])
    files = tok.save_pretrained(tmp_path / "t")
    assert sorted(Path(f).name for f in files) == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((tmp_path / "t" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and config["model_max_length"] == 8
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path / "t")
    assert loaded("hello newword")["input_ids"] == tok("hello newword")["input_ids"] == [2, 4, 12, 3]
    assert loaded.backend_tokenizer.truncation is None and loaded.backend_tokenizer.padding is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        PreTrainedTokenizerFast.from_pretrained(tmp_path / "bad")
    with pytest.raises(ValueError):
        PreTrainedTokenizerFast()
    with pytest.raises(TypeError):
        PreTrainedTokenizerFast(tokenizer_object="nope")


def test_backend_state_is_reset_after_calls() -> None:
    tok = make()
    tok(["a b c", "a"], padding=True, truncation=True, max_length=4)
    assert tok.backend_tokenizer.truncation is None and tok.backend_tokenizer.padding is None
    assert tok("a b c")["input_ids"] == [2, 9, 10, 11, 3]


def test_large_padded_batch_to_tensors() -> None:
    torch = pytest.importorskip("torch")
    tok = make()
    texts = ["hello world unaffable", "a b", "c"] * 500
    out = tok(texts, padding=True, return_tensors="pt")
    assert out["input_ids"].shape == (1500, 7) and out["input_ids"].dtype == torch.int64
    assert out["attention_mask"].sum().item() == 500 * (7 + 4 + 3)


def test_batch_encoding_position_helpers() -> None:
    tok = make()
    enc = tok(["Hello unaffable", "a"], ["b c", "b"], padding=True)
    # row 0: [CLS] hello un ##aff ##able [SEP] b c [SEP]
    assert enc.word_to_tokens(0, 1) == TokenSpan(2, 5) and isinstance(enc.word_to_tokens(1), TokenSpan)
    assert enc.word_to_tokens(0, 1, sequence_index=1) == TokenSpan(7, 8)
    assert enc.word_to_tokens(0, 9) is None
    assert enc.word_to_chars(0, 1) == CharSpan(6, 15) and enc.word_to_chars(0, 1, 1) == CharSpan(2, 3)
    assert enc.word_to_chars(0, 9) is None
    assert enc.token_to_chars(0, 3) == CharSpan(8, 11) and enc.token_to_chars(0) is None  # [CLS]
    assert enc.token_to_chars(1, -1) is None and enc.token_to_chars(0, -2) == CharSpan(2, 3)
    assert [enc.token_to_sequence(0, i) for i in range(9)] == [None, 0, 0, 0, 0, None, 1, 1, None]
    assert enc.token_to_sequence(7) == 1 and enc.token_to_word(0, -2) == 1
    assert enc.char_to_word(0, 9) == 1 and enc.char_to_word(0, 5) is None and enc.char_to_word(0, 2, 1) == 1
    assert enc.char_to_word(7) == 1
    with pytest.raises(IndexError):
        enc.token_to_word(0, -100)


def test_batch_encoding_position_helpers_need_a_fast_tokenizer() -> None:
    enc = BatchEncoding({"input_ids": [[1, 2]]})
    for name in ("token_to_word", "token_to_sequence", "token_to_chars", "word_to_tokens", "word_to_chars",
                 "char_to_token", "char_to_word"):
        with pytest.raises(ValueError, match="fast tokenizer"):
            getattr(enc, name)(0, 0)


def test_generic_fast_defaults_to_input_ids_and_attention_mask() -> None:
    tok = make()
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    assert list(tok("a b")) == ["input_ids", "attention_mask"]
    assert "token_type_ids" in tok("a b", return_token_type_ids=True)
    assert list(make(model_input_names=["input_ids", "token_type_ids", "attention_mask"])("a")) == [
        "input_ids", "token_type_ids", "attention_mask"
    ]


@pytest.mark.parametrize("saved_as", ["TokenizersBackend", "PreTrainedTokenizerFast"])
def test_auto_tokenizer_loads_generic_fast_folders(tmp_path: Path, saved_as: str) -> None:
    from plugformers import AutoTokenizer

    make(model_max_length=8).save_pretrained(tmp_path / "t")
    config_path = tmp_path / "t" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = saved_as
    config_path.write_text(json.dumps(config))
    for use_fast in (True, False):
        loaded = AutoTokenizer.from_pretrained(tmp_path / "t", use_fast=use_fast)
        assert type(loaded) is PreTrainedTokenizerFast
        assert loaded("hello a")["input_ids"] == [2, 4, 9, 3] and loaded.model_max_length == 8
