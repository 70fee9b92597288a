"""plugformers: Transformers-compatible model definitions in a tiny host with one plugin per family."""

from __future__ import annotations

__version__ = "0.1.0"

from plugformers.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
