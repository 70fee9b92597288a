"""Adapter methods without peft installed: a clear error that names the extra, and nothing else breaks.

(The methods themselves are tested against peft and the reference in ``test_parity_peft_integration.py``.)
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

import plugformers

from distributed_worker import tiny_config

EXTRA = "pip install 'plugformers[peft]'"


@pytest.fixture
def no_peft(monkeypatch):
    """Make ``import peft`` fail, whether or not peft is installed here."""
    for name in [m for m in sys.modules if m == "peft" or m.startswith("peft.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "peft", None)


@pytest.fixture
def folders(tmp_path):
    """A tiny DistilBERT classifier, and an adapter folder (config only, as peft writes it) that names it."""
    torch.manual_seed(0)
    model = plugformers.DistilBertForSequenceClassification(tiny_config("distilbert", num_labels=2))
    model.save_pretrained(tmp_path / "base")
    (tmp_path / "adapter").mkdir()
    config = {"peft_type": "LORA", "r": 4, "target_modules": ["q_lin"], "base_model_name_or_path": str(tmp_path / "base")}
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    return tmp_path


ADAPTER_CALLS = {
    "add_adapter": lambda m, f: m.add_adapter(object(), adapter_name="a"),
    "load_adapter": lambda m, f: m.load_adapter(f / "adapter"),
    "set_adapter": lambda m, f: m.set_adapter("a"),
    "active_adapters": lambda m, f: m.active_adapters(),
    "disable_adapters": lambda m, f: m.disable_adapters(),
    "enable_adapters": lambda m, f: m.enable_adapters(),
    "delete_adapter": lambda m, f: m.delete_adapter("a"),
    "get_adapter_state_dict": lambda m, f: m.get_adapter_state_dict(),
}


@pytest.mark.parametrize("method", list(ADAPTER_CALLS))
def test_adapter_methods_without_peft_name_the_extra(no_peft, folders, method):
    model = plugformers.DistilBertForSequenceClassification.from_pretrained(folders / "base")
    with pytest.raises(ImportError, match=r"`peft` package.*" + EXTRA.replace("[", r"\[").replace("]", r"\]")):
        ADAPTER_CALLS[method](model, folders)


def test_adapter_folder_without_peft_names_the_extra_and_plain_models_still_load(no_peft, folders):
    for loader in (plugformers.DistilBertForSequenceClassification, plugformers.AutoModelForSequenceClassification):
        with pytest.raises(ImportError, match="plugformers\\[peft\\]"):
            loader.from_pretrained(folders / "adapter")
    model = plugformers.AutoModelForSequenceClassification.from_pretrained(folders / "base")
    model.save_pretrained(folders / "again")  # no adapter attached: a full model, config.json and weights
    assert sorted(p.name for p in (folders / "again").iterdir()) == ["config.json", "model.safetensors"]
