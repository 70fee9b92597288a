"""The plugformers conformance suite for this plugin's family (conftest.py::test_conformance[...])."""

pytest_plugins = ["plugformers.testing.conformance"]
plugformers_conformance_families = ["maskformer"]
