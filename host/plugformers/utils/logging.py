"""The library's loggers: all under ``plugformers``, warnings by default, ``PLUGFORMERS_VERBOSITY`` to change."""

from __future__ import annotations

import logging
import os
import warnings

_ROOT = "plugformers"
_configured = False
_warned_once: set[str] = set()


def _configure() -> None:
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger(_ROOT)
    level = os.environ.get("PLUGFORMERS_VERBOSITY", "warning").upper()
    root.setLevel(getattr(logging, level, logging.WARNING))
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """The logger for a module of the library or of a plugin (``plugformers.<...>``)."""
    _configure()
    if not name.startswith(_ROOT):
        name = f"{_ROOT}.{name}"
    return logging.getLogger(name)


def warn_once(message: str, category: type[Warning] = UserWarning, stacklevel: int = 3) -> None:
    """Emit ``message`` as a Python warning the first time only (per process)."""
    if message in _warned_once:
        return
    _warned_once.add(message)
    warnings.warn(message, category, stacklevel=stacklevel)
