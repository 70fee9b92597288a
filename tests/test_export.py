"""``plugformers.export`` and ``plugformers export``: the command, the folder it writes, what it refuses.

Every registered class is exported to ONNX and run in onnxruntime by the conformance suite's "onnx" check
(``plugformers.testing.checks.check_onnx``); these tests cover the rest: which axes stay dynamic per family,
a checkpoint folder through the command line, class selection, verification failures, missing packages,
half precision and inputs given by the caller.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from plugformers import exporting
from plugformers.cli import main
from plugformers.exporting import ExportError, VerificationError, export
from plugformers.plugins import FamilySpec, get_registry, import_object

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _classes() -> list[tuple[FamilySpec, str]]:
    registry = get_registry()
    return [
        (spec, name)
        for _, spec in sorted(registry.families.items())
        if spec.models and spec.example_inputs is not None and spec.plugin != "tiny-test-plugin"
        for name in spec.model_names()
    ]


CLASSES = _classes()
#: What the exporter keeps dynamic follows the code: position tables fix ViT's image size, not ResNet's.
EXPECTED_AXES = {
    "DistilBertModel": {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
    "BertModel": {"input_ids": {0: "batch", 1: "sequence"}, "token_type_ids": {0: "batch", 1: "sequence"}},
    "DistilBertForMultipleChoice": {"input_ids": {0: "batch", 1: "input_ids_axis1", 2: "sequence"}},
    "Wav2Vec2Model": {"input_values": {0: "batch", 1: "audio_length"}, "attention_mask": {0: "batch", 1: "audio_length"}},
    "ResNetModel": {"pixel_values": {0: "batch", 2: "height", 3: "width"}},
    "MaskFormerModel": {"pixel_values": {0: "batch", 2: "height", 3: "width"}},
    "ViTModel": {"pixel_values": {0: "batch"}},
}


def _build(spec: FamilySpec, name: str) -> Any:
    torch.manual_seed(0)
    cls = import_object(spec.models[spec.model_names()[name][0]])
    return cls(spec.build_config(tiny=True)).eval()


def test_text_audio_and_convolutional_image_axes_vary_but_vit_image_size_is_fixed() -> None:
    """What the exporter keeps dynamic follows each family's code (the conformance suite's "onnx" check
    exports every class and checks that the file carries what the export reports; this pins what that is)."""
    by_name = {name: spec for spec, name in CLASSES}
    for name, want in EXPECTED_AXES.items():
        if name not in by_name:
            continue
        spec = by_name[name]
        model = _build(spec, name)
        flat = exporting._Flat(model, spec.build_example_inputs(model.config, type(model)))
        found = exporting._dynamic_axes(exporting._trace(flat), flat)
        for input_name, axes in want.items():
            assert {a: label for a, (label, _) in found[input_name].items()} == axes, (name, input_name)


# ----- the command line and the checkpoint folder -------------------------------------------------------


@pytest.fixture(scope="module")
def distilbert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = get_registry()
    if "distilbert" not in registry.families:
        pytest.skip("the DistilBERT plugin is not installed")
    spec = registry.families["distilbert"]
    folder = tmp_path_factory.mktemp("distilbert")
    torch.manual_seed(0)
    model = import_object(spec.models["AutoModelForSequenceClassification"])(spec.build_config(tiny=True))
    model.save_pretrained(folder)
    spec.build_example_preprocessor(model.config).save_pretrained(folder)
    return folder


def test_cli_exports_a_folder_with_its_config_and_tokenizer_files(
    distilbert_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "onnx"
    assert main(["export", str(distilbert_checkpoint), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_class"] == "DistilBertForSequenceClassification"  # from the config's architectures
    assert report["inputs"] == ["input_ids", "attention_mask"] and report["outputs"] == ["logits"]
    assert report["dynamic_axes"]["input_ids"] == {"0": "batch", "1": "sequence"}
    assert report["max_abs_diff"] <= 1e-4 and len(report["checks"]) == 2
    written = sorted(p.name for p in out.iterdir())
    assert written == report["files"]
    assert {"model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= set(written)
    assert "model.safetensors" not in written
    # The exported file answers like the checkpoint does, for a batch and length never traced.
    import onnxruntime

    import plugformers

    tokenizer = plugformers.AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["a short one", "and a longer sentence than that"], padding=True, return_tensors="np")
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
    model = plugformers.AutoModelForSequenceClassification.from_pretrained(distilbert_checkpoint)
    with torch.no_grad():
        expected = model(**tokenizer(["a short one", "and a longer sentence than that"], padding=True, return_tensors="pt"))
    torch.testing.assert_close(torch.from_numpy(logits), expected.logits, atol=1e-4, rtol=1e-4)


def test_task_and_auto_class_pick_the_class_of_a_checkpoint(distilbert_checkpoint: Path, tmp_path: Path) -> None:
    result = export(distilbert_checkpoint, tmp_path / "a", task="feature-extraction", format="torch-export")
    assert result.model_class == "DistilBertModel" and result.output_names == ["last_hidden_state"]
    with pytest.raises(ExportError, match="no model for task 'image-classification'"):
        export(distilbert_checkpoint, tmp_path / "b", task="image-classification")
    with pytest.raises(ExportError, match="did you mean 'AutoModelForMaskedLM'"):
        export(distilbert_checkpoint, tmp_path / "c", auto_class="AutoModelForMaskedLn")
    with pytest.raises(ExportError, match=r"unknown export format 'onx'.*did you mean 'onnx'"):
        export(distilbert_checkpoint, tmp_path / "d", format="onx")


def test_outputs_beyond_the_tolerance_fail_the_command_and_leave_the_folder_as_it_was(
    distilbert_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = exporting._pt2_runner

    def drifting(path: Path) -> Any:
        run = real(path)
        return lambda args: [t + 3e-4 for t in run(args)]

    monkeypatch.setattr(exporting, "_pt2_runner", drifting)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(distilbert_checkpoint), str(out), "--format", "torch-export"]) == 1
    err = capsys.readouterr().err
    assert "differs from eager PyTorch at batch 2: max abs diff 0.0003" in err and "nothing was written" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # A looser tolerance, asked for, lets the same export through.
    assert main(["export", str(distilbert_checkpoint), str(out), "--format", "torch-export", "--tolerance", "1e-3"]) == 0
    assert {"keep.txt", "model.pt2"} <= {p.name for p in out.iterdir()}


def test_verification_error_carries_the_difference(distilbert_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = exporting._pt2_runner
    monkeypatch.setattr(exporting, "_pt2_runner", lambda path: (lambda args, run=real(path): [t * 2 for t in run(args)]))
    with pytest.raises(VerificationError) as info:
        export(distilbert_checkpoint, tmp_path, format="torch-export")
    assert info.value.max_abs_diff > 1e-3
    assert not (tmp_path / "model.pt2").exists()


def test_missing_onnx_packages_are_named_with_the_install_command(
    distilbert_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ExportError, match=r"needs onnxruntime, which is not installed: pip install 'onnxruntime>="):
        export(distilbert_checkpoint, tmp_path)
    assert not any(tmp_path.iterdir())


def test_half_precision_onnx(distilbert_checkpoint: Path, tmp_path: Path) -> None:
    """float16 runs in onnxruntime (checked at its own tolerance); bfloat16 has no kernels there and is refused."""
    result = export(distilbert_checkpoint, tmp_path / "fp16", dtype="float16")
    assert result.dtype == torch.float16 and result.tolerance == 1e-2 and result.max_abs_diff <= 1e-2
    proto = onnx.load(str(result.path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    with pytest.raises(ExportError, match="no bfloat16 kernels"):
        export(distilbert_checkpoint, tmp_path / "bf16", dtype="bfloat16")
    with pytest.raises(ExportError, match="floating-point torch dtype"):
        export(distilbert_checkpoint, tmp_path / "int", dtype="int8")


def test_user_inputs_replace_the_registered_ones(tmp_path: Path) -> None:
    """A model no plugin registers exports from inputs given as a dict (batched by tiling)."""
    from tinyfamily import TinyConfig, TinyModel

    model = TinyModel(TinyConfig()).eval()
    with pytest.raises(ExportError, match="registers no example_inputs"):
        export(model, tmp_path / "a", format="torch-export")
    ids = torch.tensor([[1, 2, 3, 4]])
    result = export(model, tmp_path / "b", format="torch-export", inputs={"input_ids": ids})
    assert result.input_names == ["input_ids"] and [c["batch_size"] for c in result.checks] == [2, 3]
    with pytest.raises(ExportError, match="takes no argument 'input_idz'"):
        export(model, tmp_path / "c", format="torch-export", inputs={"input_idz": ids})
