"""The data collators against the reference's, on ``datasets`` rows (parity session: both import ``transformers``).

Each collator and its reference counterpart batch the same rows of a ``datasets.Dataset`` (tokenized with
``map``, formatted with ``set_format("torch")``) through a ``DataLoader``; the deterministic ones must give
identical keys, values and dtypes.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pipeline_checkpoints import vocabulary

import plugformers

pytest.importorskip("plugformers_distilbert")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a dog",
    "john smith lives in paris",
    "where is it",
    "acme works at london and paris",
    "the river",
    "who was born in the city",
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    ours = plugformers.DistilBertTokenizerFast(vocab_file=str(vocabulary(folder)))
    ours.save_pretrained(folder)
    return ours, transformers.AutoTokenizer.from_pretrained(folder)


def _dataset(tokenizer: Any, **encode: Any) -> Any:
    data = datasets.Dataset.from_dict({"text": TEXTS, "label": [i % 3 for i in range(len(TEXTS))]})

    def encode_batch(batch: dict[str, list[Any]]) -> Any:
        out = tokenizer(batch["text"], **encode)
        out["tags"] = [[(j * 7 + len(ids)) % 5 for j in range(len(ids))] for ids in out["input_ids"]]
        return out

    data = data.map(encode_batch, batched=True, remove_columns=["text"])
    data.set_format("torch")
    return data


def _batches(tokenizer: Any, collator: Any, batch_size: int = 3, drop: tuple[str, ...] = ("tags",), **encode: Any) -> list[Any]:
    data = _dataset(tokenizer, **encode).remove_columns(list(drop))
    return list(torch.utils.data.DataLoader(data, batch_size=batch_size, collate_fn=collator))


def _assert_same(ours: list[dict[str, Any]], ref: list[dict[str, Any]]) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert sorted(a) == sorted(b)
        for key in b:
            assert a[key].dtype == b[key].dtype, key
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize(
    "settings", [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 16}]
)
def test_parity_with_padding_on_a_datasets_dataset(tokenizers, settings):
    ours, ref = tokenizers
    _assert_same(
        _batches(ours, plugformers.DataCollatorWithPadding(ours, **settings)),
        _batches(ref, transformers.DataCollatorWithPadding(ref, **settings)),
    )


@pytest.mark.parametrize("settings", [{}, {"pad_to_multiple_of": 4, "label_pad_token_id": -1}])
def test_parity_token_classification_on_a_datasets_dataset(tokenizers, settings):
    ours, ref = tokenizers
    batches = []
    for tok, module in ((ours, plugformers), (ref, transformers)):
        data = _dataset(tok).remove_columns(["label"]).rename_column("tags", "labels")
        collator = module.DataCollatorForTokenClassification(tok, **settings)
        batches.append(list(torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collator)))
    _assert_same(*batches)


def test_parity_default_collator_on_fixed_length_rows(tokenizers):
    ours, ref = tokenizers
    encode = {"padding": "max_length", "max_length": 12, "truncation": True}
    _assert_same(
        _batches(ours, plugformers.DefaultDataCollator(), **encode),
        _batches(ref, transformers.DefaultDataCollator(), **encode),
    )


def test_parity_language_modeling_without_masking(tokenizers):
    ours, ref = tokenizers
    _assert_same(
        _batches(ours, plugformers.DataCollatorForLanguageModeling(ours, mlm=False, pad_to_multiple_of=8), drop=("tags", "label")),
        _batches(ref, transformers.DataCollatorForLanguageModeling(ref, mlm=False, pad_to_multiple_of=8), drop=("tags", "label")),
    )


@pytest.mark.parametrize(
    ("settings", "encode"),
    [
        ({"seed": 3}, {}),
        ({"seed": 0, "mlm_probability": 0.4, "mask_replace_prob": 0.5, "random_replace_prob": 0.5}, {}),
        ({"seed": 11, "mlm_probability": 0.6, "pad_to_multiple_of": 8}, {"return_special_tokens_mask": True}),
    ],
)
def test_parity_seeded_masking_gives_the_references_batches(tokenizers, settings, encode):
    """Same seed, same random draws in the same order: the masked batches are identical, batch after batch."""
    ours, ref = tokenizers
    drop = ("tags", "label")
    _assert_same(
        _batches(ours, plugformers.DataCollatorForLanguageModeling(ours, **settings), 2, drop, **encode),
        _batches(ref, transformers.DataCollatorForLanguageModeling(ref, **settings), 2, drop, **encode),
    )


def test_parity_seeded_masking_in_dataloader_workers(tokenizers):
    """Each worker process seeds its own generator as the reference's does: the same batches, worker by worker."""
    batches = []
    for tok, module in zip(tokenizers, (plugformers, transformers)):
        rows = [dict(tok(TEXTS[0]))] * 8
        collator = module.DataCollatorForLanguageModeling(tok, mlm_probability=0.5, seed=5)
        batches.append(list(torch.utils.data.DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator)))
    _assert_same(*batches)


def test_parity_whole_word_mask_picks_the_same_words_as_often(tokenizers):
    """Both collators mask whole words (the same word boundaries, from the offsets), each word with
    ``mlm_probability``, always with the mask token."""
    import warnings

    ours_tok, ref_tok = tokenizers
    text = "xylophones jump quickly over the lazy dog"
    example = dict(ours_tok(text, return_offsets_mapping=True))
    assert example["offset_mapping"] == list(map(tuple, ref_tok(text, return_offsets_mapping=True)["offset_mapping"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # both say the replacement probabilities become 1 and 0
        ours = plugformers.DataCollatorForLanguageModeling(ours_tok, whole_word_mask=True, mlm_probability=0.4, seed=0)
        ref = transformers.DataCollatorForLanguageModeling(ref_tok, whole_word_mask=True, mlm_probability=0.4, seed=0)
    ours_batch = ours([dict(example) for _ in range(3000)])
    ref_batch = ref([dict(example) for _ in range(3000)])
    ours_picked, ref_picked = ours_batch["labels"] != -100, ref_batch["labels"] != -100
    for batch, picked in ((ours_batch, ours_picked), (ref_batch, ref_picked)):
        assert torch.equal(picked, batch["input_ids"] == ours_tok.mask_token_id)
    # The same partition into words: two positions are always masked together in one iff in the other.
    same_ours = (ours_picked[:, :, None] == ours_picked[:, None, :]).all(0)
    same_ref = (ref_picked[:, :, None] == ref_picked[:, None, :]).all(0)
    assert torch.equal(same_ours, same_ref)
    assert torch.allclose(ours_picked.float().mean(0), ref_picked.float().mean(0), atol=0.05)
