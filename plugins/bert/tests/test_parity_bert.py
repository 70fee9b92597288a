"""Parity of the BERT models with the reference library (run in the nox ``parity`` session).

Checkpoints go both ways (reference save -> our load, our save -> reference load) and every output
(hidden states, attentions, pooled output, logits, losses) must agree within 1e-5 in float32.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_bert import modeling_bert as ours  # noqa: E402
from plugformers_bert.configuration_bert import BertConfig  # noqa: E402

import plugformers  # noqa: E402
from plugformers.testing.model_tests import assert_close_outputs  # noqa: E402

ATOL = 1e-5
HEADS = [
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
]
SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64, type_vocab_size=3)  # fmt: skip
CONFIGS = {
    "small": SMALL,
    "gelu_new": {**SMALL, "hidden_act": "gelu_new", "layer_norm_eps": 1e-5},
    "relu_untied": {**SMALL, "hidden_act": "relu", "tie_word_embeddings": False},
    "three_labels": {**SMALL, "num_labels": 3, "num_hidden_layers": 3, "classifier_dropout": 0.3},
}


def _inputs(name: str, seed: int = 0, vocab: int = SMALL["vocab_size"]) -> dict[str, torch.Tensor]:
    """A padded batch of three (second row half padding) with segment ids 0/1/2, plus the head's labels."""
    g = torch.Generator().manual_seed(seed)
    batch, seq = 3, 9
    shape = (batch, 2, seq) if name == "BertForMultipleChoice" else (batch, seq)
    ids = torch.randint(1, vocab, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., seq // 2 :] = 0
    types = torch.zeros(shape, dtype=torch.long)
    types[..., 4:] = 1
    types[2, ..., 7:] = 2
    out = {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask, "token_type_ids": types}
    mlm_labels = torch.randint(0, vocab, (batch, seq), generator=g)
    mlm_labels[0, :3] = -100
    if name in ("BertForMaskedLM", "BertForPreTraining"):
        out["labels"] = mlm_labels
    if name == "BertForPreTraining":
        out["next_sentence_label"] = torch.tensor([0, 1, 1])
    elif name in ("BertForSequenceClassification", "BertForMultipleChoice", "BertForNextSentencePrediction"):
        out["labels"] = torch.tensor([0, 1, 1])
    elif name == "BertForTokenClassification":
        out["labels"] = torch.randint(0, 2, (batch, seq), generator=g)
    elif name == "BertForQuestionAnswering":
        out["start_positions"] = torch.tensor([1, 3, 20])  # 20: out of range, clamped and ignored
        out["end_positions"] = torch.tensor([2, 4, 5])
    return out


def _assert_close(ref: Any, mine: Any) -> None:
    """Same output class, the same fields in the same order, every tensor within ATOL."""
    assert type(ref).__name__ == type(mine).__name__ and list(ref.keys()) == list(mine.keys())
    assert_close_outputs(ref, mine, atol=ATOL, rtol=0)


def _quiet() -> None:
    transformers.logging.set_verbosity_error()


def _reference_model(name: str, kwargs: dict, seed: int = 0, attn: str = "eager"):
    _quiet()
    torch.manual_seed(seed)
    config = transformers.BertConfig(**kwargs)
    config._attn_implementation = attn
    return getattr(transformers, name)(config).eval()


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize("name", HEADS)
def test_reference_checkpoint_loads_and_matches(tmp_path, name, config_name):
    kwargs = CONFIGS[config_name]
    if name == "BertForQuestionAnswering" and kwargs.get("num_labels", 2) != 2:
        pytest.skip("question answering always has two labels (start, end)")
    ref = _reference_model(name, kwargs)
    ref.save_pretrained(tmp_path)
    mine, info = getattr(ours, name).from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    inputs = _inputs(name)
    with torch.no_grad():
        _assert_close(ref(**inputs, output_hidden_states=True, output_attentions=True),
                      mine(**inputs, output_hidden_states=True, output_attentions=True))  # fmt: skip
        # Without the extra outputs (the pooled heads then take their first-token shortcut).
        plain_ref = ref(**inputs)
        _assert_close(plain_ref, mine(**inputs))
        mine.set_attn_implementation("sdpa")
        _assert_close(plain_ref, mine(**inputs))
        mine.enable_fast_path()
        _assert_close(plain_ref, mine(**inputs))
        # The tuple form holds the same tensors in the same order.
        assert_close_outputs(ref(**inputs, return_dict=False), mine(**inputs, return_dict=False), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", HEADS)
def test_our_checkpoint_loads_in_reference(tmp_path, name):
    _quiet()
    torch.manual_seed(1)
    mine = getattr(ours, name)(BertConfig(**SMALL)).eval()
    mine.save_pretrained(tmp_path)
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    inputs = _inputs(name, seed=3)
    with torch.no_grad():
        _assert_close(ref.eval()(**inputs, output_hidden_states=True), mine(**inputs, output_hidden_states=True))


@pytest.mark.parametrize("name", HEADS)
def test_state_dict_names_and_shapes_match(name):
    for tied in (True, False):
        ref = _reference_model(name, {**SMALL, "tie_word_embeddings": tied})
        mine = getattr(ours, name)(BertConfig(**SMALL, tie_word_embeddings=tied))
        assert {k: tuple(v.shape) for k, v in mine.state_dict().items()} == {
            k: tuple(v.shape) for k, v in ref.state_dict().items()
        }


def test_decoder_mode_matches(tmp_path):
    """``is_decoder=True``: causal self-attention (the reference's BertModel as a decoder, without a cache)."""
    kwargs = {**SMALL, "is_decoder": True}
    for attn in ("eager", "sdpa"):
        ref = _reference_model("BertModel", kwargs, attn=attn)
        ref.save_pretrained(tmp_path / attn)
        mine = ours.BertModel.from_pretrained(tmp_path / attn, attn_implementation=attn)
        inputs = _inputs("BertModel")
        with torch.no_grad():
            expected = ref(**inputs, use_cache=False)
            _assert_close(expected, mine(**inputs))


def test_default_config_prints_and_saves_like_reference(tmp_path):
    _quiet()
    for custom in ({}, {"hidden_act": "relu", "attention_probs_dropout_prob": 0.4, "num_labels": 3},
                   {"classifier_dropout": 0.2, "type_vocab_size": 1, "is_decoder": True, "pad_token_id": None}):  # fmt: skip
        ref_json = json.loads(transformers.BertConfig(**custom).to_json_string())
        my_json = json.loads(BertConfig(**custom).to_json_string())
        ref_json.pop("transformers_version")
        my_json.pop("plugformers_version")
        assert my_json == ref_json, custom
    # A config.json written by the reference loads here and ours there, extra keys of old checkpoints included.
    transformers.BertConfig(num_hidden_layers=3, position_embedding_type="absolute").save_pretrained(tmp_path / "ref")
    loaded = BertConfig.from_pretrained(tmp_path / "ref")
    assert loaded.num_hidden_layers == 3 and loaded.position_embedding_type == "absolute"
    BertConfig(num_attention_heads=4, hidden_size=64, gradient_checkpointing=False).save_pretrained(tmp_path / "mine")
    back = transformers.BertConfig.from_pretrained(tmp_path / "mine")
    assert (back.num_attention_heads, back.hidden_size, back.gradient_checkpointing) == (4, 64, False)


def test_bert_base_shape_matches(tmp_path):
    """The default widths (768 hidden, 12 heads, 3072 feed-forward, 30522 tokens), one layer to stay quick."""
    ref = _reference_model("BertForMaskedLM", {"num_hidden_layers": 1}, attn="sdpa")
    ref.save_pretrained(tmp_path)
    mine = ours.BertForMaskedLM.from_pretrained(tmp_path)
    inputs = _inputs("BertForMaskedLM", vocab=30522)
    inputs["token_type_ids"] = inputs["token_type_ids"].clamp(max=1)  # two segment ids by default
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


@pytest.mark.parametrize("problem_type,labels", [
    ("regression", torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.4]])),
    ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
    ("single_label_classification", torch.tensor([2, 0, 1])),
])  # fmt: skip
def test_sequence_classification_losses(tmp_path, problem_type, labels):
    kwargs = {**SMALL, "num_labels": 3, "problem_type": problem_type}
    ref = _reference_model("BertForSequenceClassification", kwargs)
    ref.save_pretrained(tmp_path)
    mine = ours.BertForSequenceClassification.from_pretrained(tmp_path)
    inputs = {**_inputs("BertForSequenceClassification"), "labels": labels}
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


def test_regression_with_one_label_matches(tmp_path):
    ref = _reference_model("BertForSequenceClassification", {**SMALL, "num_labels": 1})
    ref.save_pretrained(tmp_path)
    mine = ours.BertForSequenceClassification.from_pretrained(tmp_path)
    inputs = {**_inputs("BertForSequenceClassification"), "labels": torch.tensor([0.5, -1.0, 2.0])}
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", ["BertModel", "BertForSequenceClassification"])
def test_4d_additive_mask_matches(tmp_path, name, attn):
    """A (batch, 1, seq, seq) float mask whose query rows differ (causal plus padding)."""
    ref = _reference_model(name, SMALL, attn=attn)
    ref.save_pretrained(tmp_path)
    mine = getattr(ours, name).from_pretrained(tmp_path, attn_implementation=attn)
    inputs = _inputs(name)
    keep = torch.tril(torch.ones(9, 9, dtype=torch.bool))[None, None] & inputs["attention_mask"].bool()[:, None, None, :]
    inputs["attention_mask"] = torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


def test_without_token_types_positions_or_with_embeds(tmp_path):
    ref = _reference_model("BertModel", SMALL)
    ref.save_pretrained(tmp_path)
    mine = ours.BertModel.from_pretrained(tmp_path)
    inputs = _inputs("BertModel")
    embeds = torch.randn(3, 9, SMALL["hidden_size"], generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        _assert_close(ref(inputs["input_ids"]), mine(inputs["input_ids"]))
        _assert_close(ref(inputs_embeds=embeds, token_type_ids=inputs["token_type_ids"]),
                      mine(inputs_embeds=embeds, token_type_ids=inputs["token_type_ids"]))  # fmt: skip
        _assert_close(ref(**inputs, position_ids=positions), mine(**inputs, position_ids=positions))


def test_random_init_statistics_match_reference():
    """Fresh models are initialised like the reference's (same distributions, padding row and MLM bias zero)."""
    kwargs = {**SMALL, "hidden_size": 64, "num_attention_heads": 4}
    ref = _reference_model("BertForPreTraining", kwargs)
    mine = ours.BertForPreTraining(BertConfig(**kwargs))
    ref_sd, my_sd = ref.state_dict(), mine.state_dict()
    for key in ref_sd:
        a, b = ref_sd[key].float(), my_sd[key].float()
        assert abs(a.mean() - b.mean()) < 0.01, key
        assert abs(a.std() - b.std()) < 0.01 or a.numel() < 2, key
    assert torch.all(my_sd["bert.embeddings.word_embeddings.weight"][0] == 0)
    assert torch.all(my_sd["cls.predictions.bias"] == 0)


def test_resized_masked_lm_matches_reference(tmp_path):
    ref = _reference_model("BertForMaskedLM", SMALL)
    ref.save_pretrained(tmp_path)
    mine = ours.BertForMaskedLM.from_pretrained(tmp_path)
    for model in (ref, mine):
        model.resize_token_embeddings(SMALL["vocab_size"] + 5)
        head = model.cls.predictions
        assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight
        assert head.decoder.bias is head.bias and head.bias.shape == (SMALL["vocab_size"] + 5,)
    inputs = _inputs("BertForMaskedLM")
    inputs.pop("labels")
    with torch.no_grad():
        expected, got = ref(**inputs).logits, mine(**inputs).logits
    # The new rows are random in both; the old vocabulary's logits must agree.
    torch.testing.assert_close(got[..., : SMALL["vocab_size"]], expected[..., : SMALL["vocab_size"]], atol=ATOL, rtol=0)


# ----- loading behaviour: the same answers as the reference ----------------------------------------------


def _both():
    return (("ref", transformers), ("ours", plugformers))


@pytest.mark.parametrize("drop", [(), ("cls.predictions.bias",), ("cls.predictions.bias", "bert.embeddings.position_ids")])
def test_older_checkpoint_layouts_load_like_reference(tmp_path, drop):
    """Older files store the decoder under its own names and the position-id buffer; some lack ``cls.predictions.bias``."""
    from safetensors.torch import load_file, save_file

    _quiet()
    torch.manual_seed(0)
    transformers.BertForPreTraining(transformers.BertConfig(**SMALL)).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    bias = torch.randn(SMALL["vocab_size"])
    tensors["cls.predictions.bias"] = bias
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"].clone()
    tensors["cls.predictions.decoder.bias"] = bias.clone()
    tensors["bert.embeddings.position_ids"] = torch.arange(SMALL["max_position_embeddings"])[None]
    for key in drop:
        tensors.pop(key)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    got = {}
    for name, lib in _both():
        model, info = lib.BertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
        head = model.cls.predictions
        got[name] = (sorted(info["missing_keys"]), sorted(info["unexpected_keys"]), torch.equal(head.bias, bias),
                     head.decoder.bias is head.bias, head.decoder.weight is model.bert.embeddings.word_embeddings.weight)  # fmt: skip
    assert got["ours"] == got["ref"]


def test_mismatched_sizes_report_matches_reference(tmp_path):
    _quiet()
    transformers.BertForSequenceClassification(transformers.BertConfig(**SMALL, num_labels=3)).save_pretrained(tmp_path)
    got = {}
    for name, lib in _both():
        _, info = lib.BertForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
        )
        got[name] = (sorted(info["missing_keys"]), sorted(str(k[0]) for k in info["mismatched_keys"]))
    assert got["ours"] == got["ref"]


@pytest.mark.parametrize("kwargs", [{"dtype": torch.float16}, {"torch_dtype": torch.bfloat16}, {"dtype": "auto"}])
def test_auto_model_dtype_matches_reference(tmp_path, kwargs):
    _quiet()
    transformers.BertForSequenceClassification(transformers.BertConfig(**SMALL)).half().save_pretrained(tmp_path)
    got = {}
    for name, lib in _both():
        model = lib.AutoModelForSequenceClassification.from_pretrained(tmp_path, **kwargs)
        got[name] = (model.dtype, model.config.dtype)
    assert got["ours"] == got["ref"]
