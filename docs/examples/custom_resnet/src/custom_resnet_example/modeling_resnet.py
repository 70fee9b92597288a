"""The example ResNet in plain torch: basic and bottleneck blocks, deep stems and avg-pool shortcuts.

Parameter names follow the common ResNet checkpoint layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``fc``), so weights from such checkpoints load into ``model.model`` with ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from plugformers import PreTrainedModel

from .configuration_resnet import ResnetConfig


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, config: ResnetConfig
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped by ``cardinality``), 1x1 expand by 4, and a shortcut."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, config: ResnetConfig
    ):
        super().__init__()
        width = int(planes * (config.base_width / 64)) * config.cardinality
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            width, width, 3, stride=stride, padding=1, groups=config.cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return self.act3(x + shortcut)


BLOCK_MAPPING: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


def _shortcut(inplanes: int, outplanes: int, stride: int, avg_down: bool) -> nn.Module:
    """Projection for the residual path: strided 1x1 conv, or (``avg_down``) average pooling then 1x1 conv."""
    if not avg_down:
        return nn.Sequential(
            nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), nn.BatchNorm2d(outplanes)
        )
    pool: nn.Module = (
        nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    )
    return nn.Sequential(pool, nn.Conv2d(inplanes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes))


def _stem(config: ResnetConfig) -> tuple[nn.Module, int]:
    """The input convolution(s) and the number of channels they produce."""
    width = config.stem_width
    if not config.stem_type:
        return nn.Conv2d(config.input_channels, width, 7, stride=2, padding=3, bias=False), width
    first, second = (3 * (width // 4), width) if config.stem_type == "deep-tiered" else (width, width)
    out = width * 2
    stem = nn.Sequential(
        nn.Conv2d(config.input_channels, first, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(first),
        nn.ReLU(inplace=True),
        nn.Conv2d(first, second, 3, padding=1, bias=False),
        nn.BatchNorm2d(second),
        nn.ReLU(inplace=True),
        nn.Conv2d(second, out, 3, padding=1, bias=False),
    )
    return stem, out


class ResNet(nn.Module):
    """Stem, max-pool, four stages of residual blocks, global average pool and a linear classifier."""

    def __init__(self, config: ResnetConfig):
        super().__init__()
        block = BLOCK_MAPPING[config.block_type]
        self.conv1, inplanes = _stem(config)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for index, (planes, blocks) in enumerate(zip(config.channels, config.layers)):
            stride = 1 if index == 0 else 2
            stage = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                out = planes * block.expansion
                downsample = (
                    _shortcut(inplanes, out, s, config.avg_down) if s != 1 or inplanes != out else None
                )
                stage.append(block(inplanes, planes, s, downsample, config))
                inplanes = out
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.num_features = inplanes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.global_pool(self.forward_features(x)), 1))


class ResnetPreTrainedModel(PreTrainedModel):
    """Shared weight initialisation and input checks."""

    config_class = ResnetConfig
    main_input_name = "pixel_values"
    # Checked by the plugformers conformance suite (tests/conftest.py); what stays False is explained in
    # plugin.py's skips.
    supports_compile_fullgraph = True
    supports_export = True

    def __init__(self, config: ResnetConfig):
        super().__init__(config)
        self.model = ResNet(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)

    def _check_input(self, pixel_values: Any) -> torch.Tensor:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
        channels = self.config.input_channels
        if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
            raise ValueError(
                f"pixel_values must be shaped (batch, {channels}, height, width), got {tuple(pixel_values.shape)}."
            )
        return pixel_values


class ResnetModel(ResnetPreTrainedModel):
    """The ResNet body: returns the last feature map, shaped (batch, channels, height/32, width/32)."""

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(self._check_input(pixel_values))


class ResnetModelForImageClassification(ResnetPreTrainedModel):
    """The ResNet with its classifier: returns ``{"logits"}``, plus ``"loss"`` (cross-entropy) with labels."""

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = self.model(self._check_input(pixel_values))
        if labels is None:
            return {"logits": logits}
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}
