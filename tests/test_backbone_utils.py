"""Tests of plugformers.backbone_utils: aligned out_features/out_indices, the backbone mixin, load_backbone."""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from plugformers.backbone_utils import (
    BackboneConfigMixin,
    BackboneMixin,
    TimmBackboneConfig,
    load_backbone,
    verify_backbone_config_arguments,
)
from plugformers.configuration_utils import ConfigError, PretrainedConfig

# ----- an in-test backbone family ---------------------------------------------------------------------------


class TinyBackboneConfig(BackboneConfigMixin, PretrainedConfig):
    model_type = "test_tiny_backbone"

    def __init__(
        self,
        hidden_sizes: list[int] | None = None,
        num_channels: int = 3,
        out_features: list[str] | None = None,
        out_indices: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("stage_names", None)
        self.hidden_sizes = list(hidden_sizes or [4, 6, 8])
        self.num_channels = num_channels
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(self.hidden_sizes))]
        self.set_out_features_and_indices(out_features, out_indices)
        super().__init__(**kwargs)


class CompositeConfig(PretrainedConfig):
    """Stands in for MaskFormerConfig: only the backbone fields matter here."""

    model_type = "test_backbone_composite"

    def __init__(
        self,
        backbone_config: Any = None,
        backbone: str | None = None,
        use_pretrained_backbone: bool = False,
        use_timm_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.backbone_config = backbone_config
        self.backbone = backbone
        self.use_pretrained_backbone = use_pretrained_backbone
        self.use_timm_backbone = use_timm_backbone
        self.backbone_kwargs = backbone_kwargs
        super().__init__(**kwargs)


@pytest.fixture(scope="module")
def tiny_backbone_class() -> type:
    from plugformers.auto import AutoBackbone, AutoConfig
    from plugformers.modeling_outputs import BackboneOutput
    from plugformers.modeling_utils import PreTrainedModel

    class TinyBackbone(BackboneMixin, PreTrainedModel):
        config_class = TinyBackboneConfig
        base_model_prefix = "tiny"
        main_input_name = "pixel_values"
        has_attentions = False

        def __init__(self, config: TinyBackboneConfig) -> None:
            super().__init__(config)
            sizes = [config.num_channels, *config.hidden_sizes]
            self.convs = nn.ModuleList(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1) for cin, cout in itertools.pairwise(sizes)
            )
            self.num_features = list(config.hidden_sizes)
            self.post_init()

        def _init_weights(self, module: nn.Module) -> None:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.2)
                nn.init.zeros_(module.bias)

        def forward(self, pixel_values, output_hidden_states=None, output_attentions=None, return_dict=None):
            states = []
            hidden = pixel_values
            for conv in self.convs:
                hidden = conv(hidden)
                states.append(hidden)
            out = BackboneOutput(
                feature_maps=self.select_feature_maps(states),
                hidden_states=tuple(states) if output_hidden_states else None,
            )
            return out if return_dict is not False else out.to_tuple()

    AutoConfig.register("test_tiny_backbone", TinyBackboneConfig, exist_ok=True)
    AutoBackbone.register(TinyBackboneConfig, TinyBackbone, exist_ok=True)
    return TinyBackbone


# ----- BackboneConfigMixin ----------------------------------------------------------------------------------


def test_default_is_last_stage() -> None:
    config = TinyBackboneConfig()
    assert config.out_features == ["stage2"]
    assert config.out_indices == [2]


def test_out_features_derive_out_indices_and_back() -> None:
    assert TinyBackboneConfig(out_features=["stem", "stage2"]).out_indices == [0, 2]
    assert TinyBackboneConfig(out_indices=[1, 2]).out_features == ["stage1", "stage2"]
    # negative indices count from the end and are kept as given (config.json round-trips unchanged)
    config = TinyBackboneConfig(out_indices=[-2, -1])
    assert config.out_features == ["stage1", "stage2"]
    assert config.out_indices == [-2, -1]
    assert TinyBackboneConfig(out_indices=(0, 1)).out_indices == [0, 1]


def test_both_given_must_agree() -> None:
    config = TinyBackboneConfig(out_features=["stage1"], out_indices=[1])
    assert config.out_features == ["stage1"]
    with pytest.raises(ConfigError, match="name different stages"):
        TinyBackboneConfig(out_features=["stage1"], out_indices=[2])


def test_unknown_stage_is_named_with_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown stage 'stage7'.*\['stem', 'stage1', 'stage2'\]"):
        TinyBackboneConfig(out_features=["stage7"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"out_indices": [3]}, "out of range"),
        ({"out_indices": [-4]}, "out of range"),
        ({"out_indices": [2, 1]}, "order"),
        ({"out_indices": [1, -2]}, "repeat"),
        ({"out_features": ["stage2", "stage1"]}, "order"),
        ({"out_features": ["stage1", "stage1"]}, "repeat"),
        ({"out_features": "stage1"}, "must be a list"),
        ({"out_indices": ["1"]}, "integers"),
    ],
)
def test_invalid_selections(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TinyBackboneConfig(**kwargs)


def test_setters_keep_alignment_and_validate() -> None:
    config = TinyBackboneConfig()
    config.out_features = ["stem", "stage1"]
    assert config.out_indices == [0, 1]
    config.out_indices = [2]
    assert config.out_features == ["stage2"]
    with pytest.raises(ConfigError, match="unknown stage"):
        config.out_features = ["nope"]
    assert config.out_features == ["stage2"]  # a refused value leaves the old one
    config.set_out_features_and_indices(["stage1"], [1])
    assert (config.out_features, config.out_indices) == (["stage1"], [1])
    config.set_output_features_output_indices(None, None)  # the reference's name for the same method
    assert config.out_indices == [2]


def test_saved_with_public_names_and_reloaded(tmp_path) -> None:
    config = TinyBackboneConfig(out_indices=[0, -1])
    data = config.to_dict()
    assert data["out_features"] == ["stem", "stage2"]
    assert data["out_indices"] == [0, -1]
    assert not any(key.startswith("_out") for key in data)
    config.save_pretrained(tmp_path)
    again = TinyBackboneConfig.from_pretrained(tmp_path)
    assert again.out_features == ["stem", "stage2"] and again.out_indices == [0, -1]


def test_timm_config_keeps_indices_until_stages_are_known() -> None:
    config = TimmBackboneConfig(backbone="resnet18", out_indices=(1, 2))
    assert config.out_indices == [1, 2] and config.out_features is None
    assert TimmBackboneConfig(backbone="resnet18").out_indices == [-1]
    config.stage_names = ["a", "b", "c"]
    config.set_out_features_and_indices(None, [1, 2])
    assert config.out_features == ["b", "c"]


# ----- BackboneMixin --------------------------------------------------------------------------------------


def test_mixin_views_follow_the_config(tiny_backbone_class: type) -> None:
    model = tiny_backbone_class(TinyBackboneConfig(out_features=["stem", "stage2"]))
    assert model.stage_names == ["stem", "stage1", "stage2"]
    assert model.out_indices == [0, 2]
    assert model.channels == [4, 8]
    assert model.out_feature_channels == {"stem": 4, "stage1": 6, "stage2": 8}
    out = model(torch.randn(2, 3, 16, 16))
    assert [tuple(f.shape) for f in out.feature_maps] == [(2, 4, 8, 8), (2, 8, 2, 2)]
    model.out_indices = [1]
    assert model.out_features == ["stage1"] and model.channels == [6]
    assert tuple(model(torch.randn(1, 3, 16, 16)).feature_maps[0].shape) == (1, 6, 4, 4)
    with pytest.raises(ValueError, match="one hidden state per stage"):
        model.select_feature_maps([torch.zeros(1)])
    # convolutional backbones drop output_attentions instead of failing on it
    assert len(model.forward_with_filtered_kwargs(torch.randn(1, 3, 16, 16), output_attentions=True)[0]) == 1


def test_mixin_forward_must_be_implemented() -> None:
    class NoForward(BackboneMixin, nn.Module):
        pass

    with pytest.raises(NotImplementedError):
        NoForward()(torch.zeros(1))


# ----- load_backbone ---------------------------------------------------------------------------------------


def test_both_backbone_and_backbone_config_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not both"):
        verify_backbone_config_arguments(backbone="some/repo", backbone_config=TinyBackboneConfig())
    with pytest.raises(ConfigError, match="not both"):
        load_backbone(CompositeConfig(backbone="some/repo", backbone_config=TinyBackboneConfig()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"use_timm_backbone": True}, "timm model name"),
        ({"use_timm_backbone": True, "backbone": "resnet18", "backbone_config": {}}, "not both"),
        ({"use_pretrained_backbone": True}, "checkpoint dir or repo id"),
        (
            {"backbone_config": {"model_type": "x"}, "backbone_kwargs": {"out_indices": [1]}},
            "backbone_kwargs",
        ),
        ({"backbone": "a/b", "backbone_kwargs": [1]}, "must be a dict"),
        ({"backbone": 3}, "backbone must be"),
    ],
)
def test_invalid_argument_combinations(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        verify_backbone_config_arguments(**kwargs)


def test_from_backbone_config_object_and_dict(tiny_backbone_class: type) -> None:
    model = load_backbone(CompositeConfig(backbone_config=TinyBackboneConfig(out_indices=[0, 1])))
    assert isinstance(model, tiny_backbone_class)
    assert model.out_features == ["stem", "stage1"]
    model = load_backbone(
        CompositeConfig(backbone_config={"model_type": "test_tiny_backbone", "hidden_sizes": [2, 3]})
    )
    assert isinstance(model, tiny_backbone_class) and model.channels == [3]


def test_backbone_config_itself(tiny_backbone_class: type) -> None:
    assert isinstance(load_backbone(TinyBackboneConfig()), tiny_backbone_class)


def test_no_backbone_at_all_is_an_error() -> None:
    with pytest.raises(ConfigError, match="names no backbone"):
        load_backbone(CompositeConfig())


def test_unknown_backbone_type_is_named(tiny_backbone_class: type) -> None:
    with pytest.raises((ValueError, KeyError), match="no_such_backbone_type"):
        load_backbone(CompositeConfig(backbone_config={"model_type": "no_such_backbone_type"}))
    with pytest.raises(ConfigError, match="model_type"):
        load_backbone(CompositeConfig(backbone_config={"hidden_sizes": [2]}))


def test_from_checkpoint_with_and_without_weights(tiny_backbone_class: type, tmp_path) -> None:
    torch.manual_seed(0)
    saved = tiny_backbone_class(TinyBackboneConfig(out_indices=[-1]))
    saved.save_pretrained(tmp_path)
    pixel_values = torch.randn(1, 3, 16, 16)
    expected = saved(pixel_values).feature_maps[-1]

    loaded = load_backbone(
        CompositeConfig(
            backbone=str(tmp_path), use_pretrained_backbone=True, backbone_kwargs={"out_indices": [1, 2]}
        )
    )
    assert loaded.out_features == ["stage1", "stage2"]
    torch.testing.assert_close(loaded(pixel_values).feature_maps[-1], expected)

    torch.manual_seed(1)
    random = load_backbone(CompositeConfig(backbone=str(tmp_path), use_pretrained_backbone=False))
    assert isinstance(random, tiny_backbone_class)
    assert random.out_features == ["stage2"]
    assert not torch.allclose(random(pixel_values).feature_maps[-1], expected)


def test_timm_missing_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(ImportError, match="pip install timm"):
        load_backbone(CompositeConfig(backbone="resnet18", use_timm_backbone=True))


def test_timm_backbone_wraps_a_features_only_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: dict[str, Any] = {}

    class FakeFeatureInfo:
        def __init__(self, out_indices: tuple[int, ...]) -> None:
            self.info = [{"module": "act1", "num_chs": 4}, {"module": "layer1", "num_chs": 8}]
            self.out_indices = tuple(i % len(self.info) for i in out_indices)

    class FakeFeatures(nn.Module):
        def __init__(self, in_chans: int, out_indices: tuple[int, ...]) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_chans, 4, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.feature_info = FakeFeatureInfo(out_indices)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            a = self.conv1(x)
            states = [a, self.conv2(a)]
            return [states[i] for i in self.feature_info.out_indices]

    def create_model(name: str, pretrained: bool, features_only: bool, in_chans: int, out_indices, **kw):
        calls.update(name=name, pretrained=pretrained, features_only=features_only, in_chans=in_chans, **kw)
        return FakeFeatures(in_chans, out_indices)

    fake = types.ModuleType("timm")
    fake.create_model = create_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", fake)

    model = load_backbone(
        CompositeConfig(backbone="fake-net", use_timm_backbone=True, backbone_kwargs={"out_indices": [0, 1]})
    )
    assert calls == {"name": "fake-net", "pretrained": False, "features_only": True, "in_chans": 3}
    assert model.stage_names == ["act1", "layer1"]
    assert model.out_features == ["act1", "layer1"]
    assert model.channels == [4, 8]
    assert all(key.startswith("_backbone.") for key in model.state_dict())
    out = model(torch.randn(1, 3, 8, 8))
    assert [tuple(f.shape) for f in out.feature_maps] == [(1, 4, 4, 4), (1, 8, 2, 2)]
    # A TimmBackboneConfig (itself, or nested as a dict or object) builds the timm wrapper too; its
    # `backbone` field is a timm name and is never taken for a checkpoint to download.
    for source in (
        TimmBackboneConfig(backbone="fake-net", use_pretrained_backbone=True, out_indices=[-1]),
        CompositeConfig(backbone_config={"model_type": "timm_backbone", "backbone": "fake-net"}),
        CompositeConfig(backbone_config=TimmBackboneConfig(backbone="fake-net", num_channels=1)),
    ):
        built = load_backbone(source)
        assert built.out_features == ["layer1"] and built.channels == [8]
    assert calls["pretrained"] is True and calls["in_chans"] == 1  # the config's own default
    # Loading a saved wrapper takes its weights from the checkpoint: timm must not download its own first.
    saved = load_backbone(TimmBackboneConfig(backbone="fake-net", use_pretrained_backbone=True, out_indices=[-1]))
    saved.save_pretrained(tmp_path / "timm-wrapper")
    reloaded = type(saved).from_pretrained(tmp_path / "timm-wrapper")
    assert calls["pretrained"] is False
    for a, b in zip(saved.state_dict().values(), reloaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="hidden_states"):
        model(torch.randn(1, 3, 8, 8), output_hidden_states=True)
