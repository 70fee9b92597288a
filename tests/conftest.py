"""Host test fixtures: a registry that holds the tiny test family next to whatever plugins are installed."""

from __future__ import annotations

import sys
from pathlib import Path

import huggingface_hub.constants  # noqa: F401  (reads HF_* variables once, before any test changes them)
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def _tiny_family_registered():
    from plugformers.plugins import get_plugin_manager, get_registry

    from tinyfamily import TinyPlugin

    pm = get_plugin_manager()
    if not pm.has_plugin("tiny-test-plugin"):
        registry = get_registry()
        pm.register(TinyPlugin(), name="tiny-test-plugin")
        # Registries load once; feed the new plugin's hook through the same isolation path.
        registry._run_hook("plugformers_register_families", registry._family_registrar)
    yield
