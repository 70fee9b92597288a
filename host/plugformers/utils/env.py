"""Reading on/off switches from environment variables, the same way everywhere in plugformers."""

from __future__ import annotations

import os

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off"})


def env_true(name: str) -> bool:
    """True when ``name`` is set to one of :data:`TRUE_VALUES` (any case); anything else reads as off."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def env_switch(name: str) -> bool | None:
    """``name`` as a strict switch: True or False, None when unset or blank, a ``ValueError`` for anything else."""
    setting = os.environ.get(name, "").strip().lower()
    if setting in TRUE_VALUES:
        return True
    if setting in FALSE_VALUES:
        return False
    if setting:
        raise ValueError(f"{name}={os.environ[name]!r}: expected 1 or 0 (or leave it unset).")
    return None
