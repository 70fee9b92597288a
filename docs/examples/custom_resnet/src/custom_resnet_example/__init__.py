"""A third-party ResNet family for plugformers (an example package; importing it loads no torch)."""

from __future__ import annotations

__version__ = "0.1.0"
