"""Wav2Vec2 models: the shared model suite plus the family's own behaviour (masks, CTC, SpecAugment, keys)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from plugformers_wav2vec2.configuration_wav2vec2 import Wav2Vec2Config
from plugformers_wav2vec2.examples import speech_like
from plugformers_wav2vec2.modeling_wav2vec2 import (
    Wav2Vec2ForAudioFrameClassification,
    Wav2Vec2ForCTC,
    Wav2Vec2ForPreTraining,
    Wav2Vec2ForSequenceClassification,
    Wav2Vec2ForXVector,
    Wav2Vec2Model,
    compute_mask_indices,
    sample_negative_indices,
)
from safetensors.torch import load_file, save_file

from plugformers.configuration_utils import ConfigError
from plugformers.plugins import get_registry
from plugformers.testing.model_tests import ModelExtraTestsMixin, ModelTesterMixin

SPEC = get_registry().family("wav2vec2")


def tiny_config(**overrides: Any) -> Wav2Vec2Config:
    """The registration's tiny config: 32 wide, 2 layers, 40+ samples make a frame (stride 20); with ``overrides``."""
    return SPEC.build_config(tiny=True, **overrides)


def audio_batch(batch: int = 2, samples: int = 800, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Speech-like signals; the last example is padded (zeros, mask 0) after 60% of its samples."""
    values = speech_like(batch, samples, seed)
    mask = torch.ones(batch, samples, dtype=torch.long)
    if batch > 1:
        mask[-1, int(samples * 0.6) :] = 0
    return values * mask, mask


class TestWav2Vec2ModelSuite(ModelExtraTestsMixin):
    """The registered config: the conformance suite (conftest.py) runs the generic checks, these the extras."""

    all_model_classes = (
        Wav2Vec2Model,
        Wav2Vec2ForCTC,
        Wav2Vec2ForSequenceClassification,
        Wav2Vec2ForAudioFrameClassification,
        Wav2Vec2ForXVector,
        Wav2Vec2ForPreTraining,
    )
    test_compile = False  # compiling takes ~40 s on 2 cores: see the slow-marked test below

    def get_config(self) -> Wav2Vec2Config:
        return tiny_config()

    def prepare_inputs(self, config: Any, model_class: type) -> dict[str, Any]:
        return SPEC.build_example_inputs(config, model_class, labels=True)


class TestWav2Vec2StableSuite(ModelTesterMixin, TestWav2Vec2ModelSuite):
    """The large-model layout: layer-normed conv encoder, pre-norm layers, MMS attention adapters."""

    test_compile = False  # one compile per family is enough on small CPUs

    def get_config(self) -> Wav2Vec2Config:
        return tiny_config(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, adapter_attn_dim=8)


# ----- config ---------------------------------------------------------------------------------------------


def test_config_defaults_and_derived_fields() -> None:
    config = Wav2Vec2Config()
    assert config.num_feat_extract_layers == 7 and config.output_hidden_size == 768
    assert config.inputs_to_logits_ratio == 320
    assert config.receptive_field == 400  # 25 ms at 16 kHz
    data = json.loads(config.to_json_string())
    assert data["conv_dim"] == [512] * 7 and data["pad_token_id"] == 0 and data["model_type"] == "wav2vec2"
    assert "num_feat_extract_layers" in data and "id2label" not in data


def test_config_round_trip_keeps_every_switch(tmp_path: Path) -> None:
    config = tiny_config(feat_extract_norm="layer", add_adapter=True, output_hidden_size=24, ctc_loss_reduction="mean")
    config.save_pretrained(tmp_path)
    loaded = Wav2Vec2Config.from_pretrained(tmp_path)
    mine, theirs = config.to_dict(), loaded.to_dict()
    mine.pop("_name_or_path"), theirs.pop("_name_or_path")
    assert theirs == mine
    assert loaded.conv_kernel == [10, 3, 3] and loaded.output_hidden_size == 24


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"conv_dim": (8, 8), "conv_stride": (5, 2, 2)}, "one entry per feature-encoder layer"),
        ({"feat_extract_norm": "batch"}, "feat_extract_norm"),
        ({"ctc_loss_reduction": "avg"}, "ctc_loss_reduction"),
        ({"num_attention_heads": 0}, "num_attention_heads must be a positive int"),
        ({"conv_kernel": (10, 0, 3)}, "positive ints"),
        ({"tdnn_kernel": (3, 0, 1)}, "tdnn_kernel must be a list of positive ints"),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


@pytest.mark.parametrize(
    ("overrides", "model_class", "message"),
    [
        ({"num_attention_heads": 5}, Wav2Vec2Model, r"hidden_size \(\d+\) must be a multiple of num_attention_heads \(5\)"),
        ({"num_conv_pos_embedding_groups": 5}, Wav2Vec2Model, r"multiple of num_conv_pos_embedding_groups \(5\)"),
        ({"tdnn_dim": (), "tdnn_kernel": (), "tdnn_dilation": ()}, Wav2Vec2ForXVector, "at least one layer"),
        ({"tdnn_kernel": (3, 3)}, Wav2Vec2ForXVector, r"one entry per TDNN layer.* 3, 2 and 3 entries"),
    ],
)
def test_configs_the_reference_accepts_load_and_refuse_the_model(
    tmp_path: Path, overrides: dict[str, Any], model_class: type, message: str
) -> None:
    config = tiny_config(**overrides)  # accepted at construction, as the reference accepts it
    config.save_pretrained(tmp_path)
    assert Wav2Vec2Config.from_pretrained(tmp_path).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=message):
        model_class(config)


# ----- frame masks and lengths ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_frame_mask_follows_the_conv_arithmetic(norm: str) -> None:
    model = Wav2Vec2Model(tiny_config(feat_extract_norm=norm)).eval()
    lengths = torch.tensor([800, 480, 41, 40])
    mask = (torch.arange(800)[None, :] < lengths[:, None]).long()
    frames = model._get_feature_vector_attention_mask(39, mask)
    # 800 samples -> 159 -> 79 -> 39 frames; 480 -> 95 -> 47 -> 23; 40 samples is exactly one frame.
    assert frames.dtype == torch.bool
    assert frames.sum(-1).tolist() == [39, 23, 1, 1]
    assert frames[1, :23].all() and not frames[1, 23:].any()


def test_padding_does_not_change_real_frames_with_layer_norm_encoder() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2Model(tiny_config(feat_extract_norm="layer", do_stable_layer_norm=True)).eval()
    values, mask = audio_batch()
    with torch.no_grad():
        padded = model(values, attention_mask=mask).last_hidden_state
        alone = model(values[1:, :480]).last_hidden_state
    torch.testing.assert_close(padded[1, :23], alone[0], atol=1e-5, rtol=1e-4)


def test_ctc_input_lengths_use_the_adapter_strides() -> None:
    model = Wav2Vec2ForCTC(tiny_config(add_adapter=True, num_adapter_layers=2, output_hidden_size=24))
    assert model._get_feat_extract_output_lengths(torch.tensor(800)).item() == 10  # 39 -> 20 -> 10
    assert model._get_feat_extract_output_lengths(torch.tensor(800), add_adapter=False).item() == 39
    values, _ = audio_batch(batch=1)
    assert model.eval()(values).logits.shape == (1, 10, 12)


# ----- CTC -----------------------------------------------------------------------------------------------


def test_ctc_loss_reductions_and_zero_infinity() -> None:
    torch.manual_seed(0)
    values, mask = audio_batch()
    labels = torch.tensor([[5, 6, 6, 7], [8, 9, -100, -100]])
    model = Wav2Vec2ForCTC(tiny_config()).eval()
    out = {}
    for reduction in ("sum", "mean", "none"):
        model.config.ctc_loss_reduction = reduction
        with torch.no_grad():
            out[reduction] = model(values, attention_mask=mask, labels=labels).loss
    assert out["none"].shape == (2,)
    torch.testing.assert_close(out["sum"], out["none"].sum())
    # "mean" divides each example's loss by its target length before averaging.
    torch.testing.assert_close(out["mean"], (out["none"] / torch.tensor([4.0, 2.0])).mean())

    impossible = torch.full((2, 60), 5)  # 60 targets cannot fit in 39 frames
    model.config.ctc_loss_reduction = "sum"
    with torch.no_grad():
        assert torch.isinf(model(values, labels=impossible).loss)
        model.config.ctc_zero_infinity = True
        assert model(values, labels=impossible).loss.item() == 0.0


def test_ctc_labels_padded_with_the_blank_count_as_padding() -> None:
    torch.manual_seed(0)
    values, mask = audio_batch()
    model = Wav2Vec2ForCTC(tiny_config(pad_token_id=0, ctc_loss_reduction="mean")).eval()
    with torch.no_grad():
        ignored = model(values, attention_mask=mask, labels=torch.tensor([[5, 6, 7, -100], [8, 9, -100, -100]])).loss
        blank = model(values, attention_mask=mask, labels=torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])).loss
    torch.testing.assert_close(blank, ignored)


def test_ctc_rejects_labels_outside_the_vocabulary() -> None:
    model = Wav2Vec2ForCTC(tiny_config()).eval()
    values, _ = audio_batch()
    with pytest.raises(ValueError, match="outside the vocabulary of 12 tokens"):
        model(values, labels=torch.tensor([[1, 12], [2, 3]]))


def test_ctc_needs_a_vocabulary_size() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        Wav2Vec2ForCTC(tiny_config(vocab_size=None))


# ----- bad input -----------------------------------------------------------------------------------------


def test_audio_shorter_than_the_receptive_field_is_refused() -> None:
    model = Wav2Vec2Model(tiny_config()).eval()
    assert model.config.receptive_field == 40
    with pytest.raises(ValueError, match=r"shorter than the receptive field.*40 samples"):
        model(torch.randn(1, 39))
    assert model(torch.randn(1, 40)).last_hidden_state.shape == (1, 1, 32)


def test_input_values_must_be_batched_mono_float_audio() -> None:
    model = Wav2Vec2Model(tiny_config()).eval()
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        model(torch.randn(800))
    with pytest.raises(TypeError, match="floating point"):
        model(torch.zeros(1, 800, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(torch.randn(2, 800), attention_mask=torch.ones(2, 700))


def test_heads_refuse_adapters() -> None:
    with pytest.raises(ValueError, match="adapters"):
        Wav2Vec2ForSequenceClassification(tiny_config(add_adapter=True))
    with pytest.raises(ValueError, match="adapters"):
        Wav2Vec2ForAudioFrameClassification(tiny_config(add_adapter=True))


# ----- training switches ---------------------------------------------------------------------------------


def test_freeze_feature_encoder_stops_only_its_gradients() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(tiny_config(apply_spec_augment=False))
    model.freeze_feature_encoder()
    model.train()
    values, mask = audio_batch()
    model(values, attention_mask=mask, labels=torch.tensor([[5, 6], [7, 8]])).loss.backward()
    for name, param in model.named_parameters():
        if name.startswith("wav2vec2.feature_extractor."):
            assert param.grad is None and not param.requires_grad, name
        elif "masked_spec_embed" not in name:
            assert param.grad is not None, name


def test_freeze_switches_on_every_model() -> None:
    heads = (Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification, Wav2Vec2ForAudioFrameClassification, Wav2Vec2ForXVector)
    for cls in (Wav2Vec2Model, Wav2Vec2ForPreTraining, *heads):
        model = cls(tiny_config())
        model.freeze_feature_encoder()
        encoder = model.feature_extractor if cls is Wav2Vec2Model else model.wav2vec2.feature_extractor
        assert not any(p.requires_grad for p in encoder.parameters()), cls.__name__
        assert any(p.requires_grad for p in model.parameters()), cls.__name__
        assert hasattr(model, "freeze_base_model") == (cls in heads), cls.__name__
    for cls in heads:
        model = cls(tiny_config())
        model.freeze_base_model()
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and not any(n.startswith("wav2vec2.") for n in trainable), cls.__name__


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    config = tiny_config(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, final_dropout=0.0, apply_spec_augment=False)
    torch.manual_seed(0)
    plain = Wav2Vec2ForCTC(config).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.gradient_checkpointing_enable()
    values, mask = audio_batch()
    labels = torch.tensor([[5, 6], [7, 8]])
    plain(values, attention_mask=mask, labels=labels).loss.backward()
    checkpointed(values, attention_mask=mask, labels=labels).loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_weighted_layer_sum_uses_every_layer() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(tiny_config(use_weighted_layer_sum=True)).eval()
    assert model.layer_weights is not None and model.layer_weights.shape == (3,)
    values, mask = audio_batch()
    out = model(values, attention_mask=mask, labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert model.layer_weights.grad is not None and model.layer_weights.grad.abs().sum() > 0


@pytest.mark.parametrize("head", [Wav2Vec2ForSequenceClassification, Wav2Vec2ForAudioFrameClassification])
def test_weighted_layer_sum_returns_hidden_states_only_when_asked(head: type) -> None:
    torch.manual_seed(0)
    model = head(tiny_config(use_weighted_layer_sum=True)).eval()
    values, _ = audio_batch()
    with torch.no_grad():
        assert list(model(values).keys()) == ["logits"]
        assert len(model(values, return_dict=False)) == 1
        asked = model(values, output_hidden_states=True)
        assert list(asked.keys()) == ["logits", "hidden_states"] and len(asked.hidden_states) == 3
        model.config.output_hidden_states = True
        assert "hidden_states" in model(values)


def _no_dropout(**overrides: Any) -> Wav2Vec2Config:
    zero = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0)
    return tiny_config(mask_time_prob=0.0, **zero, **overrides)


def test_layerdrop_follows_torch_manual_seed() -> None:
    import random

    torch.manual_seed(0)
    model = Wav2Vec2Model(_no_dropout(num_hidden_layers=6, layerdrop=0.5)).train()
    values, _ = audio_batch()
    runs = []
    for trial in range(4):
        random.seed(trial)  # Python's RNG must not matter
        np.random.seed(trial)
        torch.manual_seed(0)
        with torch.no_grad():
            runs.append(model(values).last_hidden_state)
    assert all(torch.equal(runs[0], run) for run in runs[1:])
    torch.manual_seed(1)
    with torch.no_grad():
        others = [model(values).last_hidden_state for _ in range(4)]
    assert any(not torch.equal(runs[0], other) for other in others), "layerdrop=0.5 never changed the output"


def test_adapter_layerdrop_follows_numpy_seed() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2Model(_no_dropout(add_adapter=True, num_adapter_layers=3, layerdrop=0.5)).train()
    model.encoder.config.layerdrop = 0.0  # only the adapter drops layers here
    values, _ = audio_batch(samples=1600)
    runs = []
    for trial in range(3):
        torch.manual_seed(trial)
        np.random.seed(0)
        with torch.no_grad():
            runs.append(model(values).last_hidden_state)
    assert all(torch.equal(runs[0], run) for run in runs[1:])


# ----- x-vector and pretraining heads --------------------------------------------------------------------


def test_xvector_embeddings_logits_and_am_softmax_loss() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForXVector(tiny_config()).eval()
    values, mask = audio_batch()
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        out = model(values, attention_mask=mask, labels=labels)
    assert out.embeddings.shape == (2, 6) and out.logits.shape == (2, 6)
    cosine = torch.nn.functional.normalize(out.logits, dim=1) @ torch.nn.functional.normalize(model.objective.weight, dim=0)
    margin = torch.nn.functional.one_hot(labels, 3) * 0.4
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(30.0 * (cosine - margin), labels))
    with torch.no_grad():
        assert model(values, attention_mask=mask).loss is None


def test_xvector_pools_each_example_over_its_own_frames() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForXVector(tiny_config(tdnn_dilation=(1, 1, 1))).eval()
    values, mask = audio_batch()
    with torch.no_grad():
        batched = model(values, attention_mask=mask).embeddings
        alone = model(values[1:, :480], attention_mask=mask[1:, :480]).embeddings
    torch.testing.assert_close(batched[1:], alone, atol=1e-5, rtol=1e-4)


def test_xvector_with_padding_mask_traces_as_one_graph() -> None:
    # The too-short check reads a tensor value; under the compiler it must not break the graph.
    torch.manual_seed(0)
    model = Wav2Vec2ForXVector(tiny_config()).eval()
    values, mask = audio_batch()
    torch._dynamo.reset()
    with torch.no_grad():
        expected = model(values, attention_mask=mask).embeddings
        got = torch.compile(model, backend="eager", fullgraph=True)(values, attention_mask=mask).embeddings
    torch.testing.assert_close(got, expected)


def test_xvector_refuses_audio_too_short_to_pool() -> None:
    model = Wav2Vec2ForXVector(tiny_config()).eval()
    values, mask = audio_batch()
    mask[1, 100:] = 0
    with pytest.raises(ValueError, match="too short for the x-vector head"):
        model(values, attention_mask=mask)
    # Without a mask the whole batch is too short: the same message instead of conv1d's kernel-size error
    # (or a NaN standard deviation over a single frame).
    for samples in (100, 160):
        with pytest.raises(ValueError, match="too short for the x-vector head"):
            model(values[:, :samples])


def test_sample_negative_indices_pick_other_masked_frames_of_the_same_example() -> None:
    np.random.seed(0)
    masked = compute_mask_indices((3, 30), mask_prob=0.4, mask_length=3, min_masks=2)
    negatives = sample_negative_indices((3, 30), 6, masked)
    assert negatives.shape == (3, 30, 6) and negatives.dtype == np.int32
    for row in range(3):
        for frame in np.flatnonzero(masked[row]):
            picks = negatives[row, frame] - row * 30
            assert masked[row, picks].all() and (picks != frame).all()
        assert (negatives[row, ~masked[row]] == row * 30).all()
    everything = sample_negative_indices((2, 5), 4)
    assert ((everything >= np.arange(2)[:, None, None] * 5) & (everything < (np.arange(2)[:, None, None] + 1) * 5)).all()
    lonely = np.zeros((1, 10), dtype=bool)
    lonely[0, 3] = True
    with pytest.raises(ValueError, match="at least 2"):
        sample_negative_indices((1, 10), 4, lonely)


def test_pretraining_losses_and_quantizer() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    model = Wav2Vec2ForPreTraining(config).eval()
    inputs = SPEC.build_example_inputs(config, Wav2Vec2ForPreTraining, labels=True)
    values, mask = inputs["input_values"], inputs["attention_mask"]
    masked, negatives = inputs["mask_time_indices"], inputs["sampled_negative_indices"]
    with torch.no_grad():
        plain = model(values, attention_mask=mask, mask_time_indices=masked)
        out = model(values, attention_mask=mask, mask_time_indices=masked, sampled_negative_indices=negatives)
    assert plain.loss is None and plain.contrastive_loss is None
    assert out.projected_states.shape == out.projected_quantized_states.shape == (2, 39, 12)
    codewords = config.num_codevectors_per_group * config.num_codevector_groups
    assert 1.0 <= out.codevector_perplexity.item() <= codewords
    torch.testing.assert_close(out.diversity_loss, (codewords - out.codevector_perplexity) / codewords * masked.sum())
    torch.testing.assert_close(out.loss, out.contrastive_loss + config.diversity_loss_weight * out.diversity_loss)
    # In eval the quantizer takes each group's arg-max codeword: the targets are exactly codebook rows.
    quantized, _ = model.quantizer(torch.randn(1, 4, 16))
    codebook = model.quantizer.codevectors[0].view(2, 10, 8)
    for group in range(2):
        part = quantized[0, :, group * 8 : (group + 1) * 8]
        assert all(any(torch.equal(v, c) for c in codebook[group]) for v in part)
    with pytest.raises(ValueError, match="needs mask_time_indices"):
        model(values, sampled_negative_indices=negatives)
    # The helpers' numpy arrays go in as they are, as the class docstring suggests.
    with torch.no_grad():
        from_numpy = model(
            values, attention_mask=mask, mask_time_indices=masked.numpy(), sampled_negative_indices=negatives.numpy()
        )
    torch.testing.assert_close(from_numpy.loss, out.loss)
    model.set_gumbel_temperature(0.5)
    assert model.quantizer.temperature == 0.5


def test_pretraining_heads_initialise_like_the_reference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForPreTraining(tiny_config(conv_dim=(64, 64, 64)))
    weight_proj = model.quantizer.weight_proj
    assert 0.8 < weight_proj.weight.std().item() < 1.2 and not weight_proj.bias.any()
    assert 0.0 <= model.quantizer.codevectors.min().item() and model.quantizer.codevectors.max().item() < 1.0
    bound = 1 / 32**0.5  # torch's default Linear init for project_hid (32 inputs)
    assert model.project_hid.weight.abs().max().item() <= bound and model.project_hid.weight.std().item() > 0.1
    # The same schemes apply to head weights a base checkpoint lacks.
    Wav2Vec2Model(tiny_config(conv_dim=(64, 64, 64))).save_pretrained(tmp_path)
    loaded = Wav2Vec2ForPreTraining.from_pretrained(tmp_path)
    assert 0.8 < loaded.quantizer.weight_proj.weight.std().item() < 1.2
    assert loaded.project_q.weight.std().item() > 0.1
    xvector = Wav2Vec2ForXVector(tiny_config())
    assert 0.8 < xvector.objective.weight.std().item() < 1.2


def test_new_heads_through_the_auto_classes_and_namespace(tmp_path: Path) -> None:
    import plugformers

    config = tiny_config()
    assert type(plugformers.AutoModelForAudioXVector.from_config(config)) is Wav2Vec2ForXVector
    assert type(plugformers.AutoModelForPreTraining.from_config(config)) is Wav2Vec2ForPreTraining
    assert plugformers.Wav2Vec2ForXVector is Wav2Vec2ForXVector
    assert plugformers.Wav2Vec2ForPreTraining is Wav2Vec2ForPreTraining
    assert plugformers.Wav2Vec2ForPreTrainingOutput.__name__ == "Wav2Vec2ForPreTrainingOutput"


# ----- SpecAugment ---------------------------------------------------------------------------------------


def test_compute_mask_indices_spans_lengths_and_minimum() -> None:
    np.random.seed(0)
    mask = compute_mask_indices((4, 50), mask_prob=0.2, mask_length=5, min_masks=2)
    assert mask.shape == (4, 50) and mask.dtype == bool
    assert (mask.sum(-1) >= 5).all()  # at least one full span (two may overlap)
    lengths = torch.tensor([50, 20, 8, 4])
    attention = (torch.arange(50)[None] < lengths[:, None]).long()
    mask = compute_mask_indices((4, 50), mask_prob=0.5, mask_length=5, attention_mask=attention, min_masks=1)
    for row, length in enumerate(lengths.tolist()):
        assert not mask[row, length:-1].any(), "masked a padded frame"
    # 4 frames cannot hold a 5-frame span; like the reference, the row marks only its last padding frame.
    assert mask[3].nonzero()[0].tolist() == [49]
    np.random.seed(0)
    capped = compute_mask_indices((3, 10), mask_prob=1.0, mask_length=3)
    assert (capped.sum(-1) <= 9).all()  # at most 10 // 3 spans
    with pytest.raises(ValueError, match="longer than the sequence"):
        compute_mask_indices((1, 4), 0.5, 5)


def test_mask_time_indices_replace_frames_by_the_learned_embedding() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2Model(tiny_config()).eval()
    hidden = torch.randn(2, 10, 32)
    chosen = torch.zeros(2, 10, dtype=torch.bool)
    chosen[0, 2:5] = True
    out = model._mask_hidden_states(hidden, mask_time_indices=chosen)
    assert model.masked_spec_embed is not None
    torch.testing.assert_close(out[0, 3], model.masked_spec_embed.detach())
    torch.testing.assert_close(out[~chosen], hidden[~chosen])


def test_spec_augment_only_in_training() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2Model(tiny_config(mask_time_prob=0.5, mask_feature_prob=0.3, mask_feature_length=4))
    hidden = torch.randn(2, 20, 32)
    assert torch.equal(model.eval()._mask_hidden_states(hidden), hidden)
    np.random.seed(0)
    trained = model.train()._mask_hidden_states(hidden)
    assert not torch.equal(trained, hidden)
    assert (trained == 0).all(dim=1).any(), "no feature channel was zeroed"


# ----- checkpoints ---------------------------------------------------------------------------------------


def test_old_weight_g_weight_v_checkpoints_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Wav2Vec2Model(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in state
    renamed = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        renamed[key] = value
    save_file(renamed, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded, info = Wav2Vec2Model.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    values, mask = audio_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(values, attention_mask=mask)[0], model(values, attention_mask=mask)[0])


def test_padded_batch_matches_single_examples_for_ctc_loss() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(tiny_config(feat_extract_norm="layer", do_stable_layer_norm=True, ctc_loss_reduction="sum")).eval()
    values, mask = audio_batch()
    labels = torch.tensor([[5, 6, 6, 7], [8, 9, -100, -100]])
    with torch.no_grad():
        together = model(values, attention_mask=mask, labels=labels).loss
        first = model(values[:1], labels=labels[:1]).loss
        second = model(values[1:, :480], labels=labels[1:, :2]).loss
    torch.testing.assert_close(together, first + second, atol=1e-4, rtol=1e-5)


@pytest.mark.slow
def test_torch_compile_fullgraph_matches_eager_with_padding_mask() -> None:
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(tiny_config()).eval()
    values, mask = audio_batch()
    with torch.no_grad():
        expected = model(values, attention_mask=mask).logits
        got = torch.compile(model, fullgraph=True)(values, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_cuda_half_precision_sdpa_and_compile() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    values, mask = audio_batch(batch=2, samples=1600)
    for dtype in (torch.float16, torch.bfloat16):
        torch.manual_seed(0)
        reference = Wav2Vec2ForCTC(tiny_config()).eval()
        with torch.no_grad():
            expected = reference(values, attention_mask=mask).logits
        model = reference.to("cuda", dtype)
        model.set_attn_implementation("sdpa")
        with torch.no_grad():
            got = model(values.to("cuda", dtype), attention_mask=mask.cuda()).logits
            compiled = torch.compile(model, fullgraph=True)(values.to("cuda", dtype), attention_mask=mask.cuda()).logits
        assert torch.isfinite(got.float()).all()
        torch.testing.assert_close(got.float().cpu(), expected, atol=5e-2, rtol=5e-2)
        torch.testing.assert_close(compiled.float(), got.float(), atol=5e-2, rtol=5e-2)
