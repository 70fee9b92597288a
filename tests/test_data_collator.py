"""The data collators: padding, label padding, MLM masking statistics, and a DataLoader feeding a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import plugformers
from plugformers import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    DefaultDataCollator,
    default_data_collator,
)

pytest.importorskip("plugformers_distilbert")

from pipeline_checkpoints import vocabulary


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from plugformers import DistilBertTokenizerFast

    return DistilBertTokenizerFast(vocab_file=str(vocabulary(tmp_path_factory.mktemp("vocab"))))


def _examples(tokenizer, texts=("the quick brown fox", "a dog", "john lives in paris")):
    return [dict(tokenizer(t)) for t in texts]


def test_collators_are_lazy_top_level_names():
    from plugformers import data_collator

    assert plugformers.DataCollatorForLanguageModeling is data_collator.DataCollatorForLanguageModeling
    assert {"DataCollatorWithPadding", "DefaultDataCollator", "default_data_collator"} <= set(plugformers.__all__)


def test_with_padding_pads_to_the_longest_and_renames_label(tokenizer):
    rows = _examples(tokenizer)
    lengths = [len(r["input_ids"]) for r in rows]
    for row, label in zip(rows, (2, 0, 1)):
        row["label"] = label
    batch = DataCollatorWithPadding(tokenizer)(rows)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["labels"].tolist() == [2, 0, 1] and batch["labels"].dtype == torch.long
    for i, n in enumerate(lengths):
        assert batch["input_ids"][i, :n].tolist() == rows[i]["input_ids"]
        assert (batch["input_ids"][i, n:] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (max(lengths) - n)


def test_with_padding_multiple_max_length_numpy_and_float_labels(tokenizer):
    rows = _examples(tokenizer)
    assert max(len(r["input_ids"]) for r in rows) not in (8, 16)
    assert DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)(rows)["input_ids"].shape[1] % 8 == 0
    fixed = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=12)(rows)
    assert fixed["input_ids"].shape == (3, 12)
    rows = [{**r, "label_ids": value} for r, value in zip(rows, (0.5, 1.0, -2.0))]
    batch = DataCollatorWithPadding(tokenizer, return_tensors="np")(rows)
    assert isinstance(batch["input_ids"], np.ndarray) and batch["input_ids"].dtype == np.int64
    np.testing.assert_array_equal(batch["labels"], np.array([0.5, 1.0, -2.0], dtype=np.float32))


@pytest.mark.parametrize("side", ["right", "left"])
def test_token_classification_pads_labels_with_ignore_index_on_the_padding_side(tokenizer, side):
    rows = _examples(tokenizer)
    for row in rows:
        row["labels"] = list(range(1, len(row["input_ids"]) + 1))
    tokenizer.padding_side = side
    try:
        batch = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=4)(rows)
    finally:
        tokenizer.padding_side = "right"
    length = batch["input_ids"].shape[1]
    assert length % 4 == 0 and batch["labels"].shape == (3, length) and batch["labels"].dtype == torch.long
    for i, row in enumerate(rows):
        padded = [-100] * (length - len(row["labels"]))
        assert batch["labels"][i].tolist() == (row["labels"] + padded if side == "right" else padded + row["labels"])
        # every label sits on its token: -100 exactly where the attention mask is 0
        assert ((batch["labels"][i] == -100) == (batch["attention_mask"][i] == 0)).all()


def test_token_classification_label_key_pad_id_numpy_and_no_labels(tokenizer):
    rows = [{**r, "label": [7] * len(r["input_ids"])} for r in _examples(tokenizer)]
    batch = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-1, return_tensors="np")(rows)
    assert "labels" not in batch and isinstance(batch["label"], np.ndarray)
    assert set(np.unique(batch["label"]).tolist()) == {-1, 7}
    plain = DataCollatorForTokenClassification(tokenizer)(_examples(tokenizer))
    assert set(plain) == {"input_ids", "attention_mask"}
    rows[0]["label"] = rows[0]["label"] * 5
    with pytest.raises(ValueError, match="more labels than tokens"):
        DataCollatorForTokenClassification(tokenizer)(rows)


def test_default_collator_stacks_without_padding_and_types_labels():
    @dataclass
    class Row:
        pixel_values: np.ndarray
        label: int

    rows = [Row(np.full((2, 3), i, dtype=np.float32), i) for i in range(4)]
    batch = DefaultDataCollator()(rows)
    assert batch["pixel_values"].shape == (4, 2, 3) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].tolist() == [0, 1, 2, 3] and batch["labels"].dtype == torch.long
    mixed = [
        {"x": torch.tensor([i, i]), "label": float(i) / 2, "text": "s", "skip": None, "label_ids": [9]}
        for i in range(3)
    ]
    batch = default_data_collator(mixed)
    assert set(batch) == {"x", "labels"}  # "label" wins over "label_ids"; strings and None are left out
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [0.0, 0.5, 1.0]
    ids = default_data_collator([{"input_ids": [1, 2], "label_ids": [0, 1]}] * 2, return_tensors="np")
    assert ids["labels"].dtype == np.int64 and ids["input_ids"].shape == (2, 2)
    with pytest.raises(ValueError, match="non-empty list"):
        default_data_collator([])
    with pytest.raises(ValueError, match="return_tensors"):
        DefaultDataCollator(return_tensors="tf")([{"x": [1]}])


def _mlm_rows(tokenizer, n_rows=64, seed=0):
    """Rows of random ordinary tokens of varied lengths between [CLS] and [SEP] (so the batch has padding)."""
    g = np.random.default_rng(seed)
    ordinary = [i for i in range(len(tokenizer)) if i not in tokenizer.all_special_ids]
    rows = []
    for _ in range(n_rows):
        body = g.choice(ordinary, size=int(g.integers(300, 500))).tolist()
        rows.append({"input_ids": [tokenizer.cls_token_id, *body, tokenizer.sep_token_id]})
    return rows


@pytest.mark.parametrize(("p", "mask", "rand"), [(0.15, 0.8, 0.1), (0.3, 0.5, 0.5), (0.2, 1.0, 0.0)])
def test_mlm_masking_follows_the_replacement_rule(tokenizer, p, mask, rand):
    rows = _mlm_rows(tokenizer)
    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=p, mask_replace_prob=mask, random_replace_prob=rand, seed=1
    )
    batch = collator(rows)
    original = tokenizer.pad(rows, return_tensors="pt")["input_ids"]
    inputs, labels = batch["input_ids"], batch["labels"]
    picked = labels != -100
    eligible = ~torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    assert not (picked & ~eligible).any(), "a special or padding token was selected"
    assert (inputs[~picked] == original[~picked]).all() and (labels[picked] == original[picked]).all()
    n = int(picked.sum())
    assert abs(n / int(eligible.sum()) - p) < 0.01
    masked = (inputs == tokenizer.mask_token_id) & picked
    unchanged = (inputs == original) & picked
    random = picked & ~masked & ~unchanged
    keep = 1 - mask - rand
    assert abs(int(masked.sum()) / n - mask) < 0.03
    assert abs(int(random.sum()) / n - rand) < 0.025
    assert abs(int(unchanged.sum()) / n - keep) < 0.025
    if rand:  # random replacements spread over the vocabulary
        assert len(torch.unique(inputs[random])) > len(tokenizer) // 2


def test_mlm_respects_a_given_special_tokens_mask_and_never_masks_padding(tokenizer):
    rows = [dict(tokenizer(t, return_special_tokens_mask=True)) for t in ("the quick brown fox jumps", "a dog")]
    rows[0]["special_tokens_mask"][2] = 1  # protect "quick"
    for seed in range(20):
        batch = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.9, seed=seed)(rows)
        assert "special_tokens_mask" not in batch
        assert batch["labels"][0, 2] == -100 and batch["input_ids"][0, 2] == rows[0]["input_ids"][2]
        assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
        assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()


def test_mlm_seed_reproduces_the_sequence_of_batches(tokenizer):
    rows = _mlm_rows(tokenizer, n_rows=4)
    a, b = (DataCollatorForLanguageModeling(tokenizer, seed=7) for _ in range(2))
    first, second = a(rows), a(rows)
    assert not torch.equal(first["input_ids"], second["input_ids"])
    assert torch.equal(b(rows)["input_ids"], first["input_ids"]) and torch.equal(b(rows)["labels"], second["labels"])
    other = DataCollatorForLanguageModeling(tokenizer, seed=8)(rows)
    assert not torch.equal(other["labels"], first["labels"])


def test_mlm_seed_in_dataloader_workers_repeats_and_differs_between_workers(tokenizer):
    from torch.utils.data import DataLoader

    rows = [dict(tokenizer("the quick brown fox jumps over the lazy dog"))] * 4
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5, seed=2)
    runs = [[b["labels"] for b in DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator)] for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.equal(runs[0][0], runs[0][1])  # same rows, two workers: two different masks


def test_mlm_false_gives_next_token_labels_and_pads_bare_id_lists(tokenizer):
    ids = [r["input_ids"] for r in _examples(tokenizer)]
    for examples in (ids, [torch.tensor(i) for i in ids]):
        batch = DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=8)(examples)
        assert set(batch) == {"input_ids", "labels"} and batch["input_ids"].shape == (3, 8)
        for i, row in enumerate(ids):
            assert batch["input_ids"][i].tolist() == row + [tokenizer.pad_token_id] * (8 - len(row))
            assert batch["labels"][i].tolist() == row + [-100] * (8 - len(row))
    out = DataCollatorForLanguageModeling(tokenizer, seed=0, return_tensors="np")(_examples(tokenizer))
    assert isinstance(out["labels"], np.ndarray) and out["labels"].shape == out["input_ids"].shape


def test_mlm_refuses_bad_settings(tokenizer):
    for kwargs, match in [
        ({"mlm_probability": 1.5}, "mlm_probability"),
        ({"mlm_probability": None}, "mlm_probability"),
        ({"mask_replace_prob": 0.8, "random_replace_prob": 0.3}, "must not exceed 1"),
        ({"return_tensors": "tf"}, "return_tensors"),
    ]:
        with pytest.raises(ValueError, match=match):
            DataCollatorForLanguageModeling(tokenizer, **kwargs)
    with pytest.raises(ValueError, match="needs mlm=True"):
        DataCollatorForLanguageModeling(tokenizer, whole_word_mask=True, mlm=False)
    with pytest.raises(TypeError, match="tokenizer"):
        DataCollatorWithPadding(None)  # type: ignore[arg-type]
    mask = tokenizer.mask_token
    tokenizer.mask_token = None
    try:
        with pytest.raises(ValueError, match="mask token"):
            DataCollatorForLanguageModeling(tokenizer)
        DataCollatorForLanguageModeling(tokenizer, mlm=False)
    finally:
        tokenizer.mask_token = mask


def test_dataloader_feeds_classification_and_masked_lm_models(tokenizer):
    from torch.utils.data import DataLoader

    texts = ["the quick brown fox", "a dog", "john smith lives in paris", "it was born", "the river", "what city"]
    rows = [{**dict(tokenizer(t)), "label": i % 2} for i, t in enumerate(texts)]
    config = plugformers.DistilBertConfig(vocab_size=len(tokenizer), dim=16, hidden_dim=32, n_layers=1, n_heads=2)
    torch.manual_seed(0)
    classifier = plugformers.DistilBertForSequenceClassification(config)
    batches = list(DataLoader(rows, batch_size=4, collate_fn=DataCollatorWithPadding(tokenizer)))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 2]
    for batch in batches:
        out = classifier(**batch)
        assert torch.isfinite(out.loss) and out.logits.shape == (len(batch["labels"]), 2)

    mlm = plugformers.DistilBertForMaskedLM(config)
    plain = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    loader = DataLoader(plain, batch_size=3, collate_fn=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5, seed=0))
    for batch in loader:
        out = mlm(**batch)
        out.loss.backward()
        assert torch.isfinite(out.loss)
    assert mlm.distilbert.embeddings.word_embeddings.weight.grad is not None


def test_works_on_torch_formatted_rows(tokenizer, tmp_path: Path):
    rows = [{k: torch.tensor(v) for k, v in r.items()} | {"labels": torch.tensor(1)} for r in _examples(tokenizer)]
    batch = DataCollatorWithPadding(tokenizer)(rows)
    assert batch["labels"].tolist() == [1, 1, 1] and batch["input_ids"].dtype == torch.long


# ----- whole-word masking -------------------------------------------------------------------------------------


def _words_of(tokenizer, text):
    """``(encoding with offsets, token positions of each word)``: a word is a run of touching character spans."""
    encoding = tokenizer(text, return_offsets_mapping=True)
    words: list[list[int]] = []
    end = -1
    for i, (a, b) in enumerate(encoding["offset_mapping"]):
        if b > a:
            if a != end:
                words.append([])
            words[-1].append(i)
        end = b if b > a else -1
    return dict(encoding), words


def test_whole_word_mask_masks_every_piece_of_a_picked_word_and_nothing_else(tokenizer):
    example, words = _words_of(tokenizer, "jumps quickly over xylophones")
    assert any(len(w) > 1 for w in words)  # spelled in pieces by the letter vocabulary
    collator = DataCollatorForLanguageModeling(
        tokenizer, whole_word_mask=True, mlm_probability=0.3, mask_replace_prob=1.0, random_replace_prob=0.0, seed=0
    )
    batch = collator([example] * 3000)
    assert "offset_mapping" not in batch
    picked = batch["labels"] != -100
    assert torch.equal(picked, batch["input_ids"] == tokenizer.mask_token_id)  # picked pieces: all [MASK]
    ids = torch.tensor(example["input_ids"])
    assert torch.equal(batch["labels"][picked], ids.expand_as(picked)[picked])  # labels: the original ids
    inside = [i for w in words for i in w]
    assert not picked[:, [i for i in range(len(ids)) if i not in inside]].any()  # [CLS] and [SEP] never
    for word in words:
        assert bool((picked[:, word] == picked[:, word[:1]]).all())  # a word is masked whole or not at all
        assert abs(float(picked[:, word[0]].float().mean()) - 0.3) < 0.04  # each word with mlm_probability
    first, second = (picked[:, w[0]].float() for w in words[:2])
    assert abs(float(torch.corrcoef(torch.stack([first, second]))[0, 1])) < 0.08  # words drawn independently


def test_whole_word_mask_pads_offsets_forces_mask_tokens_and_repeats_with_a_seed(tokenizer):
    (short, _), (long, words) = _words_of(tokenizer, "a dog"), _words_of(tokenizer, "xylophones jump over the fox")
    with pytest.warns(UserWarning, match="mask_replace_prob=0.8 and random_replace_prob=0.1 become 1 and 0"):
        collator = DataCollatorForLanguageModeling(tokenizer, whole_word_mask=True, mlm_probability=0.5, seed=3)
    assert (collator.mask_replace_prob, collator.random_replace_prob) == (1.0, 0.0)
    batch = collator([short, long] * 50)
    assert batch["input_ids"].shape == (100, len(long["input_ids"]))
    assert not (batch["labels"][0::2, len(short["input_ids"]):] != -100).any()  # padding is never masked
    picked = batch["labels"][1::2] != -100
    for word in words:
        assert bool((picked[:, word] == picked[:, word[:1]]).all())
    again = DataCollatorForLanguageModeling(tokenizer, whole_word_mask=True, mlm_probability=0.5, seed=3,
                                            mask_replace_prob=1.0, random_replace_prob=0.0)
    assert torch.equal(again([short, long] * 50)["labels"], batch["labels"])
    tokenizer.padding_side = "left"
    try:  # the short example's tokens, and so its words, move right by the padding
        (short, short_words) = _words_of(tokenizer, "jumps xylophones")
        left = collator([short, long] * 200)
    finally:
        tokenizer.padding_side = "right"
    shift = len(long["input_ids"]) - len(short["input_ids"])
    picked = left["labels"][0::2] != -100
    assert not picked[:, :shift + 1].any() and picked.any()  # padding and [CLS]
    for word in short_words:
        assert bool((picked[:, [shift + i for i in word]] == picked[:, [shift + word[0]]]).all())
    with pytest.raises(ValueError, match="return_offsets_mapping=True"):
        collator([dict(tokenizer("a dog"))])
    with pytest.raises(ValueError, match="one \\(start, end\\) pair per token"):
        collator([{**short, "offset_mapping": short["offset_mapping"][:-1]}])

