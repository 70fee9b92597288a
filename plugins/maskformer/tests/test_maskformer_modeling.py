"""MaskFormer model tests: the shared model checks plus the loss, matcher and backbone flows."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from plugformers_maskformer.modeling_maskformer import (
    MaskFormerForInstanceSegmentation,
    MaskFormerHungarianMatcher,
    MaskFormerModel,
    sigmoid_focal_loss,
)

from plugformers import (
    AutoModelForInstanceSegmentation,
    AutoModelForUniversalSegmentation,
    MaskFormerConfig,
    ResNetConfig,
)
from plugformers.configuration_utils import ConfigError, PretrainedConfig
from plugformers.plugins import get_registry
from plugformers.testing.model_tests import ModelExtraTestsMixin

ALL_STAGES = ["stage1", "stage2", "stage3", "stage4"]


SPEC = get_registry().family("maskformer")


def tiny_config(**overrides: Any) -> MaskFormerConfig:
    """The registration's tiny config (basic-block ResNet backbone, 2-layer decoder, 4 queries), with ``overrides``."""
    return SPEC.build_config(tiny=True, **overrides)


def labels_for(batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The registration's example labels for 32x32 images: two or three binary masks with a class each."""
    inputs = SPEC.build_example_inputs(tiny_config(), MaskFormerForInstanceSegmentation, batch_size=batch, labels=True)
    return inputs["mask_labels"], inputs["class_labels"]


class TestMaskFormerShared(ModelExtraTestsMixin):
    """The registered config: the conformance suite (conftest.py) runs the generic checks, these the extras."""

    all_model_classes = (MaskFormerModel, MaskFormerForInstanceSegmentation)

    def get_config(self) -> PretrainedConfig:
        return tiny_config()

    def prepare_inputs(self, config: PretrainedConfig, model_class: type) -> dict[str, Any]:
        return SPEC.build_example_inputs(config, model_class, labels=True)


def _model(**overrides: Any) -> MaskFormerForInstanceSegmentation:
    torch.manual_seed(0)
    return MaskFormerForInstanceSegmentation(tiny_config(**overrides)).eval()


def test_output_shapes_and_loss_is_finite_and_trains() -> None:
    model = _model()
    masks, classes = labels_for(2)
    out = model(torch.randn(2, 3, 32, 32), mask_labels=masks, class_labels=classes)
    assert out.class_queries_logits.shape == (2, 4, 4)  # num_labels + "no object"
    assert out.masks_queries_logits.shape == (2, 4, 8, 8)  # a quarter of the input size
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.class_predictor.weight.grad is not None and model.class_predictor.weight.grad.abs().sum() > 0


def test_loss_is_the_weighted_sum_of_its_terms() -> None:
    model = _model(mask_weight=3.0, dice_weight=2.0, cross_entropy_weight=0.5)
    masks, classes = labels_for(2)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
        raw = model.criterion(out.masks_queries_logits, out.class_queries_logits, masks, classes)
        weighted = model.get_loss_dict(out.masks_queries_logits, out.class_queries_logits, masks, classes, None)
    assert set(raw) == {"loss_mask", "loss_dice", "loss_cross_entropy"}
    assert torch.allclose(weighted["loss_mask"], raw["loss_mask"] * 3.0)
    assert torch.allclose(weighted["loss_dice"], raw["loss_dice"] * 2.0)
    assert torch.allclose(weighted["loss_cross_entropy"], raw["loss_cross_entropy"] * 0.5)


def test_no_object_weight_is_the_last_class_weight() -> None:
    model = _model(no_object_weight=0.25)
    assert model.criterion.empty_weight.tolist() == [1.0, 1.0, 1.0, 0.25]


def test_matcher_finds_the_optimal_assignment() -> None:
    # Query 2 predicts target 0 perfectly, query 0 predicts target 1: the matching must find both.
    targets = torch.zeros(2, 4, 4)
    targets[0, :2] = 1
    targets[1, 2:] = 1
    preds = torch.full((3, 4, 4), -10.0)
    preds[2] = targets[0] * 20 - 10
    preds[0] = targets[1] * 20 - 10
    class_logits = torch.zeros(3, 3)
    class_logits[2, 1] = 5
    class_logits[0, 2] = 5
    matcher = MaskFormerHungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0)
    [(rows, cols)] = matcher(preds[None], class_logits[None], [targets], [torch.tensor([1, 2])])
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 2: 0}


def test_focal_loss_matches_its_definition() -> None:
    logits = torch.tensor([[2.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0]])
    p = torch.sigmoid(logits)
    expected = (0.25 * (1 - p[0, 0]) ** 2 * -torch.log(p[0, 0]) + 0.75 * p[0, 1] ** 2 * -torch.log(1 - p[0, 1])) / 2
    assert torch.allclose(sigmoid_focal_loss(logits, labels, torch.tensor(1.0)), expected)


def test_auxiliary_losses_for_every_decoder_layer_but_the_last() -> None:
    model = _model(use_auxiliary_loss=True, output_auxiliary_logits=True)
    masks, classes = labels_for(2)
    out = model(torch.randn(2, 3, 32, 32), mask_labels=masks, class_labels=classes)
    assert len(out.auxiliary_logits) == 1  # 2 decoder layers
    assert out.auxiliary_logits[0]["class_queries_logits"].shape == out.class_queries_logits.shape
    with torch.no_grad():
        terms = model.get_loss_dict(
            out.masks_queries_logits, out.class_queries_logits, masks, classes, out.auxiliary_logits
        )
    assert {"loss_mask_0", "loss_dice_0", "loss_cross_entropy_0"} <= set(terms)
    assert torch.allclose(out.loss, sum(terms.values()))


def test_images_without_any_segment_still_give_a_loss() -> None:
    model = _model()
    masks = [torch.zeros(0, 32, 32), (torch.rand(1, 32, 32) > 0.5).float()]
    classes = [torch.zeros(0, dtype=torch.long), torch.tensor([2])]
    out = model(torch.randn(2, 3, 32, 32), mask_labels=masks, class_labels=classes)
    assert torch.isfinite(out.loss)


def test_class_ids_outside_num_labels_are_refused() -> None:
    model = _model()
    masks, _ = labels_for(2)
    classes = [torch.tensor([0, 3]), torch.tensor([1, 1, 0])]
    with pytest.raises(ValueError, match=r"ids \[3\] outside 0\.\.2"):
        model(torch.randn(2, 3, 32, 32), mask_labels=masks, class_labels=classes)


def test_label_lists_must_match_the_batch() -> None:
    model = _model()
    masks, classes = labels_for(1)
    with pytest.raises(ValueError, match="batch has 2 images"):
        model(torch.randn(2, 3, 32, 32), mask_labels=masks, class_labels=classes)
    with pytest.raises(ValueError, match="together"):
        model(torch.randn(2, 3, 32, 32), mask_labels=masks)


def test_hidden_states_layout() -> None:
    model = _model()
    out = model(torch.randn(1, 3, 64, 64), output_hidden_states=True)
    assert len(out.encoder_hidden_states) == 4
    assert len(out.pixel_decoder_hidden_states) == 3
    assert len(out.transformer_decoder_hidden_states) == 3  # the zero inputs, then each layer
    assert len(out.hidden_states) == 10


def test_backbone_with_only_the_last_stage_builds() -> None:
    # The reference's ResNetConfig() default returns only stage4; the pyramid then has no lateral layers.
    config = tiny_config(backbone_config=ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1] * 4))
    model = MaskFormerForInstanceSegmentation(config).eval()
    out = model(torch.randn(1, 3, 64, 64))
    assert out.masks_queries_logits.shape[-2:] == (2, 2)


def test_pretrained_backbone_flow_loads_backbone_weights(tmp_path: Any) -> None:
    from plugformers import ResNetBackbone

    backbone_config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1] * 4, out_features=ALL_STAGES)
    torch.manual_seed(1)
    ResNetBackbone(backbone_config).save_pretrained(tmp_path / "bb")
    saved = ResNetBackbone.from_pretrained(tmp_path / "bb")
    decoder = tiny_config().decoder_config
    common = {"decoder_config": decoder, "fpn_feature_size": 32, "mask_feature_size": 32}

    pretrained = MaskFormerForInstanceSegmentation(
        MaskFormerConfig(backbone=str(tmp_path / "bb"), use_pretrained_backbone=True, **common)
    )
    weight = pretrained.model.pixel_level_module.encoder.embedder.embedder.convolution.weight
    assert torch.equal(weight, saved.embedder.embedder.convolution.weight)

    torch.manual_seed(2)
    random = MaskFormerForInstanceSegmentation(
        MaskFormerConfig(backbone=str(tmp_path / "bb"), use_pretrained_backbone=False, **common)
    )
    other = random.model.pixel_level_module.encoder.embedder.embedder.convolution.weight
    assert other.shape == weight.shape and not torch.equal(other, weight)
    # The saved composite checkpoint does not point back at the backbone folder.
    pretrained.save_pretrained(tmp_path / "mf")
    saved_config = json.loads((tmp_path / "mf" / "config.json").read_text())
    assert not {"backbone", "use_pretrained_backbone", "_pretrained_backbone"} & set(saved_config)
    reloaded = MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "mf")
    assert torch.equal(reloaded.model.pixel_level_module.encoder.embedder.embedder.convolution.weight, weight)


@pytest.mark.parametrize("auto", [AutoModelForInstanceSegmentation, AutoModelForUniversalSegmentation])
def test_auto_class_builds_instance_segmentation(auto: Any) -> None:
    # The reference maps MaskFormer under both the instance and the universal segmentation Auto classes.
    model = auto.from_config(tiny_config())
    assert isinstance(model, MaskFormerForInstanceSegmentation)


def test_config_defaults_to_resnet50_with_four_stages() -> None:
    config = MaskFormerConfig()
    assert config.backbone_config.model_type == "resnet"
    assert config.backbone_config.depths == [3, 4, 6, 3]
    assert config.backbone_config.out_features == ALL_STAGES
    assert config.decoder_config.model_type == "detr"
    assert (config.num_attention_heads, config.num_hidden_layers, config.num_queries) == (8, 6, 100)


def test_config_round_trips_with_nested_configs(tmp_path: Any) -> None:
    config = tiny_config()
    config.decoder_config.num_queries = 7
    config.save_pretrained(tmp_path)
    loaded = MaskFormerConfig.from_pretrained(tmp_path)
    assert loaded.decoder_config.num_queries == 7
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.backbone_config.out_features == ALL_STAGES
    drop = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in drop} == {
        k: v for k, v in config.to_dict().items() if k not in drop
    }


def test_nested_config_override_given_as_a_dict_updates_that_config(tmp_path: Any) -> None:
    tiny_config().save_pretrained(tmp_path)
    loaded = MaskFormerConfig.from_pretrained(tmp_path, backbone_config={"depths": [2, 1, 1, 1]})
    assert isinstance(loaded.backbone_config, ResNetConfig)
    assert loaded.backbone_config.depths == [2, 1, 1, 1]
    assert loaded.backbone_config.hidden_sizes == [8, 16, 16, 32]  # the saved fields stay
    assert loaded.decoder_config.d_model == 32
    replaced = MaskFormerConfig.from_pretrained(
        tmp_path, decoder_config={"model_type": "detr", "d_model": 16, "decoder_attention_heads": 2, "num_queries": 4}
    )
    assert type(replaced.decoder_config).__name__ == "MaskFormerDetrConfig" and replaced.decoder_config.d_model == 16
    MaskFormerForInstanceSegmentation(loaded)  # builds


def test_backbone_next_to_backbone_config_is_ignored() -> None:
    # As in the reference: backbone_config decides, and the checkpoint name is neither read nor saved.
    config = MaskFormerConfig(backbone="microsoft/resnet-50", use_pretrained_backbone=True, backbone_config=ResNetConfig())
    assert config.backbone_config.depths == [3, 4, 6, 3] and config._pretrained_backbone is None
    assert "backbone" not in config.to_diff_dict()


def test_unknown_backbone_type_is_named() -> None:
    with pytest.raises(ConfigError, match="'swin'"):
        MaskFormerConfig(backbone_config={"model_type": "swin", "embed_dim": 96})


def test_bad_decoder_and_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="'detr'"):
        MaskFormerConfig(decoder_config={"model_type": "bert"})
    with pytest.raises(ConfigError, match="multiple of 32"):
        tiny_config(fpn_feature_size=48)


def test_decoder_heads_that_do_not_divide_d_model_refuse_the_model_not_the_config() -> None:
    config = tiny_config(decoder_config={"model_type": "detr", "d_model": 30, "decoder_attention_heads": 4})
    assert MaskFormerConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=r"\.d_model \(30\).*decoder_attention_heads \(4\)"):
        MaskFormerModel(config)


def test_out_features_naming_a_missing_stage_is_refused() -> None:
    with pytest.raises(ConfigError, match="stage7"):
        MaskFormerConfig(backbone_config={"model_type": "resnet", "out_features": ["stage1", "stage7"]})


def test_timm_backbone_without_timm_names_the_package() -> None:
    pytest.importorskip("scipy")
    try:
        import timm  # noqa: F401
    except ImportError:
        config = MaskFormerConfig(backbone="resnet50", use_timm_backbone=True, use_pretrained_backbone=False)
        assert config.backbone_config.model_type == "timm_backbone"
        with pytest.raises(ImportError, match="pip install timm"):
            MaskFormerForInstanceSegmentation(config)
    else:
        pytest.skip("timm is installed; this checks the missing-package message")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_loss(dtype: torch.dtype) -> None:
    model = _model().to("cuda", dtype)
    masks, classes = labels_for(2)
    out = model(
        torch.randn(2, 3, 32, 32, device="cuda", dtype=dtype),
        mask_labels=[m.cuda() for m in masks],
        class_labels=[c.cuda() for c in classes],
    )
    assert out.class_queries_logits.dtype == dtype
    assert torch.isfinite(out.loss.float())


@pytest.mark.parametrize(
    ("backbone_kwargs", "features", "indices"),
    [
        ({"out_indices": [2, 4]}, ["stage2", "stage4"], [2, 4]),
        ({"out_indices": [-1]}, ["stage4"], [-1]),
        ({"out_features": ["stage3"]}, ["stage3"], [3]),
        ({"out_features": ["stage1"], "out_indices": [1]}, ["stage1"], [1]),
    ],
)
def test_backbone_kwargs_reselect_the_stages_of_a_saved_backbone(
    tmp_path: Any, backbone_kwargs: dict[str, Any], features: list[str], indices: list[int]
) -> None:
    # A saved backbone's config.json holds both out_features and out_indices; overriding one of them through
    # backbone_kwargs re-derives the other rather than contradicting the saved one.
    from plugformers import ResNetBackbone

    bb = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1] * 4, out_features=ALL_STAGES)
    ResNetBackbone(bb).save_pretrained(tmp_path)
    config = MaskFormerConfig(backbone=str(tmp_path), backbone_kwargs=backbone_kwargs)
    assert config.backbone_config.out_features == features
    assert config.backbone_config.out_indices == indices
    with pytest.raises(ConfigError, match="name different stages"):
        MaskFormerConfig(backbone=str(tmp_path), backbone_kwargs={"out_features": ["stage1"], "out_indices": [2]})
