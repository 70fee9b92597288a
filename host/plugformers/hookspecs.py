"""The hooks a plugformers plugin can implement.

A plugin is a module named by an entry point in the ``plugformers`` group; pluggy calls the functions
in it that carry ``@plugformers.hookimpl`` and a name below. Each hook receives a ``register`` callback,
so a plugin states *what* it provides and the host decides how to store it. Registration only names
classes (``"module:Class"`` strings): nothing torch-heavy is imported until a class is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("plugformers")
hookimpl = pluggy.HookimplMarker("plugformers")


class RegisterFamily(Protocol):
    """Signature of the callback passed to :func:`plugformers_register_families`."""

    def __call__(
        self,
        model_type: str,
        *,
        config: str,
        models: dict[str, str] | None = None,
        tokenizer: str | None = None,
        tokenizer_fast: str | None = None,
        image_processor: str | None = None,
        image_processor_fast: str | None = None,
        feature_extractor: str | None = None,
        processor: str | None = None,
        exports: dict[str, str] | None = None,
        modality: str | None = None,
        tiny_config: dict[str, Any] | None = None,
        example_inputs: str | None = None,
        example_preprocessor: str | None = None,
        checkpoints: dict[str, str] | None = None,
        skips: dict[str, dict[str, str]] | None = None,
        override: bool = False,
    ) -> None: ...


class RegisterAttention(Protocol):
    """Signature of the callback passed to :func:`plugformers_register_attention`."""

    def __call__(self, name: str, function: str | Callable[..., Any], *, override: bool = False) -> None: ...


@hookspec
def plugformers_register_families(register: RegisterFamily) -> None:
    """Declare model families.

    Call ``register(model_type, config="pkg.mod:Config", models={"AutoModel": "pkg.mod:Model", ...},
    tokenizer=..., tokenizer_fast=..., image_processor=..., feature_extractor=..., processor=...,
    exports={...})`` once per ``model_type`` the plugin provides. Every named class becomes a public name
    of ``plugformers`` and an entry of the matching Auto classes; a ``models`` key that is not an Auto class
    of :mod:`plugformers.vocabulary` is refused. ``override=True`` replaces another plugin's registration
    of the same model type or class name on purpose; without it, a clash is refused with an error that
    names both distributions.

    What the host's tools need to know of a family, declared as data so the host names no family:

    - ``modality``: ``"text"``, ``"image"`` or ``"audio"``, what the models read (which tasks their Auto
      classes serve, which sample input the demo feeds them). Inferred from the preprocessors if omitted.
    - ``tiny_config``: config overrides that give a model of seconds (conformance suite, ``demo --small``).
    - ``example_inputs``: ``"module:function"``, ``f(config, model_class, batch_size=2, labels=False)``
      returning the keyword inputs of ``model_class.forward`` for ``config`` (the suite, ``plugformers
      export``), deterministic (seeded), with padded rows where the family takes attention masks; with
      ``labels=True`` also what the head's loss takes (``labels``, ``start_positions``, ...).
    - ``example_preprocessor``: ``"module:function"``, ``f(config)`` returning a preprocessor that works
      offline (a tokenizer with a tiny vocabulary, say); the demo runs the host's sample input through it.
    - ``checkpoints``: trained checkpoints shipped as package data, ``{name: "package:relative/folder"}``.
    - ``skips``: ``{class name: {check: reason}}``, the conformance checks a class cannot pass, and why.
    """


@hookspec
def plugformers_register_attention(register: RegisterAttention) -> None:
    """Add attention backends.

    Call ``register(name, function)`` where ``function`` (a callable or a ``"module:function"`` string)
    has the signature of :func:`plugformers.attention.eager_attention`. Models select a backend by name
    through ``attn_implementation=`` or ``model.set_attn_implementation(name)``. The host registers
    ``"eager"`` and ``"sdpa"`` through this same hook.
    """
