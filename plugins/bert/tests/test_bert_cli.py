"""``plugformers predict`` / ``info`` / ``demo`` serve BERT checkpoints with nothing in the host naming BERT.

The checkpoints are tiny random ones (saved with the registration's offline tokenizer), so the checks are about
what the commands promise whatever the weights: the task inferred from ``architectures``, answers that agree
with calling the model directly, and the files and counts ``info`` reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from bert_minilm import minilm_folder
from safetensors import safe_open

import plugformers
from plugformers.cli import main
from plugformers.plugins import get_registry

SPEC = get_registry().family("bert")
LABELS = {0: "negative", 1: "positive", 2: "neutral"}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


@pytest.fixture
def checkpoint(tmp_path: Path):
    """``build(head, **config)``: a tiny random BERT head saved with the example tokenizer; returns the folder."""

    def build(head: str, **config: Any) -> Path:
        folder = tmp_path / head
        cfg = SPEC.build_config(tiny=True, **config)
        torch.manual_seed(0)
        getattr(plugformers, head)(cfg).save_pretrained(folder)
        SPEC.build_example_preprocessor(cfg).save_pretrained(folder)
        return folder

    return build


def _logits(folder: Path, auto: str, *texts: str) -> Any:
    tokenizer = plugformers.AutoTokenizer.from_pretrained(folder)
    model = getattr(plugformers, auto).from_pretrained(folder)
    with torch.no_grad():
        return model(**tokenizer(*texts, return_tensors="pt")), tokenizer


def test_predict_text_classification_agrees_with_the_model(checkpoint, capsys):
    folder = checkpoint("BertForSequenceClassification", id2label=LABELS)
    out = _run(capsys, "predict", str(folder), "the quick brown fox", "over the lazy dog", "--top-k", "3")
    assert out["task"] == "text-classification" and len(out["results"]) == 2
    direct, _ = _logits(folder, "AutoModelForSequenceClassification", "the quick brown fox")
    probs = direct.logits[0].softmax(-1)
    top = out["results"][0]["output"]  # the pipeline's result for that input
    assert top[0]["label"] == LABELS[int(probs.argmax())]
    assert top[0]["score"] == pytest.approx(float(probs.max()), abs=1e-4)
    assert {t["label"] for t in top} == set(LABELS.values())


def test_predict_fill_mask_agrees_with_the_model(checkpoint, capsys):
    folder = checkpoint("BertForMaskedLM")
    out = _run(capsys, "predict", str(folder), "the [MASK] fox", "--top-k", "2")
    assert out["task"] == "fill-mask"
    fills = out["results"][0]["output"]  # one mask: the candidates, best first
    direct, tokenizer = _logits(folder, "AutoModelForMaskedLM", "the [MASK] fox")
    position = tokenizer("the [MASK] fox")["input_ids"].index(tokenizer.mask_token_id)
    best = int(direct.logits[0, position].argmax())
    assert fills[0]["token"] == best and fills[0]["token_str"] == tokenizer.decode([best]) and len(fills) == 2


def test_predict_fill_mask_from_the_pretraining_checkpoint_and_info_tasks(checkpoint, capsys):
    """A BertForPreTraining folder serves no task by itself; --task fill-mask loads its masked-LM half."""
    folder = checkpoint("BertForPreTraining")
    assert main(["predict", str(folder), "the [MASK] fox", "--json"]) == 1
    assert "cannot infer the task" in capsys.readouterr().err
    out = _run(capsys, "predict", str(folder), "the [MASK] fox", "--task", "fill-mask", "--top-k", "1")
    direct, tokenizer = _logits(folder, "AutoModelForPreTraining", "the [MASK] fox")
    position = tokenizer("the [MASK] fox")["input_ids"].index(tokenizer.mask_token_id)
    best = int(direct.prediction_logits[0, position].argmax())
    assert out["results"][0]["output"][0]["token"] == best
    info = _run(capsys, "info", str(checkpoint("BertForSequenceClassification")))
    assert info["tasks"] == ["text-classification", "zero-shot-classification"]


def test_predict_token_classification_and_question_answering(checkpoint, capsys):
    folder = checkpoint("BertForTokenClassification", id2label={0: "O", 1: "B-ANIMAL"})
    out = _run(capsys, "predict", str(folder), "lazy dog", "--ignore-labels", "")
    assert out["task"] == "token-classification"
    assert [t["word"] for t in out["results"][0]["output"]] == ["l", "##a", "##z", "##y", "d", "##o", "##g"]
    folder = checkpoint("BertForQuestionAnswering")
    out = _run(capsys, "predict", str(folder), "who", "the lazy dog")
    assert out["task"] == "question-answering"
    result = out["results"][0]
    assert result["input"]["question"] == "who" and isinstance(result["output"]["answer"], str)


def test_info_on_the_real_checkpoint(capsys):
    folder = minilm_folder()
    info = _run(capsys, "info", str(folder))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        total = sum(torch.Size(f.get_slice(k).get_shape()).numel() for k in f.keys() if k != "embeddings.position_ids")
    assert info["model_type"] == "bert" and info["architectures"] == ["BertModel"]
    assert info["plugin"]["name"] == "bert" and info["plugin"]["distribution"] == "plugformers-bert"
    # The file also stores the int64 position-id buffer, which is no parameter.
    assert info["parameters"] == total == 22_713_216 and info["weight_dtypes"] == ["F32"]
    assert set(info["heads_available"]) == set(SPEC.models)


def test_demo_runs_the_bert_family(capsys):
    assert main(["demo", "--family", "bert", "--small"]) == 0
    out = capsys.readouterr().out
    assert "== bert (plugin bert)" in out and "build BertModel" in out
    assert "1 of 1 family ran end to end." in out
