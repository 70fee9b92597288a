"""The plugformers conformance suite for this family: one line, plus which families are ours."""

pytest_plugins = ["plugformers.testing.conformance"]
plugformers_conformance_families = ["custom-resnet"]
