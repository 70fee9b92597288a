"""MaskFormer: per-query mask classification for semantic, instance and panoptic segmentation.

The image goes through a backbone (any registered backbone model, ResNet by default) and a feature-pyramid
pixel decoder that produces per-pixel embeddings; a DETR-style transformer decoder turns learned queries into
one class prediction and one mask embedding per query; a mask is the dot product of a query's embedding with
every pixel embedding. Module and parameter names follow the reference library's checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch
from torch import Tensor, nn

from plugformers.activations import ACT2FN
from plugformers.modeling_layers import GradientCheckpointingLayer, MultiHeadAttention
from plugformers.modeling_outputs import ModelOutput
from plugformers.modeling_utils import PreTrainedModel
from plugformers.output_capturing import Record, model_forward

from .configuration_maskformer import MaskFormerConfig, MaskFormerDetrConfig

if TYPE_CHECKING:
    from plugformers.backbone_utils import BackboneMixin

__all__ = [
    "MaskFormerForInstanceSegmentation",
    "MaskFormerForInstanceSegmentationOutput",
    "MaskFormerHungarianMatcher",
    "MaskFormerLoss",
    "MaskFormerModel",
    "MaskFormerModelOutput",
    "MaskFormerPreTrainedModel",
]


# ----- outputs ---------------------------------------------------------------------------------------------


@dataclass
class MaskFormerModelOutput(ModelOutput):
    """Backbone, pixel decoder and transformer decoder outputs of :class:`MaskFormerModel`."""

    encoder_last_hidden_state: Tensor | None = None
    pixel_decoder_last_hidden_state: Tensor | None = None
    transformer_decoder_last_hidden_state: Tensor | None = None
    encoder_hidden_states: tuple[Tensor, ...] | None = None
    pixel_decoder_hidden_states: tuple[Tensor, ...] | None = None
    transformer_decoder_hidden_states: tuple[Tensor, ...] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class MaskFormerForInstanceSegmentationOutput(ModelOutput):
    """Class and mask logits per query (plus the loss when labels were given) and the model's hidden states."""

    loss: Tensor | None = None
    class_queries_logits: Tensor | None = None
    masks_queries_logits: Tensor | None = None
    auxiliary_logits: list[dict[str, Tensor]] | None = None
    encoder_last_hidden_state: Tensor | None = None
    pixel_decoder_last_hidden_state: Tensor | None = None
    transformer_decoder_last_hidden_state: Tensor | None = None
    encoder_hidden_states: tuple[Tensor, ...] | None = None
    pixel_decoder_hidden_states: tuple[Tensor, ...] | None = None
    transformer_decoder_hidden_states: tuple[Tensor, ...] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


# ----- transformer decoder (DETR layout) ---------------------------------------------------------------------


class MaskFormerDetrAttention(MultiHeadAttention):
    """Multi-head attention whose queries and keys get position embeddings added (values do not)."""

    projections = {"key": "k_proj", "value": "v_proj", "query": "q_proj", "output": "out_proj"}
    fast_path_plan = ()  # the decoder is a small share of MaskFormer's time; the fast path leaves it plain
    size_fields = ("d_model", "decoder_attention_heads")

    def __init__(self, config: MaskFormerDetrConfig) -> None:
        super().__init__(config, config.d_model, config.decoder_attention_heads, dropout=config.attention_dropout)

    def forward(  # type: ignore[override]
        self,
        hidden_states: Tensor,
        query_position: Tensor | None,
        key_value_states: Tensor | None = None,
        key_position: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Self-attention when ``key_value_states`` is None (keys get ``query_position`` too), else cross-attention."""
        queries = hidden_states if query_position is None else hidden_states + query_position
        if key_value_states is None:
            return super().forward(hidden_states, query_states=queries, key_states=queries)
        keys = key_value_states if key_position is None else key_value_states + key_position
        return super().forward(key_value_states, query_states=queries, key_states=keys)


class MaskFormerDetrDecoderLayer(GradientCheckpointingLayer):
    """Post-norm decoder layer: self-attention over queries, cross-attention to the image, feed-forward."""

    def __init__(self, config: MaskFormerDetrConfig) -> None:
        super().__init__()
        hidden = config.d_model
        self.dropout = config.dropout
        self.self_attn = MaskFormerDetrAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(hidden)
        self.encoder_attn = MaskFormerDetrAttention(config)
        self.encoder_attn_layer_norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, hidden)
        self.activation_fn = ACT2FN[config.activation_function]
        self.activation_dropout = config.activation_dropout
        self.final_layer_norm = nn.LayerNorm(hidden)

    def forward(
        self, hidden_states: Tensor, query_position: Tensor, encoder_hidden_states: Tensor, spatial_position: Tensor
    ) -> Tensor:
        """``(batch, queries, d_model)`` queries attending to ``(batch, h * w, d_model)`` image tokens."""
        attended, _ = self.self_attn(hidden_states, query_position)
        attended = nn.functional.dropout(attended, p=self.dropout, training=self.training)
        hidden_states = self.self_attn_layer_norm(hidden_states + attended)
        attended, _ = self.encoder_attn(
            hidden_states, query_position, key_value_states=encoder_hidden_states, key_position=spatial_position
        )
        attended = nn.functional.dropout(attended, p=self.dropout, training=self.training)
        hidden_states = self.encoder_attn_layer_norm(hidden_states + attended)
        fed = nn.functional.dropout(
            self.activation_fn(self.fc1(hidden_states)), p=self.activation_dropout, training=self.training
        )
        fed = nn.functional.dropout(self.fc2(fed), p=self.dropout, training=self.training)
        return self.final_layer_norm(hidden_states + fed)


class MaskFormerDetrDecoder(nn.Module):
    """A stack of decoder layers and a final LayerNorm."""

    def __init__(self, config: MaskFormerDetrConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList([MaskFormerDetrDecoderLayer(config) for _ in range(config.decoder_layers)])
        self.layernorm = nn.LayerNorm(config.d_model)
        # The decoder's weights are drawn with decoder_config.init_std, not the top-level one (the reference's rule).
        for module in self.layers.modules():
            module._maskformer_init_std = config.init_std  # type: ignore[assignment]

    def forward(
        self, inputs_embeds: Tensor, encoder_hidden_states: Tensor, spatial_position: Tensor, query_position: Tensor
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The normalised output of the last layer, and the hidden states: the input, then each layer's output
        (the auxiliary losses read every layer's, normalised)."""
        states = [inputs_embeds]
        hidden = inputs_embeds
        for layer in self.layers:
            states.append(layer(hidden, query_position, encoder_hidden_states, spatial_position))
            # The decoder config's switch: each layer then reads the normalised output of the one before.
            hidden = self.layernorm(states[-1]) if self.config.auxiliary_loss else states[-1]
        return self.layernorm(hidden), tuple(states)


# ----- pixel-level module: backbone and feature pyramid -------------------------------------------------------


class MaskFormerFPNConvLayer(nn.Sequential):
    """3x3 convolution (no bias), GroupNorm(32), ReLU; children named 0, 1, 2 like the checkpoints."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__(
            _mark_xavier(nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, bias=False)),
            nn.GroupNorm(32, out_features),
            nn.ReLU(inplace=True),
        )


class MaskFormerFPNLayer(nn.Module):
    """Upsample the coarser map, add the projected lateral backbone map, refine with a conv layer."""

    def __init__(self, in_features: int, lateral_features: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            _mark_xavier(nn.Conv2d(lateral_features, in_features, kernel_size=1, padding=0, bias=False)),
            nn.GroupNorm(32, in_features),
        )
        self.block = MaskFormerFPNConvLayer(in_features, in_features)

    def forward(self, down: Tensor, left: Tensor) -> Tensor:
        left = self.proj(left)
        down = nn.functional.interpolate(down, size=left.shape[-2:], mode="nearest")
        return self.block(down + left)


class MaskFormerFPNModel(nn.Module):
    """Feature pyramid: starts from the coarsest backbone map and walks up through the finer ones."""

    def __init__(self, in_features: int, lateral_widths: list[int], feature_size: int) -> None:
        super().__init__()
        self.stem = MaskFormerFPNConvLayer(in_features, feature_size)
        self.layers = nn.Sequential(*[MaskFormerFPNLayer(feature_size, width) for width in lateral_widths[::-1]])

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        output = self.stem(features[-1])
        outputs = []
        for layer, left in zip(self.layers, features[:-1][::-1]):
            output = layer(output, left)
            outputs.append(output)
        if not outputs:  # a backbone with a single output stage: the stem output is the finest map
            outputs.append(output)
        return outputs


class MaskFormerPixelDecoder(nn.Module):
    def __init__(self, in_features: int, lateral_widths: list[int], feature_size: int, mask_feature_size: int) -> None:
        super().__init__()
        self.fpn = MaskFormerFPNModel(in_features, lateral_widths, feature_size)
        self.mask_projection = nn.Conv2d(feature_size, mask_feature_size, kernel_size=3, padding=1)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        fpn_features = self.fpn(features)
        return self.mask_projection(fpn_features[-1]), fpn_features


def _backbone_channels(backbone: nn.Module) -> list[int]:
    """Channels of each feature map the backbone returns (every backbone model has ``BackboneMixin.channels``)."""
    return list(cast("BackboneMixin", backbone).channels)


def _build_backbone(config: MaskFormerConfig) -> nn.Module:
    """The backbone module ``config.backbone_config`` describes, with pretrained weights when they were asked for."""
    from types import SimpleNamespace

    from plugformers.backbone_utils import load_backbone

    backbone_config = config.backbone_config
    if backbone_config.model_type == "timm_backbone":
        timm_fields = {
            "num_channels": backbone_config.num_channels,
            "features_only": backbone_config.features_only,
            "out_indices": backbone_config.out_indices,
            "freeze_batch_norm_2d": backbone_config.freeze_batch_norm_2d,
            "output_stride": backbone_config.output_stride,
        }
        request = SimpleNamespace(
            backbone=backbone_config.backbone,
            use_timm_backbone=True,
            use_pretrained_backbone=backbone_config.use_pretrained_backbone,
            backbone_kwargs=timm_fields,
        )
        return load_backbone(request)
    source = getattr(config, "_pretrained_backbone", None)
    if source:
        from plugformers.auto import AutoBackbone

        backbone = AutoBackbone.from_pretrained(source, config=backbone_config)
        backbone.train()
        for module in backbone.modules():
            module._maskformer_pretrained = True
        return backbone
    return load_backbone(backbone_config)


class MaskFormerPixelLevelModule(nn.Module):
    """Backbone (``encoder``) and feature-pyramid pixel decoder (``decoder``)."""

    def __init__(self, config: MaskFormerConfig) -> None:
        super().__init__()
        self.encoder = _build_backbone(config)
        for module in self.encoder.modules():
            # torch's stubs type Module.__setattr__ values as Tensor | Module; any object is allowed at runtime.
            module._maskformer_backbone = True  # type: ignore[assignment]
        channels = _backbone_channels(self.encoder)
        if config.fpn_feature_size % 32 != 0:
            raise ValueError(f"fpn_feature_size must be a multiple of 32, got {config.fpn_feature_size}.")
        self.decoder = MaskFormerPixelDecoder(
            in_features=channels[-1],
            lateral_widths=channels[:-1],
            feature_size=config.fpn_feature_size,
            mask_feature_size=config.mask_feature_size,
        )

    def forward(self, pixel_values: Tensor) -> tuple[tuple[Tensor, ...], Tensor, list[Tensor]]:
        features = tuple(self.encoder(pixel_values, return_dict=True).feature_maps)
        pixel_embeddings, fpn_features = self.decoder(list(features))
        return features, pixel_embeddings, fpn_features


def sine_position_embedding(
    batch: int, height: int, width: int, num_features: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """Normalised 2-D sine/cosine position embedding ``(batch, 2 * num_features, height, width)`` (y then x).

    Positions run 1..H and 1..W, are scaled to (0, 2*pi], and each pair of channels holds the sine and the
    cosine of one frequency. Built from shapes only, so it costs no device synchronisation.
    """
    eps = 1e-6
    scale = 2 * math.pi
    y = torch.arange(1, height + 1, dtype=dtype, device=device)
    x = torch.arange(1, width + 1, dtype=dtype, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    exponent = 2 * torch.div(torch.arange(num_features, device=device), 2, rounding_mode="floor").to(dtype)
    frequencies = 10000 ** (exponent / num_features)

    def encode(pos: Tensor) -> Tensor:
        angles = pos[:, None] / frequencies  # (n, num_features)
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, num_features)
    pos_x = encode(x)[None, :, :].expand(height, width, num_features)
    pos = torch.cat((pos_y, pos_x), dim=-1).permute(2, 0, 1)
    return pos.unsqueeze(0).expand(batch, -1, -1, -1)


class MaskFormerTransformerModule(nn.Module):
    """Learned queries decoded against the (projected) coarsest backbone map with sine position embeddings."""

    def __init__(self, in_features: int, config: MaskFormerConfig) -> None:
        super().__init__()
        hidden = config.decoder_config.d_model
        self.hidden_size = hidden
        self.queries_embedder = nn.Embedding(config.decoder_config.num_queries, hidden)
        self.input_projection = (
            _mark_xavier(nn.Conv2d(in_features, hidden, kernel_size=1)) if in_features != hidden else None
        )
        self.decoder = MaskFormerDetrDecoder(config.decoder_config)

    def forward(self, image_features: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The decoded queries ``(batch, num_queries, d_model)`` and the decoder's hidden states."""
        if self.input_projection is not None:
            image_features = self.input_projection(image_features)
        batch, _, height, width = image_features.shape
        positions = sine_position_embedding(
            batch, height, width, self.hidden_size // 2, image_features.device, image_features.dtype
        )
        spatial_position = positions.flatten(2).transpose(1, 2)  # (batch, h * w, d_model)
        image_tokens = image_features.flatten(2).transpose(1, 2)  # (batch, h * w, d_model)
        query_position = self.queries_embedder.weight.unsqueeze(0).expand(batch, -1, -1)
        inputs_embeds = torch.zeros_like(query_position)
        return self.decoder(inputs_embeds, image_tokens, spatial_position, query_position)


# ----- the models ------------------------------------------------------------------------------------------


class MaskFormerPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading rules shared by the MaskFormer models."""

    config_class = MaskFormerConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    _no_split_modules = ["MaskFormerDetrDecoderLayer"]
    # What these models support: declared once here, read by the host and the shared tests.
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    supports_compile_fullgraph = True
    supports_export = True
    supports_fast_path = True  # through its backbone's (the default ResNet folds its batch norms)
    _keys_to_ignore_on_load_unexpected = [r".*num_batches_tracked$"]

    @classmethod
    def _fix_checkpoint_key(cls, key: str) -> str:
        """Accept the reference's in-memory decoder names (``o_proj``, ``mlp.fc1``) besides its file names."""
        key = super()._fix_checkpoint_key(key)
        if ".transformer_module.decoder.layers." in key or key.startswith("transformer_module.decoder.layers."):
            key = key.replace(".o_proj.", ".out_proj.").replace(".mlp.fc1.", ".fc1.").replace(".mlp.fc2.", ".fc2.")
        return key

    def _backbone_module(self) -> nn.Module | None:
        base = getattr(self, self.base_model_prefix, self)
        pixel = getattr(base, "pixel_level_module", None)
        return None if pixel is None else pixel.encoder

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_maskformer_pretrained", False):
            return
        if getattr(module, "_maskformer_backbone", False):
            # Backbone modules keep their own family's initialisation.
            backbone = self._backbone_module()
            init = getattr(backbone, "_init_weights", None)
            if init is not None:
                init(module)
            return
        if getattr(module, "_maskformer_xavier", False):
            # Only Linear and Conv2d layers are flagged (see _mark_xavier).
            layer = cast("nn.Linear | nn.Conv2d", module)
            nn.init.xavier_uniform_(layer.weight, gain=self.config.init_xavier_std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(module, MaskFormerLoss):
            module.empty_weight.copy_(module.class_weights().to(module.empty_weight.device))
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            std = getattr(module, "_maskformer_init_std", self.config.init_std)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


_Layer = TypeVar("_Layer", nn.Linear, nn.Conv2d)


def _mark_xavier(module: _Layer) -> _Layer:
    """Flag a Linear/Conv for xavier-uniform initialisation (the scheme of the pyramid, projections and mask head)."""
    # torch's stubs type Module.__setattr__ values as Tensor | Module; any object is allowed at runtime.
    module._maskformer_xavier = True  # type: ignore[assignment]
    return module


class MaskFormerModel(MaskFormerPreTrainedModel):
    """Backbone + pixel decoder + transformer decoder; returns pixel embeddings and per-query hidden states."""

    #: With output_attentions: the weights of each decoder layer's self-attention.
    recorded_outputs = {"attentions": Record(MaskFormerDetrAttention, index=1, name="self_attn")}

    def __init__(self, config: MaskFormerConfig) -> None:
        super().__init__(config)
        self.pixel_level_module = MaskFormerPixelLevelModule(config)
        self.transformer_module = MaskFormerTransformerModule(
            in_features=_backbone_channels(self.pixel_level_module.encoder)[-1], config=config
        )
        self.post_init()

    @model_forward
    def forward(
        self,
        pixel_values: Tensor,
        pixel_mask: Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MaskFormerModelOutput:
        """Run the model. ``pixel_mask`` is accepted for interface compatibility; like the reference it is unused.

        With ``output_hidden_states``: the backbone's feature maps, the pyramid's maps and the decoder's states,
        each under its own name and all three together as ``hidden_states``.
        """
        if pixel_values is None:
            raise ValueError("MaskFormer needs pixel_values (batch, channels, height, width).")
        if not isinstance(pixel_values, Tensor) or pixel_values.dim() != 4:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, Tensor) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must be a 4-D tensor (batch, channels, height, width), got {shape}.")
        features, pixel_embeddings, fpn_features = self.pixel_level_module(pixel_values)
        queries, decoder_states = self.transformer_module(features[-1])
        output = MaskFormerModelOutput(
            encoder_last_hidden_state=features[-1],
            pixel_decoder_last_hidden_state=pixel_embeddings,
            transformer_decoder_last_hidden_state=queries,
        )
        if self.config.output_hidden_states if output_hidden_states is None else output_hidden_states:
            output.encoder_hidden_states = features
            output.pixel_decoder_hidden_states = tuple(fpn_features)
            output.transformer_decoder_hidden_states = decoder_states
            output.hidden_states = features + tuple(fpn_features) + decoder_states
        return output


class MaskformerMLPPredictionHead(nn.Module):
    """Linear layers with ReLU between them; children named ``<i>.0`` like the checkpoints."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        for i in range(num_layers):
            activation: nn.Module = nn.ReLU() if i < num_layers - 1 else nn.Identity()
            self.add_module(str(i), nn.Sequential(_mark_xavier(nn.Linear(dims[i], dims[i + 1])), activation))

    def forward(self, hidden_state: Tensor) -> Tensor:
        for layer in self.children():
            hidden_state = layer(hidden_state)
        return hidden_state


MaskFormerMLPPredictionHead = MaskformerMLPPredictionHead


# ----- loss ------------------------------------------------------------------------------------------------


def pair_wise_dice_loss(inputs: Tensor, labels: Tensor) -> Tensor:
    """Dice loss of every prediction (rows of ``inputs``, logits) against every target mask: ``(preds, targets)``."""
    probs = inputs.sigmoid().flatten(1)
    numerator = 2 * probs @ labels.T
    denominator = probs.sum(-1)[:, None] + labels.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def pair_wise_sigmoid_focal_loss(inputs: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Mean sigmoid focal loss of every prediction against every target mask: ``(preds, targets)``."""
    pixels = inputs.shape[1]
    probs = inputs.sigmoid()
    # log(sigmoid(x)) and log(1 - sigmoid(x)) computed stably through softplus.
    loss_pos = alpha * (1 - probs) ** gamma * nn.functional.softplus(-inputs)
    loss_neg = (1 - alpha) * probs**gamma * nn.functional.softplus(inputs)
    return (loss_pos @ labels.T + loss_neg @ (1 - labels).T) / pixels


def dice_loss(inputs: Tensor, labels: Tensor, num_masks: Tensor) -> Tensor:
    """Dice loss of matched prediction/target pairs, summed and divided by the number of target masks."""
    probs = inputs.sigmoid().flatten(1)
    numerator = 2 * (probs * labels).sum(-1)
    denominator = probs.sum(-1) + labels.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def sigmoid_focal_loss(
    inputs: Tensor, labels: Tensor, num_masks: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Sigmoid focal loss of matched pairs, averaged over pixels, summed over masks, divided by ``num_masks``."""
    probs = inputs.sigmoid()
    ce = nn.functional.binary_cross_entropy_with_logits(inputs, labels, reduction="none")
    p_t = probs * labels + (1 - probs) * (1 - labels)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * labels + (1 - alpha) * (1 - labels)) * loss
    return loss.mean(1).sum() / num_masks


class MaskFormerHungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to targets minimising class, focal-mask and dice costs."""

    def __init__(self, cost_class: float = 1.0, cost_mask: float = 1.0, cost_dice: float = 1.0) -> None:
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("At least one of cost_class, cost_mask and cost_dice must be non-zero.")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice

    @torch.no_grad()
    def forward(
        self,
        masks_queries_logits: Tensor,
        class_queries_logits: Tensor,
        mask_labels: list[Tensor],
        class_labels: list[Tensor],
    ) -> list[tuple[Tensor, Tensor]]:
        """For each image, ``(prediction indices, target indices)`` of the optimal matching."""
        from scipy.optimize import linear_sum_assignment

        indices = []
        for class_logits, pred_masks, target_masks, labels in zip(
            class_queries_logits, masks_queries_logits, mask_labels, class_labels
        ):
            if labels.numel() == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            target_masks = nn.functional.interpolate(
                target_masks[:, None].to(pred_masks.dtype), size=pred_masks.shape[-2:], mode="nearest"
            )[:, 0].flatten(1)
            pred_flat = pred_masks.flatten(1)
            cost_class = -class_logits.softmax(-1)[:, labels]
            cost = (
                self.cost_mask * pair_wise_sigmoid_focal_loss(pred_flat, target_masks)
                + self.cost_class * cost_class
                + self.cost_dice * pair_wise_dice_loss(pred_flat, target_masks)
            )
            worst = torch.finfo(cost.dtype).max
            cost = torch.nan_to_num(cost, nan=worst, posinf=worst, neginf=worst)
            rows, cols = linear_sum_assignment(cost.float().cpu().numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices


class MaskFormerLoss(nn.Module):
    """Cross-entropy over classes (no-object class down-weighted) plus focal and dice losses on matched masks."""

    empty_weight: Tensor

    def __init__(self, num_labels: int, matcher: MaskFormerHungarianMatcher, eos_coef: float) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.matcher = matcher
        self.eos_coef = eos_coef
        self.register_buffer("empty_weight", self.class_weights())

    def class_weights(self) -> Tensor:
        weights = torch.ones(self.num_labels + 1)
        weights[-1] = self.eos_coef
        return weights

    @staticmethod
    def _pad_masks(masks: list[Tensor]) -> Tensor:
        """Stack per-image target masks ``(n_i, h_i, w_i)`` into ``(batch, max n, max h, max w)`` zero-padded."""
        n = max(m.shape[0] for m in masks)
        h = max(m.shape[1] for m in masks)
        w = max(m.shape[2] for m in masks)
        out = masks[0].new_zeros((len(masks), n, h, w))
        for i, m in enumerate(masks):
            out[i, : m.shape[0], : m.shape[1], : m.shape[2]] = m
        return out

    def forward(
        self,
        masks_queries_logits: Tensor,
        class_queries_logits: Tensor,
        mask_labels: list[Tensor],
        class_labels: list[Tensor],
        auxiliary_predictions: list[dict[str, Tensor]] | None = None,
    ) -> dict[str, Tensor]:
        indices = self.matcher(masks_queries_logits, class_queries_logits, mask_labels, class_labels)
        device = class_queries_logits.device
        num_masks = torch.clamp(
            torch.as_tensor(float(sum(len(c) for c in class_labels)), device=device), min=1
        )
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)]).to(device)
        src_idx = torch.cat([src for src, _ in indices]).to(device)
        tgt_idx = torch.cat([tgt for _, tgt in indices]).to(device)

        # Classes: every unmatched query should predict "no object" (index num_labels).
        batch, num_queries, _ = class_queries_logits.shape
        target_classes = torch.full((batch, num_queries), self.num_labels, dtype=torch.int64, device=device)
        matched_classes = torch.cat([labels.to(device)[tgt] for labels, (_, tgt) in zip(class_labels, indices)])
        target_classes[batch_idx, src_idx] = matched_classes.long()
        loss_ce = nn.functional.cross_entropy(
            class_queries_logits.transpose(1, 2), target_classes, weight=self.empty_weight.to(class_queries_logits.dtype)
        )

        # Masks: predictions upsampled to the (padded) target size.
        targets = self._pad_masks([m.to(device) for m in mask_labels])[batch_idx, tgt_idx]
        preds = masks_queries_logits[batch_idx, src_idx]
        preds = nn.functional.interpolate(
            preds[:, None], size=targets.shape[-2:], mode="bilinear", align_corners=False
        )[:, 0].flatten(1)
        targets = targets.flatten(1).to(preds.dtype)
        losses = {
            "loss_mask": sigmoid_focal_loss(preds, targets, num_masks),
            "loss_dice": dice_loss(preds, targets, num_masks),
            "loss_cross_entropy": loss_ce,
        }
        for i, aux in enumerate(auxiliary_predictions or []):
            aux_losses = self.forward(aux["masks_queries_logits"], aux["class_queries_logits"], mask_labels, class_labels)
            losses.update({f"{key}_{i}": value for key, value in aux_losses.items()})
        return losses


class MaskFormerForInstanceSegmentation(MaskFormerPreTrainedModel):
    """MaskFormer with its class and mask heads; computes the training loss when labels are given."""

    def __init__(self, config: MaskFormerConfig) -> None:
        super().__init__(config)
        self.model = MaskFormerModel(config)
        hidden = config.decoder_config.d_model
        self.class_predictor = nn.Linear(hidden, config.num_labels + 1)
        self.mask_embedder = MaskformerMLPPredictionHead(hidden, hidden, config.mask_feature_size)
        self.matcher = MaskFormerHungarianMatcher(
            cost_class=1.0, cost_dice=config.dice_weight, cost_mask=config.mask_weight
        )
        self.weight_dict = {
            "loss_cross_entropy": config.cross_entropy_weight,
            "loss_mask": config.mask_weight,
            "loss_dice": config.dice_weight,
        }
        self.criterion = MaskFormerLoss(config.num_labels, matcher=self.matcher, eos_coef=config.no_object_weight)
        self.post_init()

    def get_loss_dict(
        self,
        masks_queries_logits: Tensor,
        class_queries_logits: Tensor,
        mask_labels: list[Tensor],
        class_labels: list[Tensor],
        auxiliary_logits: list[dict[str, Tensor]] | None,
    ) -> dict[str, Tensor]:
        """Every loss term, each multiplied by its weight (auxiliary terms by the weight of their kind)."""
        losses = self.criterion(masks_queries_logits, class_queries_logits, mask_labels, class_labels, auxiliary_logits)
        for key, value in losses.items():
            kind = next(k for k in self.weight_dict if key == k or key.startswith(f"{k}_"))
            losses[key] = value * self.weight_dict[kind]
        return losses

    def get_loss(self, loss_dict: dict[str, Tensor]) -> Tensor:
        return torch.stack(list(loss_dict.values())).sum()

    def _check_labels(self, mask_labels: Any, class_labels: Any, batch: int) -> None:
        for name, value in (("mask_labels", mask_labels), ("class_labels", class_labels)):
            if not isinstance(value, (list, tuple)) or not all(isinstance(t, Tensor) for t in value):
                raise TypeError(f"{name} must be a list of tensors (one per image), got {type(value).__name__}.")
            if len(value) != batch:
                raise ValueError(f"{name} has {len(value)} entries but the batch has {batch} images.")
        for i, (masks, classes) in enumerate(zip(mask_labels, class_labels)):
            if masks.dim() != 3:
                raise ValueError(f"mask_labels[{i}] must be (num_masks, height, width), got {tuple(masks.shape)}.")
            if classes.dim() != 1 or classes.shape[0] != masks.shape[0]:
                raise ValueError(
                    f"class_labels[{i}] must hold one class id per mask ({masks.shape[0]}), "
                    f"got shape {tuple(classes.shape)}."
                )
            if classes.is_floating_point():
                raise TypeError(f"class_labels[{i}] must hold integer class ids, got dtype {classes.dtype}.")
        ids = torch.cat([c.reshape(-1).cpu() for c in class_labels])
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.num_labels):
            bad = sorted({int(v) for v in ids.tolist() if v < 0 or v >= self.config.num_labels})
            raise ValueError(
                f"class_labels hold ids {bad} outside 0..{self.config.num_labels - 1} "
                f"(the model has num_labels={self.config.num_labels})."
            )

    @model_forward
    def forward(
        self,
        pixel_values: Tensor,
        mask_labels: list[Tensor] | None = None,
        class_labels: list[Tensor] | None = None,
        pixel_mask: Tensor | None = None,
        output_auxiliary_logits: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MaskFormerForInstanceSegmentationOutput:
        """Class logits ``(batch, queries, num_labels + 1)`` and mask logits ``(batch, queries, h/4, w/4)``.

        With ``mask_labels`` (per image ``(n, H, W)`` binary masks) and ``class_labels`` (per image ``(n,)``)
        also the weighted loss. With ``config.use_auxiliary_loss`` every decoder layer is supervised too.
        """
        if (mask_labels is None) != (class_labels is None):
            raise ValueError("Pass mask_labels and class_labels together (or neither).")
        if mask_labels is not None:
            self._check_labels(mask_labels, class_labels, pixel_values.shape[0])
        use_aux = bool(self.config.use_auxiliary_loss)
        wants_hidden = bool(self.config.output_hidden_states if output_hidden_states is None else output_hidden_states)
        # The auxiliary losses read every decoder layer's output, which the model returns among its hidden states.
        outputs = self.model(
            pixel_values,
            output_hidden_states=wants_hidden or use_aux,
            output_attentions=output_attentions,
            return_dict=True,
        )
        pixel_embeddings = outputs.pixel_decoder_last_hidden_state
        queries = outputs.transformer_decoder_last_hidden_state
        class_queries_logits = self.class_predictor(queries)
        masks_queries_logits = torch.einsum("bqc,bchw->bqhw", self.mask_embedder(queries), pixel_embeddings)
        auxiliary_logits: list[dict[str, Tensor]] = []
        if use_aux:
            # Every layer but the last (whose normalised output is ``queries``) gets its own predictions.
            layernorm = self.model.transformer_module.decoder.layernorm
            intermediate = torch.stack([layernorm(state) for state in outputs.transformer_decoder_hidden_states[1:]])
            aux_classes = self.class_predictor(intermediate[:-1])
            aux_masks = torch.einsum("lbqc,bchw->lbqhw", self.mask_embedder(intermediate[:-1]), pixel_embeddings)
            auxiliary_logits = [
                {"masks_queries_logits": m, "class_queries_logits": c} for m, c in zip(aux_masks, aux_classes)
            ]

        loss = None
        if mask_labels is not None and class_labels is not None:
            loss_dict = self.get_loss_dict(
                masks_queries_logits, class_queries_logits, list(mask_labels), list(class_labels), auxiliary_logits
            )
            loss = self.get_loss(loss_dict)
        want_aux = self.config.output_auxiliary_logits if output_auxiliary_logits is None else output_auxiliary_logits
        hidden = ("encoder_hidden_states", "pixel_decoder_hidden_states", "transformer_decoder_hidden_states", "hidden_states")
        return MaskFormerForInstanceSegmentationOutput(
            loss=loss,
            class_queries_logits=class_queries_logits,
            masks_queries_logits=masks_queries_logits,
            auxiliary_logits=auxiliary_logits if want_aux and auxiliary_logits else None,
            **{key: value for key, value in outputs.items() if wants_hidden or key not in hidden},
        )
