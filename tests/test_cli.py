"""The command line: info on a checkpoint, one-line errors with a non-zero exit, the demo on small configs."""

from __future__ import annotations

import json

import pytest
import torch

from plugformers.cli import main

from tinyfamily import TinyConfig, TinyModel


def test_info_reports_family_parameters_and_files(tmp_path, capsys):
    TinyModel(TinyConfig(dim=8, vocab_size=20, n_layers=1)).save_pretrained(tmp_path)
    assert main(["info", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_type"] == "tiny-test"
    assert info["parameters"] == 20 * 8 + 8 * 8 + 8
    assert info["files"] == ["config.json", "model.safetensors"]
    assert info["architectures"] == ["TinyModel"]


def test_info_counts_no_integer_buffers_as_parameters(tmp_path, capsys):
    from safetensors.torch import save_file

    model = TinyModel(TinyConfig(dim=8, vocab_size=20, n_layers=1))
    model.save_pretrained(tmp_path)
    tensors = dict(model.state_dict())
    tensors["embeddings.position_ids"] = torch.arange(512)[None]  # as older BERT-style checkpoints store it
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    assert main(["info", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 20 * 8 + 8 * 8 + 8
    assert info["weight_dtypes"] == ["F32"]


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing" / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("plugformers: error:") and "\n" not in err


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path):
    missing = str(tmp_path / "missing" / "x")
    for argv in (["--debug", "info", missing], ["info", missing, "--debug"]):
        with pytest.raises(Exception, match="missing"):
            main(argv)
    assert main(["info", missing]) == 1


def test_predict_refuses_unknown_task_inference(tmp_path, capsys):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    assert main(["predict", str(tmp_path), "hello"]) == 1
    assert "cannot infer the task" in capsys.readouterr().err


def test_cuda_request_without_cuda_is_clear(tmp_path, capsys):
    if torch.cuda.is_available():
        return
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    assert main(["predict", str(tmp_path), "hi", "--task", "fill-mask", "--device", "cuda"]) == 1
    assert "no CUDA device" in capsys.readouterr().err


def test_a_corrupt_config_or_weights_file_is_named(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    assert main(["info", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "config.json" in err
    assert main(["predict", str(tmp_path), "hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "config.json" in err
    (tmp_path / "config.json").write_text('{"model_type": "tiny-test"}', encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    assert main(["info", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.safetensors" in err


def test_info_tasks_agree_with_predict_and_accept_a_lone_architecture_name(tmp_path, capsys):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "wav2vec2", "architectures": "Wav2Vec2ForSequenceClassification"}),
        encoding="utf-8",
    )
    assert main(["info", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architectures"] == ["Wav2Vec2ForSequenceClassification"]
    assert info["tasks"] == ["audio-classification"]
    (tmp_path / "config.json").write_text(json.dumps({"architectures": [3]}), encoding="utf-8")
    assert main(["info", str(tmp_path)]) == 1
    assert "architectures" in capsys.readouterr().err
