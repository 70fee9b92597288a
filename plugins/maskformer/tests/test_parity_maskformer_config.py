"""Parity of config.json fields: a file the reference writes or accepts builds the same MaskFormer here.

Each test makes the reference write a checkpoint whose ``config.json`` carries a field the reference does not
build from (or reads from a nested config), then checks both ways: our model loads the reference's weights
with nothing missing or resized and gives its outputs, and the reference loads what we save back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

import plugformers  # noqa: E402

STAGES = ["stage1", "stage2", "stage3", "stage4"]
DECODER = {
    "model_type": "detr", "d_model": 32, "decoder_layers": 2, "decoder_attention_heads": 2, "decoder_ffn_dim": 64,
    "num_queries": 5,
}


def _reference_config(decoder: dict[str, Any] | None = None, **top_level: Any) -> Any:
    backbone = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic", out_features=STAGES
    )
    return transformers.MaskFormerConfig(
        backbone_config=backbone, decoder_config={**DECODER, **(decoder or {})}, fpn_feature_size=32,
        mask_feature_size=32, num_labels=3, **top_level,
    )


def _reference_checkpoint(path: Path, config: Any) -> Any:
    torch.manual_seed(0)
    model = transformers.MaskFormerForInstanceSegmentation(config).eval()
    with torch.no_grad():  # trained-looking norms, so that every norm's parameters matter to the outputs
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    model.save_pretrained(path)
    return model


def _edit_config(path: Path, **top_level: Any) -> None:
    data = json.loads((path / "config.json").read_text())
    data.update(top_level)
    (path / "config.json").write_text(json.dumps(data))


def _outputs(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.eval()(pixels)
    return out.class_queries_logits, out.masks_queries_logits


def _assert_same_model_both_ways(path: Path, expected: tuple[torch.Tensor, torch.Tensor], tmp_path: Path) -> Any:
    ours, info = plugformers.MaskFormerForInstanceSegmentation.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for got, want in zip(_outputs(ours), expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "ours")
    for got, want in zip(_outputs(back), expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    return ours


def test_parity_top_level_num_queries_is_not_the_number_of_queries(tmp_path: Path) -> None:
    """The issue's case: the reference writes a top-level num_queries=7 and builds decoder_config's 5 queries."""
    ref = _reference_checkpoint(tmp_path / "ref", _reference_config(num_queries=7))
    saved = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert saved["num_queries"] == 7 and saved["decoder_config"]["num_queries"] == 5
    assert ref.model.transformer_module.queries_embedder.num_embeddings == 5

    ours = _assert_same_model_both_ways(tmp_path / "ref", _outputs(ref), tmp_path)
    assert ours.model.transformer_module.queries_embedder.num_embeddings == 5
    assert ours.config.num_queries == ref.config.num_queries == 7  # the stray field reads back as in the reference
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["num_queries"] == 7


def test_parity_num_queries_keyword_at_load_time(tmp_path: Path) -> None:
    ref = _reference_checkpoint(tmp_path / "ref", _reference_config())
    ref_config = transformers.MaskFormerConfig.from_pretrained(tmp_path / "ref", num_queries=7)
    our_config = plugformers.MaskFormerConfig.from_pretrained(tmp_path / "ref", num_queries=7)
    # The reference drops the keyword (it is no field of its config); here it is kept as a top-level value.
    # Either way it builds nothing.
    assert our_config.decoder_config.num_queries == ref_config.decoder_config.num_queries == 5
    ours = plugformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "ref", config=our_config)
    assert ours.model.transformer_module.queries_embedder.num_embeddings == 5
    for got, want in zip(_outputs(ours), _outputs(ref)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "fields",
    [
        {"backbone": "some-org/some-backbone", "use_pretrained_backbone": True},
        {"backbone_kwargs": {"out_indices": [4]}},
        {"use_timm_backbone": True},
        {"backbone": None, "use_pretrained_backbone": False, "use_timm_backbone": False, "backbone_kwargs": None},
    ],
    ids=["backbone-name", "backbone_kwargs", "use_timm_backbone", "v4-nulls"],
)
def test_parity_backbone_fields_next_to_backbone_config(fields: dict[str, Any], tmp_path: Path) -> None:
    """Files with backbone_config and another way of naming a backbone: the reference uses backbone_config."""
    ref = _reference_checkpoint(tmp_path / "ref", _reference_config())
    _edit_config(tmp_path / "ref", **fields)
    ref_loaded = transformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "ref")
    expected = _outputs(ref)
    for got, want in zip(_outputs(ref_loaded), expected):
        torch.testing.assert_close(got, want)
    _assert_same_model_both_ways(tmp_path / "ref", expected, tmp_path)


def test_parity_decoder_config_auxiliary_loss(tmp_path: Path) -> None:
    """The reference reads auxiliary_loss from decoder_config: each decoder layer gets the normalised output."""
    ref = _reference_checkpoint(tmp_path / "ref", _reference_config(decoder={"auxiliary_loss": True}))
    plain = transformers.MaskFormerForInstanceSegmentation(_reference_config()).eval()
    plain.load_state_dict(ref.state_dict())
    expected = _outputs(ref)
    assert not torch.allclose(_outputs(plain)[0], expected[0], atol=1e-3)  # the switch matters to these weights
    _assert_same_model_both_ways(tmp_path / "ref", expected, tmp_path)


@pytest.mark.parametrize(("top_std", "decoder_std"), [(0.5, 0.001), (0.001, 0.5)])
def test_parity_decoder_init_std_comes_from_decoder_config(top_std: float, decoder_std: float) -> None:
    """Built from a config (random weights), every weight is drawn with the same spread as in the reference."""
    data = _reference_config(init_std=top_std, decoder={"init_std": decoder_std}).to_dict()
    torch.manual_seed(0)
    ref = transformers.MaskFormerForInstanceSegmentation(transformers.MaskFormerConfig.from_dict(data))
    torch.manual_seed(0)
    ours = plugformers.MaskFormerForInstanceSegmentation(plugformers.MaskFormerConfig.from_dict(data))
    ref_weights = {
        k.replace(".o_proj.", ".out_proj.").replace(".mlp.fc", ".fc"): v for k, v in ref.state_dict().items()
    }
    checked = 0
    for name, weight in ours.state_dict().items():
        if name.endswith(".weight") and weight.dim() == 2 and weight.numel() >= 64:  # linear and embedding weights
            ratio = weight.float().std().item() / ref_weights[name].float().std().item()
            assert 0.7 < ratio < 1.4, (name, ratio)
            checked += 1
    assert checked >= 20
