"""`PretrainedConfig`: the object that holds everything needed to build a model, saved as ``config.json``.

The JSON layout is the reference library's, so a ``config.json`` written by either library loads in the
other. This module does not import torch.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from plugformers.utils.hub import HubOptions, PushToHubMixin, folder_state, resolve_file
from plugformers.utils.io import atomic_directory, write_json
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import CONFIG_NAME

__all__ = ["CONFIG_NAME", "ConfigError", "PretrainedConfig"]

logger = get_logger(__name__)

VERSION_KEY = "plugformers_version"
# Keys the reference library writes that carry no model information for us. The private attention-backend keys
# some files carry are ignored too, as the reference ignores them: ``attn_implementation=`` picks the backend.
_DROPPED_ON_LOAD = (
    "transformers_version",
    VERSION_KEY,
    "_commit_hash",
    "_attn_implementation_autoset",
    "_attn_implementation",
    "_attn_implementation_internal",
)
# The on/off switches every config has, with the value a JSON null stands for.
_BOOL_DEFAULTS = {"output_hidden_states": False, "output_attentions": False, "return_dict": True, "is_encoder_decoder": False}
_BOOL_FIELDS = tuple(_BOOL_DEFAULTS)

C = TypeVar("C", bound="PretrainedConfig")


class ConfigError(ValueError):
    """A configuration is invalid; the message names the file (when there is one) and the field."""


def _dtype_to_str(value: Any) -> Any:
    """``torch.float16`` (or ``"torch.float16"``) -> ``"float16"`` without importing torch."""
    if value is None:
        return value
    if isinstance(value, str):
        return value[len("torch.") :] if value.startswith("torch.") else value
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        return str(value).rsplit(".", 1)[-1]
    return value


def _str_to_dtype(name: str) -> Any:
    """``"float16"`` -> ``torch.float16``; None when torch is missing or the name is no torch dtype."""
    try:
        import torch
    except ImportError:
        return None
    value = getattr(torch, name, None)
    return value if isinstance(value, torch.dtype) else None


class PretrainedConfig(PushToHubMixin):
    """Base class of every model configuration.

    A family subclass sets ``model_type``, takes its own arguments (with defaults) plus ``**kwargs``, stores
    them as attributes and passes ``**kwargs`` on to this ``__init__``, which owns the fields every model
    shares (labels, output switches, dtype, special token ids) and keeps unknown keys as attributes, so
    that a ``config.json`` with extra keys still loads and saves back unchanged.
    """

    model_type: ClassVar[str] = ""
    #: Alternative attribute names: ``{"hidden_size": "dim"}`` makes ``config.hidden_size`` read ``dim``.
    attribute_map: ClassVar[dict[str, str]] = {}
    #: True for configs that cannot be built without arguments (their defaults are not meaningful).
    is_composition: ClassVar[bool] = False
    #: The nested configurations a composite config holds: field name -> the class that builds it (``AutoConfig``
    #: where any registered model type may sit). They are saved in full, and a model loaded or built in a
    #: ``dtype`` records it on each of them too.
    sub_configs: ClassVar[dict[str, type]] = {}
    _auto_class: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_dict: bool = True,
        dtype: Any = None,
        id2label: dict[int, str] | None = None,
        label2id: dict[str, int] | None = None,
        num_labels: int | None = None,
        problem_type: str | None = None,
        architectures: list[str] | None = None,
        chunk_size_feed_forward: int = 0,
        is_encoder_decoder: bool = False,
        **kwargs: Any,
    ) -> None:
        switches = dict(zip(_BOOL_FIELDS, (output_hidden_states, output_attentions, return_dict, is_encoder_decoder)))
        for name, value in switches.items():
            if value is None:  # JSON null: the default, which is also how the reference behaves
                switches[name] = _BOOL_DEFAULTS[name]
            elif not isinstance(value, bool):
                # A number says which value was meant (0 -> false); for anything else suggest the default.
                meant = bool(value) if isinstance(value, (int, float)) else _BOOL_DEFAULTS[name]
                raise ConfigError(
                    f"{name} must be true or false, got {value!r}; write {name}: {str(meant).lower()} "
                    "(or null for the default)."
                )
        output_hidden_states, output_attentions, return_dict, is_encoder_decoder = switches.values()
        if "torch_dtype" in kwargs:  # the name older checkpoints use
            torch_dtype = kwargs.pop("torch_dtype")
            dtype = dtype if dtype is not None else torch_dtype
        self.output_hidden_states = output_hidden_states
        self.output_attentions = output_attentions
        self.return_dict = return_dict
        self.dtype = dtype
        self.problem_type = problem_type
        self.architectures = architectures
        self.chunk_size_feed_forward = chunk_size_feed_forward
        self.is_encoder_decoder = is_encoder_decoder
        self._name_or_path = str(kwargs.pop("name_or_path", kwargs.pop("_name_or_path", "")))
        self._attn_implementation: str | None = kwargs.pop("attn_implementation", None)

        if problem_type is not None and problem_type not in (
            "regression",
            "single_label_classification",
            "multi_label_classification",
        ):
            raise ConfigError(
                f"problem_type must be 'regression', 'single_label_classification' or "
                f"'multi_label_classification', got {problem_type!r}."
            )
        if id2label is not None and not isinstance(id2label, dict):
            raise ConfigError(f"id2label must be a dict of {{id: label}}, got {type(id2label).__name__}.")
        if label2id is not None and not isinstance(label2id, dict):
            raise ConfigError(f"label2id must be a dict of {{label: id}}, got {type(label2id).__name__}.")
        if id2label is not None and num_labels is not None and num_labels != len(id2label):
            # The reference's rule: an explicit num_labels wins, and the labels become LABEL_0, LABEL_1, ...
            logger.warning(
                "num_labels=%d disagrees with id2label (%d labels); using num_labels with labels LABEL_0..LABEL_%d.",
                num_labels,
                len(id2label),
                num_labels - 1,
            )
            id2label = label2id = None
        if id2label is not None:
            self.id2label = {int(k): v for k, v in id2label.items()}
            self.label2id = (
                {k: int(v) for k, v in label2id.items()}
                if label2id is not None
                else {v: k for k, v in self.id2label.items()}
            )
        else:
            if label2id is not None:
                # Without id2label the reference rebuilds both maps from num_labels; do the same, but say so.
                logger.warning("label2id was given without id2label and is replaced; pass id2label to name the labels.")
            self.id2label = {i: f"LABEL_{i}" for i in range(2 if num_labels is None else int(num_labels))}
            self.label2id = {v: k for k, v in self.id2label.items()}
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id"):
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
        for key in _DROPPED_ON_LOAD:
            kwargs.pop(key, None)
        for key, value in kwargs.items():
            try:
                setattr(self, key, value)
            except AttributeError as exc:
                raise ConfigError(f"Cannot set {key}={value!r} on {type(self).__name__}: {exc}") from exc

    # ----- attribute aliases and derived fields -------------------------------------------------------

    def __setattr__(self, key: str, value: Any) -> None:
        key = type(self).attribute_map.get(key, key)
        super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails: resolve aliases, then fail with a clear message.
        mapped = type(self).attribute_map.get(key)
        if mapped is not None:
            return getattr(self, mapped)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    @property
    def num_labels(self) -> int:
        """Number of labels of classification heads (the size of ``id2label``)."""
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"num_labels must be a non-negative int, got {n!r}.")
        if getattr(self, "id2label", None) is None or len(self.id2label) != n:
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def name_or_path(self) -> str:
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: str | os.PathLike[str]) -> None:
        self._name_or_path = str(value)

    @property
    def use_return_dict(self) -> bool:
        return bool(self.return_dict)

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PretrainedConfig:
        """The configuration of the model's text part: a nested config held under a text name, else this one.

        ``decoder=True`` looks only at the output side's names (``decoder``, ``generator``, ``text_config``),
        ``encoder=True`` only at the input side's (``text_encoder``); neither or both look at all of them. Every
        plugformers family is one config, so this returns ``self``; resizing and generation code asks for it.
        """
        output_side = ("decoder", "generator", "text_config")
        input_side = ("text_encoder",)
        names = input_side + output_side if decoder == encoder else output_side if decoder else input_side
        found = [name for name in names if isinstance(self.__dict__.get(name), PretrainedConfig)]
        if len(found) > 1:
            raise ValueError(
                f"{type(self).__name__} holds several text configs ({', '.join(found)}); pick one by name, "
                f"e.g. config.{found[0]}."
            )
        return self.__dict__[found[0]] if found else self

    @property
    def dtype(self) -> Any:
        """The weights' ``torch.dtype`` (None when unset), saved as its name (``"float16"``).

        A name read from ``config.json`` becomes a ``torch.dtype`` when first read here, not when the
        config is loaded, so that loading a config does not import torch.
        """
        value = self.__dict__.get("dtype")
        if isinstance(value, str):
            resolved = _str_to_dtype(value)
            if resolved is not None:
                self.__dict__["dtype"] = value = resolved
        return value

    @dtype.setter
    def dtype(self, value: Any) -> None:
        self.__dict__["dtype"] = _dtype_to_str(value) if isinstance(value, str) else value

    @property
    def torch_dtype(self) -> Any:
        """Older name of :attr:`dtype`."""
        return self.dtype

    @torch_dtype.setter
    def torch_dtype(self, value: Any) -> None:
        self.dtype = value

    # ----- serialisation --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (nested configs become dicts), plus ``model_type``."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_") and key != "_name_or_path":
                continue
            out[key] = _to_json_value(value)
        out["model_type"] = type(self).model_type
        out["dtype"] = _dtype_to_str(out.get("dtype"))
        out[VERSION_KEY] = _version()
        if "id2label" in out and out["id2label"] is not None:
            out["id2label"] = {str(k): v for k, v in out["id2label"].items()}
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the class defaults (what ``config.json`` and ``print`` show)."""
        current = self.to_dict()
        base = _base_dict()
        defaults = _class_defaults(type(self)) or {}
        diff: dict[str, Any] = {}
        for key, value in current.items():
            if key == "_name_or_path":
                continue  # where this copy was loaded from is no part of the model, as in the reference
            nested = self.__dict__.get(key)
            if isinstance(nested, PretrainedConfig) and key in type(self).sub_configs:
                # In full: a reader whose default for this field differs (another library) reads the same values.
                diff[key] = value
            elif isinstance(nested, PretrainedConfig):
                reference = defaults.get(key)
                diff[key] = _nested_diff(nested, reference if isinstance(reference, dict) else None)
            elif (
                key == VERSION_KEY
                or key not in base
                or value != base[key]
                or (key in defaults and value != defaults[key])
            ):
                diff[key] = value
        return diff

    def to_json_string(self, use_diff: bool = True) -> str:
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike[str], use_diff: bool = True) -> None:
        from plugformers.utils.io import atomic_write_text

        atomic_write_text(json_file_path, self.to_json_string(use_diff=use_diff))

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainedConfig) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:  # configs are mutable; hash by identity like a plain object
        return id(self)

    def __iter__(self) -> Any:
        return iter(self.to_dict())

    def __deepcopy__(self, memo: dict[int, Any]) -> PretrainedConfig:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new

    def update(self, config_dict: dict[str, Any]) -> None:
        """Set every ``key: value`` of ``config_dict`` as an attribute."""
        for key, value in config_dict.items():
            setattr(self, key, value)

    def update_from_string(self, update_str: str) -> None:
        """Apply ``"n_layers=2,activation=relu,sinusoidal_pos_embds=true"`` to existing fields (types kept)."""
        for part in update_str.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"Expected key=value in update string, got {part!r}.")
            key, raw = (s.strip() for s in part.split("=", 1))
            if not hasattr(self, key):
                raise ConfigError(f"{type(self).__name__} has no field {key!r} to update.")
            old = getattr(self, key)
            value: Any
            if isinstance(old, bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ConfigError(f"Field {key!r} expects true/false, got {raw!r}.")
                value = raw.lower() in ("true", "1")
            elif isinstance(old, int):
                value = int(raw)
            elif isinstance(old, float):
                value = float(raw)
            elif isinstance(old, str) or old is None:
                value = raw
            else:
                raise ConfigError(f"Field {key!r} of type {type(old).__name__} cannot be set from a string.")
            setattr(self, key, value)

    # ----- saving and loading ---------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike[str], push_to_hub: bool = False, **kwargs: Any) -> None:
        """Write ``config.json`` (only non-default fields) into ``save_directory``, atomically.

        When the class was registered with :meth:`register_for_auto_class`, the Python files that define it
        are copied next to it and ``auto_map`` is written, so ``trust_remote_code=True`` can rebuild it.
        """
        before = folder_state(save_directory) if push_to_hub else {}
        with atomic_directory(save_directory) as staging:
            if self._auto_class is not None:
                from plugformers.dynamic_module_utils import custom_object_save

                custom_object_save(self, staging, config=self)
            write_json(Path(staging) / CONFIG_NAME, self.to_diff_dict())
        if push_to_hub:
            self._push_saved_folder(save_directory, before, kwargs.pop("repo_id", None), kwargs)

    @classmethod
    def register_for_auto_class(cls, auto_class: str | type = "AutoConfig") -> None:
        """Make ``save_pretrained`` ship this class's code, loadable with ``AutoConfig`` and ``trust_remote_code``.

        Any Auto class name is accepted (the reference's rule); the config is always recorded as ``AutoConfig``.
        """
        from plugformers.dynamic_module_utils import auto_class_name

        auto_class_name(auto_class)
        cls._auto_class = "AutoConfig"

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read the raw ``config.json`` of a folder, JSON file or Hub repo; returns ``(dict, unused kwargs)``."""
        hub = HubOptions.pop_from(kwargs)
        return load_json_file(_config_path(pretrained_model_name_or_path, hub)), kwargs

    @classmethod
    def from_pretrained(
        cls: type[C], pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any
    ) -> Any:
        """Load from a folder, a path to a ``.json`` file, or a Hub repo id; keyword arguments override fields.

        Hub keywords: ``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``subfolder``.
        With ``return_unused_kwargs=True`` returns ``(config, kwargs that were not config fields)``.
        """
        kwargs.pop("trust_remote_code", None)
        return_unused = kwargs.pop("return_unused_kwargs", False)
        hub = HubOptions.pop_from(kwargs)
        path = _config_path(pretrained_model_name_or_path, hub)
        config_dict = load_json_file(path)
        loaded_type = config_dict.get("model_type")
        if cls.model_type and loaded_type and loaded_type != cls.model_type:
            logger.warning(
                "Loading a %r checkpoint into %s (model_type %r); this may give errors or wrong results.",
                loaded_type,
                cls.__name__,
                cls.model_type,
            )
        # ``name_or_path`` is left as saved, so a save/load round trip gives back an equal config; the model's
        # ``from_pretrained`` and ``AutoConfig`` record where they loaded from.
        config, unused = cls.from_dict(config_dict, return_unused_kwargs=True, _source=path, **kwargs)
        if return_unused:
            return config, unused
        return config

    @classmethod
    def from_dict(cls: type[C], config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """Build from a dict (as read from ``config.json``); ``kwargs`` that name fields override them.

        Overrides are applied before the class validates its fields, so they can repair a combination the
        file alone would fail on. A dict given for a nested config updates that config's fields. ``dtype``
        / ``torch_dtype`` set the config's dtype and are also returned as unused, because the model being
        loaded needs them too.
        """
        return_unused = kwargs.pop("return_unused_kwargs", False)
        source = kwargs.pop("_source", None)
        if not isinstance(config_dict, dict):
            raise ConfigError(f"{_where(source)}: expected a JSON object, got {type(config_dict).__name__}.")
        data = dict(config_dict)
        data.pop("model_type", None)
        _check_field_types(cls, data, source)
        fields = _init_fields(cls) | set(data)
        later: dict[str, Any] = {}
        unused: dict[str, Any] = {}
        for key, value in kwargs.items():
            target = cls.attribute_map.get(key, key)
            if key in ("dtype", "torch_dtype"):
                if value != "auto":
                    data.pop("torch_dtype", None)
                    data["dtype"] = value
                unused[key] = value
            elif target in fields and not _set_after_init(cls, target):
                data[target] = _merge_nested(cls, target, data.get(target), value)
            else:
                later[key] = value
        try:
            config = cls(**data)
        except ConfigError as exc:
            if source and source not in str(exc):
                raise ConfigError(f"{_where(source)}: {exc}") from exc
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{_where(source)}: invalid configuration for {cls.__name__}: {exc}") from exc
        for key, value in later.items():
            if hasattr(config, key):
                current = getattr(config, key)
                if isinstance(current, PretrainedConfig) and isinstance(value, dict):
                    value = type(current).from_dict({**current.to_dict(), **value})
                setattr(config, key, value)
            else:
                unused[key] = value
        if return_unused:
            return config, unused
        return config

    @classmethod
    def from_json_file(cls: type[C], json_file: str | os.PathLike[str]) -> C:
        result = cls.from_dict(load_json_file(json_file), _source=str(json_file))
        assert isinstance(result, cls)
        return result


_MISSING = object()


def _config_path(pretrained_model_name_or_path: str | os.PathLike[str], hub: HubOptions) -> str:
    """A local path to the config: the given ``.json`` file, or ``config.json`` in a folder or Hub repo."""
    source = os.fspath(pretrained_model_name_or_path)
    if os.path.isfile(source):
        return source
    path = resolve_file(source, CONFIG_NAME, **hub.as_kwargs())
    assert path is not None
    return path


def _where(source: str | None) -> str:
    return f"config {source!r}" if source else "config"


def load_json_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object from ``path`` with errors that name the file and the position of the problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)!r} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{os.fspath(path)!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{os.fspath(path)!r} must hold a JSON object, not a {type(data).__name__}.")
    return data


def _to_json_value(value: Any) -> Any:
    if isinstance(value, PretrainedConfig):
        d = value.to_dict()
        d.pop(VERSION_KEY, None)
        return d
    if isinstance(value, tuple):
        return [_to_json_value(v) for v in value]
    if isinstance(value, list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json_value(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return _dtype_to_str(value)


def _nested_diff(nested: PretrainedConfig, reference: dict[str, Any] | None) -> dict[str, Any]:
    full = _to_json_value(nested)
    full.pop("_name_or_path", None)
    if reference is None or reference.get("model_type") != full.get("model_type"):
        return full
    return {k: v for k, v in full.items() if k == "model_type" or reference.get(k, _MISSING) != v}


_DEFAULTS_CACHE: dict[type, dict[str, Any] | None] = {}
_BASE_DICT: dict[str, Any] | None = None


def _base_dict() -> dict[str, Any]:
    global _BASE_DICT
    if _BASE_DICT is None:
        _BASE_DICT = PretrainedConfig().to_dict()
    return _BASE_DICT


def _class_defaults(cls: type[PretrainedConfig]) -> dict[str, Any] | None:
    """``cls().to_dict()``, cached; None for composition configs that cannot be built without arguments."""
    if cls is PretrainedConfig:
        return _base_dict()
    if cls not in _DEFAULTS_CACHE:
        try:
            _DEFAULTS_CACHE[cls] = None if cls.is_composition else cls().to_dict()
        except Exception:
            _DEFAULTS_CACHE[cls] = None
    return _DEFAULTS_CACHE[cls]


def _version() -> str:
    from plugformers import __version__

    return __version__


def _accepts(default: Any, value: Any) -> bool:
    """Whether a JSON ``value`` fits a field whose ``__init__`` default is ``default``."""
    if value is None or default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _init_fields(cls: type[PretrainedConfig]) -> set[str]:
    """Names the class's ``__init__`` chain takes (plus the ones the base pops from ``**kwargs``)."""
    names = {"name_or_path", "_name_or_path", "attn_implementation"}
    for klass in cls.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, PretrainedConfig)):
            break
        try:
            params = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):
            continue
        names.update(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self")
    return names


def _set_after_init(cls: type[PretrainedConfig], name: str) -> bool:
    """Whether an override of ``name`` is set on the built config instead of passed to ``__init__``.

    A property's setter may keep other fields in step (``out_indices`` rewrites ``out_features``), so it
    runs last, which is how the reference applies every override; plain fields go in before validation.
    """
    return name not in ("num_labels", "name_or_path") and isinstance(inspect.getattr_static(cls, name, None), property)


def _merge_nested(cls: type[PretrainedConfig], key: str, current: Any, value: Any) -> Any:
    """An override of a nested config given as a dict updates that config's fields (same ``model_type``)."""
    if not isinstance(value, dict):
        return value
    if isinstance(current, PretrainedConfig):
        current = current.to_dict()
    if not isinstance(current, dict):
        current = (_class_defaults(cls) or {}).get(key)
    if not isinstance(current, dict) or "model_type" not in current:
        return value  # not a nested config (id2label, label2id, ...): replaced as a whole
    if value.get("model_type", current["model_type"]) != current["model_type"]:
        return value  # another family: a new config, nothing to merge with
    merged = {**current, **value}
    merged.pop("_name_or_path", None)
    merged.pop(VERSION_KEY, None)
    return merged


def _check_field_types(cls: type[PretrainedConfig], data: dict[str, Any], source: str | None) -> None:
    """Refuse values whose JSON type cannot be what the field's default says (names file and field)."""
    for klass in cls.__mro__:
        if klass is PretrainedConfig or not issubclass(klass, PretrainedConfig):
            break
        try:
            params = inspect.signature(klass.__init__).parameters
        except (TypeError, ValueError):
            continue
        for name, param in params.items():
            if name in data and not _accepts(param.default, data[name]):
                raise ConfigError(
                    f"{_where(source)}: field {name!r} of {cls.__name__} should be like "
                    f"{param.default!r} ({type(param.default).__name__}), got {data[name]!r}."
                )
