"""Parity of loading behaviour with the reference (parity session): loading-info types, the shape-mismatch and
meta-device errors' classes, and where ``name_or_path`` is recorded, on the same tiny BERT checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import plugformers

transformers = pytest.importorskip("transformers")

LIBRARIES = {"ours": plugformers, "ref": transformers}
SIZES = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bert-classifier")
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=3, **SIZES)).save_pretrained(folder)
    return folder


def _info(lib: Any, class_name: str, folder: Path, **kwargs: Any) -> dict[str, Any]:
    _, info = getattr(lib, class_name).from_pretrained(folder, output_loading_info=True, **kwargs)
    return dict(info)


@pytest.mark.parametrize(
    ("class_name", "kwargs"),
    [
        ("BertModel", {}),  # the head's weights are unexpected
        ("BertForQuestionAnswering", {"num_labels": 2}),  # qa_outputs missing; the classifier and the pooler unexpected
        ("BertForSequenceClassification", {"num_labels": 5, "ignore_mismatched_sizes": True}),  # resized
    ],
)
def test_loading_info_has_the_reference_types_and_contents(classifier_folder: Path, class_name: str, kwargs: Any) -> None:
    ours, ref = (_info(lib, class_name, classifier_folder, **kwargs) for lib in LIBRARIES.values())
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in ref.items()}
    # BERT's heads without a pooler leave a checkpoint's pooler weights unreported on purpose (a known layout).
    pooler = {k for k in ref["unexpected_keys"] if k.startswith("bert.pooler.")}
    assert ours == {**ref, "unexpected_keys": ref["unexpected_keys"] - pooler}
    for _, *shapes in ours["mismatched_keys"]:
        assert all(type(shape) is torch.Size for shape in shapes)


def test_shape_mismatch_and_meta_device_raise_runtime_errors_in_both(classifier_folder: Path) -> None:
    for lib in LIBRARIES.values():
        with pytest.raises(RuntimeError):
            lib.BertForSequenceClassification.from_pretrained(classifier_folder, num_labels=5)
        with torch.device("meta"), pytest.raises(RuntimeError, match="meta"):
            lib.BertModel.from_pretrained(classifier_folder)


def test_name_or_path_is_recorded_where_the_reference_records_it(classifier_folder: Path, tmp_path: Path) -> None:
    got: dict[str, tuple[Any, ...]] = {}
    for name, lib in LIBRARIES.items():
        original = lib.BertConfig(**SIZES, id2label={0: "a", 1: "b"})
        original.save_pretrained(tmp_path / name)
        loaded = lib.BertConfig.from_pretrained(tmp_path / name)
        got[name] = (
            loaded.name_or_path,
            loaded.to_dict() == original.to_dict(),
            lib.AutoConfig.from_pretrained(tmp_path / name).name_or_path == str(tmp_path / name),
            lib.BertModel.from_pretrained(classifier_folder).config.name_or_path == str(classifier_folder),
        )
    assert got["ours"] == got["ref"] == ("", True, True, True)


UNEVEN = {  # values the reference's configs accept though no model of that family can be built from them here
    "BertConfig": ({"hidden_size": 30, "num_attention_heads": 4}, "BertModel"),
    "DistilBertConfig": ({"dim": 30, "n_heads": 4}, "DistilBertModel"),
    "ViTConfig": ({"hidden_size": 30, "num_attention_heads": 4}, "ViTModel"),
    "Wav2Vec2Config": ({"hidden_size": 48, "num_attention_heads": 5, "num_conv_pos_embedding_groups": 4}, "Wav2Vec2Model"),
    "ResNetConfig": ({"hidden_sizes": [8, 16], "depths": [1], "embedding_size": 8}, "ResNetModel"),
}


@pytest.mark.parametrize("config_name", sorted(UNEVEN))
def test_configs_the_reference_accepts_load_here_and_refuse_only_the_model(config_name: str, tmp_path: Path) -> None:
    fields, model_name = UNEVEN[config_name]
    getattr(transformers, config_name)(**fields).save_pretrained(tmp_path)
    config = getattr(plugformers, config_name).from_pretrained(tmp_path)
    for key, value in fields.items():
        assert getattr(config, key) == value
    with pytest.raises(ValueError, match=next(iter(fields))):
        getattr(plugformers, model_name)(config)
