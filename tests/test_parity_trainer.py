"""The reference's Trainer saving plugformers models, as docs/training.md describes (parity session).

``Trainer.save_model`` only calls ``save_pretrained`` for the reference's own classes; for ours it writes the
state dict alone (no ``config.json``), and for a model with tied weights it stops in safetensors. The tests
pin both, and the plugformers ways that do work: ``from_pretrained(folder, config=...)`` on the state-dict
folder and ``trainer.model.save_pretrained(...)``. The batches come from plugformers' own collators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pipeline_checkpoints import vocabulary

import plugformers

pytest.importorskip("plugformers_distilbert")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

TEXTS = ["the quick brown fox", "a dog", "john smith lives in paris", "it was born", "the river", "what city",
         "where is the lazy dog", "acme works at london"]


def _setup(tmp_path: Path, head: str, collator: str, **collator_args: Any) -> tuple[Any, Any, Any]:
    """A tiny DistilBERT ``head``, trained for a few steps by the reference's Trainer on tokenized ``datasets`` rows."""
    tokenizer = plugformers.DistilBertTokenizerFast(vocab_file=str(vocabulary(tmp_path / "vocab")))
    data = datasets.Dataset.from_dict({"text": TEXTS, "label": [i % 2 for i in range(len(TEXTS))]})
    data = data.map(lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=["text"])
    if head == "DistilBertForMaskedLM":
        data = data.remove_columns(["label"])
    config = plugformers.DistilBertConfig(
        vocab_size=len(tokenizer), dim=16, hidden_dim=32, n_layers=1, n_heads=2, dropout=0.0, attention_dropout=0.0
    )
    torch.manual_seed(0)
    model = getattr(plugformers, head)(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-2,
        report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data,
        data_collator=getattr(plugformers, collator)(tokenizer, **collator_args),
    )
    trainer.train()
    batch = plugformers.DataCollatorWithPadding(tokenizer)([tokenizer(t) for t in TEXTS[:3]])
    return trainer, tokenizer, batch


def _logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_parity_trainer_save_model_folder_reloads_with_the_models_config(tmp_path):
    trainer, _, batch = _setup(tmp_path, "DistilBertForSequenceClassification", "DataCollatorWithPadding")
    model = trainer.model
    trainer.save_model(str(tmp_path / "saved"))
    written = {p.name for p in (tmp_path / "saved").iterdir()}
    assert "model.safetensors" in written and "config.json" not in written
    assert "tokenizer.json" in written  # the Trainer saves the collator's tokenizer beside the weights
    with pytest.raises(OSError, match=r"config\.json"):
        plugformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")

    back = plugformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved", config=model.config)
    assert type(back) is type(model)
    torch.testing.assert_close(_logits(back, batch), _logits(model, batch), rtol=0, atol=0)
    reloaded = plugformers.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert reloaded("the quick fox")["input_ids"] == trainer.data_collator.tokenizer("the quick fox")["input_ids"]


def test_parity_trainer_model_save_pretrained_gives_a_complete_folder_also_with_tied_weights(tmp_path):
    trainer, tokenizer, batch = _setup(
        tmp_path, "DistilBertForMaskedLM", "DataCollatorForLanguageModeling", mlm_probability=0.3, seed=0
    )
    model = trainer.model
    assert model.vocab_projector.weight is model.distilbert.embeddings.word_embeddings.weight
    # The reference writes the state dict with safetensors, which refuses the tied (shared) tensors.
    with pytest.raises(RuntimeError, match="share memory"):
        trainer.save_model(str(tmp_path / "saved"))

    model.save_pretrained(tmp_path / "out")
    tokenizer.save_pretrained(tmp_path / "out")
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
    back = plugformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    assert back.vocab_projector.weight is back.distilbert.embeddings.word_embeddings.weight
    torch.testing.assert_close(_logits(back, batch), _logits(model, batch), rtol=0, atol=0)
    # the reference's own class reads the same folder
    ref = transformers.DistilBertForMaskedLM.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(_logits(ref, batch), _logits(model, batch), rtol=1e-5, atol=1e-5)
