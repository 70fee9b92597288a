"""The model's own adapter methods (``add_adapter``, ``load_adapter``, ...) against PEFT and the reference.

Parity session: peft imports the reference library. Adapters saved by plugformers load with peft onto the
reference's model, and the reference's adapters load here, with the same outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import plugformers

from distributed_worker import DETERMINISTIC, tiny_config

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

# family -> (head class, LoRA targets, head modules trained in full)
CASES = {
    "distilbert": ("DistilBertForSequenceClassification", ["q_lin", "v_lin"], ["pre_classifier", "classifier"]),
    "vit": ("ViTForImageClassification", ["q_proj", "v_proj"], ["classifier"]),
    "bert": ("BertForSequenceClassification", ["query", "value"], ["classifier"]),
}
AUTO = {"vit": "AutoModelForImageClassification"}


def _inputs(family: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    if family == "vit":
        return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    ids = torch.randint(1, 60, (2, 7), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _base(tmp_path: Path, family: str) -> Path:
    torch.manual_seed(0)
    cls = getattr(plugformers, CASES[family][0])
    cls(tiny_config(family, num_labels=3, **DETERMINISTIC)).save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def _loaded_base(tmp_path: Path, family: str) -> tuple[type, Path, dict[str, torch.Tensor], torch.nn.Module]:
    """The family's head class, its saved base folder, inputs, and the base model loaded from that folder."""
    cls = getattr(plugformers, CASES[family][0])
    base_dir = _base(tmp_path, family)
    return cls, base_dir, _inputs(family), cls.from_pretrained(base_dir)


def _logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _same(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal but for float32 rounding (the same matmuls, on a contiguous copy of a sliced input or not)."""
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def _lora(family: str, **kw) -> object:
    return peft.LoraConfig(r=4, lora_alpha=8, target_modules=CASES[family][1], init_lora_weights=False, **kw)


def _perturb_head_copies(model: torch.nn.Module) -> None:
    """The trained heads' copies start equal to the originals; make them differ, as training would."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".modules_to_save." in name:
                param.add_(torch.randn(param.shape, generator=g) * 0.5)


@pytest.mark.parametrize("family", list(CASES))
def test_parity_peft_adapter_round_trip_and_reference_outputs(tmp_path, family):
    name, _, heads = CASES[family]
    cls, base_dir, inputs, model = _loaded_base(tmp_path, family)
    base = _logits(model, inputs)

    model.add_adapter(_lora(family, modules_to_save=heads), adapter_name="mine")
    _perturb_head_copies(model)
    assert model.active_adapters() == ["mine"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n or ".modules_to_save." in n for n in trainable), trainable
    adapted = _logits(model, inputs)
    assert (adapted - base).abs().max() > 1e-3
    model.disable_adapters()  # LoRA layers and the trained head copies both step aside
    _same(_logits(model, inputs), base)
    model.enable_adapters()
    _same(_logits(model, inputs), adapted)

    state = model.get_adapter_state_dict()
    assert state and all(".lora_" in k or k.split(".")[0] in heads for k in state), list(state)
    assert not any("mine" in k for k in state)
    model.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert set(saved) == {f"base_model.model.{k}" for k in state}
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base_dir)

    # Ours: from_pretrained of the adapter folder (concrete and Auto class), and load_adapter onto the base.
    auto = getattr(plugformers, AUTO.get(family, "AutoModelForSequenceClassification"))
    for loaded in (cls.from_pretrained(tmp_path / "adapter"), auto.from_pretrained(tmp_path / "adapter")):
        assert type(loaded) is cls and loaded.active_adapters() == ["default"] and not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())  # loaded for inference unless asked
        _same(_logits(loaded, inputs), adapted)
    fresh = cls.from_pretrained(base_dir)
    info = fresh.load_adapter(tmp_path / "adapter", adapter_name="again", is_trainable=True)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    assert any(p.requires_grad for n, p in fresh.named_parameters() if ".lora_" in n)
    _same(_logits(fresh.eval(), inputs), adapted)

    # The reference: its model from the same base folder, with peft's own loader, gives the same outputs.
    reference = getattr(transformers, name).from_pretrained(base_dir).eval()
    torch.testing.assert_close(_logits(reference, inputs), base, rtol=1e-5, atol=1e-5)
    wrapped = peft.PeftModel.from_pretrained(reference, tmp_path / "adapter").eval()
    torch.testing.assert_close(_logits(wrapped, inputs), adapted, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", list(CASES))
def test_parity_peft_reference_adapter_loads_here(tmp_path, family):
    name, _, heads = CASES[family]
    base_dir = _base(tmp_path, family)
    inputs = _inputs(family)
    reference = peft.get_peft_model(getattr(transformers, name).from_pretrained(base_dir), _lora(family, modules_to_save=heads))
    _perturb_head_copies(reference)
    reference.eval().save_pretrained(tmp_path / "adapter")
    want = _logits(reference, inputs)
    loaded = getattr(plugformers, name).from_pretrained(tmp_path / "adapter")
    torch.testing.assert_close(_logits(loaded, inputs), want, rtol=1e-5, atol=1e-5)


def test_parity_peft_the_reference_loads_and_saves_adapters_like_plugformers(tmp_path):
    """The reference's own integration (needs a peft release it accepts; skipped where it refuses)."""
    name = CASES["distilbert"][0]
    base_dir = _base(tmp_path, "distilbert")
    inputs = _inputs("distilbert")
    reference = getattr(transformers, name).from_pretrained(base_dir).eval()
    try:
        reference.add_adapter(_lora("distilbert"), adapter_name="ref")
    except ValueError as exc:
        if "version of PEFT" in str(exc):
            pytest.skip(f"the reference refuses peft {peft.__version__}: {exc}")
        raise
    reference.save_pretrained(tmp_path / "theirs")
    ours = getattr(plugformers, name).from_pretrained(base_dir)
    ours.add_adapter(_lora("distilbert"), adapter_name="ours")
    ours.save_pretrained(tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert set(load_file(tmp_path / "theirs" / "adapter_model.safetensors")) == set(
        load_file(tmp_path / "ours" / "adapter_model.safetensors")
    )
    for folder in ("theirs", "ours"):
        theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / folder)
        mine = plugformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / folder)
        torch.testing.assert_close(_logits(mine, inputs), _logits(theirs, inputs), rtol=1e-5, atol=1e-5)


def test_parity_peft_several_adapters_switch_save_and_delete(tmp_path):
    cls, base_dir, inputs, model = _loaded_base(tmp_path, "distilbert")
    base = _logits(model, inputs)
    with pytest.raises(ValueError, match="no adapter"):
        model.active_adapters()
    model.add_adapter(_lora("distilbert"), adapter_name="first")
    first = _logits(model, inputs)
    model.save_pretrained(tmp_path / "first")
    torch.manual_seed(1)
    with pytest.warns(UserWarning):  # peft notes that a second adapter joins the first
        model.add_adapter(peft.LoraConfig(r=2, target_modules=["k_lin"], init_lora_weights=False), adapter_name="second")
    assert model.active_adapters() == ["second"]
    second = _logits(model, inputs)
    assert not torch.allclose(second, first)
    with pytest.raises(ValueError, match="already has an adapter named 'first'"):
        model.add_adapter(_lora("distilbert"), adapter_name="first")
    with pytest.raises(ValueError, match="already has an adapter named 'first'"):
        model.load_adapter(tmp_path / "first", adapter_name="first")
    with pytest.raises(ValueError, match=r"No adapter named \['nope'\]"):
        model.set_adapter("nope")
    model.set_adapter("first")
    _same(_logits(model, inputs), first)
    model.set_adapter(["first", "second"])
    assert model.active_adapters() == ["first", "second"]
    with pytest.raises(ValueError, match="one at a time"):
        model.save_pretrained(tmp_path / "both")
    assert not (tmp_path / "both").exists()

    model.delete_adapter("second")
    assert list(model.peft_config) == ["first"]
    _same(_logits(model, inputs), first)
    model.delete_adapter("first")
    # The model's own layers are back: its state dict and saved folder are the base model's again.
    assert list(model.state_dict()) == list(cls.from_pretrained(base_dir).state_dict())
    _same(_logits(model, inputs), base)
    model.save_pretrained(tmp_path / "plain")
    assert (tmp_path / "plain" / "config.json").is_file() and not (tmp_path / "plain" / "adapter_config.json").exists()
    _same(_logits(cls.from_pretrained(tmp_path / "plain"), inputs), base)


def test_parity_peft_adapter_folders_beside_a_model_pickled_and_without_a_base(tmp_path):
    cls, base_dir, inputs, model = _loaded_base(tmp_path, "distilbert")
    model.add_adapter(_lora("distilbert"))
    want = _logits(model, inputs)

    # An adapter saved into the model's own folder: that folder is the base (whatever the adapter names).
    beside = tmp_path / "beside"
    cls.from_pretrained(base_dir).save_pretrained(beside)
    model.save_pretrained(beside)
    config = json.loads((beside / "adapter_config.json").read_text())
    (beside / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "no/such-model"}))
    loaded, info = cls.from_pretrained(beside, adapter_name="named", output_loading_info=True)
    assert loaded.active_adapters() == ["named"] and not info["missing_keys"] and not info["unexpected_keys"]
    _same(_logits(loaded, inputs), want)

    # peft_config= with adapter_state_dict=: what the weights leave out or add is reported, not silently dropped.
    state = load_file(beside / "adapter_model.safetensors")
    dropped = sorted(state)[0]
    partial = {k: v for k, v in state.items() if k != dropped} | {"base_model.model.nowhere.lora_A.weight": torch.zeros(4, 4)}
    info = cls.from_pretrained(base_dir).load_adapter(
        peft_config=peft.PeftConfig.from_pretrained(beside), adapter_state_dict=partial, adapter_name="part"
    )
    assert info["missing_keys"] == {dropped.removeprefix("base_model.model.").replace(".weight", ".part.weight")}
    assert [k for k in info["unexpected_keys"] if "nowhere" in k] == list(info["unexpected_keys"]) != []

    model.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert (tmp_path / "pickled" / "adapter_model.bin").is_file()
    with pytest.raises(OSError, match="use_safetensors=False"):
        cls.from_pretrained(base_dir).load_adapter(tmp_path / "pickled")
    loaded = cls.from_pretrained(base_dir)
    loaded.load_adapter(tmp_path / "pickled", use_safetensors=False)
    _same(_logits(loaded, inputs), want)

    nameless = tmp_path / "nameless"
    model.save_pretrained(nameless)
    config = json.loads((nameless / "adapter_config.json").read_text())
    (nameless / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": None}))
    with pytest.raises(ValueError, match="does not name its base model"):
        cls.from_pretrained(nameless)
    with pytest.raises(TypeError, match="peft config"):
        cls.from_pretrained(base_dir).add_adapter({"r": 4})
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['revison'\]"):
        cls.from_pretrained(base_dir).load_adapter(tmp_path / "pickled", revison="main")


def test_parity_peft_is_not_imported_by_plugformers(tmp_path):
    """peft (and through it the reference library) is imported only when an adapter method runs."""
    code = (
        "import sys, plugformers\n"
        "from plugformers import DistilBertConfig, DistilBertModel, AutoModel\n"
        "DistilBertModel(DistilBertConfig(vocab_size=16, dim=8, n_layers=1, n_heads=2, hidden_dim=8)).save_pretrained(sys.argv[1])\n"
        "AutoModel.from_pretrained(sys.argv[1])\n"
        "print(sorted(m for m in ('peft', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_parity_peft_adapter_from_a_hub_repo(tmp_path):
    """An adapter repo on the (local) Hub, read through huggingface_hub like every other checkpoint."""
    from plugformers.testing.hub_server import LocalHub

    cls, base_dir, inputs, model = _loaded_base(tmp_path, "distilbert")
    model.add_adapter(_lora("distilbert"))
    want = _logits(model, inputs)
    model.save_pretrained(tmp_path / "adapter")
    with LocalHub() as hub, hub.patched(tmp_path / "hf_cache"):
        hub.create_repo("tester/tiny-lora", tmp_path / "adapter")
        _same(_logits(plugformers.AutoModelForSequenceClassification.from_pretrained("tester/tiny-lora"), inputs), want)
        fresh = cls.from_pretrained(base_dir)
        fresh.load_adapter("tester/tiny-lora", adapter_name="hub")
        _same(_logits(fresh, inputs), want)
        with pytest.raises(OSError, match=r"no file named 'elsewhere/adapter_config\.json'"):
            cls.from_pretrained(base_dir).load_adapter("tester/tiny-lora", subfolder="elsewhere")
        model.save_pretrained(tmp_path / "to-push", push_to_hub=True, repo_id="tester/pushed-lora")
        assert set(hub.files("tester/pushed-lora")) - {".gitattributes"} == {"adapter_config.json", "adapter_model.safetensors"}
        _same(_logits(cls.from_pretrained("tester/pushed-lora"), inputs), want)
