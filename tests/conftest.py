"""Host test fixtures: a registry that holds the tiny test family next to whatever plugins are installed."""

from __future__ import annotations

import sys
from pathlib import Path

import huggingface_hub.constants  # noqa: F401  (reads HF_* variables once, before any test changes them)
import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The conformance suite over every installed family (tests/conftest.py::test_conformance[...]).
pytest_plugins = ["plugformers.testing.conformance"]


@pytest.fixture(scope="session", autouse=True)
def _tiny_family_registered():
    from plugformers.plugins import registered_plugin

    from tinyfamily import TinyPlugin

    with registered_plugin(TinyPlugin(), name="tiny-test-plugin"):
        yield
