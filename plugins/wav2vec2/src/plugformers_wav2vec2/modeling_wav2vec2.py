"""Wav2Vec2 models: a convolutional feature encoder over raw audio followed by a transformer encoder.

Module and parameter names mirror the reference library so that its checkpoints load unchanged,
including the weight-normed positional convolution (saved as ``parametrizations.weight.original0/1``;
the older ``weight_g``/``weight_v`` names are renamed on load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from plugformers.activations import ACT2FN
from plugformers.configuration_utils import ConfigError
from plugformers.fast_path import PackLinear
from plugformers.masking_utils import prepare_attention_mask
from plugformers.modeling_layers import GradientCheckpointingLayer, MultiHeadAttention
from plugformers.modeling_outputs import (
    CausalLMOutput,
    ModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
    XVectorOutput,
)
from plugformers.modeling_utils import PreTrainedModel, classification_loss
from plugformers.output_capturing import Record, model_forward, select_hidden_states

from .configuration_wav2vec2 import Wav2Vec2Config

__all__ = [
    "Wav2Vec2BaseModelOutput",
    "Wav2Vec2ForAudioFrameClassification",
    "Wav2Vec2ForCTC",
    "Wav2Vec2ForPreTraining",
    "Wav2Vec2ForPreTrainingOutput",
    "Wav2Vec2ForSequenceClassification",
    "Wav2Vec2ForXVector",
    "Wav2Vec2Model",
    "Wav2Vec2PreTrainedModel",
    "compute_mask_indices",
    "sample_negative_indices",
]


@dataclass
class Wav2Vec2BaseModelOutput(ModelOutput):
    """Output of :class:`Wav2Vec2Model`.

    ``extract_features`` are the layer-normed conv features before the projection to ``hidden_size``.
    """

    last_hidden_state: torch.Tensor | None = None
    extract_features: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class Wav2Vec2ForPreTrainingOutput(ModelOutput):
    """Output of :class:`Wav2Vec2ForPreTraining`.

    ``projected_states`` (context vectors) and ``projected_quantized_states`` (targets) are both
    ``(batch, frames, proj_codevector_dim)``; the losses are set only when ``sampled_negative_indices`` is given.
    """

    loss: torch.Tensor | None = None
    projected_states: torch.Tensor | None = None
    projected_quantized_states: torch.Tensor | None = None
    codevector_perplexity: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    contrastive_loss: torch.Tensor | None = None
    diversity_loss: torch.Tensor | None = None


def compute_mask_indices(
    shape: tuple[int, int],
    mask_prob: float,
    mask_length: int,
    attention_mask: torch.Tensor | None = None,
    min_masks: int = 0,
) -> np.ndarray:
    """Random SpecAugment spans: a boolean ``(batch, length)`` array with spans of ``mask_length`` set.

    About ``mask_prob * length / mask_length`` spans (at least ``min_masks``, at most
    ``sequence_length // mask_length``) start at distinct random positions inside each example's unpadded
    length (from ``attention_mask``); spans may overlap. With the same numpy seed the result equals the
    reference library's.
    """
    batch_size, sequence_length = shape
    if mask_length < 1:
        raise ValueError(f"mask_length must be at least 1, got {mask_length}.")
    if mask_length > sequence_length:
        raise ValueError(
            f"mask_length ({mask_length}) is longer than the sequence ({sequence_length} frames); lower "
            "mask_time_length / mask_feature_length or use longer audio."
        )
    # One random offset for the whole batch so that the expected span count is mask_prob * length.
    jitter = np.random.rand()
    if attention_mask is not None:
        lengths = attention_mask.detach().sum(-1).cpu().tolist()
    else:
        lengths = [sequence_length] * batch_size

    def span_count(length: int) -> int:
        count = max(int(mask_prob * length / mask_length + jitter), min_masks)
        if count * mask_length > sequence_length:
            count = sequence_length // mask_length
        return max(min(count, length - (mask_length - 1)), 0)

    mask = np.zeros((batch_size, sequence_length), dtype=bool)
    if span_count(sequence_length) == 0:
        return mask
    for row, length in enumerate(lengths):
        length = int(length)
        count = span_count(length)
        # Drawn even for zero spans: each row consumes the numpy stream as the reference does.
        starts = np.random.choice(max(length - (mask_length - 1), 0), count, replace=False)
        if count == 0:
            # As in the reference, a row too short for any span still marks its last (padding) frame.
            mask[row, sequence_length - 1] = True
            continue
        positions = (starts[:, None] + np.arange(mask_length)[None, :]).reshape(-1)
        mask[row, np.minimum(positions, sequence_length - 1)] = True
    return mask


def sample_negative_indices(
    features_shape: tuple[int, int], num_negatives: int, mask_time_indices: np.ndarray | None = None
) -> np.ndarray:
    """Distractors for the contrastive loss: ``(batch, frames, num_negatives)`` int32 indices into the
    flattened ``(batch * frames)`` quantized features.

    Each masked frame (every frame when ``mask_time_indices`` is None) gets ``num_negatives`` other masked
    frames of the same example, drawn uniformly with replacement, never itself; unmasked frames get index
    ``batch_index * frames``. With the same numpy seed the result equals the reference library's.
    """
    batch_size, sequence_length = features_shape
    if mask_time_indices is None:
        chosen = np.ones(features_shape, dtype=bool)
    else:
        chosen = np.asarray(mask_time_indices).astype(bool)
    negatives = np.zeros((batch_size, sequence_length, num_negatives), dtype=np.int32)
    for row in range(batch_size):
        frames = np.flatnonzero(chosen[row])
        count = len(frames)
        if count < 2:
            raise ValueError(
                f"Example {row} has {count} masked frame(s); sampling negatives needs at least 2 per example "
                "(raise mask_prob or mask_length)."
            )
        # Draw among the count - 1 others: shifting draws at or above a frame's own slot skips it uniformly.
        draws = np.random.randint(0, count - 1, size=(count, num_negatives))
        draws[draws >= np.arange(count)[:, None]] += 1
        negatives[row, frames] = frames[draws]
        negatives[row] += row * sequence_length
    return negatives


def _conv_output_length(length: Any, kernel: int, stride: int) -> Any:
    """Frames a stride-``stride`` convolution without padding produces from ``length`` samples."""
    return torch.div(length - kernel, stride, rounding_mode="floor") + 1


# ----- feature encoder ----------------------------------------------------------------------------------


class Wav2Vec2NoLayerNormConvLayer(GradientCheckpointingLayer):
    """Conv then activation (the layers after the first one of ``feat_extract_norm="group"``)."""

    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__()
        in_dim = config.conv_dim[layer_id - 1] if layer_id > 0 else 1
        self.conv = nn.Conv1d(
            in_dim,
            config.conv_dim[layer_id],
            kernel_size=config.conv_kernel[layer_id],
            stride=config.conv_stride[layer_id],
            bias=config.conv_bias,
        )
        self.activation = ACT2FN[config.feat_extract_activation]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(hidden_states))


class Wav2Vec2LayerNormConvLayer(Wav2Vec2NoLayerNormConvLayer):
    """Conv, then LayerNorm over channels (the ``feat_extract_norm="layer"`` variant)."""

    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__(config, layer_id)
        self.layer_norm = nn.LayerNorm(config.conv_dim[layer_id], elementwise_affine=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.conv(hidden_states)
        hidden_states = self.layer_norm(hidden_states.transpose(-2, -1)).transpose(-2, -1)
        return self.activation(hidden_states)


class Wav2Vec2GroupNormConvLayer(Wav2Vec2NoLayerNormConvLayer):
    """Conv, then one GroupNorm group per channel over time (first layer of ``feat_extract_norm="group"``)."""

    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__(config, layer_id)
        dim = config.conv_dim[layer_id]
        self.layer_norm = nn.GroupNorm(num_groups=dim, num_channels=dim, affine=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer_norm(self.conv(hidden_states)))


class Wav2Vec2FeatureEncoder(nn.Module):
    """Raw audio ``(batch, samples)`` -> conv features ``(batch, channels, frames)``."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        n = config.num_feat_extract_layers
        layers: list[nn.Module]
        if config.feat_extract_norm == "group":
            layers = [Wav2Vec2GroupNormConvLayer(config, 0)]
            layers += [Wav2Vec2NoLayerNormConvLayer(config, i) for i in range(1, n)]
        else:
            layers = [Wav2Vec2LayerNormConvLayer(config, i) for i in range(n)]
        self.conv_layers = nn.ModuleList(layers)
        self._requires_grad = True

    def _freeze_parameters(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        self._requires_grad = False

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        hidden_states = input_values[:, None]  # (batch, 1, samples)
        # Let gradient checkpointing see an input that needs grad, so the conv weights still train.
        if self._requires_grad and self.training:
            hidden_states.requires_grad = True
        for conv_layer in self.conv_layers:
            hidden_states = conv_layer(hidden_states)
        return hidden_states


class Wav2Vec2FeatureProjection(nn.Module):
    """LayerNorm over the conv channels, then a projection to ``hidden_size``; also returns the normed features."""

    linear_init = {"projection": "torch"}  # see Wav2Vec2PreTrainedModel._init_weights

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)
        self.dropout = nn.Dropout(config.feat_proj_dropout)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.layer_norm(hidden_states)
        return self.dropout(self.projection(normed)), normed


# ----- transformer encoder ------------------------------------------------------------------------------


class Wav2Vec2PositionalConvEmbedding(nn.Module):
    """Relative positions from a wide grouped convolution whose weight is weight-normed over the kernel axis."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        if config.hidden_size % config.num_conv_pos_embedding_groups != 0:
            raise ConfigError(
                f"{type(config).__name__}.hidden_size ({config.hidden_size}) must be a multiple of "
                f"num_conv_pos_embedding_groups ({config.num_conv_pos_embedding_groups}): the positional convolution "
                "splits hidden_size into that many groups."
            )
        kernel = config.num_conv_pos_embeddings
        conv = nn.Conv1d(
            config.hidden_size,
            config.hidden_size,
            kernel_size=kernel,
            padding=kernel // 2,
            groups=config.num_conv_pos_embedding_groups,
        )
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        # An even kernel with padding kernel//2 yields one frame too many; drop the last one.
        self.num_pad_remove = 1 if kernel % 2 == 0 else 0
        self.activation = ACT2FN[config.feat_extract_activation]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.conv(hidden_states.transpose(1, 2))
        if self.num_pad_remove:
            hidden_states = hidden_states[:, :, : -self.num_pad_remove]
        return self.activation(hidden_states).transpose(1, 2)


class Wav2Vec2Attention(MultiHeadAttention):
    """Multi-head self-attention (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``)."""

    projections = {"key": "k_proj", "value": "v_proj", "query": "q_proj", "output": "out_proj"}

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config, config.hidden_size, config.num_attention_heads, dropout=config.attention_dropout)


class Wav2Vec2FeedForward(nn.Module):
    """``output_dense(act(intermediate_dense(x)))`` with dropouts."""

    fast_path_plan = (PackLinear("intermediate_dense", activation="intermediate_act_fn"), PackLinear("output_dense"))

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.intermediate_dropout = nn.Dropout(config.activation_dropout)
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.intermediate_dropout(self.intermediate_act_fn(self.intermediate_dense(hidden_states)))
        return self.output_dropout(self.output_dense(hidden_states))


class Wav2Vec2AttnAdapterLayer(nn.Module):
    """Small bottleneck added after each pre-norm layer when ``adapter_attn_dim`` is set (MMS checkpoints)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        if config.adapter_attn_dim is None:
            raise ValueError("Wav2Vec2AttnAdapterLayer needs config.adapter_attn_dim (the bottleneck width).")
        self.norm = nn.LayerNorm(config.hidden_size)
        self.linear_1 = nn.Linear(config.hidden_size, config.adapter_attn_dim)
        self.act_fn = nn.ReLU()
        self.linear_2 = nn.Linear(config.adapter_attn_dim, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act_fn(self.linear_1(self.norm(hidden_states))))


class Wav2Vec2EncoderLayer(GradientCheckpointingLayer):
    """Post-norm transformer layer (base models): ``norm(x + attn(x))``, then ``norm(x + ff(x))``.

    While training, LayerDrop skips the whole layer with probability ``config.layerdrop`` (torch's RNG, so
    ``torch.manual_seed`` repeats it); a skipped layer returns its input.
    """

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.attention = Wav2Vec2Attention(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = Wav2Vec2FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.config = config

    def _dropped(self) -> bool:
        layerdrop = self.config.layerdrop
        return self.training and layerdrop > 0 and bool(torch.rand([]) < layerdrop)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self._dropped():
            return hidden_states
        attended, _ = self.attention(hidden_states, attention_mask)
        hidden_states = self.layer_norm(hidden_states + self.dropout(attended))
        return self.final_layer_norm(hidden_states + self.feed_forward(hidden_states))


class Wav2Vec2EncoderLayerStableLayerNorm(Wav2Vec2EncoderLayer):
    """Pre-norm transformer layer (``do_stable_layer_norm=True``, the large models): ``x + attn(norm(x))``, then
    ``x + ff(norm(x))`` and the adapter (MMS checkpoints), if any."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.adapter_layer = Wav2Vec2AttnAdapterLayer(config) if config.adapter_attn_dim is not None else None

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self._dropped():
            return hidden_states
        attended, _ = self.attention(self.layer_norm(hidden_states), attention_mask)
        hidden_states = hidden_states + self.dropout(attended)
        hidden_states = hidden_states + self.feed_forward(self.final_layer_norm(hidden_states))
        if self.adapter_layer is not None:
            hidden_states = hidden_states + self.adapter_layer(hidden_states)
        return hidden_states


class Wav2Vec2Encoder(nn.Module):
    """Positional conv + transformer layers; post-norm, or pre-norm with a final LayerNorm when ``stable``."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = config
        self.stable = bool(config.do_stable_layer_norm)
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        layer_class = Wav2Vec2EncoderLayerStableLayerNorm if self.stable else Wav2Vec2EncoderLayer
        self.layers = nn.ModuleList([layer_class(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, frames, hidden)`` -> the same shape; ``attention_mask`` ``(batch, frames)`` is True for real frames."""
        if attention_mask is not None:
            # Padded frames are zeroed so that the positional conv does not smear them into real frames.
            hidden_states = hidden_states.masked_fill(~attention_mask[..., None], 0.0)
        batch, frames, _ = hidden_states.shape
        additive = prepare_attention_mask(attention_mask, batch, frames, hidden_states.dtype)

        hidden_states = hidden_states + self.pos_conv_embed(hidden_states)
        if not self.stable:
            hidden_states = self.layer_norm(hidden_states)
        hidden_states = self.dropout(hidden_states)
        for layer in self.layers:
            hidden_states = layer(hidden_states, additive)
        # As in the reference, the pre-norm variant's recorded hidden states end before this final norm.
        return self.layer_norm(hidden_states) if self.stable else hidden_states


class Wav2Vec2AdapterLayer(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            config.output_hidden_size,
            2 * config.output_hidden_size,
            config.adapter_kernel_size,
            stride=config.adapter_stride,
            padding=1,
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return nn.functional.glu(self.conv(hidden_states), dim=1)


class Wav2Vec2Adapter(nn.Module):
    """Strided GLU convolutions that shorten the encoder output (``add_adapter=True``, for seq2seq decoders)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.proj: nn.Linear | None = None
        self.proj_layer_norm: nn.LayerNorm | None = None
        if config.output_hidden_size != config.hidden_size:
            self.proj = nn.Linear(config.hidden_size, config.output_hidden_size)
            self.proj_layer_norm = nn.LayerNorm(config.output_hidden_size)
        self.layers = nn.ModuleList(Wav2Vec2AdapterLayer(config) for _ in range(config.num_adapter_layers))
        self.layerdrop = config.layerdrop

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.proj is not None and self.proj_layer_norm is not None:
            hidden_states = self.proj_layer_norm(self.proj(hidden_states))
        hidden_states = hidden_states.transpose(1, 2)
        for layer in self.layers:
            # LayerDrop from numpy's RNG, as in the reference: np.random.seed repeats the same choices.
            if not self.training or np.random.random() > self.layerdrop:
                hidden_states = layer(hidden_states)
        return hidden_states.transpose(1, 2)


# ----- pretraining and x-vector parts --------------------------------------------------------------------


class Wav2Vec2GumbelVectorQuantizer(nn.Module):
    """Product quantiser of the conv features: per group, one of ``num_codevectors_per_group`` codewords.

    Training picks codewords by straight-through Gumbel-softmax at ``temperature``; eval takes the arg-max.
    The chosen codewords of all groups are concatenated into a ``codevector_dim`` vector.
    """

    linear_init = {"weight_proj": "unit_normal"}  # codeword logits start spread out

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.num_groups = config.num_codevector_groups
        self.num_vars = config.num_codevectors_per_group
        if config.codevector_dim % self.num_groups != 0:
            raise ValueError(
                f"codevector_dim ({config.codevector_dim}) must be a multiple of num_codevector_groups "
                f"({self.num_groups}): each group contributes an equal slice of the quantized vector."
            )
        codebook = torch.empty(1, self.num_groups * self.num_vars, config.codevector_dim // self.num_groups)
        self.codevectors = nn.Parameter(codebook.uniform_())
        self.weight_proj = nn.Linear(config.conv_dim[-1], self.num_groups * self.num_vars)
        # Lowered during pretraining with Wav2Vec2ForPreTraining.set_gumbel_temperature.
        self.temperature: float = 2

    @staticmethod
    def _perplexity(probs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """exp(entropy) of the average codeword distribution, summed over groups; ``probs`` (N, groups, vars)."""
        if mask is None:
            marginal = probs.mean(dim=0)
        else:
            keep = mask.reshape(-1, 1, 1).bool()
            marginal = torch.where(keep, probs, torch.zeros_like(probs)).sum(dim=0) / keep.sum()
        return torch.exp(-torch.xlogy(marginal, marginal).sum(dim=-1)).sum()

    def forward(
        self, hidden_states: torch.Tensor, mask_time_indices: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, frames, conv_dim)`` -> quantized ``(batch, frames, codevector_dim)`` and the perplexity."""
        batch, frames, _ = hidden_states.shape
        # (batch, frames, groups * vars) -> (batch * frames * groups, vars)
        logits = self.weight_proj(hidden_states).view(batch * frames * self.num_groups, self.num_vars)
        if self.training:
            choice = nn.functional.gumbel_softmax(logits.float(), tau=self.temperature, hard=True).type_as(logits)
            soft = torch.softmax(logits.view(batch * frames, self.num_groups, -1).float(), dim=-1)
            perplexity = self._perplexity(soft, mask_time_indices)
        else:
            choice = nn.functional.one_hot(logits.argmax(dim=-1), self.num_vars).to(logits.dtype)
            perplexity = self._perplexity(choice.view(batch * frames, self.num_groups, -1), mask_time_indices)
        # One-hot weights over the whole codebook pick one codeword per group; (N, groups, vars, dim) -> (N, groups, dim)
        weighted = choice.view(batch * frames, -1, 1) * self.codevectors
        codevectors = weighted.view(batch * frames, self.num_groups, self.num_vars, -1).sum(dim=-2)
        return codevectors.view(batch, frames, -1), perplexity


class Wav2Vec2TDNNLayer(nn.Module):
    """Dilated 1-D convolution over frames + ReLU; the kernel is stored as a Linear of ``kernel * in`` inputs."""

    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__()
        self.in_dim = config.tdnn_dim[layer_id - 1] if layer_id > 0 else config.tdnn_dim[0]
        self.out_dim = config.tdnn_dim[layer_id]
        self.kernel_size = config.tdnn_kernel[layer_id]
        self.dilation = config.tdnn_dilation[layer_id]
        self.kernel = nn.Linear(self.in_dim * self.kernel_size, self.out_dim)
        self.activation = nn.ReLU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, in)`` -> ``(batch, frames - dilation * (kernel - 1), out)``."""
        # The Linear's inputs are laid out kernel position first: (out, kernel, in) -> conv weight (out, in, kernel).
        weight = self.kernel.weight.view(self.out_dim, self.kernel_size, self.in_dim).transpose(1, 2)
        hidden_states = nn.functional.conv1d(
            hidden_states.transpose(1, 2), weight, self.kernel.bias, dilation=self.dilation
        )
        return self.activation(hidden_states.transpose(1, 2))


class Wav2Vec2AMSoftmaxLoss(nn.Module):
    """Additive-margin softmax: cross-entropy over scaled cosines to one direction per class, the true one
    lowered by ``margin``, so that embeddings of one speaker cluster tighter than plain softmax asks for.

    ``scale`` (30) and ``margin`` (0.4) are fixed, as in the reference; ``weight`` holds the class directions
    ``(xvector_output_dim, num_labels)``.
    """

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.scale = 30.0
        self.margin = 0.4
        self.num_labels = config.num_labels
        self.weight = nn.Parameter(torch.randn(config.xvector_output_dim, config.num_labels))

    def forward(self, hidden_states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss of ``hidden_states`` ``(batch, xvector_output_dim)`` against speaker ids ``labels`` ``(batch,)``."""
        labels = labels.reshape(-1)
        # (batch, input_dim) x (input_dim, num_labels) -> cosines (batch, num_labels)
        cosine = nn.functional.normalize(hidden_states, dim=1) @ nn.functional.normalize(self.weight, dim=0)
        is_target = nn.functional.one_hot(labels, self.num_labels).bool()
        logits = self.scale * torch.where(is_target, cosine - self.margin, cosine)
        return nn.functional.cross_entropy(logits, labels)


# ----- models -------------------------------------------------------------------------------------------


class Wav2Vec2PreTrainedModel(PreTrainedModel):
    """Weight init, frame-length arithmetic and checkpoint key compatibility shared by every Wav2Vec2 model."""

    config_class = Wav2Vec2Config
    base_model_prefix = "wav2vec2"
    main_input_name = "input_values"
    _no_split_modules = ["Wav2Vec2EncoderLayer", "Wav2Vec2EncoderLayerStableLayerNorm"]
    # What these models support: declared once here, read by the host and the shared tests.
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    supports_compile_fullgraph = True
    supports_export = True
    supports_fast_path = True

    config: Wav2Vec2Config

    def freeze_feature_encoder(self) -> None:
        """Stop training the conv feature encoder (the usual setting for fine-tuning); its weights get no gradient."""
        base = self.base_model
        assert isinstance(base, Wav2Vec2Model)
        base.feature_extractor._freeze_parameters()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, Wav2Vec2PositionalConvEmbedding):
            conv = module.conv
            kernel = conv.kernel_size[0]
            fan_in = kernel * conv.in_channels // conv.groups
            weight_v = conv.parametrizations.weight.original1
            weight_v.normal_(0.0, 2 * math.sqrt(1.0 / fan_in))
            # g = |v| over the non-kernel axes, so the effective weight starts equal to v.
            conv.parametrizations.weight.original0.copy_(weight_v.norm(dim=(0, 1), keepdim=True))
            if conv.bias is not None:
                conv.bias.zero_()
        elif isinstance(module, nn.Linear):
            scheme = self._linear_init_schemes().get(module)
            if scheme == "torch":
                module.reset_parameters()
                return
            module.weight.normal_(0.0, 1.0 if scheme == "unit_normal" else std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Conv1d) and not parametrize.is_parametrized(module):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                module.bias.uniform_(-bound, bound)
        elif isinstance(module, Wav2Vec2Model) and module.masked_spec_embed is not None:
            module.masked_spec_embed.uniform_()
        elif isinstance(module, Wav2Vec2GumbelVectorQuantizer):
            module.codevectors.uniform_()
        elif isinstance(module, Wav2Vec2AMSoftmaxLoss):
            module.weight.normal_()

    def _linear_init_schemes(self) -> dict[nn.Module, str]:
        """Linear layers initialised otherwise than normal(0, initializer_range): what the modules holding them
        declare in their ``linear_init`` class attribute (``"torch"``: torch's own Linear init; ``"unit_normal"``:
        normal(0, 1) and zero bias). Collected once per model."""
        schemes: dict[nn.Module, str] | None = self.__dict__.get("_linear_schemes")
        if schemes is None:
            schemes = self.__dict__["_linear_schemes"] = {
                owner.get_submodule(name): scheme
                for owner in self.modules()
                for name, scheme in getattr(type(owner), "linear_init", {}).items()
            }
        return schemes

    @classmethod
    def _fix_checkpoint_key(cls, key: str) -> str:
        key = super()._fix_checkpoint_key(key)
        # Checkpoints from before torch's parametrized weight_norm name the two factors weight_g / weight_v.
        if key.endswith("pos_conv_embed.conv.weight_g"):
            return key[: -len("weight_g")] + "parametrizations.weight.original0"
        if key.endswith("pos_conv_embed.conv.weight_v"):
            return key[: -len("weight_v")] + "parametrizations.weight.original1"
        return key

    def _get_feat_extract_output_lengths(self, input_lengths: Any, add_adapter: bool | None = None) -> Any:
        """Frames the feature encoder (and the adapter, when used) produces from ``input_lengths`` samples."""
        add_adapter = self.config.add_adapter if add_adapter is None else add_adapter
        lengths = input_lengths
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = _conv_output_length(lengths, kernel, stride)
        if add_adapter:
            for _ in range(self.config.num_adapter_layers):
                lengths = _conv_output_length(lengths, 1, self.config.adapter_stride)
        return lengths

    def _get_feature_vector_attention_mask(
        self, feature_vector_length: int, attention_mask: torch.Tensor, add_adapter: bool | None = None
    ) -> torch.Tensor:
        """Sample-level mask ``(batch, samples)`` -> boolean frame-level mask ``(batch, frames)``.

        Each example keeps its first ``n`` frames, ``n`` being the frames its count of real samples
        yields. As in the reference, an example too short for one frame (``n <= 0``) keeps the first
        ``frames + n`` frames instead of none. Built without a host-device sync.
        """
        num_samples = attention_mask.sum(dim=-1)
        lengths = self._get_feat_extract_output_lengths(num_samples, add_adapter).to(torch.long)
        lengths = torch.where(lengths > 0, lengths, lengths + feature_vector_length)
        frames = torch.arange(feature_vector_length, device=attention_mask.device)
        return frames[None, :] < lengths[:, None]


def _check_input_values(input_values: torch.Tensor, config: Wav2Vec2Config) -> None:
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(f"input_values must be a torch.Tensor of shape (batch, samples), got {type(input_values).__name__}.")
    if input_values.dim() != 2:
        raise ValueError(
            f"input_values must have shape (batch, samples) of mono audio, got shape {tuple(input_values.shape)}; "
            "add a batch axis with input_values[None] or mix channels down first."
        )
    if not input_values.is_floating_point():
        raise TypeError(f"input_values must be floating point audio, got dtype {input_values.dtype}.")
    need = config.receptive_field
    if input_values.shape[-1] < need:
        rate = 16000
        raise ValueError(
            f"The audio is {input_values.shape[-1]} samples long, shorter than the receptive field of the "
            f"feature encoder ({need} samples, {1000 * need / rate:.0f} ms at {rate} Hz): no frame can be "
            "computed. Pad the audio to at least that length."
        )


class _Wav2Vec2FineTuningHead(Wav2Vec2PreTrainedModel):
    """A task head on top of ``self.wav2vec2`` that can be trained alone."""

    wav2vec2: Wav2Vec2Model

    def freeze_base_model(self) -> None:
        """Train only the head: the base model's parameters get no gradient."""
        for param in self.wav2vec2.parameters():
            param.requires_grad = False


class Wav2Vec2Model(Wav2Vec2PreTrainedModel):
    """The bare encoder: raw audio -> contextual frame features (one frame per ~20 ms at the defaults)."""

    recorded_outputs = {
        "hidden_states": Record(Wav2Vec2EncoderLayer, with_input=True),
        "attentions": Record(Wav2Vec2Attention, index=1),
    }

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.config = config
        self.feature_extractor = Wav2Vec2FeatureEncoder(config)
        self.feature_projection = Wav2Vec2FeatureProjection(config)
        self.masked_spec_embed: nn.Parameter | None = None
        if config.mask_time_prob > 0.0 or config.mask_feature_prob > 0.0:
            self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size).uniform_())
        self.encoder = Wav2Vec2Encoder(config)
        self.adapter = Wav2Vec2Adapter(config) if config.add_adapter else None
        self.post_init()

    def _mask_hidden_states(
        self,
        hidden_states: torch.Tensor,
        mask_time_indices: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SpecAugment: replace masked time steps by ``masked_spec_embed`` and zero masked feature channels."""
        if not self.config.apply_spec_augment:
            return hidden_states
        batch, frames, hidden = hidden_states.shape
        if mask_time_indices is not None:
            if self.masked_spec_embed is None:
                raise ValueError("mask_time_indices needs masked_spec_embed: set mask_time_prob > 0 in the config.")
            fill = self.masked_spec_embed.to(hidden_states.dtype)
            hidden_states = torch.where(mask_time_indices.bool()[..., None], fill, hidden_states)
        elif self.config.mask_time_prob > 0 and self.training:
            mask = compute_mask_indices(
                (batch, frames),
                self.config.mask_time_prob,
                self.config.mask_time_length,
                attention_mask=attention_mask,
                min_masks=self.config.mask_time_min_masks,
            )
            mask_t = torch.as_tensor(mask, device=hidden_states.device)
            assert self.masked_spec_embed is not None
            hidden_states = torch.where(mask_t[..., None], self.masked_spec_embed.to(hidden_states.dtype), hidden_states)
        if self.config.mask_feature_prob > 0 and self.training:
            mask = compute_mask_indices(
                (batch, hidden),
                self.config.mask_feature_prob,
                self.config.mask_feature_length,
                min_masks=self.config.mask_feature_min_masks,
            )
            mask_f = torch.as_tensor(mask, device=hidden_states.device)
            hidden_states = hidden_states.masked_fill(mask_f[:, None, :], 0.0)
        return hidden_states

    @model_forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Wav2Vec2BaseModelOutput:
        """``input_values`` ``(batch, samples)``; ``attention_mask`` ``(batch, samples)`` with 1 for real audio."""
        _check_input_values(input_values, self.config)

        # (batch, samples) -> (batch, conv_dim[-1], frames) -> (batch, frames, conv_dim[-1])
        extract_features = self.feature_extractor(input_values).transpose(1, 2)
        frame_mask = None
        if attention_mask is not None:
            if attention_mask.shape != input_values.shape:
                raise ValueError(
                    f"attention_mask has shape {tuple(attention_mask.shape)} but input_values has shape "
                    f"{tuple(input_values.shape)}; they must match (one entry per audio sample)."
                )
            frame_mask = self._get_feature_vector_attention_mask(
                extract_features.shape[1], attention_mask, add_adapter=False
            )
        hidden_states, extract_features = self.feature_projection(extract_features)
        hidden_states = self._mask_hidden_states(hidden_states, mask_time_indices, frame_mask)

        hidden_states = self.encoder(hidden_states, frame_mask)
        if self.adapter is not None:
            hidden_states = self.adapter(hidden_states)
        return Wav2Vec2BaseModelOutput(last_hidden_state=hidden_states, extract_features=extract_features)


class _Wav2Vec2WeightedLayerSumHead(_Wav2Vec2FineTuningHead):
    """A head whose input can be a learned mix of every layer (``use_weighted_layer_sum``): ``layer_weights``
    (one per transformer layer, plus the input embeddings) go through a softmax and weigh the layers' outputs."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        num_layers = config.num_hidden_layers + 1  # the transformer layers and the input embeddings
        self.layer_weights: nn.Parameter | None = None
        if config.use_weighted_layer_sum:
            self.layer_weights = nn.Parameter(torch.ones(num_layers) / num_layers)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self and self.layer_weights is not None:
            self.layer_weights.fill_(1.0 / self.layer_weights.numel())

    def _encode(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
    ) -> tuple[Wav2Vec2BaseModelOutput, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Run the base model: its output, the head's input ``(batch, frames, hidden)`` (the weighted sum, or the
        last layer's output) and the hidden states to return (None unless asked for: the weighted sum needs them
        computed either way)."""
        wanted = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        outputs = self.wav2vec2(
            input_values,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=True if self.layer_weights is not None else wanted,
            return_dict=True,
        )
        hidden_states = select_hidden_states(outputs.hidden_states, wanted)
        if self.layer_weights is None:
            return outputs, outputs.last_hidden_state, hidden_states
        # (layers + 1) x (batch, frames, hidden) -> (batch, layers + 1, frames, hidden) -> (batch, frames, hidden)
        stacked = torch.stack(outputs.hidden_states, dim=1)
        weights = nn.functional.softmax(self.layer_weights, dim=-1).to(stacked.dtype)
        return outputs, (stacked * weights.view(-1, 1, 1)).sum(dim=1), hidden_states


class Wav2Vec2ForCTC(_Wav2Vec2FineTuningHead):
    """Wav2Vec2 with a linear per-frame vocabulary head trained with CTC (speech recognition)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        if config.vocab_size is None:
            raise ValueError(
                "Wav2Vec2ForCTC needs config.vocab_size (the size of the CTC vocabulary, e.g. "
                "len(tokenizer)); it is None."
            )
        self.wav2vec2 = Wav2Vec2Model(config)
        self.dropout = nn.Dropout(config.final_dropout)
        head_in = config.output_hidden_size if config.add_adapter else config.hidden_size
        self.lm_head = nn.Linear(head_in, config.vocab_size)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        labels: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        """``labels`` ``(batch, target_length)``: token ids; negative values (e.g. -100) and the blank
        (``pad_token_id``) mark padding."""
        outputs = self.wav2vec2(
            input_values,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(self.dropout(outputs.last_hidden_state))

        loss = None
        if labels is not None:
            loss = self._ctc_loss(logits, input_values, attention_mask, labels)
        return CausalLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def _ctc_loss(
        self,
        logits: torch.Tensor,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        vocab_size = logits.shape[-1]
        if labels.dim() != 2 or labels.shape[0] != logits.shape[0]:
            raise ValueError(
                f"labels must have shape (batch={logits.shape[0]}, target_length), got {tuple(labels.shape)}."
            )
        if labels.numel() and int(labels.max()) >= vocab_size:
            raise ValueError(
                f"labels contain id {int(labels.max())}, outside the vocabulary of {vocab_size} tokens "
                f"(valid ids are 0..{vocab_size - 1}; use negative values such as -100 for padding)."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_values, dtype=torch.long)
        input_lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1)).to(torch.long)
        blank = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        # A CTC target never holds the blank, so labels padded with it (pad_token_id) count as padding too.
        labels_mask = (labels >= 0) & (labels != blank)
        target_lengths = labels_mask.sum(-1)
        flattened_targets = labels.masked_select(labels_mask)
        # CTC in float32 whatever the model dtype; (frames, batch, vocab) is what ctc_loss expects.
        log_probs = nn.functional.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        with torch.backends.cudnn.flags(enabled=False):
            return nn.functional.ctc_loss(
                log_probs,
                flattened_targets,
                input_lengths,
                target_lengths,
                blank=blank,
                reduction=self.config.ctc_loss_reduction,
                zero_infinity=self.config.ctc_zero_infinity,
            )


class Wav2Vec2ForSequenceClassification(_Wav2Vec2WeightedLayerSumHead):
    """Utterance-level classification (keyword spotting, speaker or emotion id): mean-pooled projected frames."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        if config.add_adapter:
            raise ValueError(
                "Wav2Vec2ForSequenceClassification does not support adapters; set config.add_adapter=False."
            )
        super().__init__(config)
        self.projector = nn.Linear(config.hidden_size, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        outputs, hidden_states, all_hidden = self._encode(
            input_values, attention_mask, output_attentions, output_hidden_states
        )
        hidden_states = self.projector(hidden_states)
        if attention_mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            frame_mask = self._get_feature_vector_attention_mask(hidden_states.shape[1], attention_mask)
            hidden_states = hidden_states.masked_fill(~frame_mask[..., None], 0.0)
            pooled = hidden_states.sum(dim=1) / frame_mask.sum(dim=1, keepdim=True).to(hidden_states.dtype)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels, self.config, self.config.num_labels)
        return SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=all_hidden,
            attentions=outputs.attentions,
        )


class Wav2Vec2ForAudioFrameClassification(_Wav2Vec2WeightedLayerSumHead):
    """Per-frame classification (e.g. speaker diarization); labels are one-hot/multi-hot per frame."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        if config.add_adapter:
            raise ValueError(
                "Wav2Vec2ForAudioFrameClassification does not support adapters; set config.add_adapter=False."
            )
        super().__init__(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.num_labels = config.num_labels
        self.post_init()

    @model_forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput:
        """``labels`` ``(batch, frames, num_labels)``: the target of each frame is its arg-max label."""
        outputs, hidden_states, all_hidden = self._encode(
            input_values, attention_mask, output_attentions, output_hidden_states
        )
        logits = self.classifier(hidden_states)
        loss = None
        if labels is not None:
            if labels.shape[-1] != self.num_labels or labels.numel() != logits.numel():
                raise ValueError(
                    f"labels must have shape (batch, frames, num_labels) = {tuple(logits.shape)}, "
                    f"got {tuple(labels.shape)}."
                )
            targets = torch.argmax(labels.reshape(-1, self.num_labels), dim=1)
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.num_labels), targets)
        return TokenClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=all_hidden,
            attentions=outputs.attentions,
        )


class Wav2Vec2ForPreTraining(Wav2Vec2PreTrainedModel):
    """Self-supervised pretraining: contrast the context vectors of masked frames with quantized targets.

    Pass ``mask_time_indices`` (e.g. from :func:`compute_mask_indices`) and ``sampled_negative_indices``
    (from :func:`sample_negative_indices`) to get the contrastive and diversity losses.
    """

    linear_init = {"project_hid": "torch", "project_q": "torch"}  # as the reference: torch's own Linear init

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.dropout_features = nn.Dropout(config.feat_quantizer_dropout)
        self.quantizer = Wav2Vec2GumbelVectorQuantizer(config)
        self.project_hid = nn.Linear(config.hidden_size, config.proj_codevector_dim)
        self.project_q = nn.Linear(config.codevector_dim, config.proj_codevector_dim)
        self.post_init()

    def set_gumbel_temperature(self, temperature: float) -> None:
        """The Gumbel-softmax temperature of the quantizer (annealed during pretraining)."""
        self.quantizer.temperature = temperature

    @staticmethod
    def compute_contrastive_logits(
        target_features: torch.Tensor,
        negative_features: torch.Tensor,
        predicted_features: torch.Tensor,
        temperature: float = 0.1,
    ) -> torch.Tensor:
        """Cosine similarity of ``predicted_features`` to the positive then each negative, over ``temperature``.

        ``target_features`` ``(1, batch, frames, dim)`` and ``negative_features`` ``(K, batch, frames, dim)``
        give logits ``(1 + K, batch, frames)``.
        """
        candidates = torch.cat([target_features, negative_features], dim=0)
        similarity = torch.cosine_similarity(predicted_features.float(), candidates.float(), dim=-1)
        return similarity.type_as(candidates) / temperature

    @model_forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | np.ndarray | None = None,
        sampled_negative_indices: torch.Tensor | np.ndarray | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Wav2Vec2ForPreTrainingOutput:
        """``mask_time_indices`` ``(batch, frames)`` marks the frames to hide and predict;
        ``sampled_negative_indices`` ``(batch, frames, num_negatives)`` index the flattened targets."""
        # numpy arrays (what compute_mask_indices and sample_negative_indices return) are accepted too.
        if mask_time_indices is not None:
            mask_time_indices = torch.as_tensor(mask_time_indices, device=input_values.device).to(torch.bool)
        if sampled_negative_indices is not None:
            sampled_negative_indices = torch.as_tensor(sampled_negative_indices, device=input_values.device)
        outputs = self.wav2vec2(
            input_values,
            attention_mask=attention_mask,
            mask_time_indices=mask_time_indices,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        projected_states = self.project_hid(outputs.last_hidden_state)
        extract_features = self.dropout_features(outputs.extract_features)
        quantized, perplexity = self.quantizer(extract_features, mask_time_indices=mask_time_indices)
        projected_quantized = self.project_q(quantized.to(self.project_q.weight.dtype))

        loss = contrastive_loss = diversity_loss = None
        if sampled_negative_indices is not None:
            if mask_time_indices is None:
                raise ValueError(
                    "sampled_negative_indices needs mask_time_indices too: the contrastive loss is computed on "
                    "the masked frames."
                )
            contrastive_loss = self._contrastive_loss(
                projected_states, projected_quantized, sampled_negative_indices, mask_time_indices
            )
            num_codevectors = self.config.num_codevectors_per_group * self.config.num_codevector_groups
            diversity_loss = (num_codevectors - perplexity) / num_codevectors * mask_time_indices.sum()
            loss = contrastive_loss + self.config.diversity_loss_weight * diversity_loss

        return Wav2Vec2ForPreTrainingOutput(
            loss=loss,
            projected_states=projected_states,
            projected_quantized_states=projected_quantized,
            codevector_perplexity=perplexity,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            contrastive_loss=contrastive_loss,
            diversity_loss=diversity_loss,
        )

    def _contrastive_loss(
        self,
        projected_states: torch.Tensor,
        projected_quantized: torch.Tensor,
        sampled_negative_indices: torch.Tensor,
        mask_time_indices: torch.Tensor,
    ) -> torch.Tensor:
        """Summed cross-entropy of picking the true target among ``num_negatives`` distractors, per masked frame."""
        batch, frames, dim = projected_quantized.shape
        expected = (batch, frames)
        if tuple(sampled_negative_indices.shape[:2]) != expected or sampled_negative_indices.dim() != 3:
            raise ValueError(
                f"sampled_negative_indices must have shape (batch, frames, num_negatives) with (batch, frames) = "
                f"{expected}, got {tuple(sampled_negative_indices.shape)}."
            )
        # (batch * frames * K,) rows of the flattened targets -> (K, batch, frames, dim)
        negatives = projected_quantized.reshape(-1, dim)[sampled_negative_indices.long().reshape(-1)]
        negatives = negatives.view(batch, frames, -1, dim).permute(2, 0, 1, 3)
        logits = self.compute_contrastive_logits(
            projected_quantized[None], negatives, projected_states, self.config.contrastive_logits_temperature
        )
        # A distractor equal to the target (a rarely used codebook) cannot be told apart: leave it out.
        same_as_target = (projected_quantized[None] == negatives).all(dim=-1)
        logits = torch.cat([logits[:1], logits[1:].masked_fill(same_as_target, float("-inf"))], dim=0)
        # (1 + K, batch, frames) -> (batch * frames, 1 + K); the target is class 0 on masked frames only.
        logits = logits.permute(1, 2, 0).reshape(batch * frames, -1)
        target = torch.where(mask_time_indices.reshape(-1), 0, -100)
        return nn.functional.cross_entropy(logits.float(), target, reduction="sum")


def _audio_too_short_to_pool() -> ValueError:
    return ValueError(
        "An example in the batch is too short for the x-vector head: its audio leaves fewer than 2 frames after "
        "the TDNN layers to pool a mean and a standard deviation over. Use longer audio."
    )


class Wav2Vec2ForXVector(_Wav2Vec2WeightedLayerSumHead):
    """Speaker embeddings (x-vectors): TDNN layers over the frames, mean+std pooling, trained with AM-softmax."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        lengths = (len(config.tdnn_dim), len(config.tdnn_kernel), len(config.tdnn_dilation))
        if len(set(lengths)) != 1 or not lengths[0]:
            raise ConfigError(
                f"{type(config).__name__}.tdnn_dim, tdnn_kernel and tdnn_dilation must have one entry per TDNN layer "
                f"and at least one layer, got {lengths[0]}, {lengths[1]} and {lengths[2]} entries."
            )
        super().__init__(config)
        self.projector = nn.Linear(config.hidden_size, config.tdnn_dim[0])
        self.tdnn = nn.ModuleList(Wav2Vec2TDNNLayer(config, i) for i in range(len(config.tdnn_dim)))
        self.feature_extractor = nn.Linear(config.tdnn_dim[-1] * 2, config.xvector_output_dim)
        self.classifier = nn.Linear(config.xvector_output_dim, config.xvector_output_dim)
        self.objective = Wav2Vec2AMSoftmaxLoss(config)
        self.post_init()

    def _get_tdnn_output_lengths(self, input_lengths: Any) -> Any:
        """Frames left after the TDNN layers, counted as the reference does: kernel sizes only, no dilation."""
        for kernel in self.config.tdnn_kernel:
            input_lengths = input_lengths - kernel + 1
        return input_lengths

    @model_forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        labels: torch.Tensor | None = None,
    ) -> XVectorOutput:
        """``labels`` ``(batch,)`` speaker ids give the AM-softmax loss; ``embeddings`` are the x-vectors."""
        outputs, hidden_states, all_hidden = self._encode(
            input_values, attention_mask, output_attentions, output_hidden_states
        )
        hidden_states = self.projector(hidden_states)
        # A static shape check (it compiles): each TDNN layer eats dilation * (kernel - 1) frames.
        receptive = sum(d * (k - 1) for d, k in zip(self.config.tdnn_dilation, self.config.tdnn_kernel))
        if hidden_states.shape[1] - receptive < 2:
            raise _audio_too_short_to_pool()
        for layer in self.tdnn:
            hidden_states = layer(hidden_states)

        if attention_mask is None:
            mean, std = hidden_states.mean(dim=1), hidden_states.std(dim=1)
        else:
            mean, std = self._pool_real_frames(hidden_states, attention_mask)
        # mean and std over frames -> (batch, 2 * tdnn_dim[-1])
        embeddings = self.feature_extractor(torch.cat([mean, std], dim=-1))
        logits = self.classifier(embeddings)
        loss = self.objective(logits, labels) if labels is not None else None
        return XVectorOutput(
            loss=loss,
            logits=logits,
            embeddings=embeddings,
            hidden_states=all_hidden,
            attentions=outputs.attentions,
        )

    def _pool_real_frames(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (unbiased) std over each example's first ``n`` TDNN frames, ``n`` from its real samples."""
        frames = hidden_states.shape[1]
        lengths = self._get_tdnn_output_lengths(self._get_feat_extract_output_lengths(attention_mask.sum(dim=1)))
        # Without the dilation the count can exceed the frames there are; the reference then uses them all.
        lengths = lengths.to(torch.long).clamp(max=frames)
        # The check reads a tensor value, which a compiled graph cannot branch on: it runs in eager mode only.
        if not torch.compiler.is_compiling() and bool((lengths < 2).any()):
            raise _audio_too_short_to_pool()
        keep = (torch.arange(frames, device=hidden_states.device)[None, :] < lengths[:, None])[..., None]
        count = lengths[:, None].to(hidden_states.dtype)
        mean = hidden_states.masked_fill(~keep, 0.0).sum(dim=1) / count
        centred = (hidden_states - mean[:, None]).masked_fill(~keep, 0.0)
        std = (centred.pow(2).sum(dim=1) / (count - 1)).sqrt()
        return mean, std
