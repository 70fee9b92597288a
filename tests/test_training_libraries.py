"""Libraries fine-tuners combine with the model classes, in one process: accelerate, and LoRA without PEFT.

accelerate (a test-only dependency; it does not need the reference library): empty-weight building,
checkpoint dispatch, ``Accelerator.prepare`` (its 2-process run is a scenario of ``test_distributed.py``).
LoRA: the torch-only recipe of docs/training.md (PEFT itself imports the reference library, so it is
tested in ``test_parity_peft.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import plugformers

from distributed_worker import make_optimizer, task_batch, task_model, tiny_config, train_steps


def _checkpoint(tmp_path, name: str, family: str):
    torch.manual_seed(0)
    model = getattr(plugformers, name)(tiny_config(family))
    for module in model.modules():  # batch-norm statistics that are not the defaults, so a miss shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    return model.eval()


@pytest.mark.parametrize(
    ("name", "family"),
    [("DistilBertForMaskedLM", "distilbert"), ("ViTForImageClassification", "vit"), ("ResNetForImageClassification", "resnet")],
)
def test_init_empty_weights_then_load_checkpoint_and_dispatch(tmp_path, name, family):
    """The big-model path: build on meta, re-tie, load the (sharded) folder, same outputs as from_pretrained."""
    accelerate = pytest.importorskip("accelerate")
    reference = _checkpoint(tmp_path, name, family)
    cls = getattr(plugformers, name)
    with accelerate.init_empty_weights():
        model = cls(tiny_config(family))
    assert all(p.device.type == "meta" for p in model.parameters())
    model.tie_weights()  # init_empty_weights re-creates every parameter it sees, so ties made in __init__ break
    model = accelerate.load_checkpoint_and_dispatch(
        model, str(tmp_path), device_map="auto", no_split_module_classes=model._no_split_modules
    )
    model.eval()
    assert model.hf_device_map == {"": "cpu"}
    assert model._tied_parameter_names() == reference._tied_parameter_names()
    batch = {k: v for k, v in task_batch(family).items() if k != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits, rtol=0, atol=0)


def test_accelerator_prepare_trains_like_a_plain_loop():
    pytest.importorskip("accelerate")
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    accelerator = Accelerator(cpu=True)
    try:
        model = task_model("distilbert")
        opt = make_optimizer(model)
        batch = task_batch("distilbert")
        loader = torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(4)], batch_size=4)
        model, opt, loader = accelerator.prepare(model, opt, loader)
        losses = []
        for _ in range(3):
            for inputs in loader:
                loss = model(**inputs).loss
                accelerator.backward(loss)
                opt.step()
                opt.zero_grad()
                losses.append(loss.item())
        want = train_steps(task_model("distilbert"), batch, 3)
        assert losses == pytest.approx(want, abs=1e-6)
        assert accelerator.unwrap_model(model) is model  # one process: nothing to wrap
    finally:
        AcceleratorState._reset_state(True)


# ----- LoRA without PEFT: the recipe of docs/training.md ----------------------------------------------


def lora_recipe() -> dict[str, Any]:
    """The ``# lora.py`` block of docs/training.md, executed: its functions by name."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if b.startswith("# lora.py")]
    namespace: dict[str, Any] = {"__name__": "lora_recipe"}
    exec(compile(block, "docs/training.md[lora.py]", "exec"), namespace)
    return namespace


def test_lora_recipe_trains_saves_reloads_and_merges(tmp_path):
    lora = lora_recipe()
    cls = plugformers.DistilBertForSequenceClassification
    torch.manual_seed(0)
    cls(tiny_config("distilbert", num_labels=3)).save_pretrained(tmp_path / "base")
    model = lora["add_lora"](cls.from_pretrained(tmp_path / "base"), ["q_lin", "v_lin"], r=4, train=("pre_classifier", "classifier"))
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable and all(".lora_" in n or "classifier" in n for n in trainable), trainable
    frozen_before = model.distilbert.transformer.layer[0].attention.q_lin.parametrizations.weight.original.clone()
    batch = {**task_batch("distilbert"), "labels": torch.tensor([0, 1, 2, 0])}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = train_steps(model, batch, 5, optimizer=opt)
    assert losses[-1] < 0.9 * losses[0], losses
    assert torch.equal(model.distilbert.transformer.layer[0].attention.q_lin.parametrizations.weight.original, frozen_before)
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        want = model(**inputs).logits
    lora["save_adapter"](model, str(tmp_path / "adapter.safetensors"))
    assert set(load_file(str(tmp_path / "adapter.safetensors"))) == set(trainable)

    again = lora["add_lora"](cls.from_pretrained(tmp_path / "base"), ["q_lin", "v_lin"], r=4, train=("pre_classifier", "classifier"))
    lora["load_adapter"](again, str(tmp_path / "adapter.safetensors"))
    merged = lora["merge_lora"](again.eval())
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, want, rtol=1e-5, atol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    plain = cls.from_pretrained(tmp_path / "merged")
    assert plain.state_dict().keys() == cls.from_pretrained(tmp_path / "base").state_dict().keys()
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).logits, want, rtol=1e-5, atol=1e-5)


# ----- what adapter libraries do to a model ----------------------------------------------------------


class _Adapter(torch.nn.Module):
    """Wraps a layer the way PEFT's LoRA layers do: ``.weight`` is the base layer's, the forward changes it."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base_layer = base
        self.scale = torch.nn.Parameter(torch.tensor(3.0))

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) * self.scale


@pytest.mark.parametrize("family", ["distilbert", "resnet"])
def test_fast_path_runs_the_forward_of_layers_an_adapter_replaced(family):
    """A wrapped linear or conv keeps its own forward on the fast path (it once used the bare base weight,
    or crashed on the wrapper's missing conv attributes)."""
    model = task_model(family).eval()
    if family == "distilbert":
        attention = model.distilbert.transformer.layer[0].attention
        attention.v_lin = _Adapter(attention.v_lin)
    else:
        embedder = model.resnet.embedder.embedder
        embedder.convolution = _Adapter(embedder.convolution)
    inputs = {k: v for k, v in task_batch(family).items() if k != "labels"}
    with torch.no_grad():
        plain = model(**inputs).logits
        model.enable_fast_path()
        fast = model(**inputs).logits
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)


def test_enable_input_require_grads_hooks_the_embeddings_where_there_are_some():
    """Adapter libraries call it when checkpointing is on; models without input embeddings must not fail."""
    model = task_model("distilbert")
    model.requires_grad_(False)
    ids = task_batch("distilbert")["input_ids"]
    assert not model.get_input_embeddings()(ids).requires_grad
    model.enable_input_require_grads()
    model.enable_input_require_grads()  # twice: still one hook
    assert model.get_input_embeddings()(ids).requires_grad
    assert len(model.get_input_embeddings()._forward_hooks) == 1
    model.disable_input_require_grads()
    assert not model.get_input_embeddings()(ids).requires_grad
    audio = task_model("wav2vec2")
    audio.enable_input_require_grads()  # no input embeddings: nothing to hook, no error
    assert not hasattr(audio, "_require_grads_hook")


@pytest.mark.parametrize("family", ["distilbert", "vit", "wav2vec2", "resnet"])
def test_fast_path_still_runs_its_own_layers(family):
    """The step-aside for replaced layers must not catch the fast path's own layer classes."""
    from plugformers import fast_path

    model = task_model(family).eval().enable_fast_path()
    with torch.no_grad():
        model(**{k: v for k, v in task_batch(family).items() if k != "labels"})
    own = [m for m in model.modules() if isinstance(m, (fast_path.FastLinear, fast_path.FoldedConv2d))]
    checked = own or [m for m in model.modules() if fast_path.is_enabled(m)]  # families not on those classes yet
    assert checked
    assert all(m.__dict__[fast_path._STATE].entries for m in checked)  # derived weights built: the fast path ran
