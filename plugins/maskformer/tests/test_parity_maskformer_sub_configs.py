"""Parity of the nested configs: both libraries save them in full, read each other's, and record a load's dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

import plugformers  # noqa: E402

STAGES = ["stage1", "stage2", "stage3", "stage4"]
DECODER = {
    "model_type": "detr", "d_model": 32, "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 32,
    "encoder_attention_heads": 2, "encoder_layers": 1, "num_queries": 4,
}


def _reference_model() -> object:
    backbone = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic", out_features=STAGES
    )
    config = transformers.MaskFormerConfig(
        backbone_config=backbone, decoder_config=DECODER, fpn_feature_size=32, mask_feature_size=32, num_labels=3
    )
    torch.manual_seed(0)
    return transformers.MaskFormerModel(config)


def _nested_keys(folder: Path) -> dict[str, set[str]]:
    saved = json.loads((folder / "config.json").read_text())
    return {key: set(saved[key]) for key in ("backbone_config", "decoder_config")}


def test_sub_config_fields_and_saved_nesting_match_the_reference(tmp_path: Path) -> None:
    assert set(plugformers.MaskFormerConfig.sub_configs) == set(transformers.MaskFormerConfig.sub_configs)
    _reference_model().save_pretrained(tmp_path / "ref")
    ours = plugformers.MaskFormerConfig.from_pretrained(tmp_path / "ref")
    ours.save_pretrained(tmp_path / "ours")
    ref_keys, our_keys = _nested_keys(tmp_path / "ref"), _nested_keys(tmp_path / "ours")
    for key in ref_keys:  # the reference's nested fields all come back (ours may add its own version key only)
        assert ref_keys[key] - {"transformers_version"} <= our_keys[key], key
    back = transformers.MaskFormerConfig.from_pretrained(tmp_path / "ours")
    for key in ("backbone_config", "decoder_config"):
        theirs, mine = getattr(back, key).to_dict(), getattr(ours, key).to_dict()
        assert {k: mine[k] for k in ("model_type", "hidden_sizes", "d_model", "num_queries") if k in mine} == {
            k: theirs[k] for k in ("model_type", "hidden_sizes", "d_model", "num_queries") if k in mine
        }


def test_a_float16_load_records_the_dtype_on_the_sub_configs_as_the_reference_does(tmp_path: Path) -> None:
    _reference_model().save_pretrained(tmp_path / "ref")
    theirs = transformers.MaskFormerModel.from_pretrained(tmp_path / "ref", dtype=torch.float16).config
    mine = plugformers.MaskFormerModel.from_pretrained(tmp_path / "ref", dtype=torch.float16).config
    for config in (theirs, mine):
        assert (config.dtype, config.backbone_config.dtype, config.decoder_config.dtype) == (torch.float16,) * 3
