"""``MaskFormerConfig.sub_configs``: the nested backbone and decoder configs, saved in full and given the model's dtype."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from plugformers_maskformer.configuration_maskformer import MaskFormerDetrConfig
from plugformers_maskformer.modeling_maskformer import MaskFormerModel

from plugformers import AutoConfig, MaskFormerConfig, ResNetConfig
from plugformers.configuration_utils import PretrainedConfig
from plugformers.plugins import get_registry

SPEC = get_registry().family("maskformer")


def tiny_config(**overrides: Any) -> MaskFormerConfig:
    return SPEC.build_config(tiny=True, **overrides)


def test_sub_configs_name_the_nested_fields_and_their_classes() -> None:
    assert PretrainedConfig.sub_configs == {} and ResNetConfig.sub_configs == {}
    assert MaskFormerConfig.sub_configs == {"backbone_config": AutoConfig, "decoder_config": MaskFormerDetrConfig}
    config = tiny_config()
    for key, klass in MaskFormerConfig.sub_configs.items():
        nested = getattr(config, key)
        assert isinstance(nested, PretrainedConfig)
        assert klass is AutoConfig or isinstance(nested, klass)


def test_nested_configs_are_saved_in_full_and_load_back_equal(tmp_path: Path) -> None:
    config = tiny_config()
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for key in MaskFormerConfig.sub_configs:
        nested = getattr(config, key).to_dict()
        nested.pop("plugformers_version")
        assert saved[key] == nested  # every field, defaults included
    loaded = MaskFormerConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is ResNetConfig and type(loaded.decoder_config) is MaskFormerDetrConfig
    assert loaded.to_dict() == config.to_dict()


def test_loading_and_building_in_a_dtype_record_it_on_every_sub_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    MaskFormerModel(tiny_config()).save_pretrained(tmp_path / "fp32")
    model = MaskFormerModel.from_pretrained(tmp_path / "fp32", dtype=torch.float16)
    assert model.dtype == torch.float16
    config = model.config
    assert (config.dtype, config.backbone_config.dtype, config.decoder_config.dtype) == (torch.float16,) * 3
    model.save_pretrained(tmp_path / "fp16")
    saved = json.loads((tmp_path / "fp16" / "config.json").read_text())
    assert (saved["dtype"], saved["backbone_config"]["dtype"], saved["decoder_config"]["dtype"]) == ("float16",) * 3
    reloaded = MaskFormerConfig.from_pretrained(tmp_path / "fp16")
    assert (reloaded.backbone_config.dtype, reloaded.decoder_config.dtype) == (torch.float16, torch.float16)

    built = MaskFormerModel._from_config(tiny_config(), dtype=torch.bfloat16)
    assert built.dtype == torch.bfloat16
    assert (built.config.backbone_config.dtype, built.config.decoder_config.dtype) == (torch.bfloat16,) * 2
    plain = MaskFormerModel.from_pretrained(tmp_path / "fp32")  # no dtype asked for: the sub configs keep theirs
    assert plain.config.backbone_config.dtype is None and plain.config.decoder_config.dtype is None
