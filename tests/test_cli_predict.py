"""``plugformers predict`` end to end on every task, each on a tiny random checkpoint saved in the reference layout.

Random weights cannot give right answers, so these tests check what the command promises whatever the
weights: the task inferred from ``architectures``, one result per input, labels from ``id2label``, scores
that are probabilities in order, the segmentation overlay written as a PNG the size of the input, and
the CTC transcription drawn from the tokenizer's vocabulary. Each result carries the pipeline's output for
that input (``output``), as ``plugformers.pipeline`` returns it. A family whose plugin is not installed is
skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from plugformers.audio_utils import write_wav
from plugformers.cli import main

SENTENCES = ["the quick brown fox", "over the lazy dog"]
LABELS = {0: "negative", 1: "positive", 2: "neutral"}


def _predict(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["predict", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _assert_ranked(top: list[dict[str, Any]], k: int, labels: set[str]) -> None:
    assert len(top) == k
    scores = [t["score"] for t in top]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert {t["label"] for t in top} <= labels


# ----- text ---------------------------------------------------------------------------------------------


@pytest.fixture
def distilbert_folder(tmp_path: Path):
    pytest.importorskip("plugformers_distilbert")
    from plugformers import DistilBertTokenizerFast
    from plugformers.plugins import get_registry

    # Whole words, so token-level results read as words; letters, so any other word still tokenizes.
    words = sorted({w for s in SENTENCES for w in s.split()} | {"jumps", "what"})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *[f"##{c}" for c in letters], *words]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")

    def build(head: str, **config: Any) -> Path:
        import plugformers

        folder = tmp_path / head
        tokenizer = DistilBertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
        torch.manual_seed(0)
        tiny = get_registry().family("distilbert").build_config(tiny=True, vocab_size=len(tokenizer), **config)
        model = getattr(plugformers, head)(tiny)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    return build


def test_text_classification_ranks_the_configured_labels(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForSequenceClassification", id2label=LABELS)
    out = _predict(capsys, str(folder), *SENTENCES, "--top-k", "2")
    assert out["task"] == "text-classification"
    assert [r["input"] for r in out["results"]] == SENTENCES
    for r in out["results"]:
        _assert_ranked(r["output"], 2, set(LABELS.values()))


def test_quantized_and_fast_path_runs_score_like_float32(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForSequenceClassification", id2label=LABELS)
    plain = _predict(capsys, str(folder), *SENTENCES, "--top-k", "3")["results"]
    for flags in (["--fast-path"], ["--no-fast-path"], ["--quantize", "int8"], ["--quantize", "int8", "--fast-path"]):
        got = _predict(capsys, str(folder), *SENTENCES, "--top-k", "3", *flags)["results"]
        for a, b in zip(got, plain):
            scores = {t["label"]: t["score"] for t in b["output"]}
            assert all(abs(t["score"] - scores[t["label"]]) < 0.02 for t in a["output"]), (flags, a, b)


def test_token_classification_labels_every_word_piece_but_specials(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForTokenClassification", id2label={0: "O", 1: "B-ANIMAL"})
    out = _predict(capsys, str(folder), "the lazy dog", "--ignore-labels", "")
    (result,) = out["results"]
    assert out["task"] == "token-classification"
    assert [t["word"] for t in result["output"]] == ["the", "lazy", "dog"]
    assert {t["entity"] for t in result["output"]} <= {"O", "B-ANIMAL"}
    # By default "O" is left out, as in pipeline(); --aggregation-strategy groups words into entities.
    kept = _predict(capsys, str(folder), "the lazy dog", "--aggregation-strategy", "first")["results"][0]["output"]
    assert all(e["entity_group"] == "ANIMAL" for e in kept)


def test_question_answering_answers_with_a_span_of_the_context(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForQuestionAnswering")
    out = _predict(capsys, str(folder), "what jumps", "the quick brown fox jumps over the lazy dog")
    (result,) = out["results"]
    assert out["task"] == "question-answering"
    assert result["output"]["answer"] in "the quick brown fox jumps over the lazy dog"


def test_question_answering_needs_exactly_question_and_context(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForQuestionAnswering")
    assert main(["predict", str(folder), "only a question"]) == 1
    assert "the question and the context" in capsys.readouterr().err


def test_fill_mask_fills_each_mask_from_the_vocabulary(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForMaskedLM")
    vocab = set((folder / "vocab.txt").read_text(encoding="utf-8").split())
    out = _predict(capsys, str(folder), "the [MASK] fox [MASK] over", "--top-k", "4")
    (result,) = out["results"]
    assert out["task"] == "fill-mask"
    assert len(result["output"]) == 2
    for fill in result["output"]:
        assert len(fill) == 4 and {c["token_str"] for c in fill} <= vocab
        scores = [c["score"] for c in fill]
        assert scores == sorted(scores, reverse=True)
    # More than the vocabulary holds lists the whole vocabulary instead of failing.
    (result,) = _predict(capsys, str(folder), "the [MASK] fox", "--top-k", "100000")["results"]
    assert len(result["output"]) == len(vocab)


def test_fill_mask_without_a_mask_is_a_clear_error(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForMaskedLM")
    assert main(["predict", str(folder), "no mask here"]) == 1
    assert "[MASK]" in capsys.readouterr().err


@pytest.mark.parametrize("k", ["0", "-2"])
def test_top_k_must_be_positive(distilbert_folder, capsys, k):
    folder = distilbert_folder("DistilBertForSequenceClassification")
    with pytest.raises(SystemExit):
        main(["predict", str(folder), "hello", "--top-k", k])
    assert "--top-k" in capsys.readouterr().err


def test_text_batches_show_a_progress_bar_on_stderr(distilbert_folder, capsys):
    folder = distilbert_folder("DistilBertForSequenceClassification")
    assert main(["predict", str(folder), *(["the dog"] * 8)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 8
    assert "texts" in captured.err and "8/8" in captured.err


# ----- images -------------------------------------------------------------------------------------------


def _photo(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_image_classification_on_an_image_file(tmp_path, capsys):
    pytest.importorskip("plugformers_vit")
    from plugformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       image_size=32, patch_size=8, id2label=LABELS)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    out = _predict(capsys, str(tmp_path / "vit"), str(_photo(tmp_path / "a.png")), "--top-k", "3")
    assert out["task"] == "image-classification"
    _assert_ranked(out["results"][0]["output"], 3, set(LABELS.values()))


def test_an_unreadable_image_is_named(tmp_path, capsys):
    pytest.importorskip("plugformers_resnet")
    from plugformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    folder = tmp_path / "resnet"
    ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], layer_type="basic")
                                 ).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(folder)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert main(["predict", str(folder), str(tmp_path / "broken.png")]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "\n" not in err.strip()


def test_segmentation_writes_an_overlay_and_names_the_classes(tmp_path, capsys):
    pytest.importorskip("plugformers_maskformer")
    from PIL import Image
    from pipeline_checkpoints import maskformer_checkpoint

    folder = maskformer_checkpoint(tmp_path / "maskformer")  # classes sky, tree, road
    photo = _photo(tmp_path / "street.png", size=(50, 36))
    out_dir = tmp_path / "overlays" / "nested"
    out = _predict(capsys, str(folder), str(photo), "--output-dir", str(out_dir), "--subtask", "semantic")
    (result,) = out["results"]
    assert out["task"] == "image-segmentation"
    labels = [s["label"] for s in result["output"]]
    assert labels and set(labels) <= {"sky", "tree", "road"}
    overlay = Path(result["overlay"])
    assert overlay.parent == out_dir and overlay.name == "street.segmentation.png"
    with Image.open(overlay) as im:
        assert im.size == (50, 36) and im.mode == "RGB"
    # Two inputs with the same file name (from different folders) get one overlay each, not one overwritten.
    (tmp_path / "other").mkdir()
    twin = _photo(tmp_path / "other" / "street.png", size=(40, 30))
    out = _predict(capsys, str(folder), str(photo), str(twin), "--output-dir", str(out_dir), "--subtask", "semantic")
    overlays = [Path(r["overlay"]) for r in out["results"]]
    assert len(set(overlays)) == 2 and overlays[0].name == "street.segmentation.png"
    with Image.open(overlays[1]) as im:
        assert im.size == (40, 30)


# ----- audio --------------------------------------------------------------------------------------------


def _wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    write_wav(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    return path


def _wav2vec2_config(**extra: Any) -> Any:
    from plugformers.plugins import get_registry

    return get_registry().family("wav2vec2").build_config(tiny=True, **extra)


def test_ctc_transcribes_with_the_tokenizer_vocabulary(tmp_path, capsys):
    pytest.importorskip("plugformers_wav2vec2")
    from plugformers import (
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "a": 5, "b": 6, "c": 7}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    folder = tmp_path / "ctc"
    torch.manual_seed(0)
    Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(vocab))).save_pretrained(folder)
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json")))
    processor.save_pretrained(folder)
    out = _predict(capsys, str(folder), str(_wav(tmp_path / "tone.wav")))
    (result,) = out["results"]
    assert out["task"] == "automatic-speech-recognition"
    # Greedy CTC over the tokenizer's vocabulary; like the reference's pipeline, <s>/</s>/<unk> stay in the text.
    assert re.fullmatch(r"(<s>|</s>|<unk>|[abc ])+", result["output"]["text"])


def test_audio_classification_and_a_wrong_sampling_rate(tmp_path, capsys):
    pytest.importorskip("plugformers_wav2vec2")
    from plugformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    folder = tmp_path / "kws"
    Wav2Vec2ForSequenceClassification(_wav2vec2_config(id2label=LABELS)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    out = _predict(capsys, str(folder), str(_wav(tmp_path / "tone.wav")), "--top-k", "2")
    assert out["task"] == "audio-classification"
    _assert_ranked(out["results"][0]["output"], 2, set(LABELS.values()))

    assert main(["predict", str(folder), str(_wav(tmp_path / "8k.wav", rate=8000))]) == 1
    err = capsys.readouterr().err
    assert "8000" in err and "16000" in err
