"""The shared vocabulary and what the registry does with it: key checks, task lookups, run-time plugins."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

import plugformers
from plugformers import hookimpl, vocabulary
from plugformers.plugins import PluginError, get_registry, registered_plugin

ROOT = Path(__file__).resolve().parents[1]


def _docs_table() -> str:
    rows = ["| Auto class | builds | modality | tasks |", "| --- | --- | --- | --- |"]
    for a in vocabulary.AUTO_MODEL_CLASSES.values():
        tasks = ", ".join(f"`{t}`" for t in a.tasks) or "-"
        rows.append(f"| `{a.name}` | {a.description} | {a.modality or 'any'} | {tasks} |")
    rows += [f"| `{n}` | {d} | - | - |" for n, d in vocabulary.AUTO_PREPROCESSING_CLASSES.items()]
    return "\n".join(rows)


def test_docs_auto_class_table_is_the_vocabulary():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- auto-classes:[^>]*-->\n(.*?)\n<!-- /auto-classes -->", page, flags=re.S)
    assert found, "docs/architecture.md lost its auto-classes markers"
    assert found.group(1) == _docs_table(), "regenerate the table in docs/architecture.md:\n" + _docs_table()


def test_vocabulary_is_a_leaf_and_every_auto_class_exists():
    tree = ast.parse((ROOT / "host" / "plugformers" / "vocabulary.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if m and m.split(".")[0] in ("plugformers", "torch", "numpy")}
    for name in vocabulary.all_auto_class_names():
        cls = getattr(plugformers, name)
        assert cls.__name__ == name
    assert set(plugformers.auto.__all__) == set(vocabulary.all_auto_class_names())
    for task in vocabulary.TASKS.values():
        assert task.modality in vocabulary.MODALITIES
    for entry in vocabulary.AUTO_MODEL_CLASSES.values():
        assert all(t in vocabulary.TASKS for t in entry.tasks), entry


def test_task_lookups():
    assert vocabulary.tasks_for("AutoModel", "image") == ("image-feature-extraction",)
    assert vocabulary.tasks_for("AutoModel", "text") == ("feature-extraction",)
    assert vocabulary.tasks_for("AutoModelForSequenceClassification", "text")[0] == "text-classification"
    assert vocabulary.tasks_for("AutoModelForSequenceClassification", "audio") == ()
    assert vocabulary.tasks_for("AutoNope", "text") == ()
    assert vocabulary.auto_classes_for_task("image-segmentation")[0] == "AutoModelForUniversalSegmentation"
    with pytest.raises(KeyError, match="did you mean 'fill-mask'"):
        vocabulary.auto_classes_for_task("fill-mas")


# ----- registration checks, through the public run-time registration ------------------------------------


class _Plugin:
    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    @hookimpl
    def plugformers_register_families(self, register: Any) -> None:
        # Never imported: registration only names classes, so these need not exist.
        fields = {"config": "vocab_fake:VocabTestConfig", "models": {"AutoModel": "vocab_fake:VocabTestModel"}}
        fields.update(self.fields)
        register(fields.pop("model_type", "vocab-test"), **fields)


def _failed_registration(**fields: Any) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with registered_plugin(_Plugin(**fields), name="vocab-test-plugin") as info:
            assert info.status == "failed", info
            assert "vocab-test" not in get_registry().families
    assert any("vocab-test-plugin" in str(w.message) for w in caught), [str(w.message) for w in caught]
    return "; ".join(info.errors)


def test_misspelt_auto_key_is_refused_with_the_nearest_name():
    error = _failed_registration(models={"AutoModelForSequenceClasification": "vocab_fake:VocabTestClassifier"})
    assert "not a plugformers Auto class (did you mean 'AutoModelForSequenceClassification'?)" in error


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"modality": "video"}, "modality 'video'"),
        ({"tiny_config": ["dim", 4]}, "tiny_config"),
        ({"skips": {"VocabTestModel": {"compil": "slow"}}}, "did you mean 'compile'"),
        ({"skips": {"VocabTestModel": {"compile": ""}}}, "reason as text"),
        ({"skips": {"TinyNothing": {"compile": "why"}}}, "does not register"),
        ({"checkpoints": {"digits": "no-colon"}}, "package:relative/folder"),
        ({"example_inputs": "not a reference"}, "example_inputs"),
    ],
)
def test_bad_registration_data_is_refused(fields, message):
    assert message in _failed_registration(**fields)


def test_strict_mode_raises_and_leaves_nothing_behind(monkeypatch):
    monkeypatch.setenv("PLUGFORMERS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="vocab-test-plugin"), registered_plugin(_Plugin(modality="video"), name="vocab-test-plugin"):
        pass
    assert "vocab-test-plugin" not in get_registry().plugins


def test_registered_plugin_adds_then_removes_and_restores_what_it_overrode():
    registry = get_registry()
    before = registry.families["tiny-test"]
    plugin = _Plugin(
        model_type="tiny-test",
        config="tinyfamily:TinyConfig",
        override=True,
        modality="text",
        tiny_config={"dim": 4},
        models={"AutoModel": "tinyfamily:TinyModel", "AutoModelForMaskedLM": "tinyfamily:TinyForMaskedLM"},
        skips={"TinyForMaskedLM": {"export": "returns a dict the exporter cannot flatten"}},
    )
    with registered_plugin(plugin, name="vocab-test-plugin") as info:
        spec = registry.families["tiny-test"]
        assert info.status == "loaded" and spec.plugin == "vocab-test-plugin"
        assert spec.tiny_config == {"dim": 4} and spec.modality == "text"
        assert spec.skips == {"TinyForMaskedLM": {"export": "returns a dict the exporter cannot flatten"}}
        assert registry.tasks_of("TinyForMaskedLM") == ["fill-mask"]
        assert registry.tasks_of("TinyModel") == ["feature-extraction"]
        assert any("overrides" in line for line in registry.overrides)
    assert registry.families["tiny-test"] is before
    assert "vocab-test-plugin" not in registry.plugins
    assert not any("vocab-test-plugin" in line for line in registry.overrides)


def test_registered_plugin_name_clash_is_refused():
    with registered_plugin(_Plugin(), name="vocab-test-plugin"), pytest.raises(PluginError, match="already registered"):
        get_registry().add_plugin(_Plugin(model_type="vocab-test-2"), name="vocab-test-plugin")


def test_modality_is_inferred_from_the_preprocessors():
    with registered_plugin(_Plugin(feature_extractor="vocab_fake:VocabTestExtractor"), name="vocab-test-plugin"):
        assert get_registry().families["vocab-test"].modality == "audio"
    with registered_plugin(_Plugin(tokenizer="vocab_fake:VocabTestTokenizer"), name="vocab-test-plugin"):
        assert get_registry().families["vocab-test"].modality == "text"


def test_class_of_an_absent_catalogued_family_says_what_to_install():
    registry = get_registry()
    if "bert" in registry.families:
        pytest.skip("the BERT plugin is installed here")
    message = registry.missing_name_message("BertForMaskedLM")
    assert "plugformers-bert" in message and "pip install plugformers-bert" in message
    assert "pip install plugformers-bert" in registry.unknown_type_message("bert")
    # A name no family claims gets the plain message.
    assert "no installed plugin provides it" in registry.missing_name_message("QwertyModel")
