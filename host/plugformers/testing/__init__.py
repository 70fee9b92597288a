"""Shared helpers for tests: model test mixins and a local Hub server."""
