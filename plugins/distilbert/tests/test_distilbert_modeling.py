"""DistilBERT model tests: the shared extra model tests plus family-specific behaviour (conformance: conftest.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from plugformers_distilbert.configuration_distilbert import DistilBertConfig
from plugformers_distilbert.modeling_distilbert import (
    DistilBertForMaskedLM,
    DistilBertForMultipleChoice,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
    sinusoidal_table,
)

from plugformers import AutoConfig
from plugformers.configuration_utils import ConfigError
from plugformers.plugins import get_registry
from plugformers.testing.model_tests import ModelExtraTestsMixin, assert_close_outputs

SPEC = get_registry().family("distilbert")
VOCAB = SPEC.tiny_config["vocab_size"]
ALL = (
    DistilBertModel,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertForQuestionAnswering,
    DistilBertForTokenClassification,
    DistilBertForMultipleChoice,
)


def tiny_config(**overrides: object) -> DistilBertConfig:
    """The registration's tiny config (what the conformance suite and ``demo --small`` use), with ``overrides``."""
    return SPEC.build_config(tiny=True, **overrides)


def tiny_inputs(model_class: type) -> dict[str, torch.Tensor]:
    """The registration's example inputs for the tiny config: last row padded, plus the labels the head takes."""
    return SPEC.build_example_inputs(tiny_config(), model_class, labels=True)


class TestDistilBertModels(ModelExtraTestsMixin):
    """The mixin's extras; the conformance suite (conftest.py) runs the generic checks on this config."""

    all_model_classes = ALL

    def get_config(self) -> DistilBertConfig:
        return tiny_config()

    def prepare_inputs(self, config: DistilBertConfig, model_class: type) -> dict[str, torch.Tensor]:
        return tiny_inputs(model_class)


# ----- configuration ---------------------------------------------------------------------------------


def test_config_defaults_print_like_the_reference():
    text = repr(DistilBertConfig())
    assert text.startswith("DistilBertConfig {\n")
    for line in ('"activation": "gelu"', '"dim": 768', '"hidden_dim": 3072', '"n_layers": 6', '"n_heads": 12',
                 '"pad_token_id": 0', '"sinusoidal_pos_embds": false', '"tie_word_embeddings": true',
                 '"vocab_size": 30522', '"seq_classif_dropout": 0.2', '"model_type": "distilbert"'):  # fmt: skip
        assert line in text
    custom = DistilBertConfig(activation="relu", attention_dropout=0.4)
    assert '"activation": "relu"' in repr(custom) and '"attention_dropout": 0.4' in repr(custom)


def test_config_aliases_and_round_trip(tmp_path):
    config = DistilBertConfig(hidden_size=64, num_attention_heads=8, num_hidden_layers=3)
    assert (config.dim, config.n_heads, config.n_layers) == (64, 8, 3)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (64, 8, 3)
    config.save_pretrained(tmp_path)
    again = DistilBertConfig.from_pretrained(tmp_path / "config.json", activation="relu")
    assert (again.dim, again.n_heads, again.activation) == (64, 8, "relu")
    assert again.to_diff_dict()["dim"] == 64


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"n_layers": 0}, "n_layers"),
        ({"dropout": 1.5}, "dropout"),
        ({"vocab_size": "many"}, "vocab_size"),
        ({"sinusoidal_pos_embds": "yes"}, "sinusoidal_pos_embds"),
        ({"pad_token_id": 500, "vocab_size": 100}, "pad_token_id"),
        ({"activation": 3}, "activation"),
    ],
)
def test_config_rejects_bad_values(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        DistilBertConfig(**kwargs)


def test_overrides_can_repair_what_the_saved_config_alone_fails_on(tmp_path):
    # Overrides are applied before validation, so pad_token_id=0 fixes a file whose pad id is past the vocabulary.
    (tmp_path / "config.json").write_text('{"model_type": "distilbert", "vocab_size": 10, "pad_token_id": 12}')
    assert AutoConfig.from_pretrained(tmp_path, pad_token_id=0).pad_token_id == 0
    assert DistilBertConfig.from_dict({"pad_token_id": 12}, vocab_size=16).vocab_size == 16
    with pytest.raises(ConfigError, match="pad_token_id"):
        AutoConfig.from_pretrained(tmp_path)


def test_heads_that_do_not_divide_dim_refuse_the_model_not_the_config(tmp_path):
    config = tiny_config(dim=30, n_heads=4)  # accepted, as the reference accepts it
    config.save_pretrained(tmp_path)
    assert DistilBertConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=r"DistilBertConfig\.dim \(30\).*n_heads \(4\)"):
        DistilBertModel(config)


def test_unknown_activation_names_the_choices():
    with pytest.raises(KeyError, match="gelu_10"):
        DistilBertModel(tiny_config(activation="not_an_activation"))


# ----- bad inputs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model() -> DistilBertModel:
    torch.manual_seed(0)
    return DistilBertModel(tiny_config()).eval()


def test_token_ids_out_of_range(base_model):
    with pytest.raises(ValueError, match="Token id 99 is out of range"):
        base_model(torch.tensor([[1, 2, VOCAB]]))
    with pytest.raises(ValueError, match="out of range"):
        base_model(torch.tensor([[-1, 2]]))
    with pytest.raises(TypeError, match="integer token ids"):
        base_model(torch.tensor([[1.0, 2.0]]))


def test_sequence_longer_than_positions(base_model):
    with pytest.raises(ValueError, match="longer than max_position_embeddings=64"):
        base_model(torch.ones(1, 65, dtype=torch.long))


def test_mismatched_attention_mask(base_model):
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\)"):
        base_model(torch.ones(2, 6, dtype=torch.long), attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        base_model(torch.ones(2, 6, dtype=torch.long), attention_mask=torch.ones(2, 6, 1))


def test_exactly_one_of_ids_and_embeds(base_model):
    ids = torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        base_model(ids, inputs_embeds=torch.zeros(1, 4, 32))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        base_model()
    with pytest.raises(ValueError, match="inputs_embeds must have shape"):
        base_model(inputs_embeds=torch.zeros(1, 4, 31))


def test_bad_head_mask_shape(base_model):
    with pytest.raises(ValueError, match="head_mask must have shape"):
        base_model(torch.ones(1, 4, dtype=torch.long), head_mask=torch.ones(3, 4))


def test_question_answering_needs_two_labels():
    with pytest.raises(ValueError, match="num_labels == 2"):
        DistilBertForQuestionAnswering(tiny_config(num_labels=3))


# ----- behaviour ---------------------------------------------------------------------------------------


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


def test_inputs_embeds_equal_ids(base_model):
    ids = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        embeds = base_model.get_input_embeddings()(ids)
        assert_close_outputs(base_model(ids), base_model(inputs_embeds=embeds), atol=0, rtol=0)


def test_head_mask_zero_equals_pruning_that_head():
    torch.manual_seed(0)
    model = DistilBertModel(tiny_config()).eval()
    inputs = tiny_inputs(DistilBertModel)
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
    assert model.transformer.layer[0].attention.q_lin.out_features == 24
    assert model.config.pruned_heads == {0: [1], 1: [3]}


def test_pruned_checkpoint_reloads(tmp_path):
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(tiny_config()).eval()
    model.prune_heads({1: [0, 2]})
    model.save_pretrained(tmp_path)
    again, info = DistilBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    inputs = tiny_inputs(DistilBertForSequenceClassification)
    with torch.no_grad():
        assert_close_outputs(model(**inputs), again(**inputs), atol=0, rtol=0)


def test_prune_heads_bad_layer():
    model = DistilBertModel(tiny_config())
    with pytest.raises(ValueError, match="layer 5"):
        model.prune_heads({5: [0]})


def test_sinusoidal_positions():
    table = sinusoidal_table(10, 6)
    pos, j = 7, 3  # odd column: cos with the frequency of column 2
    assert table[pos, j].item() == pytest.approx(torch.cos(torch.tensor(pos / 10000 ** (2 / 6), dtype=torch.float64)).item(), abs=1e-6)
    model = DistilBertModel(tiny_config(sinusoidal_pos_embds=True))
    torch.testing.assert_close(model.embeddings.position_embeddings.weight, sinusoidal_table(64, 32))
    model.resize_position_embeddings(80)
    assert model.config.max_position_embeddings == 80
    torch.testing.assert_close(model.embeddings.position_embeddings.weight, sinusoidal_table(80, 32))
    model(torch.ones(1, 70, dtype=torch.long))  # longer sequences now fit


def test_resize_learned_positions_keeps_rows():
    model = DistilBertModel(tiny_config())
    before = model.get_position_embeddings().weight.detach().clone()
    model.resize_position_embeddings(32)
    torch.testing.assert_close(model.get_position_embeddings().weight, before[:32])
    with pytest.raises(ValueError, match="longer than max_position_embeddings=32"):
        model(torch.ones(1, 40, dtype=torch.long))


def test_masked_lm_decoder_is_tied_and_resizes():
    model = DistilBertForMaskedLM(tiny_config())
    assert model.vocab_projector.weight is model.distilbert.embeddings.word_embeddings.weight
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(120)
    assert model.config.vocab_size == 120
    assert model.vocab_projector.weight is model.get_input_embeddings().weight
    assert model.vocab_projector.bias.shape == (120,)
    torch.testing.assert_close(model.get_input_embeddings().weight[:VOCAB], old)
    logits = model(torch.tensor([[1, 119]])).logits
    assert logits.shape == (1, 2, 120)


def test_untied_masked_lm_keeps_its_own_decoder():
    model = DistilBertForMaskedLM(tiny_config(tie_word_embeddings=False))
    assert model.vocab_projector.weight is not model.distilbert.embeddings.word_embeddings.weight


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
    model = DistilBertForSequenceClassification(tiny_config(problem_type=problem_type)).eval()
    inputs = tiny_inputs(DistilBertForSequenceClassification)
    inputs["labels"] = labels
    out = model(**inputs)
    logits = out.logits
    if problem_type is None:
        expected = torch.nn.functional.cross_entropy(logits, labels)
        assert model.config.problem_type == "single_label_classification"
    elif problem_type == "regression":
        expected = torch.nn.functional.mse_loss(logits, labels)
    else:
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(out.loss, expected)


def test_first_token_shortcut_gives_the_full_computation():
    """Classification heads compute only position 0 in the last layer; compare with the full last layer."""
    torch.manual_seed(0)
    for cls in (DistilBertForSequenceClassification, DistilBertForMultipleChoice):
        model = cls(tiny_config()).eval()
        inputs = tiny_inputs(cls)
        with torch.no_grad():
            short = model(**inputs).logits
            full = model(**inputs, output_hidden_states=True).logits
        torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("as_bool", [False, True])
def test_first_token_shortcut_with_a_4d_mask(attn, as_bool):
    """A (batch, 1, seq, seq) mask with different query rows: the shortcut keeps only row 0 of it."""
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(tiny_config()).eval()
    model.set_attn_implementation(attn)
    inputs = tiny_inputs(DistilBertForSequenceClassification)
    seq = inputs["input_ids"].shape[1]
    keep = torch.tril(torch.ones(seq, seq, dtype=torch.bool))[None, None] & inputs["attention_mask"].bool()[:, None, None, :]
    mask = keep if as_bool else torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
    inputs["attention_mask"] = mask
    with torch.no_grad():
        short = model(**inputs).logits
        full = model(**inputs, output_hidden_states=True).logits
    torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = tiny_inputs(DistilBertForTokenClassification)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = DistilBertForTokenClassification(tiny_config(dropout=0.0, attention_dropout=0.0))
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing and model.distilbert.transformer.layer[0].gradient_checkpointing
        model(**inputs).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = DistilBertModel(tiny_config(dropout=0.5, attention_dropout=0.5))
    ids = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    model.train()
    assert not torch.allclose(model(ids).last_hidden_state, model(ids).last_hidden_state)
    model.eval()
    assert torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)


def test_half_precision_masks_stay_finite():
    torch.manual_seed(0)
    model = DistilBertModel(tiny_config()).eval().to(torch.bfloat16)
    ids = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])  # a fully padded row included
    with torch.no_grad():
        for impl in ("eager", "sdpa"):
            model.set_attn_implementation(impl)
            out = model(ids, attention_mask=mask).last_hidden_state
            assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ----- the opt-in fast path (shared behaviour is in the mixin's test_fast_path_*) --------------------------


def test_fast_path_with_eager_attention_first_token_only_and_pruned_heads():
    torch.manual_seed(0)
    model = DistilBertForQuestionAnswering(tiny_config()).eval()
    inputs = tiny_inputs(DistilBertForQuestionAnswering)
    with torch.no_grad():
        model.set_attn_implementation("eager")
        before = model(**inputs, output_attentions=True)
        model.enable_fast_path()
        assert_close_outputs(before, model(**inputs, output_attentions=True), atol=1e-5, rtol=1e-5)
    # The classification head computes only position 0 of the last layer (queries != keys there).
    clf = DistilBertForSequenceClassification(tiny_config()).eval()
    clf_inputs = tiny_inputs(DistilBertForSequenceClassification)
    with torch.no_grad():
        plain = clf(**clf_inputs).logits
        torch.testing.assert_close(clf.enable_fast_path()(**clf_inputs).logits, plain, atol=1e-5, rtol=1e-5)
        # Pruning replaces the projections; the derived weights must follow.
        clf.prune_heads({0: [2]})
        pruned_fast = clf(**clf_inputs).logits
        torch.testing.assert_close(clf.disable_fast_path()(**clf_inputs).logits, pruned_fast, atol=1e-5, rtol=1e-5)


def test_fast_path_without_onednn_uses_the_fused_plain_matmul(monkeypatch):
    from plugformers import fast_path

    monkeypatch.setattr(fast_path, "onednn_available", lambda: False)
    torch.manual_seed(0)
    model = DistilBertForTokenClassification(tiny_config(activation="relu")).eval()
    inputs = tiny_inputs(DistilBertForTokenClassification)
    with torch.no_grad():
        plain = model(**inputs).logits
        torch.testing.assert_close(model.enable_fast_path()(**inputs).logits, plain, atol=1e-5, rtol=1e-5)


# ----- the user's guide flows ----------------------------------------------------------------------------


def test_guide_flow_base_checkpoint_into_heads(tmp_path, caplog):
    my_config = tiny_config(activation="relu", attention_dropout=0.4)
    my_config.save_pretrained(tmp_path / "cfg")
    loaded = DistilBertConfig.from_pretrained(tmp_path / "cfg" / "config.json")
    assert loaded.activation == "relu" and loaded.attention_dropout == 0.4
    torch.manual_seed(0)
    base = DistilBertModel(loaded)
    base.save_pretrained(tmp_path / "base")
    for head, new_weights in (
        (DistilBertForSequenceClassification, {"pre_classifier.weight", "classifier.weight"}),
        (DistilBertForQuestionAnswering, {"qa_outputs.weight", "qa_outputs.bias"}),
        (DistilBertForMaskedLM, {"vocab_transform.weight", "vocab_layer_norm.weight"}),
    ):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            model, info = head.from_pretrained(tmp_path / "base", output_loading_info=True)
        assert new_weights <= set(info["missing_keys"])
        assert not any(k.startswith("distilbert.") for k in info["missing_keys"])
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "newly initialised" in r.getMessage()]
        assert len(warnings) == 1
    torch.testing.assert_close(
        model.distilbert.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight
    )
    # from_pretrained with a replacement config
    other = tiny_config(activation="gelu", output_hidden_states=True)
    swapped = DistilBertModel.from_pretrained(tmp_path / "base", config=other)
    assert swapped.config.activation == "gelu"
    assert len(swapped(torch.tensor([[1, 2, 3]])).hidden_states) == 3


def test_plugformers_namespace_and_auto():
    import plugformers

    assert plugformers.DistilBertModel is DistilBertModel
    assert plugformers.DistilBertConfig is DistilBertConfig
    model = plugformers.AutoModelForMaskedLM.from_config(tiny_config())
    assert type(model) is DistilBertForMaskedLM
    assert type(plugformers.AutoModelForPreTraining.from_config(tiny_config())) is DistilBertForMaskedLM
    assert type(plugformers.AutoConfig.for_model("distilbert", dim=64, n_heads=4)) is DistilBertConfig


@pytest.mark.gpu
def test_cuda_half_precision_matches_float32():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(tiny_config()).eval().cuda()
    inputs = {k: v.cuda() for k, v in tiny_inputs(DistilBertForSequenceClassification).items() if k != "labels"}
    with torch.no_grad():
        expected = model(**inputs).logits
        for dtype in (torch.float16, torch.bfloat16):
            half = DistilBertForSequenceClassification(tiny_config()).eval().cuda()
            half.load_state_dict(model.state_dict())
            half = half.to(dtype)
            for fast in (False, True):
                if fast:
                    half.enable_fast_path()
                got = half(**inputs).logits
                assert got.dtype == dtype
                torch.testing.assert_close(got.float(), expected, atol=3e-2, rtol=3e-2)
