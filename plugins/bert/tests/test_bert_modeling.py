"""BERT model tests: the shared extra model tests plus family-specific behaviour (conformance: conftest.py)."""

from __future__ import annotations

import json

import pytest
import torch
from plugformers_bert.configuration_bert import BertConfig
from plugformers_bert.modeling_bert import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

import plugformers
from plugformers.configuration_utils import ConfigError
from plugformers.plugins import get_registry
from plugformers.testing.model_tests import ModelExtraTestsMixin, assert_close_outputs

SPEC = get_registry().family("bert")
VOCAB = SPEC.tiny_config["vocab_size"]
ALL = (
    BertModel,
    BertForPreTraining,
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForSequenceClassification,
    BertForMultipleChoice,
    BertForTokenClassification,
    BertForQuestionAnswering,
)
# The heads that read every position build their encoder without the pooler, as the reference's do.
WITHOUT_POOLER = (BertForMaskedLM, BertForTokenClassification, BertForQuestionAnswering)


def tiny_config(**overrides: object) -> BertConfig:
    """The registration's tiny config (what the conformance suite and ``demo --small`` use), with ``overrides``."""
    return SPEC.build_config(tiny=True, **overrides)


def tiny_inputs(model_class: type, **config_overrides: object) -> dict[str, torch.Tensor]:
    """The registration's example inputs: two segments, last row padded, plus the labels the head takes."""
    return SPEC.build_example_inputs(tiny_config(**config_overrides), model_class, labels=True)


class TestBertModels(ModelExtraTestsMixin):
    """The mixin's extras; the conformance suite (conftest.py) runs the generic checks on this config."""

    all_model_classes = ALL

    def get_config(self) -> BertConfig:
        return tiny_config()

    def prepare_inputs(self, config: BertConfig, model_class: type) -> dict[str, torch.Tensor]:
        return SPEC.build_example_inputs(config, model_class, labels=True)


# ----- configuration ---------------------------------------------------------------------------------


def test_config_defaults_print_like_the_reference():
    text = repr(BertConfig())
    assert text.startswith("BertConfig {\n")
    for line in ('"hidden_size": 768', '"num_hidden_layers": 12', '"num_attention_heads": 12', '"intermediate_size": 3072',
                 '"hidden_act": "gelu"', '"type_vocab_size": 2', '"layer_norm_eps": 1e-12', '"pad_token_id": 0',
                 '"classifier_dropout": null', '"is_decoder": false', '"use_cache": true', '"vocab_size": 30522',
                 '"model_type": "bert"'):  # fmt: skip
        assert line in text


def test_config_keeps_the_keys_old_checkpoints_carry(tmp_path):
    data = {"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4, "position_embedding_type": "absolute",
            "gradient_checkpointing": False, "transformers_version": "4.8.2", "some_future_key": [1, 2]}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = plugformers.AutoConfig.from_pretrained(tmp_path)
    assert type(config) is BertConfig and config.position_embedding_type == "absolute"
    config.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["gradient_checkpointing"] is False and saved["some_future_key"] == [1, 2]
    assert saved["position_embedding_type"] == "absolute" and "transformers_version" not in saved


def test_heads_that_do_not_divide_hidden_size_refuse_the_model_not_the_config(tmp_path):
    config = tiny_config(hidden_size=30, num_attention_heads=4)  # accepted, as the reference accepts it
    config.save_pretrained(tmp_path)
    assert BertConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=r"BertConfig\.hidden_size \(30\).*num_attention_heads \(4\)"):
        BertModel(config)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"type_vocab_size": 0}, "type_vocab_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"classifier_dropout": -0.1}, "classifier_dropout"),
        ({"vocab_size": "many"}, "vocab_size"),
        ({"pad_token_id": 500, "vocab_size": 100}, "pad_token_id"),
        ({"hidden_act": 3}, "hidden_act"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
        ({"is_decoder": "yes"}, "is_decoder"),
    ],
)
def test_config_rejects_bad_values(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        BertConfig(**kwargs)


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"position_embedding_type": "relative_key"}, "absolute position embeddings only"),
        ({"add_cross_attention": True, "is_decoder": True}, "add_cross_attention"),
    ],
)
def test_unsupported_variants_are_refused_by_name(overrides, needle):
    with pytest.raises(NotImplementedError, match=needle):
        BertModel(tiny_config(**overrides))


# ----- bad inputs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model() -> BertModel:
    torch.manual_seed(0)
    return BertModel(tiny_config()).eval()


def test_ids_out_of_range(base_model):
    with pytest.raises(ValueError, match=rf"input_ids holds {VOCAB}, outside \[0, {VOCAB}\)"):
        base_model(torch.tensor([[1, 2, VOCAB]]))
    with pytest.raises(TypeError, match="integer ids"):
        base_model(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"token_type_ids holds 2.*type_vocab_size=2"):
        base_model(torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(1, 3\)"):
        base_model(torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 1, 1]]))


def test_sequence_longer_than_positions(base_model):
    with pytest.raises(ValueError, match="longer than max_position_embeddings=64"):
        base_model(torch.ones(1, 65, dtype=torch.long))


def test_bad_masks_and_inputs(base_model):
    ids = torch.ones(2, 6, dtype=torch.long)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\)"):
        base_model(ids, attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        base_model(ids, inputs_embeds=torch.zeros(2, 6, 32))
    with pytest.raises(ValueError, match="inputs_embeds must have shape"):
        base_model(inputs_embeds=torch.zeros(1, 4, 31))
    with pytest.raises(ValueError, match="head_mask must have shape"):
        base_model(ids, head_mask=torch.ones(3, 4))
    with pytest.raises(ValueError, match="must have 3 dimensions"):
        BertForMultipleChoice(tiny_config())(ids)
    with pytest.raises(ValueError, match="num_labels == 2"):
        BertForQuestionAnswering(tiny_config(num_labels=3))


# ----- behaviour ---------------------------------------------------------------------------------------


def test_output_fields_and_pooler(base_model):
    inputs = tiny_inputs(BertModel)
    with torch.no_grad():
        out = base_model(**inputs)
    assert isinstance(out, BaseModelOutputWithPoolingAndCrossAttentions)
    assert list(out.keys()) == ["last_hidden_state", "pooler_output"]
    cls_state = out.last_hidden_state[:, 0]
    expected = torch.tanh(base_model.pooler.dense(cls_state))
    torch.testing.assert_close(out.pooler_output, expected)
    bare = BertModel(tiny_config(), add_pooling_layer=False)
    assert bare.pooler is None and not any(k.startswith("pooler.") for k in bare.state_dict())


def test_token_types_are_a_learned_segment_offset(base_model):
    ids = torch.randint(1, VOCAB, (1, 6), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        default = base_model(ids).last_hidden_state
        zeros = base_model(ids, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        second = base_model(ids, token_type_ids=torch.tensor([[0, 0, 0, 1, 1, 1]])).last_hidden_state
    assert torch.equal(default, zeros)
    assert not torch.allclose(default, second)


def test_padding_does_not_change_real_tokens(base_model):
    ids = torch.randint(1, VOCAB, (1, 5), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    with torch.no_grad():
        alone = base_model(ids).last_hidden_state
        for impl in ("eager", "sdpa"):
            base_model.set_attn_implementation(impl)
            together = base_model(padded, attention_mask=mask).last_hidden_state[:, :5]
            torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


def test_decoder_config_attends_causally():
    """With ``is_decoder`` a position's state does not depend on later tokens."""
    torch.manual_seed(0)
    model = BertModel(tiny_config(is_decoder=True)).eval()
    ids = torch.randint(1, VOCAB, (1, 6), generator=torch.Generator().manual_seed(5))
    changed = ids.clone()
    changed[0, 4:] = (changed[0, 4:] % (VOCAB - 1)) + 1
    with torch.no_grad():
        a = model(ids, output_attentions=True)
        b = model(changed)
    torch.testing.assert_close(a.last_hidden_state[:, :4], b.last_hidden_state[:, :4])
    assert not torch.allclose(a.last_hidden_state[:, 4:], b.last_hidden_state[:, 4:])
    assert torch.all(a.attentions[0][..., 0, 1:] == 0)


def test_head_mask_zero_equals_pruning_that_head():
    torch.manual_seed(0)
    model = BertModel(tiny_config()).eval()
    inputs = tiny_inputs(BertModel)
    head_mask = torch.ones(2, 4)
    head_mask[0, 1] = 0
    head_mask[1, 3] = 0
    with torch.no_grad():
        masked = model(**inputs, head_mask=head_mask).last_hidden_state
        unmasked = model(**inputs).last_hidden_state
        model.prune_heads({0: [1], 1: [3]})
        pruned = model(**inputs).last_hidden_state
    assert not torch.allclose(masked, unmasked)
    torch.testing.assert_close(masked, pruned, atol=1e-5, rtol=1e-5)
    layer = model.encoder.layer[0].attention
    assert layer.self.query.out_features == 24 and layer.output.dense.in_features == 24
    assert model.config.pruned_heads == {0: [1], 1: [3]}


def test_pruning_a_copy_prunes_the_copys_output_projection_only():
    """The attention reaches its sibling output block by reference; a deep copy must get its own."""
    import copy

    model = BertModel(tiny_config())
    clone = copy.deepcopy(model)
    clone.prune_heads({0: [1, 2]})
    assert clone.encoder.layer[0].attention.output.dense.in_features == 16
    assert model.encoder.layer[0].attention.output.dense.in_features == 32
    assert model.encoder.layer[0].attention.self.num_heads == 4


def test_pruned_checkpoint_reloads(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config()).eval()
    model.prune_heads({1: [0, 2]})
    model.save_pretrained(tmp_path)
    again, info = BertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    inputs = tiny_inputs(BertForSequenceClassification)
    with torch.no_grad():
        assert_close_outputs(model(**inputs), again(**inputs), atol=0, rtol=0)


@pytest.mark.parametrize("cls", WITHOUT_POOLER)
def test_heads_without_a_pooler_drop_it_quietly_and_the_base_reports_it_missing(tmp_path, cls):
    torch.manual_seed(0)
    BertModel(tiny_config()).save_pretrained(tmp_path / "base")
    head, info = cls.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert head.bert.pooler is None and not info["unexpected_keys"]
    head.save_pretrained(tmp_path / "head")
    _, back = BertModel.from_pretrained(tmp_path / "head", output_loading_info=True)
    assert sorted(back["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]


@pytest.mark.parametrize("cls", [BertForMaskedLM, BertForPreTraining])
def test_decoder_is_tied_to_the_embeddings_and_resizes(cls):
    model = cls(tiny_config())
    head = model.cls.predictions
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert head.decoder.bias is head.bias
    keys = model.state_dict()
    assert "cls.predictions.bias" in keys and "cls.predictions.decoder.weight" in keys
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(VOCAB + 8)
    assert model.config.vocab_size == VOCAB + 8
    assert head.decoder.weight is model.get_input_embeddings().weight
    assert head.decoder.bias is head.bias and head.bias.shape == (VOCAB + 8,)
    torch.testing.assert_close(model.get_input_embeddings().weight[:VOCAB], old)
    logits = model(torch.tensor([[1, VOCAB + 7]]))[0]
    assert logits.shape == (1, 2, VOCAB + 8)


def test_untied_masked_lm_keeps_its_own_decoder():
    model = BertForMaskedLM(tiny_config(tie_word_embeddings=False))
    head = model.cls.predictions
    assert head.decoder.weight is not model.bert.embeddings.word_embeddings.weight
    assert head.decoder.bias is not head.bias


def test_pretraining_loss_is_the_sum_of_both_objectives():
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config()).eval()
    inputs = tiny_inputs(BertForPreTraining)
    out = model(**inputs)
    mlm = torch.nn.functional.cross_entropy(out.prediction_logits.reshape(-1, VOCAB), inputs["labels"].reshape(-1))
    nsp = torch.nn.functional.cross_entropy(out.seq_relationship_logits, inputs["next_sentence_label"])
    torch.testing.assert_close(out.loss, mlm + nsp)
    inputs.pop("next_sentence_label")
    assert model(**inputs).loss is None  # the reference computes the loss only with both label sets


@pytest.mark.parametrize(
    "problem_type,labels",
    [
        (None, torch.tensor([1, 0])),
        ("multi_label_classification", torch.tensor([[1.0, 0.0], [1.0, 1.0]])),
        ("regression", torch.tensor([[0.5, 1.0], [2.0, -1.0]])),
    ],
)
def test_sequence_classification_problem_types(problem_type, labels):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(problem_type=problem_type)).eval()
    inputs = tiny_inputs(BertForSequenceClassification)
    inputs["labels"] = labels
    out = model(**inputs)
    if problem_type is None:
        expected = torch.nn.functional.cross_entropy(out.logits, labels)
        assert model.config.problem_type == "single_label_classification"
    elif problem_type == "regression":
        expected = torch.nn.functional.mse_loss(out.logits, labels)
    else:
        expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForMultipleChoice, BertForNextSentencePrediction])
def test_first_token_shortcut_gives_the_full_computation(cls):
    """The pooled heads compute only position 0 in the last layer; compare with the full last layer."""
    torch.manual_seed(0)
    model = cls(tiny_config()).eval()
    inputs = tiny_inputs(cls)
    with torch.no_grad():
        short = model(**inputs).logits
        full = model(**inputs, output_hidden_states=True).logits
    torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    inputs = tiny_inputs(BertForPreTraining)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = BertForPreTraining(tiny_config(**no_dropout)).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.bert.encoder.layer)
        model(**inputs).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_chunked_feed_forward_gives_the_same_states():
    torch.manual_seed(0)
    model = BertModel(tiny_config()).eval()
    inputs = tiny_inputs(BertModel)
    with torch.no_grad():
        whole = model(**inputs).last_hidden_state
        for layer in model.encoder.layer:
            layer.chunk_size_feed_forward = 2
        torch.testing.assert_close(model(**inputs).last_hidden_state, whole, atol=1e-6, rtol=1e-5)


def test_fast_path_with_first_token_only_and_pruned_heads():
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config()).eval()
    inputs = tiny_inputs(BertForSequenceClassification)
    with torch.no_grad():
        plain = model(**inputs).logits
        torch.testing.assert_close(model.enable_fast_path()(**inputs).logits, plain, atol=1e-5, rtol=1e-5)
        # Pruning replaces the projections; the derived weights must follow.
        model.prune_heads({0: [2]})
        pruned_fast = model(**inputs).logits
        torch.testing.assert_close(model.disable_fast_path()(**inputs).logits, pruned_fast, atol=1e-5, rtol=1e-5)


def test_plugformers_namespace_and_auto_classes():
    assert plugformers.BertModel is BertModel and plugformers.BertConfig is BertConfig
    expected = {
        "AutoModel": BertModel,
        "AutoModelForPreTraining": BertForPreTraining,
        "AutoModelForMaskedLM": BertForMaskedLM,
        "AutoModelForNextSentencePrediction": BertForNextSentencePrediction,
        "AutoModelForSequenceClassification": BertForSequenceClassification,
        "AutoModelForMultipleChoice": BertForMultipleChoice,
        "AutoModelForTokenClassification": BertForTokenClassification,
        "AutoModelForQuestionAnswering": BertForQuestionAnswering,
    }
    for auto, cls in expected.items():
        assert type(getattr(plugformers, auto).from_config(tiny_config())) is cls, auto
    assert SPEC.tasks_of("BertForSequenceClassification") == ["text-classification", "zero-shot-classification"]
    assert SPEC.tasks_of("BertForMaskedLM") == ["fill-mask"]
    assert type(plugformers.AutoConfig.for_model("bert", hidden_size=64, num_attention_heads=4)) is BertConfig


def test_example_preprocessor_fits_the_tiny_config():
    tokenizer = SPEC.build_example_preprocessor(tiny_config())
    enc = tokenizer("hello, world!", "again 42", return_tensors="pt")
    assert enc["token_type_ids"].tolist()[0].count(1) == len(tokenizer.tokenize("again 42")) + 1
    assert tokenizer.unk_token_id not in enc["input_ids"][0].tolist()
    with torch.no_grad():
        assert BertModel(tiny_config()).eval()(**enc).last_hidden_state.shape[1] == enc["input_ids"].shape[1]
