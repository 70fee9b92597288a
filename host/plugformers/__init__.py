"""plugformers: Transformers-compatible model definitions in a tiny host with one plugin per family.

Importing this package is cheap: it imports neither torch nor any plugin. Public names resolve on first
access, the host's own from their modules and each family's through the plugin registry, so
``from plugformers import DistilBertModel`` works once ``plugformers-distilbert`` is installed and gives
an ImportError that names the distribution to install when it is not (attribute access raises an
AttributeError with the same message, so ``hasattr`` answers False).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from plugformers.hookspecs import hookimpl
from plugformers.vocabulary import all_auto_class_names

__version__ = "0.1.0"

_HOST_MODULES: dict[str, tuple[str, ...]] = {
    "plugformers.configuration_utils": ("PretrainedConfig", "ConfigError"),
    "plugformers.modeling_utils": ("PreTrainedModel",),
    "plugformers.modeling_outputs": ("ModelOutput",),
    "plugformers.auto": all_auto_class_names(),
    "plugformers.tokenization_utils_base": ("BatchEncoding", "AddedToken", "PreTrainedTokenizerBase"),
    "plugformers.tokenization_utils": ("PreTrainedTokenizer",),
    "plugformers.tokenization_utils_fast": ("PreTrainedTokenizerFast",),
    "plugformers.image_processing_utils": ("BaseImageProcessor", "ImageProcessingMixin", "BatchFeature"),
    "plugformers.feature_extraction_utils": ("FeatureExtractionMixin",),
    "plugformers.feature_extraction_sequence_utils": ("SequenceFeatureExtractor",),
    "plugformers.processing_utils": ("ProcessorMixin",),
    "plugformers.backbone_utils": (
        "BackboneMixin",
        "BackboneConfigMixin",
        "TimmBackbone",
        "TimmBackboneConfig",
        "load_backbone",
    ),
    "plugformers.plugins": ("get_registry",),
    "plugformers.pipelines": ("pipeline",),
    "plugformers.exporting": ("export",),
    "plugformers.data_collator": (
        "DataCollatorWithPadding",
        "DataCollatorForTokenClassification",
        "DataCollatorForLanguageModeling",
        "DefaultDataCollator",
        "default_data_collator",
    ),
}
_HOST_NAMES: dict[str, str] = {name: mod for mod, names in _HOST_MODULES.items() for name in names}

__all__ = ["__version__", "hookimpl", *_HOST_NAMES]


def __getattr__(name: str) -> Any:
    module_name = _HOST_NAMES.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
    elif not name[:1].isupper():
        # Submodules and private names: let the import system handle them (and never touch plugins).
        raise AttributeError(f"module 'plugformers' has no attribute {name!r}")
    else:
        from plugformers.plugins import get_registry

        registry = get_registry()
        if name not in registry.names:
            message = registry.missing_name_message(name)
            if _called_by_from_import():
                # `from plugformers import X` would replace an AttributeError by a generic ImportError.
                raise ImportError(message, name=name)
            raise AttributeError(message, name=name, obj=sys.modules[__name__])
        value = registry.resolve_name(name)
    globals()[name] = value
    return value


def _called_by_from_import() -> bool:
    """Whether the code asking for a missing name is a ``from plugformers import ...`` statement.

    ``hasattr`` and ``getattr(..., default)`` need an AttributeError; the ``from`` statement would turn
    that into an ImportError of its own, dropping the message that says what to install.
    """
    import opcode

    try:
        frame = sys._getframe(2)  # 0: this function, 1: __getattr__, 2: the code that looked the name up
        code = frame.f_code.co_code
        return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] == opcode.opmap["IMPORT_FROM"]
    except Exception:  # a CPython detail: on an interpreter without it, fall back to the AttributeError
        return False


def __dir__() -> list[str]:
    from plugformers.plugins import get_registry

    return sorted(set(globals()) | set(_HOST_NAMES) | set(get_registry().names))
