"""Configurations of MaskFormer and of its DETR-style transformer decoder.

``MaskFormerConfig`` nests two configurations, both saved inside its ``config.json`` exactly where the
reference library puts them: ``backbone_config`` (any model type a plugin registers as a backbone, ResNet-50
by default) and ``decoder_config`` (a ``MaskFormerDetrConfig``, model type ``"detr"``).
"""

from __future__ import annotations

from typing import Any

from plugformers.auto import AutoConfig
from plugformers.configuration_utils import ConfigError, PretrainedConfig
from plugformers.utils.logging import get_logger

__all__ = ["MaskFormerConfig", "MaskFormerDetrConfig"]

logger = get_logger(__name__)

# The ResNet stages MaskFormer feeds to its feature pyramid when it picks the backbone itself.
_ALL_RESNET_STAGES = ["stage1", "stage2", "stage3", "stage4"]


def _default_detr_backbone(num_channels: int) -> dict[str, Any]:
    """The timm backbone description a DETR config carries by default (unused by MaskFormer, kept for the file format)."""
    return {
        "_name_or_path": "",
        "architectures": None,
        "backbone": "resnet50",
        "chunk_size_feed_forward": 0,
        "dtype": None,
        "features_only": True,
        "freeze_batch_norm_2d": False,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "is_encoder_decoder": False,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "model_type": "timm_backbone",
        "num_channels": num_channels,
        "out_features": None,
        "out_indices": [1, 2, 3, 4],
        "output_attentions": False,
        "output_hidden_states": False,
        "output_stride": None,
        "problem_type": None,
        "return_dict": True,
        "use_pretrained_backbone": False,
    }


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive int, got {value!r}.")


def _check_non_negative(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}.")


class MaskFormerDetrConfig(PretrainedConfig):
    """Configuration of MaskFormer's transformer decoder, in the layout of a DETR configuration.

    Only the decoder fields (``d_model``, ``decoder_layers``, ``decoder_attention_heads``, ``decoder_ffn_dim``,
    ``num_queries``, dropouts, ``activation_function``) shape the MaskFormer model, and ``auxiliary_loss``,
    which makes every decoder layer read the normalised output of the one before; ``init_std`` is the spread of
    the decoder's random weights (all as in the reference library). The encoder, matcher and box fields are
    kept so that the ``decoder_config`` saved by either library round-trips unchanged.
    """

    model_type = "detr"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "encoder_attention_heads",
        "num_hidden_layers": "encoder_layers",
    }

    def __init__(
        self,
        backbone_config: dict[str, Any] | PretrainedConfig | None = None,
        num_channels: int = 3,
        num_queries: int = 100,
        encoder_layers: int = 6,
        encoder_ffn_dim: int = 2048,
        encoder_attention_heads: int = 8,
        decoder_layers: int = 6,
        decoder_ffn_dim: int = 2048,
        decoder_attention_heads: int = 8,
        encoder_layerdrop: float = 0.0,
        decoder_layerdrop: float = 0.0,
        is_encoder_decoder: bool = True,
        activation_function: str = "relu",
        d_model: int = 256,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        init_std: float = 0.02,
        init_xavier_std: float = 1.0,
        auxiliary_loss: bool = False,
        position_embedding_type: str = "sine",
        dilation: bool = False,
        class_cost: int = 1,
        bbox_cost: int = 5,
        giou_cost: int = 2,
        mask_loss_coefficient: int = 1,
        dice_loss_coefficient: int = 1,
        bbox_loss_coefficient: int = 5,
        giou_loss_coefficient: int = 2,
        eos_coefficient: float = 0.1,
        **kwargs: Any,
    ) -> None:
        # Keyword arguments the reference accepts to describe a timm backbone; they only shape the default below.
        timm_name = kwargs.pop("backbone", None)
        kwargs.pop("use_timm_backbone", None)
        kwargs.pop("use_pretrained_backbone", None)
        kwargs.pop("backbone_kwargs", None)
        for name, value in (
            ("num_queries", num_queries),
            ("decoder_layers", decoder_layers),
            ("decoder_ffn_dim", decoder_ffn_dim),
            ("decoder_attention_heads", decoder_attention_heads),
            ("d_model", d_model),
        ):
            _check_positive_int(name, value)
        for name, rate in (
            ("dropout", dropout),
            ("attention_dropout", attention_dropout),
            ("activation_dropout", activation_dropout),
        ):
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{name} must be a probability between 0 and 1, got {rate!r}.")
        if backbone_config is None:
            backbone_config = _default_detr_backbone(num_channels)
            if timm_name:
                backbone_config["backbone"] = timm_name
            if dilation:
                backbone_config["output_stride"] = 16
        elif not isinstance(backbone_config, (dict, PretrainedConfig)):
            raise ConfigError(f"backbone_config must be a dict or a config, got {type(backbone_config).__name__}.")
        self.backbone_config = backbone_config
        self.num_channels = num_channels
        self.num_queries = num_queries
        self.encoder_layers = encoder_layers
        self.encoder_ffn_dim = encoder_ffn_dim
        self.encoder_attention_heads = encoder_attention_heads
        self.decoder_layers = decoder_layers
        self.decoder_ffn_dim = decoder_ffn_dim
        self.decoder_attention_heads = decoder_attention_heads
        self.encoder_layerdrop = encoder_layerdrop
        self.decoder_layerdrop = decoder_layerdrop
        self.activation_function = activation_function
        self.d_model = d_model
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.init_std = init_std
        self.init_xavier_std = init_xavier_std
        self.auxiliary_loss = auxiliary_loss
        self.position_embedding_type = position_embedding_type
        self.dilation = dilation
        self.class_cost = class_cost
        self.bbox_cost = bbox_cost
        self.giou_cost = giou_cost
        self.mask_loss_coefficient = mask_loss_coefficient
        self.dice_loss_coefficient = dice_loss_coefficient
        self.bbox_loss_coefficient = bbox_loss_coefficient
        self.giou_loss_coefficient = giou_loss_coefficient
        self.eos_coefficient = eos_coefficient
        super().__init__(is_encoder_decoder=is_encoder_decoder, **kwargs)


def _auto_config(model_type: str, what: str, **fields: Any) -> PretrainedConfig:
    """Build a registered config from its model type, naming ``what`` and the type when no plugin provides it."""
    if model_type == "timm_backbone":
        from plugformers.backbone_utils import TimmBackboneConfig

        return TimmBackboneConfig(**fields)
    try:
        return AutoConfig.for_model(model_type, **fields)
    except (KeyError, ValueError, ImportError) as exc:
        if isinstance(exc, ConfigError) and "model_type" not in str(exc) and "plugin" not in str(exc):
            raise  # the type exists but a field is wrong: keep the config's own message
        raise ConfigError(
            f"MaskFormer {what} has model_type {model_type!r}, which no installed plugformers plugin provides "
            f"({exc}). Install the plugin for {model_type!r} or choose another backbone."
        ) from exc


def _default_backbone_config() -> PretrainedConfig:
    return _auto_config("resnet", "backbone_config", out_features=list(_ALL_RESNET_STAGES))


class MaskFormerConfig(PretrainedConfig):
    """Configuration of MaskFormer: a backbone, a feature-pyramid pixel decoder and a DETR-style query decoder.

    The backbone is chosen, at most one way, through ``backbone_config`` (a config object or a dict with
    ``model_type``), through ``backbone`` (a checkpoint folder or Hub repo whose config is read now;
    ``use_pretrained_backbone=True`` also loads its weights when the model is built), or through
    ``backbone="<timm name>"`` with ``use_timm_backbone=True``. With none of them the backbone is a randomly
    initialised ResNet-50 feeding all four of its stages to the pyramid. (The reference library defaults to a
    Swin backbone, which no plugformers plugin provides.) When ``backbone_config`` is given, the other backbone
    fields are ignored with a warning, as the reference ignores them, so its files load here unchanged.
    """

    model_type = "maskformer"
    attribute_map = {"hidden_size": "mask_feature_size"}
    # The backbone may be of any registered model type (AutoConfig resolves it); the decoder is always DETR-style.
    sub_configs = {"backbone_config": AutoConfig, "decoder_config": MaskFormerDetrConfig}
    backbones_supported = ["resnet", "swin"]
    decoders_supported = ["detr"]

    def __init__(
        self,
        fpn_feature_size: int = 256,
        mask_feature_size: int = 256,
        no_object_weight: float = 0.1,
        use_auxiliary_loss: bool = False,
        backbone_config: dict[str, Any] | PretrainedConfig | None = None,
        decoder_config: dict[str, Any] | PretrainedConfig | None = None,
        init_std: float = 0.02,
        init_xavier_std: float = 1.0,
        dice_weight: float = 1.0,
        cross_entropy_weight: float = 1.0,
        mask_weight: float = 20.0,
        output_auxiliary_logits: bool | None = None,
        backbone: str | None = None,
        use_pretrained_backbone: bool = False,
        use_timm_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Kept as written but unused: the queries are decoder_config.num_queries (see the num_queries property).
        top_level_queries = kwargs.pop("num_queries", None)
        # Derived from the decoder config below; present in files both libraries write.
        kwargs.pop("num_attention_heads", None)
        kwargs.pop("num_hidden_layers", None)

        _check_positive_int("fpn_feature_size", fpn_feature_size)
        _check_positive_int("mask_feature_size", mask_feature_size)
        if fpn_feature_size % 32 != 0:
            raise ConfigError(
                f"fpn_feature_size must be a multiple of 32 (the pixel decoder normalises in 32 groups), "
                f"got {fpn_feature_size}."
            )
        for name, value in (
            ("no_object_weight", no_object_weight),
            ("dice_weight", dice_weight),
            ("cross_entropy_weight", cross_entropy_weight),
            ("mask_weight", mask_weight),
        ):
            _check_non_negative(name, value)
        if backbone_config is not None:
            # The reference builds the backbone from backbone_config alone and drops these fields.
            ignored = {
                "backbone": backbone,
                "use_pretrained_backbone": use_pretrained_backbone,
                "use_timm_backbone": use_timm_backbone,
                "backbone_kwargs": backbone_kwargs,
            }
            ignored = {name: value for name, value in ignored.items() if value}
            if ignored:
                logger.warning(
                    "MaskFormerConfig: %s ignored: the backbone is built from backbone_config (as in the "
                    "reference library). Give the backbone one way only.",
                    ", ".join(f"{name}={value!r}" for name, value in ignored.items()),
                )
            backbone, use_pretrained_backbone, use_timm_backbone, backbone_kwargs = None, False, False, None
        if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
            raise ConfigError(f"backbone_kwargs must be a dict, got {type(backbone_kwargs).__name__}.")

        backbone_config = self._resolve_backbone(
            backbone_config, backbone, use_pretrained_backbone, use_timm_backbone, dict(backbone_kwargs or {})
        )
        decoder_config = self._resolve_decoder(decoder_config)

        self.backbone_config = backbone_config
        self.decoder_config = decoder_config
        self.fpn_feature_size = fpn_feature_size
        self.mask_feature_size = mask_feature_size
        self.no_object_weight = no_object_weight
        self.use_auxiliary_loss = use_auxiliary_loss
        self.init_std = init_std
        self.init_xavier_std = init_xavier_std
        self.dice_weight = dice_weight
        self.cross_entropy_weight = cross_entropy_weight
        self.mask_weight = mask_weight
        self.output_auxiliary_logits = output_auxiliary_logits
        # Where to load pretrained backbone weights from when the model is built. Private (not saved): a saved
        # MaskFormer checkpoint holds the backbone weights itself, as in the reference library's files.
        self._pretrained_backbone: str | None = (
            backbone if backbone is not None and use_pretrained_backbone and not use_timm_backbone else None
        )
        # The reference stores these two copies of decoder fields at the top level.
        self.num_attention_heads = decoder_config.encoder_attention_heads
        self.num_hidden_layers = decoder_config.encoder_layers
        super().__init__(**kwargs)
        if top_level_queries is not None:
            if top_level_queries != decoder_config.num_queries:
                logger.warning(
                    "MaskFormerConfig: the top-level num_queries=%r is not used; the model has "
                    "decoder_config.num_queries=%r queries (as in the reference library). Set "
                    "decoder_config.num_queries to change that.",
                    top_level_queries,
                    decoder_config.num_queries,
                )
            self.num_queries = top_level_queries

    @property
    def num_queries(self) -> Any:
        """A top-level ``num_queries`` when the config has one, else ``decoder_config.num_queries``.

        The model always has ``decoder_config.num_queries`` queries. A top-level value (some files carry one) is
        kept and saved back but builds nothing, as in the reference library, so that the same ``config.json``
        gives the same model, and the reference's weights load, in both libraries.
        """
        return self.__dict__.get("num_queries", self.decoder_config.num_queries)

    @num_queries.setter
    def num_queries(self, value: Any) -> None:
        self.__dict__["num_queries"] = value

    @staticmethod
    def _resolve_backbone(
        backbone_config: Any,
        backbone: str | None,
        use_pretrained_backbone: bool,
        use_timm_backbone: bool,
        backbone_kwargs: dict[str, Any],
    ) -> PretrainedConfig:
        if use_pretrained_backbone and not backbone:
            raise ConfigError(
                "use_pretrained_backbone=True needs backbone='<checkpoint folder or Hub repo id>' to load weights from."
            )
        if use_timm_backbone:
            if not backbone:
                raise ConfigError("use_timm_backbone=True needs backbone='<timm model name>', e.g. 'resnet50'.")
            fields: dict[str, Any] = {
                "backbone": backbone,
                "use_pretrained_backbone": bool(use_pretrained_backbone),
                "features_only": True,
                "out_indices": [1, 2, 3, 4],
            }
            fields.update(backbone_kwargs)
            return _auto_config("timm_backbone", "backbone_config", **fields)
        if backbone is not None:
            if not isinstance(backbone, str) or not backbone:
                raise ConfigError(f"backbone must be a checkpoint folder or Hub repo id, got {backbone!r}.")
            config_dict, _ = PretrainedConfig.get_config_dict(backbone)
            model_type = config_dict.pop("model_type", None)
            if not model_type:
                raise ConfigError(f"The config of backbone {backbone!r} has no model_type.")
            # A saved backbone config holds both out_features and out_indices; backbone_kwargs naming only one
            # of them re-selects the stages (as from_pretrained(..., out_indices=...) does), so the other is
            # derived again instead of contradicting it.
            if "out_indices" in backbone_kwargs and "out_features" not in backbone_kwargs:
                config_dict.pop("out_features", None)
            if "out_features" in backbone_kwargs and "out_indices" not in backbone_kwargs:
                config_dict.pop("out_indices", None)
            config_dict.update(backbone_kwargs)
            return _auto_config(str(model_type), f"backbone {backbone!r}", **config_dict)
        if backbone_config is None:
            return _default_backbone_config()
        if isinstance(backbone_config, PretrainedConfig):
            return backbone_config
        if isinstance(backbone_config, dict):
            fields = dict(backbone_config)
            model_type = fields.pop("model_type", None)
            if not model_type:
                raise ConfigError("backbone_config given as a dict needs a 'model_type' key (e.g. 'resnet').")
            for key in ("transformers_version", "plugformers_version"):
                fields.pop(key, None)
            return _auto_config(str(model_type), "backbone_config", **fields)
        raise ConfigError(f"backbone_config must be a config or a dict, got {type(backbone_config).__name__}.")

    @staticmethod
    def _resolve_decoder(decoder_config: Any) -> MaskFormerDetrConfig:
        if decoder_config is None:
            return MaskFormerDetrConfig()
        if isinstance(decoder_config, MaskFormerDetrConfig):
            return decoder_config
        if isinstance(decoder_config, PretrainedConfig):
            model_type = decoder_config.model_type
            fields = decoder_config.to_dict()
        elif isinstance(decoder_config, dict):
            fields = dict(decoder_config)
            model_type = fields.get("model_type", "detr")
        else:
            raise ConfigError(f"decoder_config must be a config or a dict, got {type(decoder_config).__name__}.")
        if model_type != "detr":
            raise ConfigError(
                f"MaskFormer's decoder_config must have model_type 'detr' (the only supported transformer "
                f"decoder), got {model_type!r}."
            )
        for key in ("model_type", "transformers_version", "plugformers_version"):
            fields.pop(key, None)
        return MaskFormerDetrConfig(**fields)
