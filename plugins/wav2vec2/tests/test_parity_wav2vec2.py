"""Parity of the Wav2Vec2 plugin with the reference library (run in the nox ``parity`` session).

Checkpoints go both ways (reference save -> our load, our save -> reference load) on several configs;
every output (hidden states, attentions, logits, CTC and classification losses) agrees within 1e-4 in
float32. The feature extractor, tokenizer and processor must give the reference's values, ids, labels and
decoded strings, and read each other's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_wav2vec2 import modeling_wav2vec2 as ours  # noqa: E402
from plugformers_wav2vec2.configuration_wav2vec2 import Wav2Vec2Config  # noqa: E402
from plugformers_wav2vec2.feature_extraction_wav2vec2 import Wav2Vec2FeatureExtractor  # noqa: E402
from plugformers_wav2vec2.processing_wav2vec2 import Wav2Vec2Processor  # noqa: E402
from plugformers_wav2vec2.tokenization_wav2vec2 import Wav2Vec2CTCTokenizer  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

ATOL = 1e-4
HEADS = ["Wav2Vec2Model", "Wav2Vec2ForCTC", "Wav2Vec2ForSequenceClassification", "Wav2Vec2ForAudioFrameClassification"]
TINY: dict[str, Any] = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    conv_dim=(16, 16, 16),
    conv_stride=(5, 2, 2),
    conv_kernel=(10, 3, 3),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    vocab_size=12,
    num_labels=3,
)
CONFIGS = {
    "group_norm": TINY,
    "layer_norm_stable": {**TINY, "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True},
    "odd_pos_kernel_mean_ctc": {**TINY, "num_conv_pos_embeddings": 15, "ctc_loss_reduction": "mean", "hidden_act": "relu"},
    "weighted_sum_mms_adapter": {
        **TINY,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        "use_weighted_layer_sum": True,
        "adapter_attn_dim": 8,
        "classifier_proj_size": 10,
    },
}
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "E": 5, "T": 6, "A": 7, "O": 8, "N": 9, "H": 10,
         "L": 11, "W": 12, "R": 13, "D": 14, "'": 15}


def _audio(batch: int = 3, samples: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Harmonic speech-like rows, zero-padded: row 1 keeps 70%, row 2 keeps 30% of the samples."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000.0
    rows = [
        sum(torch.sin(2 * torch.pi * (100 + 40 * b) * k * t) / k for k in range(1, 6)) + 0.05 * torch.randn(samples, generator=g)
        for b in range(batch)
    ]
    values = torch.stack(rows).float()
    mask = torch.ones(batch, samples, dtype=torch.long)
    for row, keep in ((1, 0.7), (2, 0.3)):
        if row < batch:
            mask[row, int(samples * keep) :] = 0
    return values * mask, mask


def _labels(name: str, frames: int) -> torch.Tensor | None:
    if name == "Wav2Vec2ForCTC":
        return torch.tensor([[1, 2, 3, 4], [5, 6, -100, -100], [7, 7, 8, -100]])
    if name == "Wav2Vec2ForSequenceClassification":
        return torch.tensor([0, 2, 1])
    if name == "Wav2Vec2ForAudioFrameClassification":
        return torch.nn.functional.one_hot(torch.arange(3 * frames).reshape(3, frames) % 3, 3)
    return None


def _compare(ref_out: Any, our_out: Any, where: str) -> None:
    for key in ("loss", "logits", "last_hidden_state", "extract_features"):
        a, b = getattr(ref_out, key, None), getattr(our_out, key, None)
        if a is None and b is None:
            continue
        assert a is not None and b is not None, f"{where}: {key} present in only one output"
        torch.testing.assert_close(b, a, atol=ATOL, rtol=ATOL, msg=lambda m, k=key: f"{where} {k}: {m}")
    for key in ("hidden_states", "attentions"):
        a, b = getattr(ref_out, key, None), getattr(our_out, key, None)
        if a is None or not a:
            continue
        assert b is not None and len(a) == len(b), f"{where}: {key} count differs"
        for i, (x, y) in enumerate(zip(a, b)):
            torch.testing.assert_close(y, x, atol=ATOL, rtol=ATOL, msg=lambda m, k=key, i=i: f"{where} {k}[{i}]: {m}")


def _reference_head(head: str, fields: dict[str, Any], tmp_path: Path) -> tuple[Any, Any]:
    """A randomly initialised reference ``head`` saved to disk, and ours loaded from its files (eager attention)."""
    torch.manual_seed(0)
    ref_config = transformers.Wav2Vec2Config(**fields)
    ref_config._attn_implementation = "eager"
    reference = getattr(transformers, head)(ref_config).eval()
    reference.save_pretrained(tmp_path / "ref")
    model, info = getattr(ours, head).from_pretrained(tmp_path / "ref", output_loading_info=True, attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sorted(model.state_dict()) == sorted(reference.state_dict())
    return reference, model.eval()


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize("head", HEADS)
def test_reference_checkpoints_load_and_agree(tmp_path: Path, config_name: str, head: str) -> None:
    reference, model = _reference_head(head, CONFIGS[config_name], tmp_path)
    values, mask = _audio()
    labels = _labels(head, 29)  # 600 samples -> 119 -> 59 -> 29 frames
    kwargs: dict[str, Any] = {"attention_mask": mask, "output_hidden_states": True, "output_attentions": True}
    if labels is not None:
        kwargs["labels"] = labels
    with torch.no_grad():
        expected = reference(values, **kwargs)
        got = model(values, **kwargs)
        _compare(expected, got, f"{config_name}/{head}")
        # No mask at all (the base-model setting) and the default attention backend.
        model.set_attn_implementation("sdpa")
        _compare(reference(values), model(values), f"{config_name}/{head} unmasked sdpa")

    model.save_pretrained(tmp_path / "ours")
    back = getattr(transformers, head).from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        _compare(back(values, attention_mask=mask), model(values, attention_mask=mask), f"{config_name}/{head} ours->ref")


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_config_json_matches_both_ways(tmp_path: Path, config_name: str) -> None:
    ours_cfg = Wav2Vec2Config(**CONFIGS[config_name])
    ref_cfg = transformers.Wav2Vec2Config(**CONFIGS[config_name])
    ours_dict, ref_dict = json.loads(ours_cfg.to_json_string()), json.loads(ref_cfg.to_json_string())
    ours_dict.pop("plugformers_version")
    ref_dict.pop("transformers_version")
    assert ours_dict == ref_dict
    ref_cfg.save_pretrained(tmp_path / "ref")
    assert Wav2Vec2Config.from_pretrained(tmp_path / "ref").to_diff_dict().keys() >= {"conv_dim", "hidden_size"}
    ours_cfg.save_pretrained(tmp_path / "ours")
    loaded = transformers.Wav2Vec2Config.from_pretrained(tmp_path / "ours")
    assert loaded.conv_kernel == list(CONFIGS[config_name]["conv_kernel"]) and loaded.num_labels == 3


def test_default_config_prints_like_the_reference() -> None:
    ours_text = repr(Wav2Vec2Config()).replace('  "plugformers_version": "0.1.0",\n', "")
    ref_lines = [line for line in repr(transformers.Wav2Vec2Config()).splitlines() if "transformers_version" not in line]
    assert ours_text.splitlines() == ref_lines


def test_old_weight_norm_keys_from_the_reference_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY)).eval()
    reference.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    old = {
        k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
        for k, v in state.items()
    }
    save_file(old, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    model, info = ours.Wav2Vec2Model.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    values, mask = _audio()
    with torch.no_grad():
        _compare(reference(values, attention_mask=mask), model(values, attention_mask=mask), "weight_g/weight_v")


def test_adapter_model_agrees(tmp_path: Path) -> None:
    config = {**TINY, "add_adapter": True, "output_hidden_size": 24, "num_adapter_layers": 2}
    torch.manual_seed(0)
    reference = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**config)).eval()
    reference.save_pretrained(tmp_path)
    model = ours.Wav2Vec2ForCTC.from_pretrained(tmp_path)
    values, mask = _audio()
    labels = torch.tensor([[1, 2], [3, -100], [4, 4]])
    with torch.no_grad():
        _compare(reference(values, attention_mask=mask, labels=labels), model(values, attention_mask=mask, labels=labels), "adapter")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_ctc_loss_drops_labels_padded_with_the_blank(tmp_path: Path, reduction: str) -> None:
    torch.manual_seed(0)
    config = {**TINY, "ctc_loss_reduction": reduction, "pad_token_id": 0}
    reference = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**config)).eval()
    reference.save_pretrained(tmp_path)
    model = ours.Wav2Vec2ForCTC.from_pretrained(tmp_path).eval()
    values, mask = _audio()
    for labels in (torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0], [7, 7, 8, 0]]), torch.tensor([[1, 0, 3, -100], [5, 6, -100, 0], [0, 0, 0, 0]])):
        with torch.no_grad():
            expected = reference(values, attention_mask=mask, labels=labels).loss
            got = model(values, attention_mask=mask, labels=labels).loss
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("adapter", [False, True])
def test_layerdrop_in_training_drops_the_same_layers(tmp_path: Path, adapter: bool) -> None:
    """Same torch seed (encoder) and numpy seed (adapter): the reference and we skip the same layers."""
    zero = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0)
    config = {**TINY, **zero, "num_hidden_layers": 6, "layerdrop": 0.5, "mask_time_prob": 0.0}
    if adapter:
        config.update(add_adapter=True, num_adapter_layers=3, output_hidden_size=24)
    torch.manual_seed(0)
    reference = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**config))
    reference.save_pretrained(tmp_path)
    model = ours.Wav2Vec2Model.from_pretrained(tmp_path)
    reference.train()
    model.train()
    values, mask = _audio(samples=1600)
    for seed in range(6):
        outputs = []
        for net in (reference, model):
            torch.manual_seed(seed)
            np.random.seed(seed)
            with torch.no_grad():
                outputs.append(net(values, attention_mask=mask).last_hidden_state)
        torch.testing.assert_close(outputs[1], outputs[0], atol=ATOL, rtol=ATOL, msg=lambda m, s=seed: f"seed {s}: {m}")


MASK_CASES = [
    ((2, 50), 0.05, 10, None, 2),
    ((3, 20), 0.5, 4, None, 0),
    ((2, 10), 1.0, 3, None, 0),  # more spans asked for than fit: capped at 10 // 3
    ((2, 10), 0.9, 4, None, 0),
    ((4, 8), 0.65, 8, None, 2),
    ((3, 12), 0.2, 2, None, 7),  # min_masks above the cap
    ((3, 30), 0.3, 5, [30, 12, 3], 1),  # the last row is shorter than one span
    ((4, 16), 0.8, 3, [16, 9, 2, 0], 0),
    ((2, 40), 0.0, 4, [40, 20], 3),
]


@pytest.mark.parametrize("shape,prob,length,lengths,min_masks", MASK_CASES)
def test_compute_mask_indices_matches_the_reference_seed_for_seed(
    shape: tuple[int, int], prob: float, length: int, lengths: list[int] | None, min_masks: int
) -> None:
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    attention_mask = None
    if lengths is not None:
        attention_mask = (torch.arange(shape[1])[None, :] < torch.tensor(lengths)[:, None]).long()
    for seed in range(40):
        np.random.seed(seed)
        expected = _compute_mask_indices(shape, prob, length, attention_mask=attention_mask, min_masks=min_masks)
        after_ref = np.random.rand()
        np.random.seed(seed)
        got = ours.compute_mask_indices(shape, prob, length, attention_mask=attention_mask, min_masks=min_masks)
        np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}")
        assert np.random.rand() == after_ref, f"seed {seed}: the numpy stream moved on differently"


# ----- x-vector and pretraining heads --------------------------------------------------------------------

HEAD_FIELDS: dict[str, Any] = dict(
    tdnn_dim=(8, 8, 12),
    tdnn_kernel=(3, 3, 1),
    tdnn_dilation=(1, 2, 1),
    xvector_output_dim=6,
    num_codevectors_per_group=10,
    num_codevector_groups=2,
    codevector_dim=16,
    proj_codevector_dim=12,
    num_negatives=5,
)
NEW_HEAD_CONFIGS = {
    "plain": {**TINY, **HEAD_FIELDS},
    "stable_weighted": {**TINY, **HEAD_FIELDS, "feat_extract_norm": "layer", "do_stable_layer_norm": True, "use_weighted_layer_sum": True},
}




def _compare_all(expected: Any, got: Any, where: str) -> None:
    assert list(got.keys()) == list(expected.keys()), where
    for key in expected.keys():
        a, b = expected[key], got[key]
        for i, (x, y) in enumerate(zip(a, b) if isinstance(a, tuple) else [(a, b)]):
            torch.testing.assert_close(y, x, atol=ATOL, rtol=ATOL, msg=lambda m, k=key, i=i: f"{where} {k}[{i}]: {m}")


@pytest.mark.parametrize("config_name", sorted(NEW_HEAD_CONFIGS))
def test_xvector_matches_the_reference(tmp_path: Path, config_name: str) -> None:
    reference, model = _reference_head("Wav2Vec2ForXVector", NEW_HEAD_CONFIGS[config_name], tmp_path)
    values, mask = _audio()
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        for kwargs in ({}, {"attention_mask": mask}, {"attention_mask": mask, "output_hidden_states": True, "output_attentions": True}):
            _compare_all(reference(values, labels=labels, **kwargs), model(values, labels=labels, **kwargs), f"xvector {kwargs.keys()}")
        _compare_all(reference(values, attention_mask=mask), model(values, attention_mask=mask), "xvector without labels")
    model.save_pretrained(tmp_path / "ours")
    back = transformers.Wav2Vec2ForXVector.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        _compare_all(back(values, attention_mask=mask, labels=labels), model(values, attention_mask=mask, labels=labels), "ours->ref")


def _pretraining_inputs(model: Any, values: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    frames = int(model._get_feat_extract_output_lengths(values.shape[1]))
    frame_mask = None if mask is None else model._get_feature_vector_attention_mask(frames, mask)
    np.random.seed(0)
    masked = _compute_mask_indices((values.shape[0], frames), 0.3, 2, attention_mask=frame_mask, min_masks=2)
    negatives = _sample_negative_indices((values.shape[0], frames), model.config.num_negatives, masked)
    return torch.tensor(masked), torch.tensor(negatives, dtype=torch.long)


@pytest.mark.parametrize("config_name", sorted(NEW_HEAD_CONFIGS))
def test_pretraining_matches_the_reference(tmp_path: Path, config_name: str) -> None:
    reference, model = _reference_head("Wav2Vec2ForPreTraining", NEW_HEAD_CONFIGS[config_name], tmp_path)
    values, mask = _audio()
    for attention_mask in (None, mask):
        masked, negatives = _pretraining_inputs(model, values, attention_mask)
        kwargs: dict[str, Any] = {"attention_mask": attention_mask, "mask_time_indices": masked}
        with torch.no_grad():
            _compare_all(reference(values, **kwargs), model(values, **kwargs), "pretraining without negatives")
            kwargs["sampled_negative_indices"] = negatives
            expected, got = reference(values, **kwargs), model(values, **kwargs)
            _compare_all(expected, got, "pretraining")
            assert got.loss is not None and got.contrastive_loss is not None and got.diversity_loss is not None
            _compare_all(reference(values, output_hidden_states=True, **kwargs), model(values, output_hidden_states=True, **kwargs), "hidden")
    model.save_pretrained(tmp_path / "ours")
    back = transformers.Wav2Vec2ForPreTraining.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        _compare_all(back(values, **kwargs), model(values, **kwargs), "ours->ref")


def test_pretraining_in_training_mode_matches_with_the_same_seed(tmp_path: Path) -> None:
    """Gumbel sampling draws from torch's RNG in the same order, so seeded training steps agree too."""
    zero = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
    torch.manual_seed(0)
    reference = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**{**TINY, **HEAD_FIELDS, **zero}))
    reference.save_pretrained(tmp_path)
    model = ours.Wav2Vec2ForPreTraining.from_pretrained(tmp_path)
    values, mask = _audio()
    masked, negatives = _pretraining_inputs(model, values, mask)
    results = []
    for net in (reference, model):
        net.train()
        net.set_gumbel_temperature(0.7)
        torch.manual_seed(3)
        results.append(net(values, attention_mask=mask, mask_time_indices=masked, sampled_negative_indices=negatives))
    _compare_all(results[0], results[1], "train mode")


def test_sample_negative_indices_matches_the_reference() -> None:
    from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

    for seed in range(10):
        rng = np.random.default_rng(seed)
        masked = rng.random((3, 20)) < 0.4
        masked[:, :2] = True
        for mask_time_indices in (masked, None):
            np.random.seed(seed)
            expected = _sample_negative_indices((3, 20), 7, mask_time_indices)
            np.random.seed(seed)
            got = ours.sample_negative_indices((3, 20), 7, mask_time_indices)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


# ----- preprocessing -------------------------------------------------------------------------------------


def test_feature_extractor_matches_the_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audio = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (1600, 1000, 1234)]
    for settings in ({}, {"return_attention_mask": True}, {"do_normalize": False, "padding_value": 0.5}):
        ref_fe = transformers.Wav2Vec2FeatureExtractor(**settings)
        our_fe = Wav2Vec2FeatureExtractor(**settings)
        assert repr(our_fe) == repr(ref_fe)
        for call in (
            {"padding": True},
            {"padding": "max_length", "max_length": 2000},
            {"padding": True, "pad_to_multiple_of": 512},
            {"padding": "max_length", "max_length": 1100, "truncation": True},
        ):
            expected = ref_fe(audio, sampling_rate=16000, return_tensors="np", **call)
            got = our_fe(audio, sampling_rate=16000, return_tensors="np", **call)
            assert set(got) == set(expected), (settings, call)
            for key in expected:
                np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=f"{settings} {call} {key}")
        single = ref_fe(audio[0], sampling_rate=16000)["input_values"]
        np.testing.assert_allclose(our_fe(audio[0], sampling_rate=16000)["input_values"][0], single[0], atol=1e-5)
    ref_fe.save_pretrained(tmp_path / "ref")
    assert Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "ref") == our_fe
    our_fe.save_pretrained(tmp_path / "ours")
    assert transformers.Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "ours").to_dict() == ref_fe.to_dict()


TEXTS = ["HELLO WORLD", "hello <unk> x  A", "THE  END ", "", "'TWAS", "|HE|"]
FRAMES = [
    [0, 10, 10, 5, 0, 11, 11, 0, 11, 8, 4, 4, 12, 8, 13, 11, 14, 0, 0],
    [4, 4, 5, 0, 1, 2, 3],
    [0, 0, 0],
    [6, 6, 6, 4, 0, 4, 7, 7, 0, 7],
    [],
]


@pytest.fixture
def vocab_dir(tmp_path: Path) -> Path:
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    return tmp_path


@pytest.mark.parametrize("lower", [False, True])
def test_tokenizer_matches_the_reference(vocab_dir: Path, lower: bool) -> None:
    ref = transformers.Wav2Vec2CTCTokenizer(str(vocab_dir / "vocab.json"), do_lower_case=lower)
    tok = Wav2Vec2CTCTokenizer(str(vocab_dir / "vocab.json"), do_lower_case=lower)
    assert len(tok) == len(ref) and tok.get_vocab() == ref.get_vocab()
    for text in TEXTS:
        assert tok(text).input_ids == ref(text).input_ids, text
        assert tok.tokenize(text) == ref.tokenize(text), text
    assert tok(TEXTS, padding=True)["input_ids"] == ref(TEXTS, padding=True)["input_ids"]
    for frames in FRAMES:
        for options in (
            {},
            {"group_tokens": False},
            {"skip_special_tokens": True},
            {"spaces_between_special_tokens": True},
        ):
            assert tok.decode(frames, **options) == ref.decode(frames, **options), (frames, options)
        got = tok.decode(frames, output_char_offsets=True, output_word_offsets=True)
        expected = ref.decode(frames, output_char_offsets=True, output_word_offsets=True)
        assert got.text == expected.text
        assert _plain(got.char_offsets) == _plain(expected.char_offsets), frames
        assert _plain(got.word_offsets) == _plain(expected.word_offsets), frames
    assert tok.all_special_tokens == ref.all_special_tokens and tok.all_special_ids == ref.all_special_ids
    for text in TEXTS:
        ids = ref(text).input_ids
        assert tok.get_special_tokens_mask(ids, already_has_special_tokens=True) == ref.get_special_tokens_mask(
            ids, already_has_special_tokens=True
        )
        assert tok.convert_ids_to_tokens(ids, skip_special_tokens=True) == ref.convert_ids_to_tokens(
            ids, skip_special_tokens=True
        )
    batch_got = tok.batch_decode(FRAMES[:3], output_word_offsets=True)
    batch_ref = ref.batch_decode(FRAMES[:3], output_word_offsets=True)
    assert batch_got.text == batch_ref.text and _plain(batch_got.word_offsets) == _plain(batch_ref.word_offsets)


def _plain(value: Any) -> Any:
    """Offsets with NumPy integers turned into ints, for comparison."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return int(value) if isinstance(value, (np.integer,)) else value


def test_tokenizer_files_load_both_ways(vocab_dir: Path, tmp_path: Path) -> None:
    ref = transformers.Wav2Vec2CTCTokenizer(str(vocab_dir / "vocab.json"), do_lower_case=True)
    ref.save_pretrained(tmp_path / "ref")
    mine = Wav2Vec2CTCTokenizer.from_pretrained(tmp_path / "ref")
    assert mine.do_lower_case and mine("the end").input_ids == ref("the end").input_ids
    mine.save_pretrained(tmp_path / "ours")
    back = transformers.Wav2Vec2CTCTokenizer.from_pretrained(tmp_path / "ours")
    assert back("the end").input_ids == ref("the end").input_ids
    assert back.decode(FRAMES[0]) == mine.decode(FRAMES[0])


def test_processor_matches_the_reference(vocab_dir: Path, tmp_path: Path) -> None:
    ref = transformers.Wav2Vec2Processor(
        transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True),
        transformers.Wav2Vec2CTCTokenizer(str(vocab_dir / "vocab.json")),
    )
    ref.save_pretrained(tmp_path / "ref")
    mine = Wav2Vec2Processor.from_pretrained(tmp_path / "ref")
    rng = np.random.default_rng(1)
    audio = [rng.standard_normal(n).astype(np.float32) for n in (900, 1300)]
    texts = ["HELLO WORLD", "THE END"]
    expected = ref(audio=audio, text=texts, sampling_rate=16000, padding=True, return_tensors="pt")
    got = mine(audio=audio, text=texts, sampling_rate=16000, padding=True, return_tensors="pt")
    assert set(got) == set(expected)
    torch.testing.assert_close(got["input_values"], expected["input_values"], atol=1e-5, rtol=1e-5)
    assert torch.equal(got["attention_mask"].long(), expected["attention_mask"].long())
    assert got["labels"].tolist() == expected["labels"].tolist()
    assert mine.batch_decode(FRAMES[:2]) == ref.batch_decode(FRAMES[:2])
    mine.save_pretrained(tmp_path / "ours")
    back = transformers.Wav2Vec2Processor.from_pretrained(tmp_path / "ours")
    assert back(text="HE").input_ids == mine(text="HE")["input_ids"]


def test_truncation_with_pad_to_multiple_of_and_output_types_match_the_reference() -> None:
    audio = [np.arange(1300, dtype=np.float32) / 1300, np.ones(700, dtype=np.float32)]
    for settings in ({"do_normalize": False, "return_attention_mask": True}, {"return_attention_mask": True}, {}):
        ref_fe, our_fe = transformers.Wav2Vec2FeatureExtractor(**settings), Wav2Vec2FeatureExtractor(**settings)
        for call in (
            {"padding": True, "max_length": 900, "truncation": True, "pad_to_multiple_of": 128},
            {"padding": "max_length", "max_length": 900, "truncation": True, "pad_to_multiple_of": 128},
            {"padding": False, "max_length": 900, "truncation": True, "pad_to_multiple_of": 128},
            {"padding": True},
        ):
            for batch in (audio, [audio[0], audio[0]], audio[0]):
                expected = ref_fe(batch, sampling_rate=16000, **call)
                got = our_fe(batch, sampling_rate=16000, **call)
                assert set(got) == set(expected)
                for key in expected:
                    ragged = isinstance(expected[key], np.ndarray) and expected[key].dtype == object
                    # A ragged batch: the reference's object array is a list of arrays here (docs/differences.md).
                    assert ragged or type(got[key]) is type(expected[key]), (settings, call, key)
                    for a, b in zip(got[key], expected[key]):
                        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{settings} {call} {key}")
        feats = {"input_values": [np.arange(5, dtype=np.float32), np.arange(8, dtype=np.float32)]}
        expected_pad, got_pad = ref_fe.pad(feats), our_fe.pad(feats)
        assert isinstance(got_pad["input_values"], np.ndarray)
        np.testing.assert_array_equal(got_pad["input_values"], expected_pad["input_values"])


def test_feature_extractor_of_a_reference_saved_processor_loads(vocab_dir: Path, tmp_path: Path) -> None:
    from plugformers import AutoFeatureExtractor

    ref = transformers.Wav2Vec2Processor(
        feature_extractor=transformers.Wav2Vec2FeatureExtractor(do_normalize=False, sampling_rate=8000),
        tokenizer=transformers.Wav2Vec2CTCTokenizer(str(vocab_dir / "vocab.json")),
    )
    ref.save_pretrained(tmp_path / "ref")
    for fe in (AutoFeatureExtractor.from_pretrained(tmp_path / "ref"),
               Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "ref")):
        assert isinstance(fe, Wav2Vec2FeatureExtractor)
        assert fe.to_dict() == transformers.Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "ref").to_dict()
    mine = Wav2Vec2Processor.from_pretrained(tmp_path / "ref")
    assert mine.model_input_names == ref.model_input_names
