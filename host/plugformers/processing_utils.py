"""``ProcessorMixin``: one object bundling a feature extractor or image processor with a tokenizer.

A family's processor declares its parts and their class names::

    class Wav2Vec2Processor(ProcessorMixin):
        attributes = ["feature_extractor", "tokenizer"]
        feature_extractor_class = "Wav2Vec2FeatureExtractor"
        tokenizer_class = "Wav2Vec2CTCTokenizer"          # or ("SlowName", "FastName")

Class names are resolved through the ``plugformers`` namespace (which knows every plugin's public classes),
so a processor module never imports its parts. Saving writes each part with its own ``save_pretrained``
into one folder (plus ``processor_config.json`` when the processor has settings of its own); loading
rebuilds each part with its own ``from_pretrained``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from plugformers.utils.hub import HubOptions, PushToHubMixin, folder_state, resolve_file
from plugformers.utils.io import atomic_directory, write_json
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import PROCESSOR_CONFIG_NAME

logger = get_logger(__name__)

__all__ = ["PROCESSOR_CONFIG_NAME", "ProcessorMixin"]


# The input keywords each kind of part takes, in the order __call__ routes them.
_INPUT_OF_PART = {"feature_extractor": "audio", "image_processor": "images", "tokenizer": "text"}


class ProcessorMixin(PushToHubMixin):
    """Bundle of preprocessing parts with one ``__call__``, ``save_pretrained`` and ``from_pretrained``."""

    attributes: ClassVar[list[str]] = ["feature_extractor", "tokenizer"]
    feature_extractor_class: ClassVar[Any] = None
    image_processor_class: ClassVar[Any] = None
    tokenizer_class: ClassVar[Any] = None
    # Where the tokenizer's input_ids go when text comes with audio/images (e.g. "labels" for speech recognition).
    text_target_key: ClassVar[str | None] = None
    _auto_class: ClassVar[str | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self.attributes):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(self.attributes)} positional parts "
                f"({', '.join(self.attributes)}), got {len(args)}."
            )
        parts = dict(zip(self.attributes, args))
        for name in self.attributes:
            if name in kwargs:
                if name in parts:
                    raise TypeError(f"{type(self).__name__} got {name!r} both positionally and by keyword.")
                parts[name] = kwargs.pop(name)
        missing = [name for name in self.attributes if parts.get(name) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} needs the part(s) {missing}.")
        for name, part in parts.items():
            self._check_part(name, part)
            setattr(self, name, part)
        kwargs.pop("processor_class", None)
        # Remaining keywords are the processor's own settings (saved to processor_config.json).
        self._extra_keys = sorted(k for k in kwargs if not k.startswith("_"))
        for key, value in kwargs.items():
            setattr(self, key, value)

    # -- parts ---------------------------------------------------------------------------------------------------

    @classmethod
    def _class_names(cls, name: str) -> tuple[Any, ...]:
        declared = getattr(cls, f"{name}_class", None)
        if declared is None:
            return ()
        return tuple(declared) if isinstance(declared, (tuple, list)) else (declared,)

    @classmethod
    def _resolve_class(cls, ref: Any) -> type | None:
        """A class object for a declared class or class name, or None when nothing of that name exists."""
        if ref is None:
            return None
        if isinstance(ref, type):
            return ref
        try:
            return getattr(importlib.import_module("plugformers"), ref)
        except AttributeError:
            pass
        # A processor shipped as custom code can name parts defined next to it.
        module = sys.modules.get(cls.__module__)
        found = getattr(module, ref, None) if module is not None else None
        return found if isinstance(found, type) else None

    def _check_part(self, name: str, part: Any) -> None:
        names = self._class_names(name)
        if not names:
            return
        allowed = [c for c in (self._resolve_class(n) for n in names) if c is not None]
        if allowed and not isinstance(part, tuple(allowed)):
            wanted = " or ".join(n if isinstance(n, str) else n.__name__ for n in names if n is not None)
            raise TypeError(f"{type(self).__name__}.{name} must be a {wanted}, got {type(part).__name__}.")

    @classmethod
    def _part_class(cls, name: str, use_fast: bool = True) -> type[Any]:
        names = cls._class_names(name)
        if not names:
            raise ValueError(f"{cls.__name__} declares no {name}_class.")
        order = list(names)
        if len(order) == 2 and use_fast:
            order.reverse()  # (slow, fast): prefer the fast one
        for ref in order:
            found = cls._resolve_class(ref)
            if found is not None:
                return found
        raise ValueError(
            f"{cls.__name__}: no class named {[n for n in names if n is not None]} for its {name}; is the plugin "
            "that provides it installed?"
        )

    @property
    def model_input_names(self) -> list[str]:
        """Every input name the processor's outputs hold, without repeats.

        With a ``text_target_key`` the tokenizer's ids are output under that key (e.g. ``labels``), so it
        replaces the tokenizer's own input names.
        """
        seen: list[str] = []
        for name in self.attributes:
            if name == "tokenizer" and self.text_target_key is not None:
                keys = [self.text_target_key]
            else:
                keys = list(getattr(getattr(self, name), "model_input_names", []))
            for key in keys:
                if key not in seen:
                    seen.append(key)
        return seen

    # -- calling ------------------------------------------------------------------------------------------------

    def __call__(
        self,
        text: Any = None,
        images: Any = None,
        audio: Any = None,
        *,
        text_kwargs: dict[str, Any] | None = None,
        images_kwargs: dict[str, Any] | None = None,
        audio_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run each part on its input: ``audio`` -> feature extractor, ``images`` -> image processor, ``text`` -> tokenizer.

        Other keywords go to every part called whose ``__call__`` accepts them; ``text_kwargs`` and friends
        go to one part only. With text alone the tokenizer's output is returned; otherwise the outputs are
        merged (the tokenizer's ``input_ids`` under ``text_target_key`` when set).
        """
        if "raw_speech" in kwargs and audio is None:
            audio = kwargs.pop("raw_speech")
        inputs = {"audio": audio, "images": images, "text": text}
        extra = {"audio": audio_kwargs or {}, "images": images_kwargs or {}, "text": text_kwargs or {}}
        if all(v is None for v in inputs.values()):
            raise ValueError(f"{type(self).__name__} needs at least one of text=, images= or audio=.")
        outputs: dict[str, Any] = {}
        for part_name in self.attributes:
            kind = _INPUT_OF_PART.get(part_name)
            if kind is None or inputs[kind] is None:
                continue
            part = getattr(self, part_name)
            call_kwargs = {**_accepted(part, kwargs), **extra[kind]}
            outputs[kind] = part(inputs[kind], **call_kwargs)
        for kind, value in inputs.items():
            if value is not None and kind not in outputs:
                raise ValueError(f"{type(self).__name__} has no part that takes {kind}=.")
        if list(outputs) == ["text"]:
            return outputs["text"]
        merged: Any = None
        for kind in ("audio", "images"):
            if kind in outputs:
                merged = outputs[kind] if merged is None else _merge(merged, outputs[kind])
        if "text" in outputs:
            encoding = outputs["text"]
            if self.text_target_key is not None:
                merged[self.text_target_key] = encoding["input_ids"]
            else:
                merged = _merge(merged, encoding)
        return merged

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``decode``."""
        return self._tokenizer().decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``batch_decode``."""
        return self._tokenizer().batch_decode(*args, **kwargs)

    def _tokenizer(self) -> Any:
        tokenizer = getattr(self, "tokenizer", None)
        if tokenizer is None:
            raise AttributeError(f"{type(self).__name__} has no tokenizer to decode with.")
        return tokenizer

    # -- settings -----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The processor's own settings (not its parts) plus ``processor_class``."""
        out = {key: getattr(self, key) for key in self._extra_keys}
        out["processor_class"] = type(self).__name__
        if self._auto_class is not None:
            out["auto_map"] = {self._auto_class: f"{type(self).__module__.rsplit('.', 1)[-1]}.{type(self).__name__}"}
        return out

    def __repr__(self) -> str:
        parts = "\n".join(f"- {name}: {getattr(self, name)!r}" for name in self.attributes)
        own = json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)
        return f"{type(self).__name__}:\n{parts}\n\n{own}\n"

    @classmethod
    def register_for_auto_class(cls, auto_class: str | type = "AutoProcessor") -> None:
        """Mark this (custom) processor to be saved with an ``auto_map`` entry for ``auto_class``."""
        from plugformers.dynamic_module_utils import auto_class_name

        cls._auto_class = auto_class_name(auto_class)

    def save_pretrained(self, save_directory: str | os.PathLike[str], push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Save every part into ``save_directory`` (one atomic swap), plus ``processor_config.json`` if needed."""
        if os.path.isfile(save_directory):
            raise NotADirectoryError(f"Cannot save into {os.fspath(save_directory)!r}: it is a file.")
        repo_id = kwargs.pop("repo_id", None)
        written: list[str] = []
        before = folder_state(save_directory) if push_to_hub else {}
        with atomic_directory(save_directory) as staging:
            for name in self.attributes:
                part = getattr(self, name)
                setter = getattr(part, "_set_processor_class", None)
                if setter is not None:
                    setter(type(self).__name__)
                result = part.save_pretrained(staging)
                if isinstance(result, (list, tuple)):
                    written.extend(str(p) for p in result)
            if self._extra_keys or self._auto_class is not None:
                if self._auto_class is not None:
                    self._save_custom_code(staging)
                write_json(Path(staging) / PROCESSOR_CONFIG_NAME, self.to_dict())
                written.append(os.path.join(os.fspath(save_directory), PROCESSOR_CONFIG_NAME))
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

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Rebuild every part from the folder or Hub repo with that part's own ``from_pretrained``.

        Reads ``processor_config.json`` when present: the processor's own settings, and (in the layout newer
        libraries write) the feature extractor's or image processor's settings nested under its role name.
        """
        use_fast = kwargs.pop("use_fast", True)
        hub_kwargs = HubOptions.pop_from(kwargs).as_kwargs()
        source = os.fspath(pretrained_model_name_or_path)
        own: dict[str, Any] = {}
        path = resolve_file(source, PROCESSOR_CONFIG_NAME, required=False, **hub_kwargs)
        if path is not None:
            with open(path, encoding="utf-8") as fh:
                try:
                    own = json.load(fh)
                except json.JSONDecodeError as exc:
                    raise OSError(f"{path!r} is not valid JSON ({exc}).") from exc
        parts: dict[str, Any] = {}
        for name in cls.attributes:
            part_cls = cls._part_class(name, use_fast=use_fast)
            nested = own.pop(name, None)
            if isinstance(nested, dict) and hasattr(part_cls, "from_dict"):
                parts[name] = part_cls.from_dict(nested)
            else:
                parts[name] = part_cls.from_pretrained(source, **hub_kwargs)
        for key in ("processor_class", "auto_map"):
            own.pop(key, None)
        own.update(kwargs)
        return cls(**parts, **own)


def _accepted(part: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords from ``kwargs`` that ``part.__call__`` can take."""
    try:
        params = inspect.signature(part.__call__).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def _merge(first: Any, second: Any) -> Any:
    clash = sorted(set(first) & set(second))
    if clash:
        raise ValueError(f"Two parts of the processor produced the same key(s) {clash}.")
    first.update(second)
    return first
