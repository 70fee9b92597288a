"""`ResNetConfig`: the shape of a ResNet (stem, stages of basic or bottleneck layers) and its backbone outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugformers.backbone_utils import BackboneConfigMixin
from plugformers.configuration_utils import ConfigError, PretrainedConfig

__all__ = ["ResNetConfig"]

LAYER_TYPES = ("basic", "bottleneck")


class ResNetConfig(BackboneConfigMixin, PretrainedConfig):
    """Configuration of ResNet models; the defaults are ResNet-50 (``microsoft/resnet-50``).

    ``stage_names`` is derived (``["stem", "stage1", ...]``, one per entry of ``depths``); ``out_features``
    or ``out_indices`` choose which stages :class:`ResNetBackbone` returns (default: the last one).
    """

    model_type = "resnet"

    def __init__(
        self,
        num_channels: int = 3,
        embedding_size: int = 64,
        hidden_sizes: Sequence[int] = (256, 512, 1024, 2048),
        depths: Sequence[int] = (3, 4, 6, 3),
        layer_type: str = "bottleneck",
        hidden_act: str = "relu",
        downsample_in_first_stage: bool = False,
        downsample_in_bottleneck: bool = False,
        out_features: Sequence[str] | None = None,
        out_indices: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        # Derived from depths; a saved value is recomputed rather than trusted.
        kwargs.pop("stage_names", None)
        if layer_type not in LAYER_TYPES:
            raise ConfigError(f"layer_type must be one of {list(LAYER_TYPES)}, got {layer_type!r}.")
        hidden_sizes = _positive_ints(hidden_sizes, "hidden_sizes")
        depths = _positive_ints(depths, "depths")
        # hidden_sizes and depths of different lengths are refused when a model is built (ResNetEncoder), not here:
        # the reference accepts such a config.
        for name, value in (("num_channels", num_channels), ("embedding_size", embedding_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, got {value!r}.")
        if not isinstance(hidden_act, str):
            raise ConfigError(f"hidden_act must be the name of an activation, got {hidden_act!r}.")
        self.num_channels = num_channels
        self.embedding_size = embedding_size
        self.hidden_sizes = hidden_sizes
        self.depths = depths
        self.layer_type = layer_type
        self.hidden_act = hidden_act
        self.downsample_in_first_stage = downsample_in_first_stage
        self.downsample_in_bottleneck = downsample_in_bottleneck
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(depths) + 1)]
        self.set_out_features_and_indices(out_features, out_indices)
        super().__init__(**kwargs)


def _positive_ints(values: Any, name: str) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"{name} must be a non-empty list of positive ints, got {values!r}.")
    out = list(values)
    for v in out:
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{name} must hold positive ints, got {values!r}.")
    return out
