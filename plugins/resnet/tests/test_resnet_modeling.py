"""ResNet models: the generic model suite plus ResNet-specific behaviour (backbone, channels_last, errors)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from plugformers_resnet.configuration_resnet import ResNetConfig
from plugformers_resnet.modeling_resnet import (
    ResNetBackbone,
    ResNetForImageClassification,
    ResNetModel,
)

from plugformers.configuration_utils import ConfigError
from plugformers.plugins import get_registry
from plugformers.testing.model_tests import ModelExtraTestsMixin, ModelTesterMixin

SPEC = get_registry().family("resnet")


def tiny_config(**overrides: Any) -> ResNetConfig:
    """The registration's tiny config (two small stages, 3 labels), with ``overrides``."""
    return SPEC.build_config(tiny=True, **overrides)


def pixel_values(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size)


def _inputs(config: ResNetConfig, model_class: type) -> dict[str, Any]:
    return SPEC.build_example_inputs(config, model_class, labels=True)


class TestResNetBottleneck(ModelExtraTestsMixin):
    """The registered config: the conformance suite (conftest.py) runs the generic checks, these the extras."""

    all_model_classes = (ResNetModel, ResNetForImageClassification)
    test_compile = False  # compiled once, on the backbone below

    def get_config(self) -> ResNetConfig:
        return tiny_config()

    def prepare_inputs(self, config: ResNetConfig, model_class: type) -> dict[str, Any]:
        return _inputs(config, model_class)


class TestResNetBasic(ModelTesterMixin):
    all_model_classes = (ResNetModel, ResNetForImageClassification)
    has_attentions = False
    test_compile = False

    def get_config(self) -> ResNetConfig:
        return tiny_config(layer_type="basic", downsample_in_first_stage=True)

    def prepare_inputs(self, config: ResNetConfig, model_class: type) -> dict[str, Any]:
        return _inputs(config, model_class)


class TestResNetBackboneSuite(ModelTesterMixin):
    all_model_classes = (ResNetBackbone,)
    has_attentions = False
    compile_atol = 1e-4

    def get_config(self) -> ResNetConfig:
        return tiny_config(out_features=["stem", "stage1", "stage2"])

    def prepare_inputs(self, config: ResNetConfig, model_class: type) -> dict[str, Any]:
        return _inputs(config, model_class)

    @pytest.mark.slow  # inductor code generation takes over a minute on a small shared CPU
    def test_torch_compile_fullgraph_matches_eager(self) -> None:
        super().test_torch_compile_fullgraph_matches_eager()


def test_backbone_traces_as_one_graph() -> None:
    """fullgraph=True fails on any graph break; the eager backend checks that without slow code generation."""
    torch.manual_seed(0)
    backbone = ResNetBackbone(tiny_config(out_features=["stem", "stage2"])).eval()
    x = pixel_values()
    with torch.no_grad():
        expected = backbone(x)
        got = torch.compile(backbone, fullgraph=True, backend="eager")(x)
    for a, b in zip(got.feature_maps, expected.feature_maps):
        torch.testing.assert_close(a, b)


# ----- config ---------------------------------------------------------------------------------------------


def test_config_defaults_are_resnet50() -> None:
    config = ResNetConfig()
    assert config.hidden_sizes == [256, 512, 1024, 2048] and config.depths == [3, 4, 6, 3]
    assert config.layer_type == "bottleneck" and config.embedding_size == 64 and config.hidden_act == "relu"
    assert config.stage_names == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert config.out_features == ["stage4"] and config.out_indices == [4]


@pytest.mark.parametrize("model_class", [ResNetModel, ResNetBackbone])
def test_stage_lists_of_different_lengths_refuse_the_model_not_the_config(tmp_path, model_class: type) -> None:
    config = ResNetConfig(hidden_sizes=[8, 16], depths=[1], embedding_size=8)  # accepted, as the reference accepts it
    config.save_pretrained(tmp_path)
    assert ResNetConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=r"hidden_sizes \(2 entries\) and depths \(1 entries\)"):
        model_class(config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer_type": "wide"}, "layer_type"),
        ({"depths": []}, "non-empty"),
        ({"depths": [1, 0, 1, 1]}, "positive"),
        ({"embedding_size": 0}, "embedding_size"),
        ({"out_features": ["stage5"]}, r"unknown stage 'stage5'.*stage4"),
        ({"out_features": ["stage1"], "out_indices": [2]}, "different stages"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ResNetConfig(**kwargs)


def test_config_json_round_trip_recomputes_stage_names(tmp_path) -> None:
    config = tiny_config(out_indices=[-1])
    config.save_pretrained(tmp_path)
    again = ResNetConfig.from_pretrained(tmp_path)
    assert again.stage_names == ["stem", "stage1", "stage2"]
    assert again.out_indices == [-1] and again.out_features == ["stage2"]
    saved, loaded = config.to_dict(), again.to_dict()
    saved.pop("_name_or_path"), loaded.pop("_name_or_path")
    assert loaded == saved


# ----- models ---------------------------------------------------------------------------------------------


def test_shapes_of_the_base_model_and_head() -> None:
    torch.manual_seed(0)
    model = ResNetModel(tiny_config()).eval()
    out = model(pixel_values(), output_hidden_states=True)
    assert tuple(out.last_hidden_state.shape) == (2, 16, 4, 4)
    assert tuple(out.pooler_output.shape) == (2, 16, 1, 1)
    assert [tuple(h.shape[1:]) for h in out.hidden_states] == [(8, 8, 8), (8, 8, 8), (16, 4, 4)]
    head = ResNetForImageClassification(tiny_config()).eval()
    assert tuple(head(pixel_values()).logits.shape) == (2, 3)
    features = ResNetForImageClassification(tiny_config(num_labels=0)).eval()(pixel_values()).logits
    assert tuple(features.shape) == (2, 16)


def test_downsample_options_change_where_the_stride_is() -> None:
    plain = ResNetModel(tiny_config()).eval()
    first = ResNetModel(tiny_config(downsample_in_first_stage=True)).eval()
    assert tuple(plain(pixel_values()).last_hidden_state.shape[2:]) == (4, 4)
    assert tuple(first(pixel_values()).last_hidden_state.shape[2:]) == (2, 2)
    in_bottleneck = ResNetModel(tiny_config(downsample_in_bottleneck=True))
    layer = in_bottleneck.encoder.stages[1].layers[0].layer
    assert layer[0].convolution.stride == (2, 2) and layer[1].convolution.stride == (1, 1)
    layer = plain.encoder.stages[1].layers[0].layer
    assert layer[0].convolution.stride == (1, 1) and layer[1].convolution.stride == (2, 2)


@pytest.mark.parametrize(
    ("problem_type", "labels"),
    [
        ("single_label_classification", torch.tensor([0, 2])),
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    ],
)
def test_classification_losses(problem_type: str, labels: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = ResNetForImageClassification(tiny_config()).eval()
    out = model(pixel_values(), labels=labels)
    assert model.config.problem_type == problem_type
    if problem_type == "single_label_classification":
        expected = torch.nn.functional.cross_entropy(out.logits, labels)
    else:
        expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)


def test_regression_loss() -> None:
    model = ResNetForImageClassification(tiny_config(num_labels=1)).eval()
    labels = torch.tensor([0.5, -1.0])
    out = model(pixel_values(), labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels))


def test_channels_last_end_to_end() -> None:
    torch.manual_seed(0)
    model = ResNetForImageClassification(tiny_config()).eval()
    x = pixel_values()
    with torch.no_grad():
        expected = model.resnet(x, output_hidden_states=True)
        expected_logits = model(x).logits
        model = model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        got = model.resnet(x_cl, output_hidden_states=True)
        got_logits = model(x_cl).logits
    assert got.last_hidden_state.is_contiguous(memory_format=torch.channels_last)
    for state in got.hidden_states:
        assert state.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_logits, expected_logits, atol=1e-5, rtol=1e-5)
    backbone = ResNetBackbone(tiny_config(out_indices=[1, 2])).eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        maps = backbone(x_cl).feature_maps
    assert all(m.is_contiguous(memory_format=torch.channels_last) for m in maps)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (torch.randn(2, 1, 32, 32), ValueError, "num_channels=3"),
        (torch.randn(3, 32, 32), ValueError, "batch, channels, height, width"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_pixel_values_are_named(value: Any, error: type, message: str) -> None:
    model = ResNetModel(tiny_config())
    with pytest.raises(error, match=message):
        model(value)


def test_bottleneck_too_narrow_is_explained() -> None:
    with pytest.raises(ValueError, match="reduces them by 4 to zero"):
        ResNetModel(tiny_config(hidden_sizes=[2, 16]))


# ----- backbone -------------------------------------------------------------------------------------------


def test_backbone_feature_maps_follow_out_features() -> None:
    torch.manual_seed(0)
    backbone = ResNetBackbone(tiny_config(out_features=["stem", "stage2"])).eval()
    assert backbone.channels == [8, 16]
    assert backbone.out_indices == [0, 2]
    x = pixel_values()
    out = backbone(x)
    assert [tuple(m.shape) for m in out.feature_maps] == [(2, 8, 8, 8), (2, 16, 4, 4)]
    assert out.hidden_states is None and out.attentions is None
    out = backbone(x, output_hidden_states=True)
    assert len(out.hidden_states) == 3
    torch.testing.assert_close(out.feature_maps[1], out.hidden_states[2])
    as_tuple = backbone(x, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1 and len(as_tuple[0]) == 2
    # Like the reference, a convolutional backbone ignores output_attentions instead of failing on it.
    ignored = backbone(x, output_attentions=True)
    assert list(ignored.keys()) == ["feature_maps"]
    torch.testing.assert_close(ignored.feature_maps[1], out.feature_maps[1])
    backbone.out_features = ["stage1"]
    assert backbone.config.out_indices == [1] and backbone.channels == [8]
    assert [tuple(m.shape) for m in backbone(x).feature_maps] == [(2, 8, 8, 8)]


def test_base_model_checkpoint_loads_into_the_backbone(tmp_path) -> None:
    torch.manual_seed(0)
    base = ResNetModel(tiny_config()).eval()
    base.save_pretrained(tmp_path)
    backbone, info = ResNetBackbone.from_pretrained(tmp_path, output_loading_info=True, out_indices=[2])
    assert not info["missing_keys"] and not info["mismatched_keys"]
    x = pixel_values()
    with torch.no_grad():
        torch.testing.assert_close(backbone.eval()(x).feature_maps[0], base(x).last_hidden_state)


def test_auto_classes_and_public_names() -> None:
    import plugformers
    from plugformers.auto import AutoBackbone, AutoConfig

    config = AutoConfig.for_model("resnet", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    assert isinstance(config, ResNetConfig)
    assert isinstance(AutoBackbone.from_config(config), ResNetBackbone)
    assert plugformers.ResNetModel is ResNetModel
    assert plugformers.ResNetBackbone is ResNetBackbone


def test_load_backbone_builds_resnet_from_a_nested_config() -> None:
    from plugformers.backbone_utils import load_backbone
    from plugformers.configuration_utils import PretrainedConfig

    holder = PretrainedConfig(
        backbone_config={
            "model_type": "resnet",
            "embedding_size": 8,
            "hidden_sizes": [8, 16],
            "depths": [1, 1],
            "out_features": ["stage1", "stage2"],
        }
    )
    backbone = load_backbone(holder)
    assert isinstance(backbone, ResNetBackbone)
    assert backbone.channels == [8, 16]


# ----- CUDA (skipped without a GPU) -----------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_channels_last_matches_float32(dtype: torch.dtype) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    model = ResNetForImageClassification(tiny_config()).eval().to("cuda")
    x = pixel_values().to("cuda")
    with torch.no_grad():
        expected = model(x).logits
        half = model.to(dtype=dtype, memory_format=torch.channels_last)
        out = half(x.to(dtype).contiguous(memory_format=torch.channels_last), output_hidden_states=True)
    assert out.logits.dtype == dtype
    assert out.hidden_states[-1].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.logits.float(), expected, atol=5e-2, rtol=5e-2)


@pytest.mark.gpu
def test_cuda_compiled_backbone_matches_eager() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    backbone = (
        ResNetBackbone(tiny_config(out_indices=[1, 2])).eval().to("cuda", memory_format=torch.channels_last)
    )
    x = pixel_values().to("cuda").contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = backbone(x).feature_maps
        got = torch.compile(backbone, fullgraph=True)(x).feature_maps
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_classifier_checkpoint_loads_as_a_backbone(tmp_path) -> None:
    """The microsoft/resnet-50 flow: AutoBackbone over an image-classification checkpoint."""
    from plugformers.auto import AutoBackbone

    torch.manual_seed(0)
    classifier = ResNetForImageClassification(tiny_config()).eval()
    classifier.save_pretrained(tmp_path)
    backbone, info = AutoBackbone.from_pretrained(
        tmp_path, out_features=["stage1", "stage2"], output_loading_info=True
    )
    assert isinstance(backbone, ResNetBackbone)
    assert not info["missing_keys"] and sorted(info["unexpected_keys"]) == [
        "classifier.1.bias",
        "classifier.1.weight",
    ]
    assert backbone.channels == [8, 16]
    x = pixel_values()
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.eval()(x).feature_maps[-1], classifier.resnet(x).last_hidden_state
        )
