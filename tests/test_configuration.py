"""PretrainedConfig: printing, diffs, JSON round trips, overrides and clear errors on bad files."""

from __future__ import annotations

import json

import pytest

from plugformers import AutoConfig, PretrainedConfig
from plugformers.configuration_utils import ConfigError

from tinyfamily import TinyConfig


def test_print_shows_class_name_and_only_non_default_base_fields_sorted():
    text = repr(TinyConfig(dim=4))
    assert text.startswith("TinyConfig {\n")
    body = json.loads(text[len("TinyConfig ") :])
    assert list(body) == sorted(body)
    assert body["dim"] == 4 and body["model_type"] == "tiny-test"
    assert "output_attentions" not in body and "id2label" not in body  # base defaults are hidden


def test_unknown_keys_are_kept_and_saved(tmp_path):
    cfg = TinyConfig(my_extra_field=[1, 2])
    cfg.save_pretrained(tmp_path)
    again = TinyConfig.from_pretrained(tmp_path)
    assert again.my_extra_field == [1, 2]


def test_from_pretrained_accepts_folder_and_json_path_with_overrides(tmp_path):
    TinyConfig(dim=6).save_pretrained(tmp_path)
    assert TinyConfig.from_pretrained(tmp_path).dim == 6
    cfg = TinyConfig.from_pretrained(tmp_path / "config.json", dim=7, n_layers=1)
    assert (cfg.dim, cfg.n_layers) == (7, 1)
    cfg, unused = TinyConfig.from_pretrained(tmp_path, not_a_field=3, return_unused_kwargs=True)
    assert unused == {"not_a_field": 3}


def test_labels_and_num_labels_stay_consistent(tmp_path):
    cfg = TinyConfig(num_labels=3)
    assert cfg.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    cfg.id2label = {0: "neg", 1: "pos"}
    cfg.label2id = {"neg": 0, "pos": 1}
    cfg.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["id2label"] == {"0": "neg", "1": "pos"}  # JSON keys are strings, like the reference
    again = TinyConfig.from_pretrained(tmp_path)
    assert again.id2label == {0: "neg", 1: "pos"} and again.num_labels == 2


def test_attribute_map_aliases_read_and_write():
    cfg = TinyConfig(dim=5)
    assert cfg.hidden_size == 5
    cfg.hidden_size = 9
    assert cfg.dim == 9


def test_to_diff_dict_only_keeps_changes():
    diff = TinyConfig(n_layers=3).to_diff_dict()
    assert diff["n_layers"] == 3
    assert "return_dict" not in diff


def test_torch_dtype_alias_and_dtype_serialised_as_string():
    import torch

    cfg = TinyConfig(torch_dtype=torch.float16)
    assert cfg.dtype == "float16" and cfg.to_dict()["dtype"] == "float16"


def test_not_json_names_file_and_position(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "tiny-test", "dim": 4,,}')
    with pytest.raises(ConfigError, match=r"config\.json.*not valid JSON.*line 1"):
        TinyConfig.from_pretrained(tmp_path)


def test_wrongly_typed_field_names_file_and_field(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tiny-test", "dim": "eight"}))
    with pytest.raises(ConfigError, match=r"config\.json.*'dim'"):
        TinyConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tiny-test", "return_dict": "yes"}))
    with pytest.raises(ConfigError, match="return_dict"):
        TinyConfig.from_pretrained(tmp_path)


def test_missing_model_type_is_a_clear_auto_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"dim": 4}))
    with pytest.raises(ConfigError, match="no 'model_type'"):
        AutoConfig.from_pretrained(tmp_path)


def test_missing_path_offline_is_clear_and_makes_no_request(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="offline"):
        TinyConfig.from_pretrained("someone/definitely-not-here")
    with pytest.raises(OSError, match="neither a local folder nor a valid Hub"):
        TinyConfig.from_pretrained(str(tmp_path / "nope" / "deeper"))


def test_invalid_problem_type_is_refused():
    with pytest.raises(ConfigError, match="problem_type"):
        TinyConfig(problem_type="ranking")


def test_update_from_string_keeps_types():
    cfg = TinyConfig()
    cfg.update_from_string("dim=3,tie_word_embeddings=false")
    assert cfg.dim == 3 and cfg.tie_word_embeddings is False
    with pytest.raises(ConfigError):
        cfg.update_from_string("nope=1")


def test_base_config_round_trips_through_auto_for_model():
    cfg = AutoConfig.for_model("tiny-test", dim=3)
    assert isinstance(cfg, TinyConfig) and cfg.dim == 3
    assert isinstance(cfg, PretrainedConfig)


def test_save_failure_leaves_previous_config_intact(tmp_path, monkeypatch):
    TinyConfig(dim=2).save_pretrained(tmp_path)
    before = (tmp_path / "config.json").read_text()
    import plugformers.configuration_utils as cu

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cu, "write_json", boom)
    with pytest.raises(RuntimeError):
        TinyConfig(dim=3).save_pretrained(tmp_path)
    assert (tmp_path / "config.json").read_text() == before
    assert [p.name for p in tmp_path.parent.iterdir() if ".staging-" in p.name] == []
