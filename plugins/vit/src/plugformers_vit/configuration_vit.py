"""`ViTConfig`: the hyper-parameters of a Vision Transformer, saved as ``config.json``.

Defaults describe ViT-Base/16 at 224x224 (the ``google/vit-base-patch16-224`` layout), and the JSON keys are
the reference library's, so a ``config.json`` written by either library loads in the other.
"""

from __future__ import annotations

from typing import Any

from plugformers.configuration_utils import ConfigError, PretrainedConfig

__all__ = ["ViTConfig"]

_SIZE_FIELDS = ("image_size", "patch_size")


def _pair(value: Any, name: str) -> tuple[int, int]:
    """``224`` or ``[224, 320]`` -> ``(height, width)``, refusing anything that is not positive ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"{name} must be an int or a [height, width] pair, got {value!r}.")
        pair = (value[0], value[1])
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{name} must hold positive ints, got {value!r}.")
    return pair


class ViTConfig(PretrainedConfig):
    """Configuration of :class:`~plugformers_vit.modeling_vit.ViTModel` and its heads.

    ``image_size`` and ``patch_size`` are an int (square) or a ``[height, width]`` pair. ``encoder_stride``
    is the upsampling factor of the masked-image-modeling decoder (equal to ``patch_size`` for that head to
    rebuild the input resolution). ``pooler_output_size`` defaults to ``hidden_size``.
    """

    model_type = "vit"

    def __init__(
        self,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        qkv_bias: bool = True,
        encoder_stride: int = 16,
        pooler_output_size: int | None = None,
        pooler_act: str = "tanh",
        **kwargs: Any,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.qkv_bias = qkv_bias
        self.encoder_stride = encoder_stride
        self.pooler_output_size = pooler_output_size if pooler_output_size else hidden_size
        self.pooler_act = pooler_act
        self.validate()
        super().__init__(**kwargs)

    def validate(self) -> None:
        """Refuse values no ViT can be built from, with a message naming the field."""
        for name in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "num_channels",
            "encoder_stride",
            "pooler_output_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"ViTConfig.{name} must be a positive int, got {value!r}.")
        for name in _SIZE_FIELDS:
            _pair(getattr(self, name), name)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"ViTConfig.{name} must be a probability in [0, 1], got {value!r}.")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ConfigError(f"ViTConfig.layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}.")

    @property
    def image_hw(self) -> tuple[int, int]:
        """``image_size`` as ``(height, width)``."""
        return _pair(self.image_size, "image_size")

    @property
    def patch_hw(self) -> tuple[int, int]:
        """``patch_size`` as ``(height, width)``."""
        return _pair(self.patch_size, "patch_size")

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """As the base, but ``image_size``/``patch_size`` may also be ``[height, width]`` lists in the JSON."""
        if not isinstance(config_dict, dict):
            return super().from_dict(config_dict, **kwargs)
        data = dict(config_dict)
        # The base type check compares JSON values with the int defaults; pairs are set after construction.
        pairs = {k: data.pop(k) for k in _SIZE_FIELDS if isinstance(data.get(k), (list, tuple))}
        result = super().from_dict(data, **kwargs)
        config = result[0] if isinstance(result, tuple) else result
        if pairs:
            for key, value in pairs.items():
                if key not in kwargs:  # an explicit override wins over the file
                    setattr(config, key, list(value))
            config.validate()
        return result
