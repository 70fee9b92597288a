"""PEFT and the reference's Trainer on plugformers models (parity session: both import ``transformers``).

PEFT LoRA on DistilBERT and ViT: trains, saves and reloads the adapter, merges into a plain plugformers
model; the torch-only recipe of docs/training.md gives the same merged weights. The Trainer trains a
plugformers model fed by a ``datasets.Dataset``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import plugformers

from distributed_worker import task_batch, task_model, tiny_config, train_steps
from test_training_libraries import lora_recipe

peft = pytest.importorskip("peft")

CASES = {
    "distilbert": ("DistilBertForSequenceClassification", ["q_lin", "v_lin"], ("pre_classifier", "classifier")),
    "vit": ("ViTForImageClassification", ["q_proj", "v_proj"], ("classifier",)),
}


def _inputs(family: str) -> dict[str, torch.Tensor]:
    batch = task_batch(family)
    batch["labels"] = torch.tensor([0, 1, 2, 0])
    return batch


@pytest.mark.parametrize("family", list(CASES))
def test_parity_peft_lora_trains_saves_loads_and_merges(tmp_path, family):
    name, targets, heads = CASES[family]
    cls = getattr(plugformers, name)
    torch.manual_seed(0)
    cls(tiny_config(family, num_labels=3)).save_pretrained(tmp_path / "base")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, modules_to_save=list(heads))
    model = peft.get_peft_model(cls.from_pretrained(tmp_path / "base"), config)
    frozen = {k: v.clone() for k, v in model.named_parameters() if not v.requires_grad}
    batch = _inputs(family)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = train_steps(model, batch, 5, optimizer=opt)
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in frozen.items())
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        want = model(**inputs).logits
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    reloaded = peft.PeftModel.from_pretrained(cls.from_pretrained(tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, want, rtol=0, atol=1e-6)
    merged = reloaded.merge_and_unload()
    assert type(merged) is cls
    merged.save_pretrained(tmp_path / "merged")
    plain = cls.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).logits, want, rtol=1e-5, atol=1e-5)

    # The torch-only recipe, given PEFT's trained matrices and heads, merges to the same weights.
    lora = lora_recipe()
    ours = lora["add_lora"](cls.from_pretrained(tmp_path / "base"), targets, r=4, alpha=8, train=heads)
    ours.load_state_dict(_as_recipe_keys(peft.get_peft_model_state_dict(model)), strict=False)
    ours = lora["merge_lora"](ours.eval())
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-6, atol=1e-6, msg=key)


def _as_recipe_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """PEFT's adapter names (``...q_lin.lora_A.weight``, ``classifier.weight``) in the recipe's layout."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("base_model.model.")
        for part in ("A", "B"):
            key = key.replace(f".lora_{part}.weight", f".parametrizations.weight.0.lora_{part}")
        out[key] = value
    assert any("lora_A" in k for k in out)
    return out


def test_parity_trainer_trains_a_plugformers_model_from_a_datasets_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = plugformers.DistilBertForSequenceClassification(tiny_config("distilbert", num_labels=3, dropout=0.0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (16, 8), generator=g)
    data: dict[str, Any] = {"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * 16, "labels": (ids[:, 0] % 3).tolist()}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=16, num_train_epochs=8, learning_rate=1e-2,
        report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=datasets.Dataset.from_dict(data))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0], losses
    trainer.model.save_pretrained(tmp_path / "out")  # Trainer.save_model would write the weights only
    back = plugformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    for (key, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), key


@pytest.mark.parametrize(
    ("family", "targets"),
    [("wav2vec2", ["q_proj", "v_proj"]), ("resnet", ["convolution"]), ("distilbert", ["q_lin", "k_lin", "v_lin"])],
)
def test_parity_peft_lora_with_checkpointing_and_the_fast_path(family, targets):
    """What PEFT once tripped on: its checkpointing hook on a model without input embeddings (Wav2Vec2),
    its LoRA conv wrapper inside ResNet's fast path, LoRA ignored by the fused q/k/v fast path."""
    model = task_model(family)
    if model.supports_gradient_checkpointing:
        model.gradient_checkpointing_enable()  # get_peft_model then calls enable_input_require_grads
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # as after training: the adapters change the outputs
            torch.nn.init.normal_(param, std=0.2)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    losses = train_steps(peft_model, task_batch(family), 3, optimizer=opt)
    assert losses[-1] < losses[0], losses
    peft_model.eval()
    inputs = {k: v for k, v in task_batch(family).items() if k != "labels"}
    with torch.no_grad():
        plain = peft_model(**inputs).logits
        if model.supports_fast_path:
            model.enable_fast_path()
            torch.testing.assert_close(peft_model(**inputs).logits, plain, rtol=1e-4, atol=1e-4)
