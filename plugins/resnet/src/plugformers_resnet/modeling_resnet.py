"""ResNet models: the base model, an image classifier and a backbone for composite models.

Module and parameter names follow the reference library's checkpoints (``embedder.embedder.convolution``,
``encoder.stages.N.layers.M.layer.K``, ``classifier.1``) so its ``model.safetensors`` files load as they are.
Everything is plain convolution/batch-norm arithmetic, so ``channels_last`` inputs stay ``channels_last``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from plugformers.activations import get_activation
from plugformers.backbone_utils import BackboneMixin
from plugformers.configuration_utils import ConfigError
from plugformers.fast_path import FoldBatchNorm
from plugformers.modeling_outputs import (
    BackboneOutput,
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)
from plugformers.modeling_utils import PreTrainedModel, classification_loss
from plugformers.output_capturing import Record, model_forward

from .configuration_resnet import ResNetConfig

__all__ = [
    "ResNetBackbone",
    "ResNetForImageClassification",
    "ResNetModel",
    "ResNetPreTrainedModel",
]


class ResNetConvLayer(nn.Module):
    """Convolution (no bias, "same" padding for odd kernels), batch norm, then an optional activation."""

    fast_path_plan = (FoldBatchNorm("convolution", "normalization"),)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        activation: str | None = "relu",
    ) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.normalization = nn.BatchNorm2d(out_channels)
        self.activation = _activation(activation) if activation is not None else nn.Identity()

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.activation(self.normalization(self.convolution(hidden_state)))


def _activation(name: str) -> nn.Module:
    """The configured activation; ReLU runs in place (it follows a batch norm whose output nothing else reads)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    return get_activation(name)


class ResNetEmbeddings(nn.Module):
    """The stem: a 7x7 stride-2 convolution and a 3x3 stride-2 max pool (4x smaller spatially)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.embedder = ResNetConvLayer(
            config.num_channels, config.embedding_size, kernel_size=7, stride=2, activation=config.hidden_act
        )
        self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.num_channels = config.num_channels

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
        if pixel_values.dim() != 4:
            raise ValueError(
                "pixel_values must have shape (batch, channels, height, width), got shape "
                f"{tuple(pixel_values.shape)}."
            )
        if pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"pixel_values have {pixel_values.shape[1]} channels but the config says num_channels="
                f"{self.num_channels}; shape {tuple(pixel_values.shape)} should be (batch, channels, height, width)."
            )
        return self.pooler(self.embedder(pixel_values))


class ResNetShortCut(nn.Module):
    """1x1 projection (and stride) of the residual when a layer changes channels or resolution."""

    fast_path_plan = (FoldBatchNorm("convolution", "normalization"),)

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.normalization = nn.BatchNorm2d(out_channels)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.normalization(self.convolution(hidden_state))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if in_channels != out_channels or stride != 1:
        return ResNetShortCut(in_channels, out_channels, stride=stride)
    return nn.Identity()


class ResNetBasicLayer(nn.Module):
    """Two 3x3 convolutions plus the residual (ResNet-18/34)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.layer = nn.Sequential(
            ResNetConvLayer(in_channels, out_channels, stride=stride),
            ResNetConvLayer(out_channels, out_channels, activation=None),
        )
        self.activation = _activation(activation)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        out = self.layer(hidden_state)
        out += self.shortcut(hidden_state)  # in place: the batch-norm output is not needed for backward
        return self.activation(out)


class ResNetBottleNeckLayer(nn.Module):
    """1x1 reduce (by ``reduction``), 3x3, 1x1 expand, plus the residual (ResNet-50 and larger).

    The stride sits on the 3x3 convolution, or on the first 1x1 with ``downsample_in_bottleneck``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        activation: str = "relu",
        reduction: int = 4,
        downsample_in_bottleneck: bool = False,
    ) -> None:
        super().__init__()
        reduced = out_channels // reduction
        if reduced < 1:
            raise ValueError(
                f"A bottleneck layer with {out_channels} output channels reduces them by {reduction} to zero; "
                f"use hidden_sizes of at least {reduction} or layer_type='basic'."
            )
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.layer = nn.Sequential(
            ResNetConvLayer(
                in_channels, reduced, kernel_size=1, stride=stride if downsample_in_bottleneck else 1
            ),
            ResNetConvLayer(reduced, reduced, stride=1 if downsample_in_bottleneck else stride),
            ResNetConvLayer(reduced, out_channels, kernel_size=1, activation=None),
        )
        self.activation = _activation(activation)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        out = self.layer(hidden_state)
        out += self.shortcut(hidden_state)  # in place: the batch-norm output is not needed for backward
        return self.activation(out)


class ResNetStage(nn.Module):
    """``depth`` layers; the first one changes channels and applies the stage's stride."""

    def __init__(
        self, config: ResNetConfig, in_channels: int, out_channels: int, stride: int, depth: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layer_in, layer_stride = (in_channels, stride) if i == 0 else (out_channels, 1)
            if config.layer_type == "bottleneck":
                layers.append(
                    ResNetBottleNeckLayer(
                        layer_in,
                        out_channels,
                        stride=layer_stride,
                        activation=config.hidden_act,
                        # only the first layer has a stride to place
                        downsample_in_bottleneck=config.downsample_in_bottleneck if i == 0 else False,
                    )
                )
            else:
                layers.append(
                    ResNetBasicLayer(
                        layer_in, out_channels, stride=layer_stride, activation=config.hidden_act
                    )
                )
        self.layers = nn.Sequential(*layers)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.layers(hidden_state)


class ResNetEncoder(nn.Module):
    """The stages; every stage after the first halves the resolution."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if len(config.hidden_sizes) != len(config.depths):
            raise ConfigError(
                f"{type(config).__name__}.hidden_sizes ({len(config.hidden_sizes)} entries) and depths "
                f"({len(config.depths)} entries) must have one entry per stage each to build a ResNet."
            )
        in_sizes = [config.embedding_size, *config.hidden_sizes[:-1]]
        self.stages = nn.ModuleList(
            ResNetStage(
                config,
                in_channels,
                out_channels,
                stride=(2 if config.downsample_in_first_stage else 1) if i == 0 else 2,
                depth=depth,
            )
            for i, (in_channels, out_channels, depth) in enumerate(
                zip(in_sizes, config.hidden_sizes, config.depths)
            )
        )

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            hidden_state = stage(hidden_state)
        return hidden_state


class ResNetPreTrainedModel(PreTrainedModel):
    """Shared ResNet settings and weight initialisation."""

    config_class = ResNetConfig
    base_model_prefix = "resnet"
    main_input_name = "pixel_values"
    _no_split_modules = ["ResNetConvLayer", "ResNetShortCut"]
    # What these models support: declared once here, read by the host and the shared tests.
    supports_compile_fullgraph = True
    supports_export = True
    supports_fast_path = True

    def _init_weights(self, module: nn.Module) -> None:
        """He-normal (fan out) convolutions, torch's default linear init, identity batch norms."""
        with torch.no_grad():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                if module.bias is not None:
                    fan_in = module.weight.shape[1]
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(module.bias, -bound, bound)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
                if module.running_mean is not None:
                    module.running_mean.zero_()
                if module.running_var is not None:
                    module.running_var.fill_(1.0)
                if module.num_batches_tracked is not None:
                    module.num_batches_tracked.zero_()


class ResNetModel(ResNetPreTrainedModel):
    """Stem + stages + global average pool: ``last_hidden_state`` (B, C, H/32, W/32), ``pooler_output`` (B, C, 1, 1)."""

    #: With output_hidden_states: the stem output, then the output of every stage.
    recorded_outputs = {"hidden_states": Record(ResNetStage, with_input=True)}

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__(config)
        self.embedder = ResNetEmbeddings(config)
        self.encoder = ResNetEncoder(config)
        self.pooler = nn.AdaptiveAvgPool2d((1, 1))
        self.post_init()

    @model_forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPoolingAndNoAttention:
        last = self.encoder(self.embedder(pixel_values))
        return BaseModelOutputWithPoolingAndNoAttention(last_hidden_state=last, pooler_output=self.pooler(last))


class ResNetForImageClassification(ResNetPreTrainedModel):
    """ResNet with a linear classifier on the pooled features (``num_labels=0`` gives the features)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.resnet = ResNetModel(config)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(config.hidden_sizes[-1], config.num_labels) if config.num_labels > 0 else nn.Identity(),
        )
        self.post_init()

    @model_forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> ImageClassifierOutputWithNoAttention:
        """``labels`` (B,) class ids (or floats for regression / multi-label) give ``loss`` as well."""
        if pixel_values is None:
            raise ValueError("ResNetForImageClassification needs pixel_values.")
        outputs = self.resnet(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels, self.config, self.num_labels)
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ResNetBackbone(BackboneMixin, ResNetPreTrainedModel):
    """ResNet returning the feature maps of ``config.out_features`` (for MaskFormer, DETR and the like)."""

    has_attentions = False

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__(config)
        self.num_features = [config.embedding_size, *config.hidden_sizes]
        self.embedder = ResNetEmbeddings(config)
        self.encoder = ResNetEncoder(config)
        self.post_init()

    @model_forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BackboneOutput:
        """Feature maps of ``config.out_features``; ``output_attentions`` is accepted and ignored (no attentions)."""
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        states = [self.embedder(pixel_values)]  # the stem's output, then each stage's
        for stage in self.encoder.stages:
            states.append(stage(states[-1]))
        hidden_states = tuple(states)
        return BackboneOutput(
            feature_maps=self.select_feature_maps(hidden_states),
            hidden_states=hidden_states if output_hidden_states else None,
        )
