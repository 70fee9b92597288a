"""Shared helpers for tests: the conformance suite (a pytest plugin), model and preprocessing test mixins,
the digits data behind the shipped digit checkpoints, and a local Hub server."""
