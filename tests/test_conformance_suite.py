"""The conformance suite itself: its tests come from the registry, honour skips and capabilities, catch bugs."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from plugformers.plugins import get_registry, registered_plugin
from plugformers.testing.checks import CheckSkipped, cases, run_check
from plugformers.vocabulary import CONFORMANCE_CHECKS

from tinyfamily import TinyForMaskedLM, TinyModel, TinyPlugin

pytest_plugins = ["pytester"]

# What the tiny test family really cannot do, as a plugin would declare it.
SKIPS = {
    "outputs": "the test family returns no attention weights",
    "gradient_checkpointing": "no layer has a checkpointing hook",
    "compile": "not declared",
    "export": "not declared",
}


def _tiny_with_data(skips: dict[str, dict[str, str]] | None = None, **tiny: Any) -> TinyPlugin:
    """The host's tiny test family again, with the registration data a plugin of its own would declare."""
    names = ("TinyModel", "TinyForMaskedLM", "TinyForSequenceClassification")
    return TinyPlugin(
        modality="text",
        tiny_config={"dim": 8, "vocab_size": 20, "n_layers": 2, **tiny},
        example_inputs="tinyfamily:tiny_inputs",
        skips=skips if skips is not None else {n: dict(SKIPS) for n in names},
        override=True,
    )


def _outcome(class_name: str, check: str, tmp_path) -> str:
    (case,) = [c for c in cases(get_registry().family("tiny-test")) if c.class_name == class_name]
    try:
        run_check(case, check, tmp_path)
    except CheckSkipped as exc:
        return f"skipped: {exc}"
    except AssertionError as exc:
        return f"failed: {exc}"
    return "passed"


def test_a_conforming_family_passes_and_skips_only_what_it_declares(tmp_path):
    with registered_plugin(_tiny_with_data(), name="tiny-data"):
        for check in CONFORMANCE_CHECKS:
            outcome = _outcome("TinyForMaskedLM", check, tmp_path / check)
            if check in SKIPS:
                assert outcome == f"skipped: {SKIPS[check]}", (check, outcome)
            elif check != "onnx":
                assert outcome == "passed", (check, outcome)


def test_a_false_capability_needs_a_reason_and_a_true_one_no_skip(tmp_path, monkeypatch):
    with registered_plugin(_tiny_with_data(skips={}), name="tiny-data"):
        outcome = _outcome("TinyModel", "compile", tmp_path)
        assert "supports_compile_fullgraph is False" in outcome and "add skips={'TinyModel': {'compile'" in outcome
        monkeypatch.setattr(TinyModel, "supports_export", True)
        assert _outcome("TinyModel", "export", tmp_path / "export") == "passed"
    with registered_plugin(_tiny_with_data(skips={"TinyModel": {"export": "old news"}}), name="tiny-data"):
        outcome = _outcome("TinyModel", "export", tmp_path / "stale")
        assert "is True, yet the registration" in outcome and "remove the skip" in outcome
        monkeypatch.setenv("PLUGFORMERS_CONFORMANCE_RUN_SKIPPED", "1")
        assert _outcome("TinyModel", "export", tmp_path / "forced") == "passed"


def test_the_checks_catch_real_bugs(tmp_path, monkeypatch):
    with registered_plugin(_tiny_with_data(skips={}), name="tiny-data"):
        # Attention weights missing although the class declares an attention backend.
        assert "output_attentions=True returned no attentions" in _outcome("TinyModel", "outputs", tmp_path / "a")
        # A capability declared but not wired: enabling it changes nothing.
        monkeypatch.setattr(TinyModel, "supports_gradient_checkpointing", True)
        assert "activation_checkpointing_enable (gradient_checkpointing_enable) changed nothing" in _outcome("TinyModel", "gradient_checkpointing", tmp_path / "b")
        monkeypatch.undo()
        # A head that drops its labels: no loss to train with.
        original = TinyForMaskedLM.forward
        monkeypatch.setattr(TinyForMaskedLM, "forward", lambda self, input_ids, labels=None, **kw: original(self, input_ids, **kw))
        assert "returned no loss" in _outcome("TinyForMaskedLM", "backward", tmp_path / "d")


def test_the_plugin_collects_one_test_per_class_and_check_once_per_family(pytester):
    for folder in ("first", "second"):  # two conftests asking for the same family: its tests exist once
        pytester.mkpydir(folder)
        (pytester.path / folder / "conftest.py").write_text(
            textwrap.dedent(
                """
                pytest_plugins = ["plugformers.testing.conformance"]
                plugformers_conformance_families = ["tiny-test", "no-such-family"]
                """
            )
        )
        (pytester.path / folder / "test_gpu.py").write_text(
            textwrap.dedent(
                """
                from plugformers.testing.model_tests import needs_gpu

                @needs_gpu
                def test_on_gpu():
                    raise AssertionError("deselected by -m 'not gpu'")
                """
            )
        )
    with registered_plugin(_tiny_with_data(), name="tiny-data"):
        result = pytester.runpytest_inprocess("first", "second", "-v", "-m", "not gpu", "-p", "no:cacheprovider")
    out = result.stdout.str()
    ids = re.findall(r"conftest.py::test_conformance\[([\w-]+)\] (\w+)", out)
    expected = 3 * len(CONFORMANCE_CHECKS) - 1  # no base-into-itself loading for TinyModel
    assert len([i for i, _ in ids if i.startswith("tiny-test-")]) == expected, out
    assert all(o in ("PASSED", "SKIPPED") for i, o in ids if i.startswith("tiny-test-")), out
    assert ("no-such-family-registered", "FAILED") in ids
    assert "No installed plugin provides model_type 'no-such-family'" in out
    assert "2 deselected" in out and "test_on_gpu" not in out  # needs_gpu marked them `gpu`
    assert set(re.findall(r"(\w+)/conftest.py::test_conformance", out)) == {"first"}


def test_a_head_that_hides_its_base_model_fails_the_loading_check(tmp_path, monkeypatch):
    # It keeps the base model under another name than its base_model_prefix, so no base weight arrives.
    monkeypatch.setattr(TinyForMaskedLM, "base_model_prefix", "model")
    with registered_plugin(_tiny_with_data(tie_word_embeddings=False), name="tiny-data"):
        outcome = _outcome("TinyForMaskedLM", "base_head_loading", tmp_path)
    assert "takes only 0 of the base model's" in outcome and "as .model" in outcome, outcome
