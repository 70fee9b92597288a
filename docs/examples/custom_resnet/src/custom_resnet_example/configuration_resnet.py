"""Configuration of the example ResNet: which blocks, how many, and which stem."""

from __future__ import annotations

from typing import Any

from plugformers import PretrainedConfig

BLOCK_TYPES = ("basic", "bottleneck")
STEM_TYPES = ("", "deep", "deep-tiered")


class ResnetConfig(PretrainedConfig):
    """Hyper-parameters of :class:`ResnetModel`; bad choices fail here, before any layer is built."""

    model_type = "custom-resnet"

    def __init__(
        self,
        block_type: str = "bottleneck",
        layers: list[int] | None = None,
        num_classes: int = 1000,
        input_channels: int = 3,
        cardinality: int = 1,
        base_width: int = 64,
        stem_width: int = 64,
        stem_type: str = "",
        avg_down: bool = False,
        channels: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"`block_type` must be 'basic' or 'bottleneck', got {block_type!r}.")
        if stem_type not in STEM_TYPES:
            raise ValueError(f"`stem_type` must be '', 'deep' or 'deep-tiered', got {stem_type!r}.")
        layers = [3, 4, 6, 3] if layers is None else list(layers)
        if len(layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in layers):
            raise ValueError(f"`layers` must be four positive block counts, got {layers!r}.")
        # Stage widths; the classic ResNet uses 64/128/256/512, tiny test models use far fewer.
        channels = [64, 128, 256, 512] if channels is None else list(channels)
        if len(channels) != 4 or not all(isinstance(n, int) and n >= 1 for n in channels):
            raise ValueError(f"`channels` must be four positive stage widths, got {channels!r}.")
        for name, value in (
            ("num_classes", num_classes),
            ("input_channels", input_channels),
            ("cardinality", cardinality),
            ("base_width", base_width),
            ("stem_width", stem_width),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        if block_type == "basic" and (cardinality != 1 or base_width != 64):
            raise ValueError("Basic blocks support only cardinality=1 and base_width=64.")
        if stem_type and stem_width % 4:
            raise ValueError(f"Deep stems need `stem_width` divisible by 4, got {stem_width}.")
        self.block_type = block_type
        self.layers = layers
        self.num_classes = num_classes
        self.input_channels = input_channels
        self.cardinality = cardinality
        self.base_width = base_width
        self.stem_width = stem_width
        self.stem_type = stem_type
        self.avg_down = avg_down
        self.channels = channels
        super().__init__(**kwargs)
