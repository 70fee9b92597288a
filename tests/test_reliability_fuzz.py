"""Property tests (Hypothesis): bad input gives a clear error of a documented type, never a crash deep inside.

Covered: tokenizers (any Unicode incl. lone surrogates and control characters; Python and fast DistilBERT
backends agree), configs (random valid/invalid keyword arguments), image processors (random shapes, modes,
dtypes), feature extractors (random lengths, zero length, NaN), and corrupted checkpoints (safetensors
headers truncated, lied about, bit-flipped; ``config.json`` mangled), which must fail with one error that
names the file. Example counts are kept small (and derandomized) for the shared CI machine; the counts that
ran are listed in docs/reliability.md.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugformers.configuration_utils import ConfigError
from plugformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from plugformers.image_processing_utils import BaseImageProcessor
from plugformers.modeling_utils import WeightsLoadingError

from tinyfamily import TinyConfig, TinyModel

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CLEAR_ERRORS = (ConfigError, ValueError, TypeError)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="plugformers-fuzz-") as d:
        yield Path(d)


def _fresh_dir(scratch: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=scratch))


# ----- tokenizers ------------------------------------------------------------------------------------------

TOKEN_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "b", "##a", "##b", "##s",
    "un", "##able", ",", ".", "!", "?", "'", "-", "你", "好", "é", "e", "\U0001f917", "x", "##x",
]  # fmt: skip

# Pieces that are known to be hard: surrogates, controls, zero-width and combining marks, specials.
HARD_PIECES = [
    "\ud800", "\udfff", "\udc00x", "\x00", "\x07", "\x1f", "\x7f", "\u0085", "\u200b", "\u200d", "\ufeff",
    "\r\n", "\t", "\u3000", "\u00a0", "\u0301", "\u2028", "[MASK]", "[SEP]", "[CLS]", "[UNK]", "##", "[",
    "你好", "\U0001f917", "hello", "world", "unable", "x" * 120, " ", "İ", "ß", "ﬁ", "\U000e0001",
]  # fmt: skip

PIECE = st.one_of(
    st.text(max_size=6),
    st.sampled_from(HARD_PIECES),
    st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Zs", "Mn", "Po", "Lo", "So"]),
    st.sampled_from(TOKEN_VOCAB),
)
TEXT = st.lists(PIECE, max_size=6).map("".join)


@pytest.fixture(scope="module")
def distilbert_pair(scratch: Path) -> tuple[Any, Any]:
    slow_mod = pytest.importorskip("plugformers_distilbert.tokenization_distilbert")
    fast_mod = pytest.importorskip("plugformers_distilbert.tokenization_distilbert_fast")
    vocab = scratch / "vocab.txt"
    vocab.write_text("\n".join(TOKEN_VOCAB) + "\n", encoding="utf-8")
    return slow_mod.DistilBertTokenizer(str(vocab)), fast_mod.DistilBertTokenizerFast(str(vocab))


@FUZZ
@given(text=TEXT, pair=st.one_of(st.none(), TEXT), max_length=st.one_of(st.none(), st.integers(3, 12)))
def test_tokenizers_any_unicode_slow_and_fast_agree(distilbert_pair: tuple[Any, Any], text: str, pair: str | None,
                                                     max_length: int | None) -> None:
    slow, fast = distilbert_pair
    kwargs: dict[str, Any] = {"truncation": True, "max_length": max_length} if max_length else {}
    a = slow(text, pair, **kwargs)
    b = fast(text, pair, **kwargs)
    assert a["input_ids"] == b["input_ids"], (text, pair)
    assert a["attention_mask"] == b["attention_mask"]
    assert a.get("token_type_ids") == b.get("token_type_ids")
    assert all(0 <= i < len(TOKEN_VOCAB) for i in a["input_ids"])
    if max_length:
        assert len(a["input_ids"]) <= max_length
    # Decoding never fails and gives text (lone surrogates were replaced, so it is encodable).
    for tok in (slow, fast):
        tok.decode(a["input_ids"]).encode("utf-8")
    assert slow.tokenize(text) == fast.tokenize(text)


def _has_unassigned(text: str) -> bool:
    return any(unicodedata.category(c) == "Cn" for c in text)


@pytest.mark.parametrize("text", ["\U000102d1", "hello \U0010ffff"])
def test_unassigned_code_points_slow_and_fast_agree(distilbert_pair: tuple[Any, Any], text: str) -> None:
    slow, fast = distilbert_pair
    assert slow(text)["input_ids"] == fast(text)["input_ids"]


# ----- configs ------------------------------------------------------------------------------------------

CONFIG_KEYS = [
    "vocab_size", "dim", "n_layers", "tie_word_embeddings", "hidden_size", "num_labels", "id2label", "label2id",
    "output_hidden_states", "output_attentions", "return_dict", "pad_token_id", "bos_token_id", "problem_type",
    "dtype", "torch_dtype", "architectures", "is_encoder_decoder", "chunk_size_feed_forward", "my_extra_field",
    "model_type", "transformers_version", "name_or_path", "_name_or_path",
]  # fmt: skip

JSONISH = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)  # fmt: skip
ODD = st.sampled_from([object(), {1, 2}, b"bytes", float("nan"), float("inf"), 1 + 2j, torch.float16, (1, 2),
                       {0: "a", 1: "b"}, {"0": "a"}, {"a": 0}, {1.5: "x"}, Path("p")])  # fmt: skip
CONFIG_KWARGS = st.dictionaries(st.sampled_from(CONFIG_KEYS), st.one_of(JSONISH, ODD), max_size=4)


@FUZZ
@given(kwargs=CONFIG_KWARGS)
def test_configs_round_trip_or_fail_clearly(scratch: Path, kwargs: dict[str, Any]) -> None:
    try:
        config = TinyConfig(**kwargs)
    except CLEAR_ERRORS:
        return
    folder = _fresh_dir(scratch)
    try:
        config.save_pretrained(folder)
    except CLEAR_ERRORS:
        assert not (folder / "config.json").exists(), "a failed save left a config.json behind"
        return
    try:
        loaded = TinyConfig.from_pretrained(folder)
    except ConfigError as exc:
        # The tiny family validates nothing itself; what it accepted but cannot load must be named clearly.
        assert "config.json" in str(exc)
        shutil.rmtree(folder)
        return
    assert loaded.to_diff_dict() == {**config.to_diff_dict(), "_name_or_path": str(folder)} or (
        {k: v for k, v in loaded.to_diff_dict().items() if k != "_name_or_path"}
        == {k: v for k, v in config.to_diff_dict().items() if k != "_name_or_path"}
    )
    again = _fresh_dir(scratch)
    loaded.save_pretrained(again)
    first, second = (json.loads((d / "config.json").read_text(encoding="utf-8")) for d in (folder, again))
    for saved in (first, second):
        saved.pop("_name_or_path", None)  # the loaded copy remembers where it came from
    assert first == second
    shutil.rmtree(folder)
    shutil.rmtree(again)


@pytest.mark.parametrize("kwargs", [{"output_hidden_states": []}, {"return_dict": "no"}])
def test_config_save_writes_only_what_load_accepts(scratch: Path, kwargs: dict[str, Any]) -> None:
    from plugformers.configuration_utils import PretrainedConfig

    folder = _fresh_dir(scratch)
    try:
        config = PretrainedConfig(**kwargs)
        config.save_pretrained(folder)
    except CLEAR_ERRORS:
        return  # refusing at construction or save is also fine
    PretrainedConfig.from_pretrained(folder)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(CONFIG_KEYS), JSONISH, max_size=4), kwargs=CONFIG_KWARGS)
def test_config_from_dict_fails_clearly(data: dict[str, Any], kwargs: dict[str, Any]) -> None:
    try:
        config = TinyConfig.from_dict(data, **kwargs)
    except CLEAR_ERRORS:
        return
    assert isinstance(config, TinyConfig)


# ----- image processors ---------------------------------------------------------------------------------------


class FuzzImageProcessor(BaseImageProcessor):
    do_resize = True
    size = {"height": 8, "width": 8}
    resample = 2
    do_rescale = True
    do_normalize = True
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]


DTYPES = ["uint8", "int8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool", "complex64"]


@st.composite
def array_images(draw: st.DrawFn) -> np.ndarray:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 7]), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.uniform(-2.0, 300.0, size=shape) if draw(st.booleans()) else rng.uniform(0, 1, size=shape)
    arr = values.astype(dtype) if dtype.kind != "b" else values > 0.5
    if dtype.kind == "f" and arr.size and draw(st.booleans()):
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return arr


@st.composite
def pil_images(draw: st.DrawFn) -> Any:
    from PIL import Image

    mode = draw(st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "I", "I;16", "F", "CMYK", "YCbCr", "HSV", "La"]))
    w, h = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    return Image.new(mode, (w, h), color=draw(st.integers(0, 255)) if mode not in ("RGB", "RGBA", "CMYK", "YCbCr", "HSV") else None)


def _check_pixels(pixel_values: Any, count: int) -> None:
    assert len(pixel_values) == count
    for pv in pixel_values:
        arr = pv.numpy() if isinstance(pv, torch.Tensor) else np.asarray(pv)
        assert arr.dtype == np.float32
        assert arr.shape[1:] == (8, 8) and arr.shape[0] in (1, 3)
        assert np.isfinite(arr).all()


@FUZZ
@given(images=st.lists(st.one_of(array_images(), pil_images()), min_size=1, max_size=3),
       layout=st.sampled_from([None, "channels_first", "channels_last"]))
def test_image_processor_random_inputs(images: list[Any], layout: str | None) -> None:
    proc = FuzzImageProcessor()
    outcome = []
    for use_torch in (False, True):
        try:
            out = proc(images, input_data_format=layout, use_torch=use_torch)
        except CLEAR_ERRORS:
            outcome.append(None)
            continue
        _check_pixels(out["pixel_values"], len(images))
        outcome.append([tuple(np.asarray(p).shape) for p in out["pixel_values"]])
    # Both paths accept and refuse the same inputs, and agree on the output shapes.
    assert outcome[0] == outcome[1], (outcome, [getattr(im, "shape", getattr(im, "mode", None)) for im in images])


@FUZZ
@given(image=array_images())
def test_image_processor_torch_tensors(image: np.ndarray) -> None:
    if image.dtype == np.uint16:
        image = image.astype(np.int32)
    tensor = torch.from_numpy(np.ascontiguousarray(image))
    try:
        out = FuzzImageProcessor()(tensor)
    except CLEAR_ERRORS:
        return
    _check_pixels(out["pixel_values"], image.shape[0] if image.ndim == 4 else 1)


# ----- feature extractors ---------------------------------------------------------------------------------


class FuzzFeatureExtractor(SequenceFeatureExtractor):
    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(feature_size=1, sampling_rate=16000, padding_value=0.0, **kwargs)

    def __call__(self, raw: Any, **kwargs: Any) -> Any:
        examples, _ = self.check_raw_audio(raw)
        return self.pad({"input_values": examples}, **kwargs)


@st.composite
def waveforms(draw: st.DrawFn) -> list[Any]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.sampled_from([0, 1, 2, 5, 17, 40]))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        wave = rng.normal(size=n).astype(draw(st.sampled_from(["float32", "float64", "float16"])))
        if n and draw(st.integers(0, 3)) == 0:
            wave[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        kind = draw(st.sampled_from(["np", "list", "torch"]))
        out.append(wave.tolist() if kind == "list" else torch.from_numpy(wave) if kind == "torch" else wave)
    return out


def _feature_extractors() -> list[Any]:
    extractors: list[Any] = [FuzzFeatureExtractor()]
    try:
        from plugformers_wav2vec2.feature_extraction_wav2vec2 import Wav2Vec2FeatureExtractor
    except ImportError:
        return extractors
    return [*extractors, Wav2Vec2FeatureExtractor(return_attention_mask=True)]


FEATURE_EXTRACTORS = _feature_extractors()


@FUZZ
@given(batch=waveforms(), padding=st.sampled_from([False, True, "longest", "max_length", "do_not_pad"]),
       max_length=st.one_of(st.none(), st.integers(0, 50)), truncation=st.booleans(),
       return_tensors=st.sampled_from([None, "np", "pt"]), which=st.integers(0, len(FEATURE_EXTRACTORS) - 1))
def test_feature_extractor_random_lengths(batch: list[Any], padding: Any, max_length: int | None, truncation: bool,
                                          return_tensors: str | None, which: int) -> None:
    fe = FEATURE_EXTRACTORS[which]
    arrays = [np.asarray(w.numpy() if isinstance(w, torch.Tensor) else w, dtype=np.float64) for w in batch]
    bad = any(a.size == 0 or not np.isfinite(a).all() for a in arrays)
    try:
        out = fe(batch, padding=padding, max_length=max_length, truncation=truncation, return_tensors=return_tensors)
    except CLEAR_ERRORS as exc:
        assert str(exc), "an error without a message"
        return
    assert not bad, "an empty or NaN/inf waveform was accepted"
    values = out["input_values"]
    rows = [np.asarray(v) for v in values]
    assert len(rows) == len(batch)
    for row in rows:
        assert np.isfinite(row).all()
    if padding in (True, "longest") or (padding == "max_length" and max_length is not None):
        assert len({r.shape for r in rows}) == 1
    if truncation and max_length is not None and padding is not False and padding != "do_not_pad":
        assert all(r.shape[-1] <= max(max_length, 0) or r.shape[-1] == max(len(a) for a in arrays) for r in rows)


# ----- corrupted checkpoints -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(scratch: Path) -> tuple[bytes, bytes]:
    torch.manual_seed(0)
    folder = scratch / "good"
    TinyModel(TinyConfig(vocab_size=20, dim=8, n_layers=2)).save_pretrained(folder)
    return (folder / "config.json").read_bytes(), (folder / "model.safetensors").read_bytes()


def _load_corrupted(scratch: Path, config: bytes, weights: bytes, culprit: str) -> None:
    folder = _fresh_dir(scratch)
    (folder / "config.json").write_bytes(config)
    (folder / "model.safetensors").write_bytes(weights)
    try:
        model = TinyModel.from_pretrained(folder)
    except (WeightsLoadingError, ConfigError, OSError) as exc:
        assert culprit in str(exc), f"the error does not name {culprit}: {exc}"
        return
    finally:
        shutil.rmtree(folder)
    assert isinstance(model, TinyModel)  # a harmless corruption (e.g. a renamed key) may still load


def _header_len(weights: bytes) -> int:
    return int(struct.unpack("<Q", weights[:8])[0])


@FUZZ
@given(cut=st.floats(0.0, 0.999))
def test_truncated_safetensors(scratch: Path, checkpoint: tuple[bytes, bytes], cut: float) -> None:
    config, weights = checkpoint
    n = int(len(weights) * cut)
    with pytest.raises(WeightsLoadingError, match=r"model\.safetensors"):
        _strict_load(scratch, config, weights[:n])


def _strict_load(scratch: Path, config: bytes, weights: bytes) -> None:
    folder = _fresh_dir(scratch)
    (folder / "config.json").write_bytes(config)
    (folder / "model.safetensors").write_bytes(weights)
    try:
        TinyModel.from_pretrained(folder)
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(lie=st.one_of(st.integers(0, 2**64 - 1), st.integers(-16, 16)))
def test_safetensors_header_length_lies(scratch: Path, checkpoint: tuple[bytes, bytes], lie: int) -> None:
    config, weights = checkpoint
    true_len = _header_len(weights)
    claimed = lie if lie > 16 or lie < -16 else max(0, true_len + lie)
    if claimed == true_len:
        claimed += 1
    _load_corrupted(scratch, config, struct.pack("<Q", claimed % 2**64) + weights[8:], "model.safetensors")


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(1, 255)), min_size=1, max_size=4))
def test_safetensors_header_bytes_flipped(scratch: Path, checkpoint: tuple[bytes, bytes],
                                          flips: list[tuple[float, int]]) -> None:
    config, weights = checkpoint
    data = bytearray(weights)
    end = 8 + _header_len(weights)
    for where, mask in flips:
        data[int(where * end)] ^= mask
    _load_corrupted(scratch, config, bytes(data), "model.safetensors")


MANGLED_CONFIGS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b"[]", b"null", b"42", b'"config"', b"\xff\xfe{}", b"{}" * 3, b'{"dim": NaN}',
                     b'{"vocab_size": "20"}', b'{"tie_word_embeddings": "yes"}', b'{"id2label": [1]}',
                     b'{"num_labels": -1}', b'{"dim": 9}', b'{"architectures": 5}']),
)  # fmt: skip


@FUZZ
@given(replacement=MANGLED_CONFIGS, cut=st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(1, 255)), max_size=3))
def test_mangled_config_json(scratch: Path, checkpoint: tuple[bytes, bytes], replacement: bytes, cut: float,
                             flips: list[tuple[float, int]]) -> None:
    config, weights = checkpoint
    if flips:
        data = bytearray(config)
        for where, mask in flips:
            data[int(where * len(data))] ^= mask
        mangled = bytes(data)
    elif cut < 1.0:
        mangled = config[: int(len(config) * cut)]
    else:
        mangled = replacement
    _load_corrupted_config(scratch, mangled, weights)


def _load_corrupted_config(scratch: Path, config: bytes, weights: bytes) -> None:
    """A mangled config.json fails naming config.json, or (if it still means something) names the weights."""
    folder = _fresh_dir(scratch)
    (folder / "config.json").write_bytes(config)
    (folder / "model.safetensors").write_bytes(weights)
    try:
        TinyModel.from_pretrained(folder)
    except (WeightsLoadingError, ConfigError, OSError) as exc:
        assert "config.json" in str(exc) or "model.safetensors" in str(exc), f"the error names no file: {exc}"
    finally:
        shutil.rmtree(folder)


def test_fuzz_inputs_are_what_they_claim() -> None:
    """Guards the strategies themselves: the hard pieces include real lone surrogates and controls."""
    assert any(0xD800 <= ord(c) <= 0xDFFF for p in HARD_PIECES for c in p)
    assert any(ord(c) < 0x20 for p in HARD_PIECES for c in p)
