"""Auto classes: pick the right family class from a checkpoint's files or a config.

Every lookup goes through the plugin registry (:mod:`plugformers.plugins`), so the Auto classes know
exactly the families that installed plugins (or ``register`` calls) provide. Code shipped inside a
checkpoint (``auto_map``) is only used with ``trust_remote_code=True``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, TypeGuard

from plugformers.configuration_utils import ConfigError, PretrainedConfig, load_json_file
from plugformers.peft_integration import adapter_base_model
from plugformers.plugins import _ref_name, get_registry, import_object
from plugformers.utils.hub import HUB_KWARGS, HubOptions, resolve_file
from plugformers.vocabulary import (
    AUTO_MODEL_CLASSES,
    CONFIG_NAME,
    PREPROCESSOR_CONFIG_NAME,
    PROCESSOR_CONFIG_NAME,
    TOKENIZER_CONFIG_FILE,
    all_auto_class_names,
)

__all__ = list(all_auto_class_names())

TOKENIZER_CONFIG = TOKENIZER_CONFIG_FILE
PREPROCESSOR_CONFIG = PREPROCESSOR_CONFIG_NAME
PROCESSOR_CONFIG = PROCESSOR_CONFIG_NAME


def _no_instances(cls: type) -> None:
    raise OSError(f"{cls.__name__} is not meant to be instantiated; use {cls.__name__}.from_pretrained(...).")


def _remote_class(
    auto_map: dict[str, Any], key: str, source: str, trust_remote_code: bool | None, hub: HubOptions
) -> Any:
    """The class ``auto_map[key]`` names, imported from the repository only if the user trusts it.

    Raises :class:`RemoteCodeError` when the entry names no class (``None`` or a list of ``None``).
    """
    from plugformers.dynamic_module_utils import (
        RemoteCodeError,
        auto_map_files,
        get_class_from_dynamic_module,
        resolve_trust_remote_code,
    )

    ref = auto_map.get(key)
    if isinstance(ref, (list, tuple)):
        ref = next((r for r in ref if r), None)
    if ref is None:
        raise RemoteCodeError(f"The auto_map entry {key!r} of {source!r} names no class.")
    resolve_trust_remote_code(trust_remote_code, source, auto_map_files(auto_map))
    return get_class_from_dynamic_module(ref, source, **hub.as_kwargs())


def _wants_remote(
    auto_map: Any, key: str, has_local: bool, trust_remote_code: bool | None
) -> TypeGuard[dict[str, Any]]:
    """Whether to load ``key`` from the repository's code; True only when ``auto_map`` is a dict holding ``key``."""
    if not isinstance(auto_map, dict) or key not in auto_map:
        return False
    if trust_remote_code:
        return True
    if has_local:
        return False  # an installed plugin serves this type: use it, run nothing from the repo
    return True  # no local class: resolve_trust_remote_code raises a clear error


def _family_for_registration(config_class: type[PretrainedConfig]) -> tuple[Any, str]:
    """``(registry, model_type)`` for ``register`` calls, registering ``config_class`` itself if still unknown."""
    model_type = config_class.model_type
    if not model_type:
        raise ValueError(f"{config_class.__name__} needs a model_type to be registered.")
    registry = get_registry()
    if model_type not in registry.families:
        registry.register_runtime(model_type, "config", config_class, exist_ok=True)
    return registry, model_type


# ----- configs -----------------------------------------------------------------------------------------


class AutoConfig:
    """Builds the configuration class registered for a checkpoint's ``model_type``."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @staticmethod
    def config_class_for(model_type: str) -> type[PretrainedConfig]:
        spec = get_registry().family(model_type) if isinstance(model_type, str) else None
        if spec is None:
            raise ConfigError(f"model_type must be a string, got {model_type!r}.")
        return import_object(spec.config)  # type: ignore[no-any-return]

    @classmethod
    def for_model(cls, model_type: str, *args: Any, **kwargs: Any) -> PretrainedConfig:
        """A default config of ``model_type`` with ``kwargs`` applied: ``AutoConfig.for_model("my-family", hidden_size=64)``."""
        try:
            config_class = cls.config_class_for(model_type)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return config_class(*args, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> PretrainedConfig:
        model_type = config_dict.get("model_type")
        if not model_type:
            raise ConfigError("The config dict has no 'model_type', so the family cannot be chosen.")
        try:
            config_class = cls.config_class_for(model_type)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        result = config_class.from_dict(config_dict, **kwargs)
        return result  # type: ignore[return-value]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Load ``config.json`` from a folder, a JSON file or a Hub repo and build the right config class."""
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        source = os.fspath(pretrained_model_name_or_path)
        hub = HubOptions.pop_from(kwargs)
        path = source if os.path.isfile(source) else resolve_file(source, CONFIG_NAME, **hub.as_kwargs())
        assert path is not None  # resolve_file raises when a required file is missing
        data = load_json_file(path)
        model_type = data.get("model_type")
        registry = get_registry()
        has_local = isinstance(model_type, str) and model_type in registry.families
        auto_map = data.get("auto_map")
        kwargs["_source"] = path
        if _wants_remote(auto_map, "AutoConfig", has_local, trust_remote_code):
            config_class = _remote_class(auto_map, "AutoConfig", source, trust_remote_code, hub)
        else:
            if not model_type:
                raise ConfigError(
                    f"{path!r} has no 'model_type' field, so plugformers cannot tell which family it belongs to. "
                    "Add \"model_type\" (one of the types `plugformers plugins` lists) or load it with the family's config class."
                )
            if not isinstance(model_type, str):
                raise ConfigError(f"{path!r}: field 'model_type' must be a string, got {model_type!r}.")
            try:
                config_class = cls.config_class_for(model_type)
            except KeyError as exc:
                raise ValueError(f"{path!r}: {exc.args[0]}") from None
        result = config_class.from_dict(data, **kwargs)
        config = result[0] if isinstance(result, tuple) else result
        if not config.name_or_path:
            config.name_or_path = source
        return result

    @staticmethod
    def register(model_type: str, config: type[PretrainedConfig], exist_ok: bool = False) -> None:
        """Make ``model_type`` build ``config`` (a PretrainedConfig subclass whose ``model_type`` matches)."""
        if not (isinstance(config, type) and issubclass(config, PretrainedConfig)):
            raise TypeError(f"AutoConfig.register needs a PretrainedConfig subclass, got {config!r}.")
        if getattr(config, "model_type", None) != model_type:
            raise ValueError(
                f"The key passed to AutoConfig.register ({model_type!r}) must equal the config's model_type "
                f"({config.model_type!r}); set `model_type = {model_type!r}` on {config.__name__}."
            )
        get_registry().register_runtime(model_type, "config", config, exist_ok=exist_ok)


# ----- models ------------------------------------------------------------------------------------------


class _BaseAutoModelClass:
    """Shared logic of AutoModel / AutoModelFor...: one registry key per class."""

    _key: ClassVar[str] = "AutoModel"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _no_instances(type(self))

    @classmethod
    def _model_class_for(cls, config: PretrainedConfig) -> type:
        registry = get_registry()
        ref = registry.model_for_config_class(type(config), cls._key)
        if ref is not None:
            return import_object(ref)  # type: ignore[no-any-return]
        spec = registry.family_for_config_class(type(config))
        model_type = getattr(config, "model_type", "") or ""
        if spec is None and model_type in registry.families:
            owner = registry.families[model_type]
            raise ValueError(
                f"{cls.__name__} has no model for {type(config).__module__}.{type(config).__qualname__}: its "
                f"model_type {model_type!r} belongs to {_ref_name(owner.config)} (plugin {owner.plugin!r}), "
                f"which this config class is not. Register one with {cls.__name__}.register({type(config).__name__}, "
                "YourModel), or load the checkpoint's own code with trust_remote_code=True."
            )
        if spec is None:
            raise ValueError(registry.unknown_type_message(model_type or type(config).__name__))
        available = ", ".join(sorted(spec.models)) or "none"
        raise ValueError(
            f"{cls.__name__} has no model for {type(config).__name__} (model_type {spec.model_type!r}). "
            f"Auto classes that support it: {available}."
        )

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs: Any) -> Any:
        """A model with random weights for ``config``."""
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        auto_map = getattr(config, "auto_map", None)
        if isinstance(auto_map, dict) and cls._key in auto_map and trust_remote_code:
            source = config.name_or_path
            model_class = _remote_class(auto_map, cls._key, source, trust_remote_code, HubOptions())
        else:
            model_class = cls._model_class_for(config)
        return model_class._from_config(config, **kwargs)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str] | None, *model_args: Any, **kwargs: Any
    ) -> Any:
        """Load the right model class for the checkpoint's config, with its weights.

        Keywords that name config fields go to the config; ``dtype`` / ``torch_dtype`` go to both; all
        other loading options (``device_map``, ``state_dict``, ``output_loading_info``, ...) reach the
        model's ``from_pretrained``. ``from_pretrained(None, config=config, state_dict=tensors)`` works too.
        """
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        config = kwargs.pop("config", None)
        if pretrained_model_name_or_path is None and not isinstance(config, PretrainedConfig):
            raise ValueError("from_pretrained(None, ...) needs config= (a config object) and state_dict=.")
        source = "" if pretrained_model_name_or_path is None else os.fspath(pretrained_model_name_or_path)
        # AutoConfig consumes every hub keyword; the weights need the same ones (force_download included).
        hub_kwargs: dict[str, Any] = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        if not isinstance(config, PretrainedConfig):
            result = AutoConfig.from_pretrained(
                config if config is not None else adapter_base_model(source, HubOptions.pop_from(dict(hub_kwargs))),
                trust_remote_code=trust_remote_code,
                return_unused_kwargs=True,
                **kwargs,
            )
            config, kwargs = result
            kwargs.update(hub_kwargs)
        auto_map = getattr(config, "auto_map", None)
        registry = get_registry()
        has_local = registry.model_for_config_class(type(config), cls._key) is not None
        if _wants_remote(auto_map, cls._key, has_local, trust_remote_code):
            hub = HubOptions.pop_from(dict(hub_kwargs))
            model_class = _remote_class(auto_map, cls._key, source, trust_remote_code, hub)
        else:
            model_class = cls._model_class_for(config)
        path = None if pretrained_model_name_or_path is None else source
        return model_class.from_pretrained(path, *model_args, config=config, **kwargs)

    @classmethod
    def register(cls, config_class: type[PretrainedConfig], model_class: type, exist_ok: bool = False) -> None:
        """Make this Auto class build ``model_class`` for configs of type ``config_class``."""
        if not (isinstance(config_class, type) and issubclass(config_class, PretrainedConfig)):
            raise TypeError(f"{cls.__name__}.register needs a PretrainedConfig subclass first, got {config_class!r}.")
        declared = getattr(model_class, "config_class", None)
        if declared is not None and declared is not PretrainedConfig and declared is not config_class:
            raise ValueError(
                f"{model_class.__name__}.config_class is {declared.__name__}, but it is being registered for "
                f"{config_class.__name__}; they must match (set `config_class = {config_class.__name__}`)."
            )
        if not config_class.model_type:
            raise ValueError(f"{config_class.__name__} needs a model_type to be registered.")
        get_registry().register_model_for_config_class(config_class, cls._key, model_class, exist_ok=exist_ok)


def _auto_model(name: str) -> type[_BaseAutoModelClass]:
    entry = AUTO_MODEL_CLASSES[name]
    return type(name, (_BaseAutoModelClass,), {"_key": name, "__doc__": entry.description, "__module__": __name__})


# One class per entry of the vocabulary; `from plugformers.auto import AutoModelForX` finds them here.
_MODEL_AUTO_CLASSES: dict[str, type[_BaseAutoModelClass]] = {name: _auto_model(name) for name in AUTO_MODEL_CLASSES}
globals().update(_MODEL_AUTO_CLASSES)


def __getattr__(name: str) -> type[_BaseAutoModelClass]:
    # Only reached for names the loop above did not define; tells type checkers the Auto classes exist.
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----- preprocessing -----------------------------------------------------------------------------------


def _optional_json(source: str, filename: str, hub: HubOptions) -> dict[str, Any] | None:
    if os.path.isfile(source):
        return None
    path = resolve_file(source, filename, required=False, **hub.as_kwargs())
    return load_json_file(path) if path else None


def _model_type_of(source: str, hub: HubOptions, config: Any = None) -> str | None:
    if isinstance(config, PretrainedConfig):
        return config.model_type or None
    data = _optional_json(source, CONFIG_NAME, hub)
    model_type = (data or {}).get("model_type")
    return model_type if isinstance(model_type, str) else None


def _class_by_name(name: str) -> Any:
    import plugformers

    try:
        return getattr(plugformers, name)
    except (AttributeError, ImportError):  # ImportError: a known family's name whose plugin is absent
        return None


# Names of a family-less tokenizer that lives wholly in tokenizer.json: the reference v5 saves its generic
# fast tokenizer as "TokenizersBackend", v4 and we as "PreTrainedTokenizerFast". Only the fast class can load it.
_GENERIC_FAST_TOKENIZERS = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})


class AutoTokenizer:
    """Picks the tokenizer class from ``tokenizer_config.json`` or the model's ``model_type``."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *inputs: Any, **kwargs: Any) -> Any:
        """The fast tokenizer when the family has one (``use_fast=False`` for the pure-Python one)."""
        use_fast = kwargs.pop("use_fast", True)
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        config = kwargs.pop("config", None)
        source = os.fspath(pretrained_model_name_or_path)
        hub = HubOptions.pop_from(dict(kwargs))
        tok_config = _optional_json(source, TOKENIZER_CONFIG, hub) or {}
        model_type = None
        try:
            model_type = _model_type_of(source, hub, config)
        except OSError:
            model_type = None
        registry = get_registry()
        spec = registry.families.get(model_type) if model_type else None
        auto_map = tok_config.get("auto_map") or (getattr(config, "auto_map", None) if config is not None else None)
        if auto_map is None and not tok_config:
            config_data = _optional_json(source, CONFIG_NAME, hub) or {}
            auto_map = config_data.get("auto_map")
        if isinstance(auto_map, dict) and "AutoTokenizer" in auto_map:
            has_local = bool(spec and (spec.tokenizer or spec.tokenizer_fast)) or bool(tok_config.get("tokenizer_class"))
            if _wants_remote(auto_map, "AutoTokenizer", has_local, trust_remote_code):
                refs = auto_map["AutoTokenizer"]
                if isinstance(refs, (list, tuple)):
                    slow, fast = [*refs, None, None][:2]
                    ref = fast if (use_fast and fast) else slow or fast
                    tokenizer_class = _remote_class({"AutoTokenizer": ref}, "AutoTokenizer", source, trust_remote_code, hub)
                else:
                    tokenizer_class = _remote_class(auto_map, "AutoTokenizer", source, trust_remote_code, hub)
                return tokenizer_class.from_pretrained(source, *inputs, **kwargs)
        tokenizer_class = None
        name = tok_config.get("tokenizer_class")
        if name in _GENERIC_FAST_TOKENIZERS:
            from plugformers.tokenization_utils_fast import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(source, *inputs, **kwargs)
        if isinstance(name, str) and name:
            base = name[: -len("Fast")] if name.endswith("Fast") else name
            candidates = [base + "Fast", base] if use_fast else [base, base + "Fast"]
            for candidate in candidates:
                tokenizer_class = _class_by_name(candidate)
                if tokenizer_class is not None:
                    break
            if tokenizer_class is None and spec is None:
                raise ValueError(
                    f"{source!r} asks for tokenizer class {name!r}, which no installed plugin provides. "
                    + registry.missing_name_message(base)
                )
        if tokenizer_class is None and spec is not None:
            ref = (spec.tokenizer_fast or spec.tokenizer) if use_fast else (spec.tokenizer or spec.tokenizer_fast)
            tokenizer_class = import_object(ref) if ref else None
        if tokenizer_class is None:
            if model_type and spec is None:
                raise ValueError(registry.unknown_type_message(model_type))
            if not tok_config and model_type is None:
                raise OSError(
                    f"{source!r} has neither {TOKENIZER_CONFIG} nor a config.json with a model_type: "
                    "cannot tell which tokenizer to build."
                )
            raise ValueError(f"No tokenizer is registered for {source!r} (model_type {model_type!r}).")
        return tokenizer_class.from_pretrained(source, *inputs, **kwargs)

    @staticmethod
    def register(
        config_class: type[PretrainedConfig],
        slow_tokenizer_class: type | None = None,
        fast_tokenizer_class: type | None = None,
        exist_ok: bool = False,
    ) -> None:
        """Make configs of ``config_class`` use these tokenizer classes."""
        if slow_tokenizer_class is None and fast_tokenizer_class is None:
            raise ValueError("Pass slow_tokenizer_class, fast_tokenizer_class or both.")
        registry, model_type = _family_for_registration(config_class)
        if slow_tokenizer_class is not None:
            registry.register_runtime(model_type, "tokenizer", slow_tokenizer_class, exist_ok=exist_ok)
        if fast_tokenizer_class is not None:
            registry.register_runtime(model_type, "tokenizer_fast", fast_tokenizer_class, exist_ok=exist_ok)


class _AutoPreprocessor:
    """Shared logic of AutoImageProcessor and AutoFeatureExtractor (both read ``preprocessor_config.json``)."""

    _type_key: ClassVar[str] = ""
    _spec_fields: ClassVar[tuple[str, ...]] = ()
    _auto_name: ClassVar[str] = ""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def _class_from_preprocessor_config(cls, data: dict[str, Any]) -> Any:
        for key in (cls._type_key, "image_processor_type", "feature_extractor_type"):
            name = data.get(key)
            if not isinstance(name, str) or not name:
                continue
            names = [name]
            if name.endswith("FeatureExtractor"):
                names.append(name[: -len("FeatureExtractor")] + "ImageProcessor")
            if name.endswith("ImageProcessorFast"):
                names.append(name[: -len("Fast")])
            for candidate in names:
                found = _class_by_name(candidate)
                if found is not None:
                    return found
        return None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        backend = _image_backend(kwargs.pop("backend", None), kwargs.pop("use_fast", None))
        config = kwargs.pop("config", None)
        source = os.fspath(pretrained_model_name_or_path)
        hub = HubOptions.pop_from(dict(kwargs))
        data = _optional_json(source, PREPROCESSOR_CONFIG, hub)
        if data is None:
            from plugformers.feature_extraction_utils import nested_preprocessor_config

            # Newer libraries save a processor's part only inside processor_config.json.
            processor_data = _optional_json(source, PROCESSOR_CONFIG, hub)
            data = nested_preprocessor_config(processor_data, cls._type_key) if processor_data else None
        if os.path.isfile(source):
            data = load_json_file(source)
        registry = get_registry()
        model_type = None
        try:
            model_type = _model_type_of(source, hub, config)
        except OSError:
            pass
        spec = registry.families.get(model_type) if model_type else None
        auto_map = (data or {}).get("auto_map")
        if isinstance(auto_map, dict) and cls._auto_name in auto_map:
            has_local = cls._class_from_preprocessor_config(data or {}) is not None
            if _wants_remote(auto_map, cls._auto_name, has_local, trust_remote_code):
                klass = _remote_class(auto_map, cls._auto_name, source, trust_remote_code, hub)
                return klass.from_pretrained(source, **kwargs)
        klass = cls._class_from_preprocessor_config(data or {})
        if klass is None and spec is not None:
            for field_name in cls._spec_fields:
                ref = getattr(spec, field_name)
                if ref is not None:
                    klass = import_object(ref)
                    break
        if klass is None:
            if data is None and model_type is None:
                raise OSError(f"{source!r} has no {PREPROCESSOR_CONFIG} and no config.json with a model_type.")
            if model_type and spec is None:
                raise ValueError(registry.unknown_type_message(model_type))
            wanted = (data or {}).get(cls._type_key) or (data or {}).get("image_processor_type") or (data or {}).get(
                "feature_extractor_type"
            )
            if isinstance(wanted, str):
                raise ValueError(f"{source!r} asks for {wanted!r}: " + registry.missing_name_message(wanted))
            raise ValueError(f"No {cls._auto_name[4:]} is registered for {source!r} (model_type {model_type!r}).")
        if backend is not None:
            from plugformers.image_processing_utils import PIL_SUFFIX, BaseImageProcessor

            if isinstance(klass, type) and issubclass(klass, BaseImageProcessor):
                if backend == "pil" and not klass.__name__.endswith(PIL_SUFFIX):
                    # The family's ...Pil class when it has one, as the reference library returns.
                    pil_class = _class_by_name(klass.__name__ + PIL_SUFFIX)
                    if isinstance(pil_class, type) and issubclass(pil_class, klass):
                        klass = pil_class
                kwargs["backend"] = backend
        return klass.from_pretrained(source, **kwargs)

    @classmethod
    def register(cls, config_class: type[PretrainedConfig], klass: type, exist_ok: bool = False) -> None:
        registry, model_type = _family_for_registration(config_class)
        registry.register_runtime(model_type, cls._spec_fields[0], klass, exist_ok=exist_ok)


def _image_backend(backend: Any, use_fast: Any) -> str | None:
    """The checked ``backend=`` of an Auto image processor call; the older ``use_fast`` maps onto it."""
    from plugformers.image_processing_utils import check_backend

    if backend is None and use_fast is not None:
        backend = "torchvision" if use_fast else "pil"
    return None if backend is None else check_backend(backend)


class AutoImageProcessor(_AutoPreprocessor):
    """Picks the image processor from ``preprocessor_config.json`` (``image_processor_type``) or the model type."""

    _type_key = "image_processor_type"
    _spec_fields = ("image_processor", "image_processor_fast")
    _auto_name = "AutoImageProcessor"


class AutoFeatureExtractor(_AutoPreprocessor):
    """Picks the feature extractor from ``preprocessor_config.json`` (``feature_extractor_type``) or the model type."""

    _type_key = "feature_extractor_type"
    _spec_fields = ("feature_extractor", "image_processor")
    _auto_name = "AutoFeatureExtractor"


class AutoProcessor:
    """The family's processor when it has one, else its tokenizer, image processor or feature extractor."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        trust_remote_code = kwargs.get("trust_remote_code")
        source = os.fspath(pretrained_model_name_or_path)
        hub = HubOptions.pop_from(dict(kwargs))
        name = None
        auto_map = None
        for filename in (PROCESSOR_CONFIG, PREPROCESSOR_CONFIG, TOKENIZER_CONFIG):
            data = _optional_json(source, filename, hub) or {}
            if name is None and isinstance(data.get("processor_class"), str):
                name = data["processor_class"]
            if auto_map is None and isinstance(data.get("auto_map"), dict) and "AutoProcessor" in data["auto_map"]:
                auto_map = data["auto_map"]
        registry = get_registry()
        model_type = None
        try:
            model_type = _model_type_of(source, hub, kwargs.get("config"))
        except OSError:
            pass
        spec = registry.families.get(model_type) if model_type else None
        klass = _class_by_name(name) if name else None
        if auto_map is not None and _wants_remote(auto_map, "AutoProcessor", klass is not None, trust_remote_code):
            klass = _remote_class(auto_map, "AutoProcessor", source, trust_remote_code, hub)
        if klass is None and spec is not None and spec.processor is not None:
            klass = import_object(spec.processor)
        if klass is not None:
            kwargs.pop("trust_remote_code", None)
            kwargs.pop("config", None)
            return klass.from_pretrained(source, **kwargs)
        errors: list[str] = []
        for auto in (AutoTokenizer, AutoImageProcessor, AutoFeatureExtractor):
            try:
                return auto.from_pretrained(source, **kwargs)
            except (OSError, ValueError) as exc:
                errors.append(f"{auto.__name__}: {exc}")
        raise ValueError(f"No processor, tokenizer, image processor or feature extractor found for {source!r}: " + "; ".join(errors))

    @staticmethod
    def register(config_class: type[PretrainedConfig], processor_class: type, exist_ok: bool = False) -> None:
        registry, model_type = _family_for_registration(config_class)
        registry.register_runtime(model_type, "processor", processor_class, exist_ok=exist_ok)
