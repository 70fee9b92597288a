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
    of ``plugformers`` and an entry of the matching Auto classes. ``override=True`` replaces another
    plugin's registration of the same model type or class name on purpose; without it, a clash is refused
    with an error that names both distributions.
    """


@hookspec
def plugformers_register_attention(register: RegisterAttention) -> None:
    """Add attention backends.

    Call ``register(name, function)`` where ``function`` (a callable or a ``"module:function"`` string)
    has the signature of :func:`plugformers.attention.eager_attention`. Models select a backend by name
    through ``attn_implementation=`` or ``model.set_attn_implementation(name)``. The host registers
    ``"eager"`` and ``"sdpa"`` through this same hook.
    """
