"""Backbones: models that return feature maps of chosen stages, for composite models (MaskFormer, DETR...).

- :class:`BackboneConfigMixin` keeps a config's ``out_features`` (stage names) and ``out_indices`` (positions
  in ``stage_names``) aligned: set one and the other follows; set both and they must agree.
- :class:`BackboneMixin` gives a backbone ``nn.Module`` the same view (``stage_names``, ``out_features``,
  ``out_indices``, ``channels``) read from its config plus the per-stage ``num_features`` the model sets.
- :func:`load_backbone` builds the backbone a composite config asks for: a nested ``backbone_config``, a
  checkpoint named by ``backbone`` (pretrained weights or not), or a ``timm`` model.

This module does not import torch (configs import it); :class:`TimmBackbone` is built on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from plugformers.configuration_utils import ConfigError, PretrainedConfig

__all__ = [
    "BackboneConfigMixin",
    "BackboneMixin",
    "TimmBackbone",  # noqa: F822 (built on first access, see __getattr__)
    "TimmBackboneConfig",
    "load_backbone",
    "verify_backbone_config_arguments",
]


# ----- configs ---------------------------------------------------------------------------------------------


def _as_list(value: Any, name: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be a list, got {value!r}.")
    return list(value)


def _normalise_index(index: Any, n_stages: int, stage_names: list[str]) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise ConfigError(f"out_indices must hold integers, got {index!r}.")
    if not -n_stages <= index < n_stages:
        raise ConfigError(
            f"out_indices entry {index} is out of range for {n_stages} stages (valid: 0..{n_stages - 1} or "
            f"-{n_stages}..-1; stage_names: {stage_names})."
        )
    return index % n_stages


def aligned_out_features_and_indices(
    out_features: Sequence[str] | None, out_indices: Sequence[int] | None, stage_names: Sequence[str]
) -> tuple[list[str], list[int]]:
    """Check ``out_features``/``out_indices`` against ``stage_names`` and fill in whichever is missing.

    Neither given: the last stage. Indices may be negative (counted from the end) and are kept as given,
    like the reference library, so ``config.json`` round-trips unchanged.
    """
    names = list(stage_names)
    if not names:
        raise ConfigError("stage_names must list at least one stage to choose backbone outputs from.")
    features = _as_list(out_features, "out_features")
    indices = _as_list(out_indices, "out_indices")
    if features is not None:
        for feature in features:
            if feature not in names:
                raise ConfigError(
                    f"out_features names an unknown stage {feature!r}; valid stage names: {names}."
                )
        if len(set(features)) != len(features):
            raise ConfigError(f"out_features must not repeat a stage, got {features}.")
        ordered = [n for n in names if n in features]
        if features != ordered:
            raise ConfigError(
                f"out_features must follow the order of stage_names: expected {ordered}, got {features}."
            )
    if indices is not None:
        positive = [_normalise_index(i, len(names), names) for i in indices]
        if len(set(positive)) != len(positive):
            raise ConfigError(f"out_indices must not repeat a stage, got {indices}.")
        if positive != sorted(positive):
            raise ConfigError(f"out_indices must follow the order of stage_names, got {indices}.")
        implied = [names[i] for i in positive]
        if features is not None and features != implied:
            raise ConfigError(
                f"out_features {features} and out_indices {indices} (stages {implied}) name different stages; "
                f"give one of them, or both naming the same stages of {names}."
            )
        features = implied
    elif features is not None:
        indices = [names.index(f) for f in features]
    else:
        features, indices = [names[-1]], [len(names) - 1]
    return features, indices


class BackboneConfigMixin:
    """For configs with ``stage_names``: ``out_features`` and ``out_indices`` that always agree.

    The subclass sets ``self.stage_names`` and then calls :meth:`set_out_features_and_indices`. Both values
    are saved in ``config.json`` under their public names.
    """

    stage_names: list[str]
    _out_features: list[str] | None
    _out_indices: list[int] | None

    def set_out_features_and_indices(
        self, out_features: Sequence[str] | None, out_indices: Sequence[int] | None
    ) -> None:
        """Set both at once: one given derives the other; neither selects the last stage; a mismatch is an error."""
        stage_names = getattr(self, "stage_names", None)
        if stage_names is None:
            raise ConfigError(f"{type(self).__name__} must set stage_names before out_features/out_indices.")
        features, indices = aligned_out_features_and_indices(out_features, out_indices, stage_names)
        object.__setattr__(self, "_out_features", features)
        object.__setattr__(self, "_out_indices", indices)

    # The reference library's name for the same method.
    set_output_features_output_indices = set_out_features_and_indices

    def verify_out_features_out_indices(self) -> None:
        """Raise ConfigError when the stored ``out_features``/``out_indices`` no longer fit ``stage_names``."""
        aligned_out_features_and_indices(
            getattr(self, "_out_features", None), getattr(self, "_out_indices", None), self.stage_names
        )

    @property
    def out_features(self) -> list[str] | None:
        """Names of the stages the backbone returns, in ``stage_names`` order."""
        return getattr(self, "_out_features", None)

    @out_features.setter
    def out_features(self, value: Sequence[str] | None) -> None:
        self.set_out_features_and_indices(value, None)

    @property
    def out_indices(self) -> list[int] | None:
        """Positions of the returned stages in ``stage_names`` (negative counts from the end)."""
        return getattr(self, "_out_indices", None)

    @out_indices.setter
    def out_indices(self, value: Sequence[int] | None) -> None:
        self.set_out_features_and_indices(None, value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_dict()  # type: ignore[misc]
        out["out_features"] = None if self.out_features is None else list(self.out_features)
        out["out_indices"] = None if self.out_indices is None else list(self.out_indices)
        return out


class TimmBackboneConfig(BackboneConfigMixin, PretrainedConfig):
    """Config of :class:`TimmBackbone`: the name of a ``timm`` model and which of its stages to return.

    ``stage_names`` are only known once the timm model is built, so until then ``out_indices`` is kept as
    given (default ``[-1]``, the last stage) and ``out_features`` may stay None.
    """

    model_type = "timm_backbone"

    def __init__(
        self,
        backbone: str | None = None,
        num_channels: int = 3,
        features_only: bool = True,
        use_pretrained_backbone: bool = True,
        out_indices: Sequence[int] | None = None,
        freeze_batch_norm_2d: bool = False,
        output_stride: int | None = None,
        **kwargs: Any,
    ) -> None:
        out_features = kwargs.pop("out_features", None)
        stage_names = kwargs.pop("stage_names", None)
        self.backbone = backbone
        self.num_channels = num_channels
        self.features_only = features_only
        self.use_pretrained_backbone = use_pretrained_backbone
        self.freeze_batch_norm_2d = freeze_batch_norm_2d
        self.output_stride = output_stride
        super().__init__(**kwargs)
        indices = _as_list(out_indices, "out_indices")
        if stage_names is not None:
            self.stage_names = list(stage_names)
            self.set_out_features_and_indices(out_features, indices)
        else:
            object.__setattr__(self, "_out_features", _as_list(out_features, "out_features"))
            object.__setattr__(self, "_out_indices", indices if indices is not None else [-1])

    def set_out_features_and_indices(
        self, out_features: Sequence[str] | None, out_indices: Sequence[int] | None
    ) -> None:
        if getattr(self, "stage_names", None) is None:
            object.__setattr__(self, "_out_features", _as_list(out_features, "out_features"))
            object.__setattr__(self, "_out_indices", _as_list(out_indices, "out_indices"))
            return
        super().set_out_features_and_indices(out_features, out_indices)

    set_output_features_output_indices = set_out_features_and_indices


# ----- backbone modules ------------------------------------------------------------------------------------


class BackboneMixin:
    """Mix into a backbone ``nn.Module`` (before its PreTrainedModel base) whose ``config`` has the mixin above.

    The model sets ``self.num_features`` (channels of every stage, in ``stage_names`` order) and implements
    :meth:`forward` returning a ``BackboneOutput`` whose ``feature_maps`` are the ``out_features`` stages.
    """

    config: Any
    #: Whether ``forward`` can return attentions (False for convolutional backbones).
    has_attentions: bool = True
    num_features: list[int] | None = None

    @property
    def stage_names(self) -> list[str]:
        return list(self.config.stage_names)

    @property
    def out_features(self) -> list[str]:
        return list(self.config.out_features)

    @out_features.setter
    def out_features(self, value: Sequence[str] | None) -> None:
        self.config.out_features = value

    @property
    def out_indices(self) -> list[int]:
        return list(self.config.out_indices)

    @out_indices.setter
    def out_indices(self, value: Sequence[int] | None) -> None:
        self.config.out_indices = value

    @property
    def out_feature_channels(self) -> dict[str, int]:
        """Channels of every stage by name (also stages that are not returned)."""
        if self.num_features is None:
            raise AttributeError(f"{type(self).__name__} did not set num_features (channels of each stage).")
        return dict(zip(self.stage_names, self.num_features))

    @property
    def channels(self) -> list[int]:
        """Channels of each returned feature map, in order."""
        channels = self.out_feature_channels
        return [channels[name] for name in self.out_features]

    def select_feature_maps(self, hidden_states: Sequence[Any]) -> tuple[Any, ...]:
        """Pick the ``out_features`` stages from one hidden state per stage (in ``stage_names`` order)."""
        if len(hidden_states) != len(self.stage_names):
            raise ValueError(
                f"Expected one hidden state per stage ({len(self.stage_names)}), got {len(hidden_states)}."
            )
        wanted = set(self.out_features)
        return tuple(h for name, h in zip(self.stage_names, hidden_states) if name in wanted)

    def forward_with_filtered_kwargs(self, *args: Any, **kwargs: Any) -> Any:
        """Call the backbone, dropping ``output_attentions`` for backbones that have none."""
        if not self.has_attentions:
            kwargs.pop("output_attentions", None)
        return self(*args, **kwargs)  # type: ignore[operator]

    def forward(
        self,
        pixel_values: Any,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward().")


# ----- building a backbone from a composite config ---------------------------------------------------------


def verify_backbone_config_arguments(
    use_timm_backbone: bool = False,
    use_pretrained_backbone: bool = False,
    backbone: str | None = None,
    backbone_config: PretrainedConfig | dict[str, Any] | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> None:
    """Refuse combinations of backbone arguments that cannot be honoured, with a ConfigError saying why."""
    if backbone_config is not None and backbone is not None:
        raise ConfigError(
            f"Give either backbone={backbone!r} (a checkpoint or timm name) or backbone_config, not both."
        )
    if backbone_config is not None and use_timm_backbone:
        raise ConfigError("use_timm_backbone=True needs backbone=<timm model name>, not backbone_config.")
    if backbone_config is not None and backbone_kwargs:
        raise ConfigError(
            "backbone_kwargs apply to a backbone loaded by name; with backbone_config, set those fields on the "
            f"config itself (got backbone_kwargs={backbone_kwargs!r})."
        )
    if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
        raise ConfigError(f"backbone_kwargs must be a dict, got {type(backbone_kwargs).__name__}.")
    if use_timm_backbone and not backbone:
        raise ConfigError("use_timm_backbone=True needs backbone=<timm model name> (one of timm.list_models()).")
    if use_pretrained_backbone and not backbone:
        raise ConfigError(
            "use_pretrained_backbone=True needs backbone=<checkpoint dir or repo id> to load the weights from."
        )
    if backbone is not None and not isinstance(backbone, str):
        raise ConfigError(f"backbone must be a checkpoint path, repo id or timm name, got {backbone!r}.")


def _backbone_config_object(backbone_config: PretrainedConfig | dict[str, Any]) -> PretrainedConfig:
    if isinstance(backbone_config, PretrainedConfig):
        return backbone_config
    if isinstance(backbone_config, dict):
        data = dict(backbone_config)
        model_type = data.pop("model_type", None)
        if not model_type:
            raise ConfigError(
                "backbone_config given as a dict needs a 'model_type' key (the backbone family's, as `plugformers plugins` lists)."
            )
        if model_type == TimmBackboneConfig.model_type:  # a host class, not a plugin family
            return TimmBackboneConfig(**data)
        from plugformers.auto import AutoConfig

        return AutoConfig.for_model(model_type, **data)
    raise ConfigError(f"backbone_config must be a config or a dict, got {type(backbone_config).__name__}.")


def load_backbone(config: PretrainedConfig | SimpleNamespace) -> Any:
    """Build the backbone module that ``config`` describes.

    ``config`` is either a backbone config itself (random weights) or a composite config with the fields
    ``backbone_config``, ``backbone``, ``use_pretrained_backbone``, ``use_timm_backbone`` and
    ``backbone_kwargs`` (missing fields count as unset); the fields are only read, so a ``SimpleNamespace``
    holding them works too.
    """
    if isinstance(config, TimmBackboneConfig):  # its own `backbone` field is a timm name, not a checkpoint
        _import_timm()
        return _timm_backbone_class()(config)
    backbone_config = getattr(config, "backbone_config", None)
    backbone = getattr(config, "backbone", None)
    use_timm = bool(getattr(config, "use_timm_backbone", False))
    use_pretrained = bool(getattr(config, "use_pretrained_backbone", False))
    backbone_kwargs = dict(getattr(config, "backbone_kwargs", None) or {})
    verify_backbone_config_arguments(use_timm, use_pretrained, backbone, backbone_config, backbone_kwargs)

    from plugformers.auto import AutoBackbone, AutoConfig

    if use_timm:
        assert backbone is not None
        _import_timm()  # the missing-package error comes before anything else is built
        kwargs = dict(backbone_kwargs)
        timm_config = TimmBackboneConfig(
            backbone=backbone,
            num_channels=kwargs.pop(
                "num_channels", kwargs.pop("in_chans", getattr(config, "num_channels", 3))
            ),
            features_only=kwargs.pop("features_only", True),
            use_pretrained_backbone=use_pretrained,
            out_indices=kwargs.pop("out_indices", None),
            freeze_batch_norm_2d=kwargs.pop("freeze_batch_norm_2d", False),
            output_stride=kwargs.pop("output_stride", None),
        )
        return _timm_backbone_class()(timm_config, **kwargs)
    if backbone_config is not None:
        nested = _backbone_config_object(backbone_config)
        if isinstance(nested, TimmBackboneConfig):
            return load_backbone(nested)
        return AutoBackbone.from_config(nested)
    if backbone is not None:
        if use_pretrained:
            return AutoBackbone.from_pretrained(backbone, **backbone_kwargs)
        loaded = AutoConfig.from_pretrained(backbone, **backbone_kwargs)
        return AutoBackbone.from_config(loaded)
    if isinstance(config, PretrainedConfig) and isinstance(config, BackboneConfigMixin):
        return AutoBackbone.from_config(config)
    raise ConfigError(
        f"{type(config).__name__} names no backbone: set backbone_config, or backbone=<checkpoint or repo id>."
    )


# ----- timm ------------------------------------------------------------------------------------------------


def _import_timm() -> Any:
    try:
        return importlib.import_module("timm")
    except ImportError as exc:
        raise ImportError(
            "use_timm_backbone=True needs the timm package, which is not installed: run `pip install timm`."
        ) from exc


def _build_timm_backbone_class() -> type:
    """Define TimmBackbone on first use (it subclasses PreTrainedModel, which imports torch)."""
    from plugformers.modeling_outputs import BackboneOutput
    from plugformers.modeling_utils import PreTrainedModel

    class TimmBackbone(BackboneMixin, PreTrainedModel):
        """A ``timm`` model built with ``features_only=True``, behind the backbone interface.

        Weights live under ``_backbone.`` like the reference library's wrapper, so checkpoints match.
        """

        config_class = TimmBackboneConfig
        base_model_prefix = "timm_model"
        main_input_name = "pixel_values"
        has_attentions = False

        def __init__(self, config: TimmBackboneConfig, **kwargs: Any) -> None:
            timm = _import_timm()
            if not config.backbone:
                raise ConfigError(
                    "TimmBackboneConfig.backbone must name a timm model (one of timm.list_models())."
                )
            if not config.features_only:
                raise ConfigError("TimmBackbone only supports features_only=True.")
            super().__init__(config)
            pretrained = kwargs.pop("use_pretrained_backbone", config.use_pretrained_backbone)
            from plugformers.modeling_utils import _init_skipped

            if _init_skipped():
                pretrained = False  # built by from_pretrained: the checkpoint's weights replace timm's anyway
            if config.output_stride is not None:
                kwargs.setdefault("output_stride", config.output_stride)
            out_indices = config.out_indices if config.out_indices is not None else [-1]
            self._backbone = timm.create_model(
                config.backbone,
                pretrained=pretrained,
                features_only=True,
                in_chans=config.num_channels,
                out_indices=tuple(out_indices),
                **kwargs,
            )
            if config.freeze_batch_norm_2d:
                timm.layers.freeze_batch_norm_2d(self._backbone)
            info = self._backbone.feature_info
            stage_names = [stage["module"] for stage in info.info]
            self.num_features = [stage["num_chs"] for stage in info.info]
            config.stage_names = stage_names
            config.set_out_features_and_indices(None, list(info.out_indices))
            self.post_init()

        def _init_weights(self, module: Any) -> None:
            """timm initialises its own modules when it builds them."""

        def forward(
            self,
            pixel_values: Any,
            output_hidden_states: bool | None = None,
            output_attentions: bool | None = None,
            return_dict: bool | None = None,
        ) -> Any:
            if output_attentions:
                raise ValueError("TimmBackbone has no attentions to return (output_attentions=True).")
            if output_hidden_states:
                raise ValueError(
                    "TimmBackbone returns only the out_indices feature maps; ask for every stage through "
                    "out_indices instead of output_hidden_states=True."
                )
            return_dict = self.config.use_return_dict if return_dict is None else return_dict
            feature_maps = tuple(self._backbone(pixel_values))
            output = BackboneOutput(feature_maps=feature_maps, hidden_states=None, attentions=None)
            return output if return_dict else output.to_tuple()

    TimmBackbone.__module__ = __name__
    return TimmBackbone


def _timm_backbone_class() -> type:
    cls = globals().get("TimmBackbone")
    if cls is None:
        cls = _build_timm_backbone_class()
        globals()["TimmBackbone"] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name == "TimmBackbone":
        return _timm_backbone_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
