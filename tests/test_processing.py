"""ProcessorMixin: routing, decoding, save/load round trip with test-only parts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from plugformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from plugformers.feature_extraction_utils import BatchFeature
from plugformers.processing_utils import ProcessorMixin
from plugformers.utils.io import atomic_directory, write_json


class StubExtractor(SequenceFeatureExtractor):
    def __init__(self, feature_size=1, sampling_rate=16000, padding_value=0.0, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)

    def __call__(self, audio, sampling_rate=None, padding=True, return_tensors=None):
        self.check_sampling_rate(sampling_rate)
        examples, _ = self.check_raw_audio(audio)
        return self.pad({"input_values": examples}, padding=padding, return_tensors=return_tensors)


class StubTokenizer:
    """Characters as ids; saves a vocab.json like a real tokenizer would."""

    model_input_names = ["input_ids"]

    def __init__(self, vocab):
        self.vocab = dict(vocab)
        self.inverse = {i: c for c, i in self.vocab.items()}

    def __call__(self, text, padding=False, return_tensors=None):
        texts = [text] if isinstance(text, str) else list(text)
        ids = [[self.vocab[c] for c in t] for t in texts]
        if padding:
            longest = max(len(i) for i in ids)
            ids = [i + [0] * (longest - len(i)) for i in ids]
        return BatchFeature({"input_ids": ids}, tensor_type=return_tensors)

    def decode(self, ids, skip_special_tokens=False):
        return "".join(self.inverse[i] for i in ids if not (skip_special_tokens and i == 0))

    def batch_decode(self, batch, **kwargs):
        return [self.decode(ids, **kwargs) for ids in batch]

    def save_pretrained(self, folder):
        with atomic_directory(folder) as staging:
            write_json(os.path.join(staging, "vocab.json"), self.vocab)
        return [os.path.join(folder, "vocab.json")]

    @classmethod
    def from_pretrained(cls, folder, **kwargs):
        with open(os.path.join(folder, "vocab.json")) as fh:
            return cls(json.load(fh))


class StubProcessor(ProcessorMixin):
    attributes = ["feature_extractor", "tokenizer"]
    feature_extractor_class = StubExtractor
    tokenizer_class = StubTokenizer
    text_target_key = "labels"


VOCAB = {"<pad>": 0, "a": 1, "b": 2, "c": 3}


def _processor(**extra):
    return StubProcessor(feature_extractor=StubExtractor(padding_value=0.5), tokenizer=StubTokenizer(VOCAB), **extra)


def test_routes_audio_and_text():
    proc = _processor()
    audio = [np.ones(3, np.float32), np.ones(5, np.float32)]
    out = proc(audio=audio, text=["ab", "c"], padding=True, return_tensors="np", sampling_rate=16000)
    assert out["input_values"].shape == (2, 5) and out["input_values"][0, -1] == 0.5
    np.testing.assert_array_equal(out["labels"], [[1, 2], [3, 0]])
    text_only = proc(text="cab")
    assert text_only["input_ids"] == [[3, 1, 2]]
    audio_only = proc(audio=audio[0], sampling_rate=16000, return_tensors="np")
    assert set(audio_only) == {"input_values", "attention_mask"}
    assert proc(raw_speech=audio[0], sampling_rate=16000)["input_values"][0].shape == (3,)


def test_errors():
    proc = _processor()
    with pytest.raises(ValueError, match="at least one"):
        proc()
    with pytest.raises(ValueError, match="no part that takes images"):
        proc(images=np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="8000"):
        proc(audio=np.ones(3), sampling_rate=8000)
    with pytest.raises(ValueError, match="needs the part"):
        StubProcessor(feature_extractor=StubExtractor())
    with pytest.raises(TypeError, match="must be a StubTokenizer"):
        StubProcessor(feature_extractor=StubExtractor(), tokenizer=object())


def test_decode_delegates():
    proc = _processor()
    assert proc.decode([1, 2, 0], skip_special_tokens=True) == "ab"
    assert proc.batch_decode([[3], [2, 1]]) == ["c", "ba"]
    # The tokenizer's ids come out under text_target_key ("labels"), so that is the name listed.
    assert proc.model_input_names == ["input_values", "labels"]


def test_save_load_round_trip(tmp_path):
    proc = _processor()
    proc.save_pretrained(tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names == ["preprocessor_config.json", "vocab.json"]
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["processor_class"] == "StubProcessor"
    loaded = StubProcessor.from_pretrained(tmp_path)
    assert loaded.feature_extractor.padding_value == 0.5 and loaded.tokenizer.vocab == VOCAB


def test_extra_settings_go_to_processor_config(tmp_path):
    proc = _processor(chunk_length=4)
    proc.save_pretrained(tmp_path)
    own = json.loads((tmp_path / "processor_config.json").read_text())
    assert own == {"chunk_length": 4, "processor_class": "StubProcessor"}
    assert StubProcessor.from_pretrained(tmp_path).chunk_length == 4
    assert "chunk_length" in repr(proc)


def test_reads_nested_processor_config(tmp_path):
    StubTokenizer(VOCAB).save_pretrained(tmp_path)
    nested = StubExtractor(padding_value=2.0).to_dict()
    write_json(tmp_path / "processor_config.json", {"feature_extractor": nested, "processor_class": "StubProcessor"})
    loaded = StubProcessor.from_pretrained(tmp_path)
    assert loaded.feature_extractor.padding_value == 2.0


def test_class_names_resolve_through_the_namespace():
    class Named(ProcessorMixin):
        attributes = ["tokenizer"]
        tokenizer_class = ("NoSuchSlowTokenizer", "NoSuchFastTokenizer")

    with pytest.raises(ValueError, match="NoSuch"):
        Named._part_class("tokenizer")
