"""Sequence feature extractor contracts: printing, save/load, padding, sampling-rate and input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plugformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from plugformers.feature_extraction_utils import BatchFeature
from plugformers.testing.preprocessing_tests import FeatureExtractorTesterMixin


class TinyWav2Vec2FeatureExtractor(SequenceFeatureExtractor):
    """Test-only extractor shaped like Wav2Vec2's: zero-mean unit-variance waveforms, padded."""

    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, feature_size=1, sampling_rate=16000, padding_value=0.0, return_attention_mask=False,
                 do_normalize=True, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        self.do_normalize = do_normalize

    def __call__(self, raw_speech, sampling_rate=None, padding=False, max_length=None, truncation=False,
                 return_tensors=None, return_attention_mask=None):
        self.check_sampling_rate(sampling_rate)
        examples, _ = self.check_raw_audio(raw_speech)
        if self.do_normalize:
            examples = [(x - x.mean()) / np.sqrt(x.var() + 1e-7) for x in examples]
        return self.pad({"input_values": examples}, padding=padding, max_length=max_length, truncation=truncation,
                        return_tensors=return_tensors, return_attention_mask=return_attention_mask)


class TestTinyExtractor(FeatureExtractorTesterMixin):
    extractor_class = TinyWav2Vec2FeatureExtractor


def test_printed_form_matches_the_guide():
    text = repr(TinyWav2Vec2FeatureExtractor())
    name = "TinyWav2Vec2FeatureExtractor"
    assert text == name + " " + json.dumps({
        "do_normalize": True, "feature_extractor_type": name, "feature_size": 1, "padding_side": "right",
        "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000}, indent=2) + "\n"
    custom = TinyWav2Vec2FeatureExtractor(sampling_rate=8000, do_normalize=False).to_dict()
    assert custom["sampling_rate"] == 8000 and custom["do_normalize"] is False


def test_internal_state_is_not_serialised():
    fe = TinyWav2Vec2FeatureExtractor()
    fe._cache = np.zeros(3)
    assert "_cache" not in fe.to_dict()


def test_save_load_and_reference_layout(tmp_path):
    fe = TinyWav2Vec2FeatureExtractor(padding_value=1.0)
    fe.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert data["padding_value"] == 1.0 and data["feature_extractor_type"] == "TinyWav2Vec2FeatureExtractor"
    loaded = TinyWav2Vec2FeatureExtractor.from_pretrained(tmp_path, sampling_rate=8000)
    assert loaded.padding_value == 1.0 and loaded.sampling_rate == 8000
    # The nested layout of processor_config.json written by newer libraries is read too.
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "preprocessor_config.json").write_text(json.dumps({"feature_extractor": data}))
    assert TinyWav2Vec2FeatureExtractor.from_pretrained(tmp_path / "nested").padding_value == 1.0


def test_pad_strategies():
    fe = TinyWav2Vec2FeatureExtractor(padding_value=-1.0)
    feats = [{"input_values": [1.0, 2.0, 3.0]}, {"input_values": [4.0]}]
    out = fe.pad(feats, padding=True, return_attention_mask=True, return_tensors="np")
    np.testing.assert_array_equal(out["input_values"], [[1, 2, 3], [4, -1, -1]])
    np.testing.assert_array_equal(out["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    out = fe.pad(feats, padding="longest", pad_to_multiple_of=4, return_attention_mask=True, return_tensors="pt")
    assert out["input_values"].shape == (2, 4) and out["attention_mask"].dtype == torch.int32
    out = fe.pad(feats, padding="max_length", max_length=2, truncation=True, return_tensors="np")
    np.testing.assert_array_equal(out["input_values"], [[1, 2], [4, -1]])
    assert "attention_mask" not in out
    fe.padding_side = "left"
    out = fe.pad(feats, padding=True, return_attention_mask=True, return_tensors="np")
    np.testing.assert_array_equal(out["input_values"][1], [-1, -1, 4])
    np.testing.assert_array_equal(out["attention_mask"][1], [0, 0, 1])
    unpadded = fe.pad(feats, padding=False)
    assert [len(v) for v in unpadded["input_values"]] == [3, 1]


def test_truncation_keeps_the_length_rounded_up_to_pad_to_multiple_of():
    fe = TinyWav2Vec2FeatureExtractor()
    feats = {"input_values": [np.arange(1300, dtype=np.float32)]}
    for padding in (True, "max_length", False):
        out = fe.pad(feats, padding=padding, max_length=900, truncation=True, pad_to_multiple_of=128,
                     return_attention_mask=True)
        assert out["input_values"].shape == (1, 1024) and out["input_values"][0, -1] == 1023
        assert int(out["attention_mask"].sum()) == 1024


def test_pad_without_return_tensors_stacks_examples_of_one_length():
    fe = TinyWav2Vec2FeatureExtractor()
    feats = {"input_values": [np.arange(5.0), np.arange(8.0), np.arange(3.0)]}
    out = fe.pad(feats, return_attention_mask=True)
    assert isinstance(out["input_values"], np.ndarray) and out["input_values"].shape == (3, 8)
    assert out["input_values"].dtype == np.float32
    assert isinstance(out["attention_mask"], np.ndarray) and out["attention_mask"].shape == (3, 8)
    ragged = fe.pad(feats, padding=False, return_attention_mask=True)
    assert [v.shape for v in ragged["input_values"]] == [(5,), (8,), (3,)]
    assert isinstance(ragged["input_values"], list)


def test_settings_nested_in_processor_config_are_loaded(tmp_path):
    settings = TinyWav2Vec2FeatureExtractor(sampling_rate=8000, do_normalize=False).to_dict()
    (tmp_path / "processor_config.json").write_text(
        json.dumps({"feature_extractor": settings, "processor_class": "SomeProcessor"})
    )
    loaded = TinyWav2Vec2FeatureExtractor.from_pretrained(tmp_path)
    assert loaded.sampling_rate == 8000 and loaded.do_normalize is False
    # preprocessor_config.json wins when both exist.
    TinyWav2Vec2FeatureExtractor(sampling_rate=4000).save_pretrained(tmp_path)
    assert TinyWav2Vec2FeatureExtractor.from_pretrained(tmp_path).sampling_rate == 4000


def test_processor_config_without_this_part_is_a_missing_file_error(tmp_path):
    (tmp_path / "processor_config.json").write_text(json.dumps({"processor_class": "SomeProcessor", "x": 1}))
    with pytest.raises(OSError, match=r"preprocessor_config\.json"):
        TinyWav2Vec2FeatureExtractor.from_pretrained(tmp_path)


def test_pad_feature_frames():
    fe = SequenceFeatureExtractor(feature_size=2, sampling_rate=100, padding_value=0.5)
    out = fe.pad({"input_values": [np.ones((3, 2)), np.ones((1, 2))]}, return_tensors="np")
    assert out["input_values"].shape == (2, 3, 2) and out["input_values"][1, 2, 0] == 0.5
    np.testing.assert_array_equal(out["attention_mask"], [[1, 1, 1], [1, 0, 0]])


def test_pad_errors():
    fe = TinyWav2Vec2FeatureExtractor()
    with pytest.raises(ValueError, match="max_length"):
        fe.pad({"input_values": [[1.0]]}, padding="max_length")
    with pytest.raises(ValueError, match="padding must be"):
        fe.pad({"input_values": [[1.0]]}, padding="everything")
    with pytest.raises(ValueError, match="input_values"):
        fe.pad({"other": [[1.0]]})
    with pytest.raises(ValueError, match="lengths"):
        fe.pad({"input_values": [[1.0], [1.0, 2.0]]}, padding=False, return_tensors="np")


def test_sampling_rate_mismatch_message():
    fe = TinyWav2Vec2FeatureExtractor()
    with pytest.raises(ValueError) as err:
        fe(np.zeros(10, np.float32), sampling_rate=8000)
    msg = str(err.value)
    assert "8000" in msg and "16000" in msg and "resample" in msg.lower()
    assert fe(np.ones(10), sampling_rate=16000)["input_values"][0].dtype == np.float32


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((2, 3, 4)), "dimension"),
        ([np.zeros((2, 5))], "1-D"),
        (np.zeros(0), "empty"),
        ([], "empty"),
        (np.array([1.0, np.inf]), "NaN or infinite"),
        ([np.array(["x", "y"])], "non-numeric"),
        ("not audio", "NumPy"),
    ],
)
def test_bad_audio(audio, message):
    with pytest.raises(ValueError, match=message):
        TinyWav2Vec2FeatureExtractor()(audio, sampling_rate=16000)


def test_batch_forms_are_equivalent():
    fe = TinyWav2Vec2FeatureExtractor(return_attention_mask=True)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30).astype(np.float32), rng.normal(size=30).astype(np.float32)
    as_list = fe([a, b], sampling_rate=16000, return_tensors="np")["input_values"]
    as_array = fe(np.stack([a, b]), sampling_rate=16000, return_tensors="np")["input_values"]
    as_tensor = fe(torch.from_numpy(np.stack([a, b])), sampling_rate=16000, return_tensors="np")["input_values"]
    np.testing.assert_allclose(as_list, as_array)
    np.testing.assert_allclose(as_list, as_tensor)
    single = fe(a.tolist(), sampling_rate=16000, return_tensors="np")["input_values"]
    assert single.shape == (1, 30)
    np.testing.assert_allclose(single[0], as_list[0], atol=1e-6)


def test_bad_settings():
    with pytest.raises(ValueError, match="sampling_rate"):
        SequenceFeatureExtractor(feature_size=1, sampling_rate=0, padding_value=0.0)
    with pytest.raises(ValueError, match="padding_side"):
        SequenceFeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, padding_side="middle")


def test_batch_feature_is_returned():
    out = TinyWav2Vec2FeatureExtractor()([np.ones(4)], sampling_rate=16000)
    assert isinstance(out, BatchFeature) and out.input_values[0].shape == (4,)
