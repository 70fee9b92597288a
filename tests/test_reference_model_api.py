"""The reference library's model API that porting code and adapter libraries call (issue 26, section 1).

Activation checkpointing under its current names, the input-grad hooks, ``get_encoder``, ``can_generate``,
``add_model_tags``, the class-level declarations PEFT and accelerate read (``_tied_weights_keys``,
``_keys_to_ignore_on_save``, ``_keep_in_fp32_modules``), ``config.get_text_config()`` and
``output_hidden_states`` given as layer indices. What must hold for every family is in the conformance
checks (``model_api``, ``outputs``, ``dtypes``, ``gradient_checkpointing``); these tests pin the details.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors import safe_open

import plugformers
from plugformers.configuration_utils import PretrainedConfig
from plugformers.modeling_layers import GradientCheckpointingLayer

from distributed_worker import tiny_config


def _model(name: str, family: str, **overrides: Any) -> Any:
    torch.manual_seed(0)
    return getattr(plugformers, name)(tiny_config(family, **overrides))


def _ids(model: Any) -> torch.Tensor:
    return torch.randint(5, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))


def _layers(model: Any) -> list[GradientCheckpointingLayer]:
    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


# ----- activation checkpointing ------------------------------------------------------------------------------


def test_activation_and_gradient_checkpointing_names_drive_the_same_switch():
    model = _model("BertModel", "bert", num_hidden_layers=4)
    assert not model.is_activation_checkpointing and not model.is_gradient_checkpointing
    model.activation_checkpointing_enable()
    assert model.is_gradient_checkpointing and all(layer.gradient_checkpointing for layer in _layers(model))
    model.gradient_checkpointing_disable()
    assert not model.is_activation_checkpointing
    model.gradient_checkpointing_enable({"use_reentrant": False}, every_n_layers=2)
    assert [layer.gradient_checkpointing for layer in _layers(model)] == [True, False, True, False]
    model.activation_checkpointing_disable()
    assert not any(layer.gradient_checkpointing for layer in _layers(model))
    with pytest.raises(ValueError, match="every_n_layers must be a positive int"):
        model.activation_checkpointing_enable(every_n_layers=0)
    with pytest.raises(ValueError, match="does not support gradient checkpointing"):
        _model("ResNetModel", "resnet").activation_checkpointing_enable()


@pytest.mark.parametrize("options", [{"offload": True}, {"every_n_layers": 2}])
def test_checkpointing_variants_give_the_plain_gradients(options):
    def gradients(**enable: Any) -> dict[str, torch.Tensor]:
        model = _model("DistilBertForMaskedLM", "distilbert", n_layers=3).train()
        if enable:
            model.activation_checkpointing_enable(**enable)
        torch.manual_seed(1)
        ids = _ids(model)
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(), gradients(**options)
    assert plain.keys() == checkpointed.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_reentrant_checkpointing_with_frozen_embeddings_still_trains_the_layers():
    """Reentrant checkpointing gives no gradient to a block whose input needs none: enabling it hooks the
    embeddings so their output requires grad, and disabling it takes the hook off again."""
    model = _model("DistilBertForSequenceClassification", "distilbert").train()
    model.distilbert.embeddings.requires_grad_(False)  # word and position embeddings and their norm
    embeddings = model.get_input_embeddings()
    model.activation_checkpointing_enable({"use_reentrant": True})
    assert len(embeddings._forward_hooks) == 1
    model(input_ids=_ids(model), labels=torch.tensor([0, 1])).loss.backward()
    first_layer = model.distilbert.transformer.layer[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in first_layer.parameters())
    model.activation_checkpointing_disable()
    assert not embeddings._forward_hooks


def test_checkpointing_leaves_hooks_the_user_installed():
    model = _model("DistilBertModel", "distilbert")
    model.enable_input_require_grads()
    model.activation_checkpointing_enable({"use_reentrant": True})
    model.activation_checkpointing_disable()
    assert len(model.get_input_embeddings()._forward_hooks) == 1  # the caller's, not checkpointing's


# ----- input-grad hooks, get_encoder, can_generate ----------------------------------------------------------


def test_input_require_grads_hooks_once_and_disable_removes_the_hook():
    model = _model("BertForMaskedLM", "bert").requires_grad_(False)
    embeddings = model.get_input_embeddings()
    ids = _ids(model)
    model.enable_input_require_grads()
    model.enable_input_require_grads()
    assert len(embeddings._forward_hooks) == 1 and embeddings(ids).requires_grad
    assert model._require_grads_hook is model._require_grads_hooks[0]  # both names callers use
    model.disable_input_require_grads()
    assert not embeddings._forward_hooks and not embeddings(ids).requires_grad
    assert not hasattr(model, "_require_grads_hook") and not hasattr(model, "_require_grads_hooks")
    model.disable_input_require_grads()  # nothing left: no error


@pytest.mark.parametrize(
    ("name", "family", "expected"),
    [
        ("BertModel", "bert", "encoder"),
        ("BertForSequenceClassification", "bert", "bert.encoder"),
        ("Wav2Vec2ForCTC", "wav2vec2", "wav2vec2.encoder"),
        ("ResNetForImageClassification", "resnet", "resnet.encoder"),
        ("DistilBertForMaskedLM", "distilbert", ""),  # its stack is .transformer: the model itself, as in the reference
        ("ViTModel", "vit", ""),
    ],
)
def test_get_encoder_finds_the_stack_the_reference_finds(name, family, expected):
    model = _model(name, family)
    assert model.get_encoder() is (model.get_submodule(expected) if expected else model)
    assert model.get_encoder(modality="image") is model  # no vision tower in these
    with pytest.raises(ValueError, match="modality must be"):
        model.get_encoder(modality="smell")


def test_no_registered_class_can_generate():
    from plugformers.plugins import get_registry, import_object

    classes = [import_object(ref) for spec in get_registry().families.values() for ref in spec.models.values()]
    assert classes and not any(cls.can_generate() for cls in classes)

    class Generating(plugformers.BertModel):
        def generate(self) -> None: ...

    assert Generating.can_generate()


# ----- model tags -----------------------------------------------------------------------------------------


def _card_tags(path) -> list[str]:
    from huggingface_hub import ModelCard

    return list(ModelCard.load(path).data.tags or [])


def test_model_tags_are_kept_once_and_written_into_the_model_card(tmp_path):
    model = _model("BertModel", "bert")
    model.save_pretrained(tmp_path / "plain")
    assert not (tmp_path / "plain" / "README.md").exists()  # no tags: no card
    model.add_model_tags("custom")
    model.add_model_tags(["custom-bert", "custom", "custom-bert"])
    assert model.model_tags == ["custom", "custom-bert"]
    assert plugformers.BertModel.model_tags is None  # the instance's, not the class's
    model.save_pretrained(tmp_path / "tagged", tags="extra")
    assert _card_tags(tmp_path / "tagged" / "README.md") == ["custom", "custom-bert", "extra"]
    # A card the folder already has keeps its text and tags; ours are added.
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "README.md").write_text("---\ntags:\n- mine\nlicense: mit\n---\n\nMy notes.\n")
    model.save_pretrained(tmp_path / "own")
    text = (tmp_path / "own" / "README.md").read_text()
    assert "My notes." in text and "license: mit" in text
    assert _card_tags(tmp_path / "own" / "README.md") == ["mine", "custom", "custom-bert"]
    assert type(model).from_pretrained(tmp_path / "own") is not None  # the card is no obstacle to loading
    with pytest.raises(ValueError, match="non-empty strings"):
        model.add_model_tags(["ok", ""])


def test_push_to_hub_uploads_the_card_with_the_tags(tmp_path):
    from plugformers.testing.hub_server import LocalHub

    model = _model("DistilBertModel", "distilbert")
    model.add_model_tags("custom")
    with LocalHub() as hub, hub.patched(tmp_path / "cache"):
        model.push_to_hub("tester/tagged", tags=["pushed"])
        card = hub.files("tester/tagged")["README.md"]
    (tmp_path / "README.md").write_bytes(card if isinstance(card, bytes) else card.encode())
    assert _card_tags(tmp_path / "README.md") == ["custom", "pushed"]


# ----- class-level declarations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family"),
    [("BertForMaskedLM", "bert"), ("BertForPreTraining", "bert"), ("DistilBertForMaskedLM", "distilbert")],
)
def test_tied_weights_keys_map_each_target_to_its_source(name, family):
    model = _model(name, family)
    tied = type(model)._tied_weights_keys
    assert isinstance(tied, dict) and tied
    for target, source in tied.items():
        assert model.get_parameter(target) is model.get_parameter(source)
    untied = _model(name, family, tie_word_embeddings=False)
    decoder = next(iter(tied))
    assert untied.get_parameter(decoder) is not untied.get_parameter(tied[decoder])


def test_accelerate_reties_the_declared_weights():
    """accelerate's FSDP parameter-init wrapper reads the tied names and finds their modules."""
    fsdp_utils = pytest.importorskip("accelerate.utils.fsdp_utils")
    model = _model("DistilBertForMaskedLM", "distilbert")
    init = fsdp_utils.ensure_weights_retied(lambda module: module, model, torch.device("cpu"))
    init(model.vocab_projector)  # raises if a declared name does not resolve
    assert model.vocab_projector.weight is model.get_input_embeddings().weight


class _IgnoringBert(plugformers.BertForMaskedLM):
    _keys_to_ignore_on_save = ["cls.predictions.transform.dense.bias"]


class _IgnoringBase(plugformers.BertModel):
    _keys_to_ignore_on_save = ["pooler.dense.bias"]


class _BertWithIgnoringBase(plugformers.BertForSequenceClassification):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.bert = _IgnoringBase(config)


def _saved_keys(folder) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


def test_keys_to_ignore_on_save_are_left_out_of_the_file(tmp_path):
    model = _IgnoringBert(tiny_config("bert"))
    model.save_pretrained(tmp_path / "head")
    keys = _saved_keys(tmp_path / "head")
    assert "cls.predictions.transform.dense.bias" not in keys and "cls.predictions.transform.dense.weight" in keys
    model.save_pretrained(tmp_path / "given", state_dict=model.state_dict())  # an explicit state dict too
    assert "cls.predictions.transform.dense.bias" not in _saved_keys(tmp_path / "given")
    # Declared by a model inside the saved one: relative to that model.
    nested = _BertWithIgnoringBase(tiny_config("bert"))
    nested.save_pretrained(tmp_path / "nested")
    assert "bert.pooler.dense.bias" not in _saved_keys(tmp_path / "nested")
    assert "bert.pooler.dense.weight" in _saved_keys(tmp_path / "nested")


class _KeepClassifier(plugformers.DistilBertForSequenceClassification):
    _keep_in_fp32_modules = ["classifier"]


class _KeepClassifierStrict(plugformers.DistilBertForSequenceClassification):
    _keep_in_fp32_modules_strict = ["classifier"]


def _dtypes(model: Any) -> dict[str, set[torch.dtype]]:
    kept = {p.dtype for n, p in model.named_parameters() if n.startswith("classifier.")}
    others = {p.dtype for n, p in model.named_parameters() if not n.startswith("classifier.")}
    return {"kept": kept, "others": others}


def test_keep_in_fp32_modules_stay_float32_in_float16_with_their_exact_values(tmp_path):
    source = _model("DistilBertForSequenceClassification", "distilbert")
    with torch.no_grad():
        source.classifier.weight.add_(1e-4)  # values float16 would round
    source.save_pretrained(tmp_path)
    half = _KeepClassifier.from_pretrained(tmp_path, dtype=torch.float16)
    assert _dtypes(half) == {"kept": {torch.float32}, "others": {torch.float16}}
    assert torch.equal(half.classifier.weight, source.classifier.weight)  # never went through float16
    assert half.config.dtype is torch.float16
    bf16 = _KeepClassifier.from_pretrained(tmp_path, dtype=torch.bfloat16)  # the plain list: float16 only
    assert _dtypes(bf16) == {"kept": {torch.bfloat16}, "others": {torch.bfloat16}}
    strict = _KeepClassifierStrict.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert _dtypes(strict) == {"kept": {torch.float32}, "others": {torch.bfloat16}}
    built = _KeepClassifier._from_config(tiny_config("distilbert"), dtype=torch.float16)
    assert _dtypes(built) == {"kept": {torch.float32}, "others": {torch.float16}}
    full = _KeepClassifier.from_pretrained(tmp_path)
    assert _dtypes(full) == {"kept": {torch.float32}, "others": {torch.float32}}


# ----- config.get_text_config ---------------------------------------------------------------------------


def test_get_text_config_is_the_config_itself_or_its_text_part():
    config = tiny_config("bert")
    assert config.get_text_config() is config and config.get_text_config(decoder=True) is config
    composite = PretrainedConfig(text_config=tiny_config("distilbert"))
    assert composite.get_text_config() is composite.text_config
    assert composite.get_text_config(encoder=True) is composite  # text_config is an output-side name
    both = PretrainedConfig(text_encoder=tiny_config("bert"), decoder=tiny_config("distilbert"))
    assert both.get_text_config(encoder=True) is both.text_encoder
    assert both.get_text_config(decoder=True) is both.decoder
    with pytest.raises(ValueError, match="several text configs"):
        both.get_text_config()
    odd = PretrainedConfig(decoder="not a config")  # a field of that name that holds no config is no text part
    assert odd.get_text_config() is odd


# ----- output_hidden_states as indices ----------------------------------------------------------------------


def _pattern(states: tuple[Any, ...] | None) -> str | None:
    return None if states is None else "".join("." if s is None else "x" for s in states)


def test_output_hidden_states_selects_layers_by_index():
    model = _model("BertForSequenceClassification", "bert", num_hidden_layers=3).eval()
    ids = _ids(model)
    with torch.no_grad():
        full = model(input_ids=ids, output_hidden_states=True).hidden_states
        cases = {
            (0, -1): "x..x",
            (2,): "..x.",
            (-3,): ".x..",
            (9, -9): "....",  # out of range: nothing, as in the reference
        }
        for selection, expected in cases.items():
            got = model(input_ids=ids, output_hidden_states=list(selection)).hidden_states
            assert _pattern(got) == expected, selection
            for a, b in zip(full, got):
                assert b is None or torch.equal(a, b)
        assert _pattern(model(input_ids=ids, output_hidden_states=-1).hidden_states) == "...x"
        assert _pattern(model(input_ids=ids, output_hidden_states=0).hidden_states) == "x..."
        assert model(input_ids=ids, output_hidden_states=[]).hidden_states is None
        as_tuple = model(input_ids=ids, output_hidden_states=[1], return_dict=False)
        assert _pattern(as_tuple[1]) == ".x.."
        model.config.output_hidden_states = [3]  # the config may hold a selection too
        assert _pattern(model(input_ids=ids).hidden_states) == "...x"
    with pytest.raises(TypeError, match="output_hidden_states must be True/False or the indices"):
        model(input_ids=ids, output_hidden_states=[1.0])


def test_a_weighted_layer_sum_head_returns_only_the_selected_states():
    """Wav2Vec2's weighted layer sum needs every layer; the caller still gets only what it asked for."""
    model = _model("Wav2Vec2ForSequenceClassification", "wav2vec2", use_weighted_layer_sum=True).eval()
    values = torch.randn(2, 400, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(input_values=values)
        picked = model(input_values=values, output_hidden_states=[-1])
    assert plain.hidden_states is None
    assert _pattern(picked.hidden_states) == "..x"
    torch.testing.assert_close(picked.logits, plain.logits)
