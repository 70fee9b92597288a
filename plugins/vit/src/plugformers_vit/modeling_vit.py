"""Vision Transformer (ViT): patch embeddings, a pre-norm Transformer encoder and the task heads.

Module and parameter names follow the reference library's current layout (``layers.N.attention.q_proj``,
``layers.N.mlp.fc1``, ...); the older layout that most published checkpoints use
(``encoder.layer.N.attention.attention.query``, ``...intermediate.dense``, ...) is renamed on load by
:meth:`ViTPreTrainedModel._fix_checkpoint_key`, so both kinds of checkpoint load.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from plugformers import fast_path
from plugformers.activations import get_activation
from plugformers.attention import additive_mask, get_attention_function
from plugformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    MaskedImageModelingOutput,
)
from plugformers.modeling_utils import PreTrainedModel, classification_loss
from plugformers.pytorch_utils import find_pruneable_heads_and_indices, prune_linear_layer

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


class ViTAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections (one matmul with the model's fast path on)."""

    supports_fast_path = True

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        inner = self.num_attention_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, inner, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, inner, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, inner, bias=config.qkv_bias)
        self.o_proj = nn.Linear(inner, config.hidden_size)
        self.pruned_heads: set[int] = set()

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        first_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``first_token_only`` attends from the [CLS] position only (to every position); the output is then
        ``(batch, 1, hidden)``."""
        batch, seq, _ = hidden_states.shape
        qkv = fast_path.fused_linear(self, hidden_states, self.q_proj, self.k_proj, self.v_proj)
        if qkv is not None:
            # (batch, seq, 3 * inner) -> 3 x (batch, heads, seq, head_dim)
            query, key, value = qkv.view(batch, seq, 3, -1, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            if first_token_only:
                query = query[:, :, :1]
        else:
            shape = (batch, -1, self.num_attention_heads, self.head_dim)
            queries = hidden_states[:, :1] if first_token_only else hidden_states
            query = self.q_proj(queries).view(shape).transpose(1, 2)
            key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
            value = self.v_proj(hidden_states).view(shape).transpose(1, 2)

        attention = get_attention_function(self.config._attn_implementation)
        context, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.attention_dropout if self.training else 0.0,
            head_mask=head_mask,
            output_attentions=output_attentions,
        )
        context = context.transpose(1, 2).reshape(batch, query.shape[2], -1)
        return fast_path.linear(self, context, self.o_proj), weights

    def prune_heads(self, heads: list[int] | set[int]) -> None:
        """Remove attention heads (indices as originally numbered) from the q/k/v/o projections."""
        if not heads:
            return
        heads, index = find_pruneable_heads_and_indices(
            heads, self.num_attention_heads, self.head_dim, self.pruned_heads
        )
        self.q_proj = prune_linear_layer(self.q_proj, index)
        self.k_proj = prune_linear_layer(self.k_proj, index)
        self.v_proj = prune_linear_layer(self.v_proj, index)
        self.o_proj = prune_linear_layer(self.o_proj, index, dim=1)
        self.num_attention_heads -= len(heads)
        self.pruned_heads |= set(heads)
        fast_path.reset(self)


class ViTMLP(nn.Module):
    """The feed-forward block: ``fc2(act(fc1(x)))``."""

    supports_fast_path = True

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.activation_fn = get_activation(config.hidden_act)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        # The fast path can run the activation inside the first matmul when it is one it knows.
        act = config.hidden_act if isinstance(config.hidden_act, str) else None
        self._fusable_activation = act if act in fast_path.FUSABLE_ACTIVATIONS else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self._fusable_activation is not None:
            hidden_states = fast_path.linear(self, hidden_states, self.fc1, self._fusable_activation)
        else:
            hidden_states = self.activation_fn(fast_path.linear(self, hidden_states, self.fc1))
        return fast_path.linear(self, hidden_states, self.fc2)


class ViTLayer(nn.Module):
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
        output_attentions: bool = False,
        first_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``first_token_only`` computes the output of the [CLS] position only (all positions are attended)."""
        attn_out, weights = self.attention(
            self.layernorm_before(hidden_states), attention_mask, head_mask, output_attentions, first_token_only
        )
        if first_token_only:
            hidden_states = hidden_states[:, :1]
        hidden_states = hidden_states + self.dropout(attn_out)
        hidden_states = hidden_states + self.dropout(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states, weights


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


def _vit_attention_mask(attention_mask: torch.Tensor | None, hidden_states: torch.Tensor) -> torch.Tensor | None:
    """Check the user's mask and make it additive: ``(batch, seq)`` 1/0, or a 4-D bool/additive float mask."""
    if attention_mask is None:
        return None
    batch, seq = hidden_states.shape[:2]
    dtype = hidden_states.dtype
    if attention_mask.dim() == 2 and tuple(attention_mask.shape) == (batch, seq):
        return additive_mask(attention_mask, dtype)
    if attention_mask.dim() == 4:
        b, _, q, k = attention_mask.shape
        if b in (1, batch) and q in (1, seq) and k == seq:
            if attention_mask.dtype == torch.bool:
                zeros = torch.zeros((), dtype=dtype, device=attention_mask.device)
                neg = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)
                return torch.where(attention_mask, zeros, neg)
            return attention_mask.to(dtype)
    raise ValueError(
        f"attention_mask must have shape (batch_size, 1 + num_patches) = {(batch, seq)} of 1/0, or be a 4-D "
        f"bool or additive float mask broadcastable to {(batch, 1, seq, seq)}; got {tuple(attention_mask.shape)}."
    )


class ViTModel(ViTPreTrainedModel):
    """The bare ViT encoder: embeddings, ``num_hidden_layers`` blocks, a final LayerNorm and an optional pooler."""

    # Set by PreTrainedModel.gradient_checkpointing_enable().
    _gradient_checkpointing_func: Callable[..., Any]

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True, use_mask_token: bool = False) -> None:
        super().__init__(config)
        self.embeddings = ViTEmbeddings(config, use_mask_token=use_mask_token)
        self.layers = nn.ModuleList([ViTLayer(config) for _ in range(config.num_hidden_layers)])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTPooler(config) if add_pooling_layer else None
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> ViTPatchEmbeddings:
        return self.embeddings.patch_embeddings

    def _prune_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        for layer, heads in heads_to_prune.items():
            block = self.layers[layer]
            assert isinstance(block, ViTLayer)
            block.attention.prune_heads(heads)

    def _expand_head_mask(self, head_mask: torch.Tensor | None) -> list[torch.Tensor | None]:
        """``(heads,)`` or ``(layers, heads)`` 1/0 mask -> per-layer ``(1, heads, 1, 1)`` multipliers."""
        n_layers = len(self.layers)
        if head_mask is None:
            return [None] * n_layers
        if head_mask.dim() == 1:
            head_mask = head_mask.unsqueeze(0).expand(n_layers, -1)
        elif head_mask.dim() != 2 or head_mask.shape[0] != n_layers:
            raise ValueError(
                f"head_mask must have shape (num_heads,) or (num_hidden_layers={n_layers}, num_heads), "
                f"got {tuple(head_mask.shape)}."
            )
        dtype = self.embeddings.cls_token.dtype
        return [m.to(dtype)[None, :, None, None] for m in head_mask]

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
        *,
        first_token_only: bool = False,
    ) -> BaseModelOutputWithPooling | tuple[torch.Tensor, ...]:
        """Encode images.

        ``first_token_only=True`` (used by the classification head, which reads only the [CLS] state) computes
        the last layer for the [CLS] position only, so ``last_hidden_state`` is then ``(batch, 1, hidden)``;
        it is ignored when hidden states or attentions are requested.

        ``bool_masked_pos`` (batch, num_patches) replaces the marked patches with the mask token (models built
        with ``use_mask_token=True``). ``interpolate_pos_encoding=True`` accepts images of any size by
        resampling the position embeddings. ``attention_mask`` (batch, 1 + num_patches) of 1/0 hides tokens; a
        4-D bool or additive float mask (batch, 1, seq, seq) is used as given.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict

        pixel_values = _check_pixel_values(pixel_values)
        expected_dtype = self.embeddings.patch_embeddings.projection.weight.dtype
        if pixel_values.dtype != expected_dtype:
            pixel_values = pixel_values.to(expected_dtype)

        hidden_states = self.embeddings(
            pixel_values, bool_masked_pos=bool_masked_pos, interpolate_pos_encoding=bool(interpolate_pos_encoding)
        )
        mask = _vit_attention_mask(attention_mask, hidden_states)
        head_masks = self._expand_head_mask(head_mask)

        all_hidden: tuple[torch.Tensor, ...] | None = () if output_hidden_states else None
        all_attn: tuple[torch.Tensor, ...] | None = () if output_attentions else None
        trim_last = first_token_only and not output_hidden_states and not output_attentions
        last = len(self.layers) - 1
        for i, (layer, layer_head_mask) in enumerate(zip(self.layers, head_masks)):
            if all_hidden is not None:
                all_hidden = (*all_hidden, hidden_states)
            trim = trim_last and i == last
            layer_mask = mask
            if trim and mask is not None and mask.shape[-2] > 1:
                # A 4-D mask has one row per query; the trimmed layer queries from [CLS] only.
                layer_mask = mask[..., :1, :]
            if self.gradient_checkpointing and self.training:
                hidden_states, weights = self._gradient_checkpointing_func(
                    layer.__call__, hidden_states, layer_mask, layer_head_mask, output_attentions, trim
                )
            else:
                hidden_states, weights = layer(hidden_states, layer_mask, layer_head_mask, output_attentions, trim)
            if all_attn is not None:
                all_attn = (*all_attn, weights)
        if all_hidden is not None:
            all_hidden = (*all_hidden, hidden_states)

        sequence_output = self.layernorm(hidden_states)
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        out = BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=all_hidden,
            attentions=all_attn,
        )
        return out if return_dict else out.to_tuple()


class ViTForImageClassification(ViTPreTrainedModel):
    """ViT with a linear classifier on the final [CLS] state; the loss follows ``config.problem_type``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.classifier: nn.Module = (
            nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.post_init()

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
    ) -> ImageClassifierOutput | tuple[torch.Tensor, ...]:
        """Classify images; with ``labels`` also returns the loss (regression, single- or multi-label)."""
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        outputs = self.vit(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            attention_mask=attention_mask,
            head_mask=head_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            first_token_only=True,  # the classifier reads only [CLS]; skip the rest of the last layer
        )
        logits = self.classifier(outputs.last_hidden_state[:, 0, :])
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels, self.config, self.num_labels)
        out = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return out if return_dict else out.to_tuple()


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
    ) -> MaskedImageModelingOutput | tuple[torch.Tensor, ...]:
        """Reconstruct ``pixel_values``; the masked patches are hidden from the encoder by the mask token."""
        config = self.config
        return_dict = config.use_return_dict if return_dict is None else return_dict
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
        out = MaskedImageModelingOutput(
            loss=loss,
            reconstruction=reconstruction,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return out if return_dict else out.to_tuple()
