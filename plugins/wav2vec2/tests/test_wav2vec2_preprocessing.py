"""Wav2Vec2 feature extractor, CTC tokenizer and processor, fed speech-like audio read from WAV files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from plugformers_wav2vec2.feature_extraction_wav2vec2 import Wav2Vec2FeatureExtractor
from plugformers_wav2vec2.processing_wav2vec2 import Wav2Vec2Processor
from plugformers_wav2vec2.tokenization_wav2vec2 import Wav2Vec2CTCTokenizer

from plugformers.audio_utils import load_wav, write_wav

VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "E": 5, "T": 6, "A": 7, "O": 8, "N": 9, "H": 10,
         "L": 11, "W": 12, "R": 13, "D": 14, "'": 15}


def speech_like(seconds: float, rate: int = 16000, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A voiced signal: harmonics of a gliding pitch shaped by three formant-like resonances and syllable envelopes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wave = np.zeros_like(t)
    for k in range(1, 25):
        freq = k * pitch
        gain = sum(np.exp(-(((freq - fc) / bw) ** 2)) for fc, bw in ((700, 130), (1220, 170), (2600, 250)))
        wave += gain * np.sin(k * phase) / k
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5  # three "syllables" a second
    wave = wave * envelope + 0.003 * rng.standard_normal(t.shape)
    return (0.8 * wave / np.abs(wave).max()).astype(np.float32)


@pytest.fixture
def wav_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "pcm": tmp_path / "pcm16.wav",
        "float": tmp_path / "float32.wav",
        "short_pcm": tmp_path / "short.wav",
        "rate8k": tmp_path / "rate8k.wav",
    }
    write_wav(files["pcm"], speech_like(1.0), 16000)
    write_wav(files["float"], speech_like(0.75, f0=210.0, seed=1), 16000, subtype="FLOAT")
    write_wav(files["short_pcm"], speech_like(0.4, f0=160.0, seed=2), 16000)
    write_wav(files["rate8k"], speech_like(0.5, rate=8000), 8000)
    return files


@pytest.fixture
def vocab_file(tmp_path: Path) -> Path:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(VOCAB))
    return path


# ----- feature extractor ---------------------------------------------------------------------------------


def test_feature_extractor_prints_like_the_reference() -> None:
    expected = (
        "Wav2Vec2FeatureExtractor {\n"
        '  "do_normalize": true,\n'
        '  "feature_extractor_type": "Wav2Vec2FeatureExtractor",\n'
        '  "feature_size": 1,\n'
        '  "padding_side": "right",\n'
        '  "padding_value": 0.0,\n'
        '  "return_attention_mask": false,\n'
        '  "sampling_rate": 16000\n'
        "}\n"
    )
    assert repr(Wav2Vec2FeatureExtractor()) == expected


def test_wav_files_round_trip_and_normalise_ignoring_padding(wav_files: dict[str, Path]) -> None:
    long_audio, rate = load_wav(wav_files["pcm"])
    float_audio, rate_f = load_wav(wav_files["float"])
    assert rate == rate_f == 16000 and long_audio.dtype == np.float32
    np.testing.assert_allclose(long_audio, speech_like(1.0), atol=1e-4)  # 16-bit quantisation
    np.testing.assert_array_equal(float_audio, speech_like(0.75, f0=210.0, seed=1))

    fe = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    out = fe([long_audio, float_audio], sampling_rate=rate, padding=True, return_tensors="np")
    values, mask = out["input_values"], out["attention_mask"]
    assert values.shape == (2, 16000) and values.dtype == np.float32 and mask.dtype == np.int32
    assert mask[1].sum() == 12000 and not mask[1, 12000:].any()
    real = values[1, :12000]
    assert abs(real.mean()) < 1e-4 and abs(real.std() - 1) < 1e-3
    assert (values[1, 12000:] == 0).all()
    # Padding must not leak into the statistics: the short example alone normalises the same way.
    alone = fe(float_audio, sampling_rate=16000)["input_values"][0]
    np.testing.assert_allclose(values[1, :12000], alone, atol=1e-5)


def test_normalisation_without_mask_covers_the_padding_like_the_reference() -> None:
    fe = Wav2Vec2FeatureExtractor()  # return_attention_mask=False, the base-model setting
    audio = [speech_like(0.1), speech_like(0.05, seed=3)]
    out = fe(audio, sampling_rate=16000, padding=True)
    assert "attention_mask" not in out
    padded = np.concatenate([audio[1], np.zeros(800, dtype=np.float32)])
    np.testing.assert_allclose(out["input_values"][1], (padded - padded.mean()) / np.sqrt(padded.var() + 1e-7), atol=1e-5)


def test_padding_options_and_tensors() -> None:
    fe = Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True)
    audio = [np.ones(10, dtype=np.float32), np.ones(7, dtype=np.float32)]
    out = fe(audio, sampling_rate=16000, padding="max_length", max_length=16, return_tensors="pt")
    assert isinstance(out["input_values"], torch.Tensor) and out["input_values"].shape == (2, 16)
    assert out["attention_mask"].sum(-1).tolist() == [10, 7]
    out = fe(audio, sampling_rate=16000, padding=True, pad_to_multiple_of=4)
    assert [len(v) for v in out["input_values"]] == [12, 12]
    out = fe(audio, sampling_rate=16000, truncation=True, max_length=8, padding="max_length")
    assert [len(v) for v in out["input_values"]] == [8, 8]
    unpadded = fe(audio, sampling_rate=16000)
    assert [len(v) for v in unpadded["input_values"]] == [10, 7]


def test_output_types_without_return_tensors_follow_the_reference() -> None:
    audio = [np.ones(5, dtype=np.float32), np.ones(3, dtype=np.float32)]
    plain = Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True)
    out = plain(audio, sampling_rate=16000, padding=True)
    # Padded and not normalised: one stacked array; the mask stays a list of per-example arrays.
    assert isinstance(out["input_values"], np.ndarray) and out["input_values"].shape == (2, 5)
    assert isinstance(out["attention_mask"], list) and out["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]
    assert isinstance(plain(audio, sampling_rate=16000)["input_values"], list)  # ragged
    normalised = Wav2Vec2FeatureExtractor()(audio, sampling_rate=16000, padding=True)
    assert isinstance(normalised["input_values"], list) and len(normalised["input_values"]) == 2


def test_truncation_respects_pad_to_multiple_of() -> None:
    fe = Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True)
    audio = [np.arange(1300, dtype=np.float32)]
    for padding in (True, "max_length", False):
        out = fe(audio, sampling_rate=16000, padding=padding, max_length=900, truncation=True, pad_to_multiple_of=128)
        assert len(out["input_values"][0]) == 1024 and int(np.sum(out["attention_mask"][0])) == 1024


def test_wrong_sampling_rate_says_how_to_resample(wav_files: dict[str, Path]) -> None:
    audio, rate = load_wav(wav_files["rate8k"])
    assert rate == 8000
    with pytest.raises(ValueError, match=r"8000 Hz.*expects 16000 Hz.*resample"):
        Wav2Vec2FeatureExtractor()(audio, sampling_rate=rate)


@pytest.mark.parametrize(
    "bad",
    [
        [np.zeros((2, 1600), dtype=np.float32)],  # a stereo example inside a batch
        np.zeros((16000, 2), dtype=np.float32),  # (samples, channels) as read by many audio libraries
        np.zeros((2, 3, 100), dtype=np.float32),
    ],
)
def test_multichannel_input_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"(mono|channels|dimension)"):
        Wav2Vec2FeatureExtractor()(bad, sampling_rate=16000)


def test_feature_extractor_save_load(tmp_path: Path) -> None:
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=False)
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["return_attention_mask"] is True and saved["feature_extractor_type"] == "Wav2Vec2FeatureExtractor"
    assert Wav2Vec2FeatureExtractor.from_pretrained(tmp_path) == fe


# ----- tokenizer -----------------------------------------------------------------------------------------


def test_tokenizer_encodes_characters_with_word_delimiter(vocab_file: Path) -> None:
    tok = Wav2Vec2CTCTokenizer(str(vocab_file))
    assert tok("HELLO WORLD").input_ids == [10, 5, 11, 11, 8, 4, 12, 8, 13, 11, 14]
    assert tok.tokenize("HE  LD ") == ["H", "E", "|", "|", "L", "D", "|"]
    # Special tokens in text are kept whole and eat the spaces around them; unknown characters map to <unk>.
    assert tok("hello <unk> x  A").input_ids == [3, 3, 3, 3, 3, 3, 3, 4, 4, 7]
    assert len(tok) == tok.vocab_size == 16 and tok.word_delimiter_token_id == 4
    lower = Wav2Vec2CTCTokenizer(str(vocab_file), do_lower_case=True)
    assert lower("hello World").input_ids == tok("HELLO WORLD").input_ids
    assert lower.decode(lower("hello world").input_ids, group_tokens=False) == "hello world"


def test_ctc_decode_groups_repeats_and_drops_blanks(vocab_file: Path) -> None:
    tok = Wav2Vec2CTCTokenizer(str(vocab_file))
    frames = [0, 10, 10, 5, 0, 11, 11, 0, 11, 8, 4, 4, 12, 8, 13, 11, 14, 0, 0]
    assert tok.decode(frames) == "HELLO WORLD"
    assert tok.decode(frames, group_tokens=False) == "HHELLLO  WORLD"
    assert tok.decode(frames, skip_special_tokens=True) == "HELO WORLD"  # the blank between the Ls is gone
    assert tok.decode([5, 4, 4, 6], spaces_between_special_tokens=True) == "E   T"
    assert tok.batch_decode(torch.tensor([frames, frames])) == ["HELLO WORLD"] * 2


def test_char_and_word_offsets(vocab_file: Path) -> None:
    tok = Wav2Vec2CTCTokenizer(str(vocab_file))
    frames = [0, 10, 10, 5, 0, 11, 11, 0, 11, 8, 4, 4, 12, 8, 13, 11, 14, 0, 0]
    out = tok.decode(frames, output_char_offsets=True, output_word_offsets=True)
    assert out.text == "HELLO WORLD"
    assert [c["char"] for c in out.char_offsets] == list("HELLO WORLD")
    assert out.char_offsets[0] == {"char": "H", "start_offset": 1, "end_offset": 3}
    assert out.char_offsets[5] == {"char": " ", "start_offset": 10, "end_offset": 12}
    assert out.word_offsets == [
        {"word": "HELLO", "start_offset": 1, "end_offset": 10},
        {"word": "WORLD", "start_offset": 12, "end_offset": 17},
    ]
    batch = tok.batch_decode([frames, [4, 4, 5, 0, 6]], output_word_offsets=True)
    assert batch.text == ["HELLO WORLD", "ET"] and batch.char_offsets is None
    assert batch.word_offsets[1] == [{"word": "ET", "start_offset": 2, "end_offset": 5}]
    assert tok.decode([], output_word_offsets=True).word_offsets == []


@pytest.mark.parametrize("missing", ["|", "<pad>"])
def test_vocab_without_delimiter_or_pad_is_refused(tmp_path: Path, missing: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({k: v for k, v in VOCAB.items() if k != missing}))
    with pytest.raises(ValueError, match=f"has no .*{missing}"):
        Wav2Vec2CTCTokenizer(str(path))


def test_decoding_ids_outside_the_vocabulary_is_refused(vocab_file: Path) -> None:
    tok = Wav2Vec2CTCTokenizer(str(vocab_file))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([5, 16])
    with pytest.raises(ValueError, match=r"labels\[labels == -100\] = tokenizer.pad_token_id"):
        tok.decode([5, -100])


def test_word_delimiter_counts_as_special_but_decodes_as_a_space(vocab_file: Path) -> None:
    tok = Wav2Vec2CTCTokenizer(str(vocab_file))
    ids = tok("HE LD").input_ids
    assert tok.all_special_tokens[-1] == "|" and 4 in tok.all_special_ids
    assert tok.get_special_tokens_mask(ids, already_has_special_tokens=True) == [0, 0, 1, 0, 0]
    assert tok.convert_ids_to_tokens(ids, skip_special_tokens=True) == ["H", "E", "L", "D"]
    assert tok.decode(ids, skip_special_tokens=True) == "HE LD"
    assert tok.decode([1, *ids, 2], skip_special_tokens=True) == "HE LD"
    assert "word_delimiter_token" in tok.special_tokens_map and "|" not in tok.extra_special_tokens


def test_multilingual_vocab_needs_target_lang(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"eng": VOCAB, "fra": {**VOCAB, "É": 16}}))
    with pytest.raises(ValueError, match="target_lang"):
        Wav2Vec2CTCTokenizer(str(path))
    tok = Wav2Vec2CTCTokenizer(str(path), target_lang="fra")
    assert tok("É").input_ids == [16]
    tok.save_pretrained(tmp_path / "saved")
    again = Wav2Vec2CTCTokenizer.from_pretrained(tmp_path / "saved")
    assert again.target_lang == "fra" and again("É").input_ids == [16]


def test_tokenizer_save_load_round_trip(tmp_path: Path, vocab_file: Path) -> None:
    tok = Wav2Vec2CTCTokenizer(str(vocab_file), do_lower_case=True)
    tok.save_pretrained(tmp_path / "tok")
    assert json.loads((tmp_path / "tok" / "vocab.json").read_text()) == VOCAB
    again = Wav2Vec2CTCTokenizer.from_pretrained(tmp_path / "tok")
    assert again.do_lower_case and again("the end").input_ids == tok("the end").input_ids
    assert again.special_tokens_map["word_delimiter_token"] == "|"


# ----- processor and the model together ------------------------------------------------------------------


def test_processor_gives_values_and_labels_and_round_trips(
    tmp_path: Path, vocab_file: Path, wav_files: dict[str, Path]
) -> None:
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), Wav2Vec2CTCTokenizer(str(vocab_file)))
    audio = [load_wav(wav_files["pcm"])[0], load_wav(wav_files["short_pcm"])[0]]
    batch = processor(audio=audio, text=["HELLO WORLD", "THE END"], sampling_rate=16000, padding=True, return_tensors="pt")
    assert batch["input_values"].shape == (2, 16000) and batch["attention_mask"][1].sum() == 6400
    assert batch["labels"].tolist()[1] == [6, 10, 5, 4, 5, 9, 14, 0, 0, 0, 0]
    only_audio = processor(audio[0], sampling_rate=16000)
    assert set(only_audio) == {"input_values", "attention_mask"}
    # The names of what the processor outputs: the transcription's ids go under "labels".
    assert processor.model_input_names == ["input_values", "attention_mask", "labels"]
    only_text = processor(text="HE")
    assert only_text["input_ids"] == [10, 5]

    processor.save_pretrained(tmp_path / "proc")
    again = Wav2Vec2Processor.from_pretrained(tmp_path / "proc")
    assert again.feature_extractor == processor.feature_extractor
    assert again.tokenizer.get_vocab() == processor.tokenizer.get_vocab()

    padded = processor.pad(
        input_features=[{"input_values": np.ones(5)}, {"input_values": np.ones(3)}],
        labels=[{"input_ids": [5, 6, 7]}, {"input_ids": [8]}],
        padding=True,
        return_tensors="pt",
    )
    assert padded["input_values"].shape == (2, 5) and padded["labels"].tolist() == [[5, 6, 7], [8, 0, 0]]


def test_processor_feeds_a_ctc_model_end_to_end(vocab_file: Path, wav_files: dict[str, Path]) -> None:
    from plugformers_wav2vec2.configuration_wav2vec2 import Wav2Vec2Config
    from plugformers_wav2vec2.modeling_wav2vec2 import Wav2Vec2ForCTC

    torch.manual_seed(0)
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), Wav2Vec2CTCTokenizer(str(vocab_file)))
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, conv_dim=(16, 16, 16),
        conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        vocab_size=len(processor.tokenizer), feat_extract_norm="layer", do_stable_layer_norm=True,
    )
    model = Wav2Vec2ForCTC(config).eval()
    audio = [load_wav(wav_files["float"])[0], load_wav(wav_files["short_pcm"])[0]]
    batch = processor(audio=audio, text=["HELLO", "WORLD"], sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (2, 599, 16) and torch.isfinite(out.loss)
    texts = processor.batch_decode(out.logits.argmax(-1))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_auto_classes_build_the_preprocessing_parts(tmp_path: Path, vocab_file: Path) -> None:
    from plugformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer

    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), Wav2Vec2CTCTokenizer(str(vocab_file)))
    processor.save_pretrained(tmp_path)
    assert type(AutoProcessor.from_pretrained(tmp_path)) is Wav2Vec2Processor
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is Wav2Vec2FeatureExtractor
    # use_fast=False: there is no fast CTC tokenizer (the reference has none either).
    assert type(AutoTokenizer.from_pretrained(tmp_path, use_fast=False)) is Wav2Vec2CTCTokenizer
