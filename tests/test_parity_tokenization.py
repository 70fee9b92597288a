"""The generic fast tokenizer against the reference's (TokenizersBackend): folders load both ways, same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from plugformers import AutoTokenizer  # noqa: E402
from plugformers.tokenization_utils_fast import PreTrainedTokenizerFast  # noqa: E402

TEXTS = ["a b", "b a a", "c"]


def _backend() -> Tokenizer:
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "a": 2, "b": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_reference_generic_folder_loads_in_ours(tmp_path: Path) -> None:
    ref = transformers.PreTrainedTokenizerFast(tokenizer_object=_backend(), pad_token="[PAD]", unk_token="[UNK]")
    ref.save_pretrained(tmp_path)
    assert type(transformers.AutoTokenizer.from_pretrained(tmp_path)).__name__ == "TokenizersBackend"
    ours = AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours) is PreTrainedTokenizerFast
    expected = ref(TEXTS, padding=True)
    assert dict(ours(TEXTS, padding=True)) == dict(expected)
    assert ours.pad_token == "[PAD]" and ours.model_input_names == ref.model_input_names


def test_our_generic_folder_loads_in_reference(tmp_path: Path) -> None:
    ours = PreTrainedTokenizerFast(tokenizer_object=_backend(), pad_token="[PAD]", unk_token="[UNK]")
    ours.save_pretrained(tmp_path)
    ref = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert dict(ref(TEXTS, padding=True)) == dict(ours(TEXTS, padding=True))
    assert ref.model_input_names == ours.model_input_names == ["input_ids", "attention_mask"]
