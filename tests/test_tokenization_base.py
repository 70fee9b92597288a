"""Host tokenizer contracts on a tiny word-level tokenizer defined here (Python and fast backends)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from plugformers.testing.tokenizer_tests import TokenizerTesterMixin
from plugformers.tokenization_utils import PreTrainedTokenizer
from plugformers.tokenization_utils_base import AddedToken, BatchEncoding, PreTrainedTokenizerBase
from plugformers.tokenization_utils_fast import PreTrainedTokenizerFast
from plugformers.utils.io import write_json

WORDS = ["<pad>", "<unk>", "<s>", "</s>", "hello", "world", "the", "quick", "brown", "fox", "a", "b", "c", ",", "!", "."]
VOCAB = {w: i for i, w in enumerate(WORDS)}
_WORD = re.compile(r"\w+|[^\w\s]+")


class WordTokenizer(PreTrainedTokenizer):
    """Test-only Python tokenizer: lowercase, split on words/punctuation, look words up in vocab.json."""

    vocab_files_names = {"vocab_file": "vocab.json"}

    def __init__(self, vocab_file: str | None = None, do_lower_case: bool = True, **kwargs: Any) -> None:
        if vocab_file is None:
            raise ValueError("vocab_file is required")
        with open(vocab_file, encoding="utf-8") as fh:
            self.vocab: dict[str, int] = json.load(fh)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        for key, value in (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"), ("pad_token", "<pad>")):
            kwargs.setdefault(key, value)
        super().__init__(do_lower_case=do_lower_case, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self.added_tokens_encoder}

    def _vocab_lookup(self, token: str) -> int | None:
        return self.vocab.get(token)

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        words = _WORD.findall(text.lower() if self.do_lower_case else text)
        return [w if w in self.vocab else "<unk>" for w in words]

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.vocab["<unk>"])

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, "<unk>")

    def build_inputs_with_special_tokens(self, ids0: list[int], ids1: list[int] | None = None) -> list[int]:
        out = [self.bos_token_id, *ids0, self.eos_token_id]
        return out if ids1 is None else [*out, *ids1, self.eos_token_id]

    def create_token_type_ids_from_sequences(self, ids0: list[int], ids1: list[int] | None = None) -> list[int]:
        return [0] * (len(ids0) + 2) + ([] if ids1 is None else [1] * (len(ids1) + 1))

    def get_special_tokens_mask(self, ids0: list[int], ids1: list[int] | None = None, already_has_special_tokens: bool = False) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(ids0, ids1, True)
        return [1, *[0] * len(ids0), 1] + ([] if ids1 is None else [*[0] * len(ids1), 1])

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + "vocab.json")
        write_json(path, self.vocab)
        return (path,)


class WordTokenizerFast(PreTrainedTokenizerFast):
    """The same tokenizer on the tokenizers backend (WordLevel + Lowercase + Whitespace)."""

    vocab_files_names = {"vocab_file": "vocab.json", "tokenizer_file": "tokenizer.json"}
    slow_tokenizer_class = WordTokenizer

    def __init__(self, vocab_file: str | None = None, tokenizer_file: str | None = None, **kwargs: Any) -> None:
        for key, value in (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"), ("pad_token", "<pad>")):
            kwargs.setdefault(key, value)
        self._vocab_file = vocab_file
        super().__init__(tokenizer_file=tokenizer_file, **kwargs)

    def _build_backend(self, *args: Any, **kwargs: Any) -> Tokenizer:
        if self._vocab_file is None:
            raise ValueError("vocab_file or tokenizer_file is required")
        with open(self._vocab_file, encoding="utf-8") as fh:
            vocab = json.load(fh)
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        if kwargs.get("do_lower_case", True):
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1", special_tokens=[("<s>", 2), ("</s>", 3)]
        )
        return tok

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + "vocab.json")
        write_json(path, self._tokenizer.model.get_vocab() if hasattr(self._tokenizer.model, "get_vocab") else VOCAB)
        return (path,)


def vocab_file(tmp_path: Path) -> str:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(VOCAB))
    return str(path)


class TestWordTokenizers(TokenizerTesterMixin):
    tokenizer_class = WordTokenizer
    rust_tokenizer_class = WordTokenizerFast

    def get_tokenizer(self, tmp_path: Path, **kwargs: Any) -> WordTokenizer:
        return WordTokenizer(vocab_file(tmp_path), **kwargs)

    def get_rust_tokenizer(self, tmp_path: Path, **kwargs: Any) -> WordTokenizerFast:
        return WordTokenizerFast(vocab_file(tmp_path), **kwargs)


@pytest.fixture(params=["slow", "fast"])
def tok(request: pytest.FixtureRequest, tmp_path: Path) -> PreTrainedTokenizerBase:
    cls = WordTokenizer if request.param == "slow" else WordTokenizerFast
    return cls(vocab_file(tmp_path))


def test_added_token_options_and_state() -> None:
    t = AddedToken("<x>", lstrip=True, special=True)
    assert str(t) == "<x>" and t.normalized is False and t == "<x>"
    assert AddedToken.from_dict(t.__getstate__()) == t
    assert AddedToken("y").normalized is True
    with pytest.raises(TypeError):
        AddedToken(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="content"):
        AddedToken.from_dict({"special": True})


def test_lstrip_rstrip_added_tokens(tok: PreTrainedTokenizerBase) -> None:
    tok.add_special_tokens({"additional_special_tokens": [AddedToken("<m>", lstrip=True, rstrip=True)]})
    if not tok.is_fast:
        assert tok.tokenize("hello <m> world") == ["hello", "<m>", "world"]
    assert tok.encode("hello <m> world", add_special_tokens=False) == [4, tok.convert_tokens_to_ids("<m>"), 5]
    assert tok.encode("hello <m> world", add_special_tokens=False) == tok.encode("hello<m>world", add_special_tokens=False)


def test_batch_encoding_access(tok: PreTrainedTokenizerBase) -> None:
    enc = tok(["hello world", "fox"], padding=True)
    assert isinstance(enc, BatchEncoding) and isinstance(enc, dict)
    assert enc.input_ids is enc["input_ids"]
    with pytest.raises(AttributeError):
        _ = enc.not_a_key
    assert enc.convert_to_tensors("np") is enc and enc["input_ids"].shape == (2, 4)
    assert enc[:1]["input_ids"].shape == (1, 4)
    with pytest.raises(TypeError):
        enc.to(3.5)


def test_input_validation(tok: PreTrainedTokenizerBase) -> None:
    with pytest.raises(ValueError, match="text"):
        tok()
    with pytest.raises(TypeError):
        tok(["a", 3])
    with pytest.raises(TypeError, match="unexpected"):
        tok("a", no_such_option=True)
    with pytest.raises(ValueError, match="max_length"):
        tok("a", padding="max_length")  # no model_max_length
    with pytest.raises(ValueError, match="truncation"):
        tok("a", truncation="sideways", max_length=3)
    with pytest.raises(ValueError, match="padding_side"):
        tok("a", padding=True, padding_side="up")
    with pytest.raises(ValueError, match="only_second"):
        tok("hello world fox", truncation="only_second", max_length=3)


def test_no_pad_token_gives_clear_error(tmp_path: Path) -> None:
    for cls in (WordTokenizer, WordTokenizerFast):
        t = cls(vocab_file(tmp_path), pad_token=None)
        assert t.pad_token is None and t.pad_token_id is None
        with pytest.raises(ValueError, match="pad token"):
            t(["a", "a b"], padding=True)
        t.pad_token = "</s>"
        assert t(["a", "a b"], padding=True)["input_ids"][0][-1] == 3


def test_text_target_gives_labels(tok: PreTrainedTokenizerBase) -> None:
    enc = tok("hello", text_target="world fox")
    assert enc["labels"] == tok("world fox")["input_ids"]


def test_decode_cleanup_option(tok: PreTrainedTokenizerBase) -> None:
    ids = tok.encode("hello , world !", add_special_tokens=False)
    assert tok.decode(ids) == "hello , world !"
    assert tok.decode(ids, clean_up_tokenization_spaces=True) == "hello, world!"
    assert tok.decode(tok.encode("hello"), skip_special_tokens=False) == "<s> hello </s>"


def test_register_for_auto_class_writes_auto_map(tmp_path: Path) -> None:
    class Custom(WordTokenizer):
        pass

    Custom.register_for_auto_class()
    assert Custom._auto_class == "AutoTokenizer"
    Custom(vocab_file(tmp_path)).save_pretrained(tmp_path / "c")
    config = json.loads((tmp_path / "c" / "tokenizer_config.json").read_text())
    assert config["auto_map"] == {"AutoTokenizer": ["Custom", None]}
    assert WordTokenizer._auto_class is None
    with pytest.raises(ValueError):
        Custom.register_for_auto_class("AutoModel")


def test_save_is_atomic_and_keeps_other_files(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "config.json").write_text("{}")
    WordTokenizer(vocab_file(tmp_path)).save_pretrained(target)
    assert {"config.json", "vocab.json", "tokenizer_config.json", "special_tokens_map.json"} <= set(os.listdir(target))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OSError):
        WordTokenizer(vocab_file(tmp_path)).save_pretrained(tmp_path / "afile")


def test_legacy_added_tokens_and_special_map_files(tmp_path: Path) -> None:
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(VOCAB))
    (folder / "added_tokens.json").write_text(json.dumps({"newword": len(VOCAB)}))
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"pad_token": {"content": "<pad>", "lstrip": False}, "additional_special_tokens": ["<extra>"]})
    )
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 9, "tokenizer_class": "WordTokenizer"}))
    t = WordTokenizer.from_pretrained(folder)
    assert t.model_max_length == 9 and t.pad_token == "<pad>"
    assert t.convert_tokens_to_ids("newword") == len(VOCAB)
    assert t.additional_special_tokens == ["<extra>"]
    (folder / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"tokenizer_config\.json"):
        WordTokenizer.from_pretrained(folder)


def test_max_length_with_padding_does_not_truncate(tok: PreTrainedTokenizerBase) -> None:
    text = "hello world the quick brown fox"
    full = tok(text)["input_ids"]
    for padding in ("max_length", True, "longest"):
        assert tok(text, padding=padding, max_length=4)["input_ids"] == full, padding
    assert len(tok(text, max_length=4)["input_ids"]) == 4  # padding off: max_length alone still truncates
    assert len(tok(text, padding=True, max_length=4, truncation=True)["input_ids"]) == 4


def test_pad_list_of_tensor_rows_infers_the_tensor_type(tok: PreTrainedTokenizerBase) -> None:
    torch = pytest.importorskip("torch")
    import numpy as np

    rows = [{"input_ids": torch.tensor([2, 4, 3]), "labels": torch.tensor(1)}, {"input_ids": torch.tensor([2, 4, 5, 6, 3]), "labels": torch.tensor(0)}]
    out = tok.pad(rows)
    assert isinstance(out["input_ids"], torch.Tensor)
    assert out["input_ids"].tolist() == [[2, 4, 3, 0, 0], [2, 4, 5, 6, 3]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert out["labels"].tolist() == [1, 0]
    arrays = tok.pad([{"input_ids": np.array([2, 4, 3])}, {"input_ids": np.array([2, 3])}])
    assert isinstance(arrays["input_ids"], np.ndarray) and arrays["input_ids"].tolist() == [[2, 4, 3], [2, 3, 0]]
    assert isinstance(tok.pad(rows, return_tensors="np")["input_ids"], np.ndarray)
    assert tok.pad([{"input_ids": [2, 3]}, {"input_ids": [2]}])["input_ids"] == [[2, 3], [2, 0]]


def test_pad_false_ignores_pad_to_multiple_of(tok: PreTrainedTokenizerBase) -> None:
    rows = [{"input_ids": [2, 4, 3]}, {"input_ids": [2, 4, 5, 6, 3]}]
    out = tok.pad(rows, padding=False, pad_to_multiple_of=4)
    assert out["input_ids"] == [[2, 4, 3], [2, 4, 5, 6, 3]]
    assert out["attention_mask"] == [[1, 1, 1], [1, 1, 1, 1, 1]]
    assert tok.pad(rows, padding=True, pad_to_multiple_of=4)["input_ids"][0] == [2, 4, 3, 0, 0, 0, 0, 0]
    assert tok(["hello", "hello world"], pad_to_multiple_of=4)["input_ids"] == tok(["hello", "hello world"])["input_ids"]


def test_split_special_tokens_per_call_at_init_and_saved(tmp_path: Path) -> None:
    for cls in (WordTokenizer, WordTokenizerFast):
        tok = cls(vocab_file(tmp_path))
        tok.add_special_tokens({"additional_special_tokens": ["<x>"]})
        tok.add_tokens(["newword"])
        whole = tok("hello <x> newword", add_special_tokens=False)["input_ids"]
        split = tok("hello <x> newword", add_special_tokens=False, split_special_tokens=True)["input_ids"]
        x, new, unk = tok.convert_tokens_to_ids(["<x>", "newword", "<unk>"])
        assert whole == [4, x, new], cls.__name__
        assert x not in split and new in split and unk in split, cls.__name__
        assert tok.tokenize("hello <x>", split_special_tokens=True) != tok.tokenize("hello <x>")
        assert tok("hello <x>", add_special_tokens=False)["input_ids"] == [4, x]  # the override did not stick
        tok.split_special_tokens = True
        assert tok("hello <x> newword", add_special_tokens=False)["input_ids"] == split
        assert tok("hello <x> newword", add_special_tokens=False, split_special_tokens=False)["input_ids"] == whole
        tok.save_pretrained(tmp_path / cls.__name__)
        config = json.loads((tmp_path / cls.__name__ / "tokenizer_config.json").read_text())
        assert config["split_special_tokens"] is True
        loaded = cls.from_pretrained(tmp_path / cls.__name__)
        assert loaded.split_special_tokens is True
        assert loaded("hello <x> newword", add_special_tokens=False)["input_ids"] == split
        fresh = cls(vocab_file(tmp_path), split_special_tokens=True, additional_special_tokens=["<x>"])
        assert fresh.convert_tokens_to_ids("<x>") not in fresh("hello <x>")["input_ids"], cls.__name__


def test_tokens_added_as_special_are_skipped_in_decode(tok: PreTrainedTokenizerBase) -> None:
    assert tok.add_tokens(["<sp>"], special_tokens=True) == 1
    sp = tok.convert_tokens_to_ids("<sp>")
    ids = tok("hello <sp> world")["input_ids"]
    assert sp in ids and "<sp>" not in tok.all_special_tokens
    assert tok.decode(ids, skip_special_tokens=True) == "hello world"
    assert tok.batch_decode([ids], skip_special_tokens=True) == ["hello world"]
    assert "<sp>" in tok.decode(ids)
    # Like the reference's fast tokenizer, token-level helpers only drop the named special tokens.
    assert tok.convert_ids_to_tokens(ids, skip_special_tokens=True) == ["hello", "<sp>", "world"]


def test_decode_takes_a_batch_and_batch_decode_a_flat_row(tok: PreTrainedTokenizerBase) -> None:
    torch = pytest.importorskip("torch")
    import numpy as np

    assert tok.decode([[4, 5], [9]]) == ["hello world", "fox"]
    assert tok.decode(torch.tensor([[4, 5]])) == ["hello world"]
    assert tok.decode(np.array([[4, 5], [6, 7]])) == ["hello world", "the quick"]
    assert tok.decode([[]]) == [""] and tok.decode([]) == "" and tok.decode(4) == "hello"
    assert tok.decode(torch.tensor(4)) == "hello"
    assert tok.batch_decode([4, 5]) == ["hello world"]
    assert tok.batch_decode(torch.tensor([4, 5])) == ["hello world"]
    assert tok.batch_decode([[4], [5]]) == ["hello", "world"] and tok.batch_decode([]) == []
    with pytest.raises(TypeError):
        tok.decode([[[4]]])


def test_extra_special_tokens_api(tmp_path: Path, tok: PreTrainedTokenizerBase) -> None:
    n = len(tok)
    assert tok.add_special_tokens({"extra_special_tokens": ["<e1>", "<e2>"]}) == 2
    assert tok.extra_special_tokens == tok.additional_special_tokens == ["<e1>", "<e2>"]
    assert tok.extra_special_tokens_ids == tok.additional_special_tokens_ids == [n, n + 1]
    tok.add_special_tokens({"extra_special_tokens": ["<e3>"]})
    assert tok.extra_special_tokens == ["<e3>"]  # replaced by default
    tok.add_special_tokens({"extra_special_tokens": ["<e4>", "<e3>"]}, replace_extra_special_tokens=False)
    assert tok.extra_special_tokens == ["<e3>", "<e4>"]
    tok.add_special_tokens({"additional_special_tokens": ["<a1>"]}, replace_additional_special_tokens=False)
    assert tok.extra_special_tokens == ["<e3>", "<e4>", "<a1>"] and "<a1>" in tok.all_special_tokens
    # The v4 key is handled after the named tokens; everything else keeps the dict's order.
    start = len(tok)
    tok.add_special_tokens({"additional_special_tokens": ["<a2>"], "cls_token": "<c>"})
    assert tok.convert_tokens_to_ids(["<c>", "<a2>"]) == [start, start + 1]
    tok.add_special_tokens({"extra_special_tokens": ["<x>"], "mask_token": "<m>"})
    assert tok.convert_tokens_to_ids(["<x>", "<m>"]) == [start + 2, start + 3]
    tok.extra_special_tokens = ["<x>"]
    assert tok.additional_special_tokens == ["<x>"]
    with pytest.raises(TypeError):
        tok.add_special_tokens({"extra_special_tokens": "<str>"})
    with pytest.raises(ValueError, match="extra_special_tokens"):
        tok.add_special_tokens({"image_token": "<img>"})
    tok.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert config["extra_special_tokens"] == ["<x>"]
    assert type(tok).from_pretrained(tmp_path / "saved").extra_special_tokens == ["<x>"]


def test_only_second_on_a_single_text_raises_only_when_it_must_cut(tok: PreTrainedTokenizerBase) -> None:
    assert tok("hello world", truncation="only_second", max_length=10)["input_ids"] == tok("hello world")["input_ids"]
    batch = ["hello", "fox world"]
    assert tok(batch, truncation="only_second", max_length=4)["input_ids"] == tok(batch)["input_ids"]
    for overflow in (False, True):
        with pytest.raises(ValueError, match="text_pair"):
            tok("hello world fox the", truncation="only_second", max_length=4, return_overflowing_tokens=overflow)
    with pytest.raises(ValueError, match="larger max_length"):
        tok("hello world", "fox", truncation="only_first", max_length=4)


def test_impossible_padding_and_truncation_errors_name_the_fix(tok: PreTrainedTokenizerBase) -> None:
    with pytest.raises(ValueError, match=r"no model_max_length: pass max_length=\.\.\., or padding=True"):
        tok(["hello", "hello world"], padding="max_length")
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive int such as 8, got 0; pass None"):
        tok(["hello", "hello world"], padding=True, pad_to_multiple_of=0)
    with pytest.raises(ValueError, match=r"max_length=1 cannot hold the 2 special tokens.*max_length >= 2"):
        tok("hello world", truncation=True, max_length=1)
    with pytest.raises(ValueError, match=r"max_length=2 cannot hold the 3 special tokens"):
        tok("hello", "world", truncation=True, max_length=2)
    assert tok("hello world", truncation=True, max_length=1, add_special_tokens=False)["input_ids"] == [4]
    with pytest.raises(ValueError, match=r"leave nothing of the .*text.*larger max_length"):
        tok("hello world", truncation=True, max_length=2)
    assert tok("hello", "world", truncation=True, max_length=3)["input_ids"] == [2, 3, 3]  # as the reference
    assert tok("", truncation=True, max_length=2)["input_ids"] == [2, 3]  # nothing to cut: fine


def _outcome(tok: PreTrainedTokenizerBase, *args: Any, **kwargs: Any) -> Any:
    try:
        enc = tok(*args, **kwargs)
    except ValueError:
        return "ValueError"
    return enc["input_ids"], enc.get("overflow_to_sample_mapping")


def test_overflow_windows_match_fast_backend_on_random_cases(tmp_path: Path) -> None:
    import random

    slow, fast = WordTokenizer(vocab_file(tmp_path)), WordTokenizerFast(vocab_file(tmp_path))
    words = ["hello", "world", "the", "quick", "brown", "fox", "a", "b", "c"]
    rng = random.Random(0)
    for _ in range(400):
        first = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        second = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        options = {
            "truncation": rng.choice(["longest_first", "only_first", "only_second"]),
            "max_length": rng.randint(4, 16),
            "stride": rng.randint(0, 4),
            "return_overflowing_tokens": True,
        }
        side = rng.choice(["left", "right"])
        slow.truncation_side = fast.truncation_side = side
        case = (first, second, options, side)
        assert _outcome(slow, first, second, **options) == _outcome(fast, first, second, **options), case
        if options["truncation"] != "only_second":
            assert _outcome(slow, first, **options) == _outcome(fast, first, **options), case


def test_overflow_with_a_short_second_text_that_fits(tok: PreTrainedTokenizerBase) -> None:
    first = " ".join(["a", "b", "c", "hello", "world", "fox"] * 2)
    enc = tok(first, "fox", truncation="longest_first", max_length=8, stride=1, return_overflowing_tokens=True)
    assert len(enc["input_ids"]) == 4 and all(row[-3:] == [3, 9, 3] for row in enc["input_ids"])
