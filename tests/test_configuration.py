"""PretrainedConfig: printing, diffs, JSON round trips, overrides and clear errors on bad files."""

from __future__ import annotations

import json
import os

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


def test_torch_dtype_alias_and_dtype_serialised_as_string(tmp_path):
    import torch

    cfg = TinyConfig(torch_dtype=torch.float16)
    assert cfg.dtype is torch.float16 and cfg.torch_dtype is torch.float16  # a torch.dtype in memory, as the reference
    assert cfg.to_dict()["dtype"] == "float16"
    cfg.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "float16"  # its name on disk
    assert TinyConfig.from_pretrained(tmp_path).dtype is torch.float16
    assert TinyConfig(dtype="bfloat16").dtype is torch.bfloat16
    assert TinyConfig(dtype="torch.float16").dtype is torch.float16
    assert TinyConfig().dtype is None


def test_dtype_override_sets_the_config_and_is_passed_on_for_the_model(tmp_path):
    import torch

    TinyConfig().save_pretrained(tmp_path)
    cfg, unused = TinyConfig.from_pretrained(tmp_path, dtype=torch.float16, return_unused_kwargs=True)
    assert cfg.dtype is torch.float16 and unused == {"dtype": torch.float16}
    cfg, unused = TinyConfig.from_pretrained(tmp_path, torch_dtype="auto", return_unused_kwargs=True)
    assert cfg.dtype is None and unused == {"torch_dtype": "auto"}  # "auto" is for the model to resolve


def test_loading_and_printing_a_config_with_a_dtype_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float16", "dim": 4}))
    code = (
        "import sys, json\n"
        "from plugformers import PretrainedConfig\n"
        f"cfg = PretrainedConfig.from_pretrained({str(tmp_path)!r}, dim=5)\n"
        "text = repr(cfg); cfg.to_dict(); cfg.to_json_string(); cfg.save_pretrained(sys.argv[1])\n"
        "print('torch' in sys.modules, json.loads(text[len('PretrainedConfig '):])['dtype'])\n"
        "import torch\n"
        "print(cfg.dtype is torch.float16)\n"
    )
    env_path = os.pathsep.join(sys.path)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "again")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "float16", "True"]


def test_num_labels_that_disagrees_with_id2label_wins_like_the_reference(caplog):
    with caplog.at_level("WARNING"):
        cfg = TinyConfig(id2label={0: "a"}, num_labels=3)
    assert cfg.num_labels == 3 and cfg.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert cfg.label2id == {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}
    assert any("num_labels=3 disagrees" in r.message for r in caplog.records)
    agree = TinyConfig(id2label={"0": "a", "1": "b"}, num_labels=2)
    assert agree.id2label == {0: "a", 1: "b"} and agree.label2id == {"a": 0, "b": 1}


def test_label2id_without_id2label_never_leaves_the_maps_inconsistent(caplog):
    with caplog.at_level("WARNING"):
        cfg = TinyConfig(label2id={"a": 0, "b": 1, "c": 2})
    assert cfg.id2label == {0: "LABEL_0", 1: "LABEL_1"} and cfg.label2id == {"LABEL_0": 0, "LABEL_1": 1}
    assert any("label2id was given without id2label" in r.message for r in caplog.records)
    three = TinyConfig(label2id={"a": 0, "b": 1, "c": 2}, num_labels=3)
    assert len(three.id2label) == len(three.label2id) == 3


def test_saved_config_leaves_out_where_it_was_loaded_from(tmp_path):
    TinyConfig(dim=3).save_pretrained(tmp_path / "a")
    loaded = AutoConfig.from_pretrained(tmp_path / "a")
    assert loaded.name_or_path == str(tmp_path / "a")  # AutoConfig records it, as the reference's does
    assert loaded.to_dict()["_name_or_path"] == str(tmp_path / "a")  # to_dict keeps it, like the reference
    loaded.save_pretrained(tmp_path / "b")
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert "_name_or_path" not in saved and "name_or_path" not in saved


def test_config_save_and_load_round_trip_is_identity(tmp_path):
    original = TinyConfig(dim=3, n_layers=2, id2label={0: "no", 1: "yes"}, problem_type="regression")
    original.save_pretrained(tmp_path / "a")
    loaded = TinyConfig.from_pretrained(tmp_path / "a")
    assert loaded.name_or_path == ""  # the config's own loading does not record the folder
    assert loaded.to_dict() == original.to_dict()
    assert TinyConfig.from_pretrained(tmp_path / "a" / "config.json").to_dict() == original.to_dict()
    named = TinyConfig(dim=3, name_or_path="my-model")
    named.to_json_file(tmp_path / "named.json", use_diff=False)  # a full dump keeps the name ...
    assert TinyConfig.from_pretrained(tmp_path / "named.json").name_or_path == "my-model"  # ... and it stays


class _CheckedConfig(TinyConfig):
    """A config that validates a combination of fields in ``__init__``, as real families do."""

    def __init__(self, dim: int = 8, n_layers: int = 2, **kwargs):
        if dim % n_layers:
            raise ConfigError(f"n_layers ({n_layers}) must divide dim ({dim}).")
        super().__init__(dim=dim, n_layers=n_layers, **kwargs)


def test_overrides_are_applied_before_the_config_validates(tmp_path):
    cfg = _CheckedConfig.from_dict({"dim": 6, "n_layers": 4}, n_layers=3)
    assert (cfg.dim, cfg.n_layers) == (6, 3)
    assert _CheckedConfig.from_dict({"n_layers": 4}, hidden_size=12).dim == 12  # aliases count as fields
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tiny-test", "dim": 6, "n_layers": 4}))
    assert _CheckedConfig.from_pretrained(tmp_path, n_layers=2).n_layers == 2
    with pytest.raises(ConfigError, match="must divide"):
        _CheckedConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize("key", ["return_dict", "output_hidden_states", "output_attentions", "is_encoder_decoder"])
def test_null_boolean_switch_means_the_default(tmp_path, key):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tiny-test", key: None}))
    cfg = AutoConfig.from_pretrained(tmp_path)
    assert getattr(cfg, key) is getattr(TinyConfig(), key)


def test_non_boolean_switch_names_the_key_and_the_fix(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tiny-test", "output_hidden_states": 0}))
    with pytest.raises(ConfigError, match=r"config\.json.*output_hidden_states must be true or false, got 0; "
                       r"write output_hidden_states: false \(or null for the default\)"):
        AutoConfig.from_pretrained(tmp_path)


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
