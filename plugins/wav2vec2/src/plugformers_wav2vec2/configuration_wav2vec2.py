"""`Wav2Vec2Config`: the hyper-parameters of a Wav2Vec2 speech encoder (conv feature encoder + transformer).

Field names, defaults and the ``config.json`` layout follow the reference library so that checkpoints
load both ways. This module does not import torch.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

from plugformers.configuration_utils import ConfigError, PretrainedConfig

__all__ = ["Wav2Vec2Config"]

_NORMS = ("group", "layer")
_CTC_REDUCTIONS = ("sum", "mean", "none")


def _int_list(name: str, value: Sequence[int]) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be a list of positive ints, got {value!r}.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{name} must be a list of positive ints, got {list(value)!r}.")
        out.append(int(v))
    return out


class Wav2Vec2Config(PretrainedConfig):
    """Configuration of Wav2Vec2 models.

    The feature encoder is a stack of 1-D convolutions (``conv_dim``/``conv_kernel``/``conv_stride``,
    normalised per ``feat_extract_norm``); the transformer follows either the post-norm layout of the base
    models or the pre-norm layout (``do_stable_layer_norm=True``) of the large ones. The pretraining fields
    (codevectors, negatives) configure :class:`Wav2Vec2ForPreTraining` and the ``tdnn_*`` / ``xvector_*``
    fields :class:`Wav2Vec2ForXVector`.
    """

    model_type = "wav2vec2"

    def __init__(
        self,
        vocab_size: int | None = 32,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout: float = 0.1,
        activation_dropout: float = 0.1,
        attention_dropout: float = 0.1,
        feat_proj_dropout: float = 0.0,
        feat_quantizer_dropout: float = 0.0,
        final_dropout: float = 0.1,
        layerdrop: float = 0.1,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-5,
        feat_extract_norm: str = "group",
        feat_extract_activation: str = "gelu",
        conv_dim: Sequence[int] = (512, 512, 512, 512, 512, 512, 512),
        conv_stride: Sequence[int] = (5, 2, 2, 2, 2, 2, 2),
        conv_kernel: Sequence[int] = (10, 3, 3, 3, 3, 2, 2),
        conv_bias: bool = False,
        num_conv_pos_embeddings: int = 128,
        num_conv_pos_embedding_groups: int = 16,
        do_stable_layer_norm: bool = False,
        apply_spec_augment: bool = True,
        mask_time_prob: float = 0.05,
        mask_time_length: int = 10,
        mask_time_min_masks: int = 2,
        mask_feature_prob: float = 0.0,
        mask_feature_length: int = 10,
        mask_feature_min_masks: int = 0,
        num_codevectors_per_group: int = 320,
        num_codevector_groups: int = 2,
        contrastive_logits_temperature: float = 0.1,
        num_negatives: int = 100,
        codevector_dim: int = 256,
        proj_codevector_dim: int = 256,
        diversity_loss_weight: float = 0.1,
        ctc_loss_reduction: str = "sum",
        ctc_zero_infinity: bool = False,
        use_weighted_layer_sum: bool = False,
        classifier_proj_size: int = 256,
        tdnn_dim: Sequence[int] = (512, 512, 512, 512, 1500),
        tdnn_kernel: Sequence[int] = (5, 3, 3, 1, 1),
        tdnn_dilation: Sequence[int] = (1, 2, 3, 1, 1),
        xvector_output_dim: int = 512,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        add_adapter: bool = False,
        adapter_kernel_size: int = 3,
        adapter_stride: int = 2,
        num_adapter_layers: int = 3,
        output_hidden_size: int | None = None,
        adapter_attn_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Derived from conv_dim; accepted (and ignored) so that a saved config.json loads back.
        kwargs.pop("num_feat_extract_layers", None)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout = hidden_dropout
        self.activation_dropout = activation_dropout
        self.attention_dropout = attention_dropout
        self.feat_proj_dropout = feat_proj_dropout
        self.feat_quantizer_dropout = feat_quantizer_dropout
        self.final_dropout = final_dropout
        self.layerdrop = layerdrop
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.feat_extract_norm = feat_extract_norm
        self.feat_extract_activation = feat_extract_activation
        self.conv_dim = _int_list("conv_dim", conv_dim)
        self.conv_stride = _int_list("conv_stride", conv_stride)
        self.conv_kernel = _int_list("conv_kernel", conv_kernel)
        self.conv_bias = conv_bias
        self.num_conv_pos_embeddings = num_conv_pos_embeddings
        self.num_conv_pos_embedding_groups = num_conv_pos_embedding_groups
        self.num_feat_extract_layers = len(self.conv_dim)
        self.do_stable_layer_norm = do_stable_layer_norm
        self.apply_spec_augment = apply_spec_augment
        self.mask_time_prob = mask_time_prob
        self.mask_time_length = mask_time_length
        self.mask_time_min_masks = mask_time_min_masks
        self.mask_feature_prob = mask_feature_prob
        self.mask_feature_length = mask_feature_length
        self.mask_feature_min_masks = mask_feature_min_masks
        self.num_codevectors_per_group = num_codevectors_per_group
        self.num_codevector_groups = num_codevector_groups
        self.contrastive_logits_temperature = contrastive_logits_temperature
        self.num_negatives = num_negatives
        self.codevector_dim = codevector_dim
        self.proj_codevector_dim = proj_codevector_dim
        self.diversity_loss_weight = diversity_loss_weight
        self.ctc_loss_reduction = ctc_loss_reduction
        self.ctc_zero_infinity = ctc_zero_infinity
        self.use_weighted_layer_sum = use_weighted_layer_sum
        self.classifier_proj_size = classifier_proj_size
        self.tdnn_dim = _int_list("tdnn_dim", tdnn_dim)
        self.tdnn_kernel = _int_list("tdnn_kernel", tdnn_kernel)
        self.tdnn_dilation = _int_list("tdnn_dilation", tdnn_dilation)
        self.xvector_output_dim = xvector_output_dim
        self.add_adapter = add_adapter
        self.adapter_kernel_size = adapter_kernel_size
        self.adapter_stride = adapter_stride
        self.num_adapter_layers = num_adapter_layers
        # Unset (None or 0, as the reference reads it) means the transformer width.
        self.output_hidden_size = output_hidden_size or hidden_size
        self.adapter_attn_dim = adapter_attn_dim
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
        self._validate()

    def _validate(self) -> None:
        if not (len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel)):
            raise ConfigError(
                "conv_dim, conv_stride and conv_kernel must have one entry per feature-encoder layer, got "
                f"{len(self.conv_dim)}, {len(self.conv_stride)} and {len(self.conv_kernel)} entries."
            )
        if self.feat_extract_norm not in _NORMS:
            raise ConfigError(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}.")
        if self.ctc_loss_reduction not in _CTC_REDUCTIONS:
            raise ConfigError(
                f"ctc_loss_reduction must be one of {_CTC_REDUCTIONS}, got {self.ctc_loss_reduction!r}."
            )
        # How hidden_size splits over attention heads and convolution groups, and the TDNN layers of the x-vector
        # head, are checked when a model is built: the reference accepts such a config and refuses the model.
        for name in ("num_attention_heads", "num_conv_pos_embedding_groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, got {value!r}.")
        for name in ("mask_time_prob", "mask_feature_prob", "layerdrop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value!r}.")

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Audio samples per output frame of the feature encoder (the product of the conv strides)."""
        return functools.reduce(operator.mul, self.conv_stride, 1)

    @property
    def receptive_field(self) -> int:
        """The fewest audio samples the feature encoder needs to produce one frame."""
        need = 1
        for kernel, stride in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            need = (need - 1) * stride + kernel
        return need
