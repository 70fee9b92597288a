"""Saving, loading and printing preprocessing settings (``preprocessor_config.json``), and ``BatchFeature``.

Feature extractors and image processors are plain bags of settings plus a ``__call__``. What they save is
exactly their public instance attributes (the values given to ``__init__`` or set from class defaults),
plus a ``feature_extractor_type``/``image_processor_type`` entry naming the class; anything internal must
be stored under a name starting with ``_`` (or listed in ``_serialization_exclude``) so that it is never
written out. That makes the printed form, the saved file and the reference library's files line up.
"""

from __future__ import annotations

import copy
import enum
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from plugformers.utils.hub import HubOptions, PushToHubMixin, folder_state, resolve_file
from plugformers.utils.io import atomic_directory, write_json
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import PREPROCESSOR_CONFIG_NAME, PROCESSOR_CONFIG_NAME

logger = get_logger(__name__)

__all__ = [
    "PREPROCESSOR_CONFIG_NAME",
    "PROCESSOR_CONFIG_NAME",
    "BatchFeature",
    "FeatureExtractionMixin",
    "PreprocessingConfigMixin",
    "nested_preprocessor_config",
]


# Keys the file format uses for bookkeeping; they are never passed to ``__init__``.
_BOOKKEEPING_KEYS = ("feature_extractor_type", "image_processor_type", "processor_class", "auto_map", "_auto_class")


# Where a processor_config.json nests each part's settings, by the part's class-name key.
_ROLE_OF_TYPE_KEY = {"feature_extractor_type": "feature_extractor", "image_processor_type": "image_processor"}


def nested_preprocessor_config(config: dict[str, Any], type_key: str = "feature_extractor_type") -> dict[str, Any] | None:
    """The settings of a feature extractor or image processor nested in a processor's settings, or None.

    A ``processor_config.json`` written by newer libraries nests them under the part's role name
    (``"feature_extractor"`` or ``"image_processor"``); the role matching ``type_key`` is preferred.
    """
    if type_key in config:
        return None
    own = _ROLE_OF_TYPE_KEY.get(type_key)
    for role in sorted(_ROLE_OF_TYPE_KEY.values(), key=lambda r: r != own):
        nested = config.get(role)
        if isinstance(nested, dict):
            return nested
    return None


class BatchFeature(dict):
    """The output of a feature extractor or image processor: a dict with attribute access.

    ``convert_to_tensors("pt" | "np")`` stacks lists of equally shaped arrays into one batch array, and
    ``.to(device_or_dtype)`` moves every tensor (a dtype only changes floating-point tensors, so integer
    masks and ids stay integers).
    """

    def __init__(self, data: dict[str, Any] | None = None, tensor_type: str | None = None) -> None:
        super().__init__(data or {})
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchFeature has no key {name!r}; keys: {sorted(self)}") from None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state)

    @property
    def data(self) -> dict[str, Any]:
        """The plain dict of features (the same objects, not copies)."""
        return dict(self)

    def convert_to_tensors(self, tensor_type: Any = None) -> BatchFeature:
        """Turn every value into a ``torch.Tensor`` ("pt") or ``np.ndarray`` ("np"), in place."""
        if tensor_type is None:
            return self
        kind = getattr(tensor_type, "value", tensor_type)
        if kind not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {tensor_type!r}.")
        for key, value in list(self.items()):
            try:
                self[key] = _to_tensor(value, kind)
            except ValueError as exc:
                raise ValueError(
                    f"Could not make one {kind!r} array of {key!r}: {exc}. The examples probably have different "
                    "lengths or sizes; pad them (padding=True) or resize them to one size."
                ) from None
        return self

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """Call ``tensor.to(...)`` on every torch tensor; a dtype is only applied to floating-point tensors."""
        import torch

        target_dtype = kwargs.get("dtype")
        for arg in args:
            if isinstance(arg, torch.dtype):
                target_dtype = arg
        device_args = [a for a in args if not isinstance(a, torch.dtype)]
        device_kwargs = {k: v for k, v in kwargs.items() if k != "dtype"}
        for key, value in list(self.items()):
            if not isinstance(value, torch.Tensor):
                continue
            moved = value.to(*device_args, **device_kwargs) if device_args or device_kwargs else value
            if target_dtype is not None and moved.is_floating_point():
                moved = moved.to(target_dtype)
            self[key] = moved
        return self


def _to_tensor(value: Any, kind: str) -> Any:
    import sys

    if kind == "pt":
        import torch

        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            if len({tuple(v.shape) for v in value}) > 1:
                raise ValueError(f"shapes differ ({sorted({tuple(v.shape) for v in value})})")
            return torch.stack(list(value))
        array = _to_numpy(value)
        return torch.from_numpy(np.ascontiguousarray(array))
    loaded_torch = sys.modules.get("torch")  # a tensor can only exist if torch is already imported
    if loaded_torch is not None and isinstance(value, loaded_torch.Tensor):
        return value.detach().cpu().numpy()
    return _to_numpy(value)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        if len({v.shape for v in value}) > 1:
            raise ValueError(f"shapes differ ({sorted({v.shape for v in value})})")
        return np.stack(value)
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise ValueError(str(exc).split(";")[0]) from None
    if array.dtype == object:
        raise ValueError("the values are ragged or not numeric")
    return array


def _jsonable(value: Any) -> Any:
    """Settings as JSON values: enums as their value, arrays and tuples as lists, NumPy scalars as numbers."""
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _read_settings(path: str) -> dict[str, Any]:
    """A settings file's JSON object (``OSError`` when it is not valid JSON or not an object)."""
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except json.JSONDecodeError as exc:
        raise OSError(f"{path!r} is not valid JSON ({exc}).") from exc
    if not isinstance(config, dict):
        raise OSError(f"{path!r} must hold a JSON object of settings, not {type(config).__name__}.")
    return config


class PreprocessingConfigMixin(PushToHubMixin):
    """Shared settings logic of feature extractors and image processors (to_dict, save, load, print)."""

    config_name: ClassVar[str] = PREPROCESSOR_CONFIG_NAME
    _type_key: ClassVar[str] = "feature_extractor_type"
    _default_auto_class: ClassVar[str] = "AutoFeatureExtractor"
    _auto_class: ClassVar[str | None] = None
    # Public attributes that are derived state rather than settings (e.g. precomputed filter banks).
    _serialization_exclude: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        self._processor_class: str | None = kwargs.pop("processor_class", None)
        for key in _BOOKKEEPING_KEYS:
            kwargs.pop(key, None)
        for key, value in kwargs.items():
            if key.startswith("_"):
                continue
            try:
                setattr(self, key, value)
            except AttributeError as exc:
                raise AttributeError(f"Cannot set {key!r} on {type(self).__name__}: {exc}") from exc

    # -- the settings --------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every public setting as JSON-ready values, plus the class-name entry (and auto/processor info)."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key.startswith("_") or key in self._serialization_exclude or callable(value):
                continue
            out[key] = _jsonable(copy.deepcopy(value))
        out[self._type_key] = type(self).__name__
        if self._processor_class is not None:
            out["processor_class"] = self._processor_class
        if self._auto_class is not None:
            out["auto_map"] = {self._auto_class: f"{type(self).__module__.rsplit('.', 1)[-1]}.{type(self).__name__}"}
        return out

    def to_json_string(self) -> str:
        """The settings as the indented, key-sorted JSON text that is saved (and printed)."""
        data = self.to_dict()
        try:
            return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        except TypeError:
            for key, value in data.items():
                try:
                    json.dumps(value)
                except TypeError:
                    raise TypeError(
                        f"{type(self).__name__}.{key} = {value!r} cannot be saved as JSON; store internal state "
                        "under a name starting with '_' or list it in _serialization_exclude."
                    ) from None
            raise

    def to_json_file(self, json_file_path: str | os.PathLike[str]) -> None:
        """Write the settings to one JSON file (atomically)."""
        write_json(json_file_path, json.loads(self.to_json_string()))

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def _set_processor_class(self, processor_class: str | None) -> None:
        """Record the processor this part belongs to (saved as ``processor_class``)."""
        self._processor_class = processor_class

    @classmethod
    def register_for_auto_class(cls, auto_class: str | type = "") -> None:
        """Mark this (custom) class to be saved with an ``auto_map`` entry for ``auto_class``."""
        from plugformers.dynamic_module_utils import auto_class_name

        cls._auto_class = auto_class_name(auto_class or cls._default_auto_class)

    # -- saving ---------------------------------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | os.PathLike[str], push_to_hub: bool = False, **kwargs: Any
    ) -> list[str]:
        """Write ``preprocessor_config.json`` into ``save_directory`` atomically; returns the written paths."""
        if os.path.isfile(save_directory):
            raise NotADirectoryError(f"Cannot save into {os.fspath(save_directory)!r}: it is a file.")
        repo_id = kwargs.pop("repo_id", None)
        before = folder_state(save_directory) if push_to_hub else {}
        with atomic_directory(save_directory) as staging:
            if self._auto_class is not None:
                self._save_custom_code(staging)
            target = Path(staging) / self.config_name
            write_json(target, json.loads(self.to_json_string()))
        written = [os.path.join(os.fspath(save_directory), self.config_name)]
        logger.info("Saved %s to %s", type(self).__name__, written[0])
        if push_to_hub:
            self._push_saved_folder(save_directory, before, repo_id, kwargs)
        return written

    def _save_custom_code(self, folder: Path) -> None:
        try:
            from plugformers import dynamic_module_utils
        except ImportError:
            return
        saver = getattr(dynamic_module_utils, "custom_object_save", None)
        if saver is not None:
            saver(self, folder, config=None)

    # -- loading --------------------------------------------------------------------------------------------

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read the settings dict from a folder, a JSON file, or a Hub repo; returns (settings, other kwargs)."""
        hub = HubOptions.pop_from(kwargs)
        source = os.fspath(pretrained_model_name_or_path)
        if os.path.isfile(source):
            path: str | None = source
        else:
            path = resolve_file(source, cls.config_name, required=False, **hub.as_kwargs())
            if path is None:
                # A processor saved by newer libraries keeps this part's settings only in processor_config.json.
                path = resolve_file(source, PROCESSOR_CONFIG_NAME, required=False, **hub.as_kwargs())
                config = _read_settings(path) if path is not None else None
                nested = nested_preprocessor_config(config, cls._type_key) if config is not None else None
                if nested is None:
                    resolve_file(source, cls.config_name, **hub.as_kwargs())  # raises, naming the missing file
                assert nested is not None
                return nested, kwargs
        assert path is not None
        config = _read_settings(path)
        return nested_preprocessor_config(config, cls._type_key) or config, kwargs
    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """Build an instance from a settings dict; ``kwargs`` override settings.

        With ``return_unused_kwargs=True`` returns ``(instance, unused)`` where ``unused`` holds the keywords
        that are not settings of this class.
        """
        return_unused = kwargs.pop("return_unused_kwargs", False)
        config = dict(config_dict)
        processor_class = config.pop("processor_class", None)
        for key in _BOOKKEEPING_KEYS:
            config.pop(key, None)
        known = set(config) | cls._init_parameter_names()
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in known}
        config.update(overrides)
        instance = cls(**config)
        if processor_class is not None:
            instance._set_processor_class(processor_class)
        # Settings this class's __init__ ignored are still kept, so nothing read from a file is lost.
        for key, value in config.items():
            if not key.startswith("_") and key not in vars(instance) and not isinstance(getattr(type(instance), key, None), property):
                setattr(instance, key, value)
        if return_unused:
            return instance, kwargs
        if kwargs:
            logger.warning("Ignoring keywords that are not settings of %s: %s", cls.__name__, sorted(kwargs))
        return instance

    @classmethod
    def _init_parameter_names(cls) -> set[str]:
        import inspect

        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for name, param in inspect.signature(init).parameters.items():
                if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and name != "self":
                    names.add(name)
        names.update(getattr(cls, "_default_settings", lambda: {})())
        return names

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Load settings from a folder, a JSON file path or a Hub repo id; ``kwargs`` override settings."""
        config, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        return cls.from_dict(config, **kwargs)

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike[str]) -> Any:
        """Build an instance from one JSON settings file."""
        config, _ = cls.get_config_dict(json_file)
        return cls.from_dict(config)


class FeatureExtractionMixin(PreprocessingConfigMixin):
    """Base of every feature extractor: settings saved as ``preprocessor_config.json``."""

    _type_key: ClassVar[str] = "feature_extractor_type"
    _default_auto_class: ClassVar[str] = "AutoFeatureExtractor"
    model_input_names: ClassVar[list[str]] = ["input_values"]

