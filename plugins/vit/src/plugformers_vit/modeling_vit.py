"""Vision Transformer (ViT): patch embeddings, a pre-norm Transformer encoder and the task heads.

Module and parameter names follow the reference library's current layout (``layers.N.attention.q_proj``,
``layers.N.mlp.fc1``, ...); the older layout that most published checkpoints use
(``encoder.layer.N.attention.attention.query``, ``...intermediate.dense``, ...) is renamed on load by
:meth:`ViTPreTrainedModel._fix_checkpoint_key`, so both kinds of checkpoint load.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from plugformers.activations import get_activation
from plugformers.fast_path import PackLinear
from plugformers.masking_utils import prepare_attention_mask, prepare_head_mask
from plugformers.modeling_layers import GradientCheckpointingLayer, MultiHeadAttention
from plugformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    MaskedImageModelingOutput,
)
from plugformers.modeling_utils import PreTrainedModel, classification_loss
from plugformers.output_capturing import Record, model_forward

from .configuration_vit import ViTConfig

__all__ = [
    "ViTForImageClassification",
    "ViTForMaskedImageModeling",
    "ViTModel",
    "ViTPreTrainedModel",
]


class ViTPatchEmbeddings(nn.Module):
    """Cuts ``(batch, channels, height, width)`` pixels into patches and projects each to ``hidden_size``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.image_size = config.image_hw
        self.patch_size = config.patch_hw
        self.grid_size = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.num_channels = config.num_channels
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        channels = pixel_values.shape[1]
        if channels != self.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channels but the model was configured with num_channels="
                f"{self.num_channels}; convert the images (e.g. to RGB) or change the config."
            )
        # (b, hidden, gh, gw) -> (b, gh * gw, hidden)
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class ViTEmbeddings(nn.Module):
    """Patch embeddings plus a learned [CLS] token and position embeddings (and optionally a mask token)."""

    def __init__(self, config: ViTConfig, use_mask_token: bool = False) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, config.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if use_mask_token else None
        self.patch_embeddings = ViTPatchEmbeddings(config)
        num_patches = self.patch_embeddings.num_patches
        self.position_embeddings = nn.Parameter(torch.randn(1, num_patches + 1, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.patch_size = self.patch_embeddings.patch_size
        self.image_size = self.patch_embeddings.image_size

    def interpolate_pos_encoding(self, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Position embeddings resized (bicubic) to the patch grid of a ``height x width`` input.

        The trained embeddings form a grid of the configured image size; an input with another grid gets
        that grid resampled, so the model runs at resolutions it was not trained on.
        """
        new_grid = (height // self.patch_size[0], width // self.patch_size[1])
        old_grid = self.patch_embeddings.grid_size
        if new_grid == old_grid:
            return self.position_embeddings
        dim = embeddings.shape[-1]
        cls_pos = self.position_embeddings[:, :1]
        patch_pos = self.position_embeddings[:, 1:].reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
        patch_pos = nn.functional.interpolate(patch_pos, size=new_grid, mode="bicubic", align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((cls_pos, patch_pos), dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> torch.Tensor:
        batch_size, _, height, width = pixel_values.shape
        if not interpolate_pos_encoding and (height, width) != tuple(self.image_size):
            raise ValueError(
                f"Input image size ({height}*{width}) doesn't match the model's image_size "
                f"({self.image_size[0]}*{self.image_size[1]}). Resize the images, or pass "
                f"interpolate_pos_encoding=True to resample the position embeddings"
                + (
                    ""
                    if height % self.patch_size[0] == 0 and width % self.patch_size[1] == 0
                    else f" (the size is also not a multiple of patch_size {self.patch_size[0]}*{self.patch_size[1]};"
                    " the remainder would be cropped)"
                )
                + "."
            )
        embeddings = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError(
                    "bool_masked_pos was given but this model has no mask token; build it with "
                    "use_mask_token=True (ViTForMaskedImageModeling does)."
                )
            seq_length = embeddings.shape[1]
            if tuple(bool_masked_pos.shape) != (batch_size, seq_length):
                raise ValueError(
                    f"bool_masked_pos must have shape (batch_size, num_patches) = ({batch_size}, {seq_length}), "
                    f"got {tuple(bool_masked_pos.shape)}."
                )
            mask = bool_masked_pos.unsqueeze(-1).to(embeddings.dtype)
            embeddings = embeddings * (1.0 - mask) + self.mask_token.to(embeddings.dtype) * mask

        cls_tokens = self.cls_token.expand(batch_size, -1, -1)
        embeddings = torch.cat((cls_tokens, embeddings), dim=1)
        if interpolate_pos_encoding:
            embeddings = embeddings + self.interpolate_pos_encoding(embeddings, height, width)
        else:
            embeddings = embeddings + self.position_embeddings
        return self.dropout(embeddings)


class ViTAttention(MultiHeadAttention):
    """Multi-head self-attention (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``)."""

    projections = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "output": "o_proj"}

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(
            config,
            config.hidden_size,
            config.num_attention_heads,
            dropout=config.attention_probs_dropout_prob,
            qkv_bias=config.qkv_bias,
        )


class ViTMLP(nn.Module):
    """The feed-forward block: ``fc2(act(fc1(x)))``."""

    fast_path_plan = (PackLinear("fc1", activation="activation_fn"), PackLinear("fc2"))

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.activation_fn = get_activation(config.hidden_act)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class ViTLayer(GradientCheckpointingLayer):
    """One pre-norm encoder block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.attention = ViTAttention(config)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = ViTMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        first_token_only: bool = False,
    ) -> torch.Tensor:
        """``(batch, seq, hidden)`` -> the same shape, or ``(batch, 1, hidden)`` for the [CLS] position alone with
        ``first_token_only`` (which still attends to every position)."""
        normed = self.layernorm_before(hidden_states)
        query_states = normed[:, :1] if first_token_only else None
        attended, _ = self.attention(normed, attention_mask, head_mask, query_states=query_states)
        if first_token_only:
            hidden_states = hidden_states[:, :1]
        hidden_states = hidden_states + self.dropout(attended)
        return hidden_states + self.dropout(self.mlp(self.layernorm_after(hidden_states)))


class ViTPooler(nn.Module):
    """``act(dense(h[:, 0]))``: the [CLS] token's final state through a dense layer."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooler_output_size)
        self.activation = get_activation(config.pooler_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


# Older checkpoint layout -> current module names (applied to every key before matching).
_LEGACY_KEY_RULES = [
    (re.compile(r"(^|\.)encoder\.layer\.(\d+)\."), r"\1layers.\2."),
    (re.compile(r"\.attention\.attention\.query\."), ".attention.q_proj."),
    (re.compile(r"\.attention\.attention\.key\."), ".attention.k_proj."),
    (re.compile(r"\.attention\.attention\.value\."), ".attention.v_proj."),
    (re.compile(r"\.attention\.output\.dense\."), ".attention.o_proj."),
    (re.compile(r"\.intermediate\.dense\."), ".mlp.fc1."),
    (re.compile(r"(layers\.\d+)\.output\.dense\."), r"\1.mlp.fc2."),
]


class ViTPreTrainedModel(PreTrainedModel):
    """Shared plumbing of the ViT models: config class, weight init, checkpoint key names."""

    config_class = ViTConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    _no_split_modules = ["ViTEmbeddings", "ViTLayer"]
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    supports_compile_fullgraph = True
    supports_export = True
    supports_head_pruning = True
    supports_fast_path = True

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, ViTEmbeddings):
            nn.init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
            nn.init.trunc_normal_(module.cls_token, mean=0.0, std=std)
            if module.mask_token is not None:
                nn.init.zeros_(module.mask_token)

    @classmethod
    def _fix_checkpoint_key(cls, key: str) -> str:
        key = super()._fix_checkpoint_key(key)
        for pattern, replacement in _LEGACY_KEY_RULES:
            key = pattern.sub(replacement, key)
        return key


def _check_pixel_values(pixel_values: torch.Tensor | None) -> torch.Tensor:
    if pixel_values is None:
        raise ValueError("pixel_values is required: a (batch_size, num_channels, height, width) tensor.")
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
    if pixel_values.dim() != 4:
        raise ValueError(
            f"pixel_values must be 4-D (batch_size, num_channels, height, width), got shape "
            f"{tuple(pixel_values.shape)}."
        )
    return pixel_values


class ViTModel(ViTPreTrainedModel):
    """The bare ViT encoder: embeddings, ``num_hidden_layers`` blocks, a final LayerNorm and an optional pooler."""

    recorded_outputs = {
        "hidden_states": Record(ViTLayer, with_input=True),
        "attentions": Record(ViTAttention, index=1),
    }

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True, use_mask_token: bool = False) -> None:
        super().__init__(config)
        self.embeddings = ViTEmbeddings(config, use_mask_token=use_mask_token)
        self.layers = nn.ModuleList([ViTLayer(config) for _ in range(config.num_hidden_layers)])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> ViTPatchEmbeddings:
        return self.embeddings.patch_embeddings

    @model_forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        """Encode images.

        ``bool_masked_pos`` (batch, num_patches) replaces the marked patches with the mask token (models built
        with ``use_mask_token=True``). ``interpolate_pos_encoding=True`` accepts images of any size by
        resampling the position embeddings. ``attention_mask`` (batch, 1 + num_patches) of 1/0 hides tokens; a
        4-D bool or additive float mask (batch, 1, seq, seq) is used as given.
        """
        pixel_values = _check_pixel_values(pixel_values)
        expected_dtype = self.embeddings.patch_embeddings.projection.weight.dtype
        if pixel_values.dtype != expected_dtype:
            pixel_values = pixel_values.to(expected_dtype)

        # (batch, channels, height, width) -> (batch, 1 + num_patches, hidden)
        hidden_states = self.embeddings(
            pixel_values, bool_masked_pos=bool_masked_pos, interpolate_pos_encoding=bool(interpolate_pos_encoding)
        )
        batch, seq = hidden_states.shape[:2]
        mask = prepare_attention_mask(attention_mask, batch, seq, hidden_states.dtype)
        head_masks = prepare_head_mask(head_mask, len(self.layers), hidden_states.dtype)
        for layer, layer_head_mask in zip(self.layers, head_masks):
            hidden_states = layer(hidden_states, mask, layer_head_mask)

        sequence_output = self.layernorm(hidden_states)
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=pooled)


class ViTForImageClassification(ViTPreTrainedModel):
    """ViT with a linear classifier on the final [CLS] state; the loss follows ``config.problem_type``."""

    first_token_only = True  # the classifier reads [CLS] only: the last layer computes that position alone

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.classifier: nn.Module = (
            nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.post_init()

    @model_forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput:
        """Classify images; with ``labels`` also returns the loss (regression, single- or multi-label)."""
        outputs = self.vit(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            attention_mask=attention_mask,
            head_mask=head_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(outputs.last_hidden_state[:, 0, :])
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels, self.config, self.num_labels)
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class ViTForMaskedImageModeling(ViTPreTrainedModel):
    """ViT with the SimMIM decoder: a 1x1 conv and a pixel shuffle rebuild the pixels from the patch states.

    With ``bool_masked_pos`` the loss is the L1 reconstruction error over the masked patches only.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        self.vit = ViTModel(config, add_pooling_layer=False, use_mask_token=True)
        self.decoder = nn.Sequential(
            nn.Conv2d(config.hidden_size, config.encoder_stride**2 * config.num_channels, kernel_size=1),
            nn.PixelShuffle(config.encoder_stride),
        )
        self.post_init()

    @model_forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedImageModelingOutput:
        """Reconstruct ``pixel_values``; the masked patches are hidden from the encoder by the mask token."""
        config = self.config
        patch_h, patch_w = config.patch_hw
        if bool_masked_pos is not None and (patch_h != config.encoder_stride or patch_w != config.encoder_stride):
            raise ValueError(
                "bool_masked_pos needs patch_size == encoder_stride so that the reconstruction has the input's "
                f"size; got patch_size={config.patch_size} and encoder_stride={config.encoder_stride}."
            )
        pixel_values = _check_pixel_values(pixel_values)
        outputs = self.vit(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            interpolate_pos_encoding=interpolate_pos_encoding,
            attention_mask=attention_mask,
            head_mask=head_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        patches = outputs.last_hidden_state[:, 1:]
        batch, _, hidden = patches.shape
        grid_h, grid_w = pixel_values.shape[2] // patch_h, pixel_values.shape[3] // patch_w
        patches = patches.transpose(1, 2).reshape(batch, hidden, grid_h, grid_w)
        reconstruction = self.decoder(patches)

        loss = None
        if bool_masked_pos is not None:
            mask = bool_masked_pos.reshape(batch, grid_h, grid_w)
            mask = mask.repeat_interleave(patch_h, 1).repeat_interleave(patch_w, 2).unsqueeze(1)
            mask = mask.to(reconstruction.dtype)
            target = pixel_values.to(reconstruction.dtype)
            l1 = nn.functional.l1_loss(target, reconstruction, reduction="none")
            loss = (l1 * mask).sum() / (mask.sum() + 1e-5) / config.num_channels
        return MaskedImageModelingOutput(
            loss=loss,
            reconstruction=reconstruction,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
