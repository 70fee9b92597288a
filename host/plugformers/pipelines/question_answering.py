"""Extractive question answering: the span of a context that answers a question.

A context longer than ``max_seq_len`` tokens (with the question) is read in overlapping windows of the
context, ``doc_stride`` tokens of overlap; every window is a feature of the same input, so the windows of
many questions share batches. In each window the start and end probabilities are a softmax over the
context's tokens (and the first token, which stands for "no answer"); a span's score is the product of its
start and end probabilities, spans are at most ``max_answer_len`` tokens, and the best ``top_k`` spans over
all windows win. Character offsets come from the tokenizer, so ``answer == context[start:end]``; with
``align_to_words`` (default) a span is widened to whole words.

The reference library dropped this pipeline in its version 5; the call conventions and the result
``{"score", "start", "end", "answer"}`` are those of its version 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from plugformers.pipelines.base import Feature
from plugformers.pipelines.text import TextPipeline

__all__ = ["QuestionAnsweringPipeline"]


class QuestionAnsweringPipeline(TextPipeline):
    """``qa(question=..., context=...)``, ``qa({"question": ..., "context": ...})`` or a list of such dicts."""

    task = "question-answering"
    parameters = {
        "top_k": 1,
        "doc_stride": 128,
        "max_answer_len": 15,
        "max_seq_len": 384,
        "max_question_len": 64,
        "handle_impossible_answer": False,
        "align_to_words": True,
    }
    want_offsets = True

    def _call_inputs(self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        question = kwargs.pop("question", None)
        context = kwargs.pop("context", None)
        if inputs is None and question is not None:
            inputs = _pairs(question, context)
        elif args and len(args) == 1 and inputs is not None:
            inputs = _pairs(inputs, args[0])  # qa(question, context)
        elif args:
            raise TypeError("question-answering takes (question, context) positionally, or question=/context=.")
        if inputs is None:
            raise TypeError("question-answering needs question= and context= (or a dict / list of dicts with both).")
        return inputs, kwargs

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(inputs, *args, **kwargs)

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_params(params)
        for name in ("top_k", "max_answer_len", "max_seq_len"):
            if name in checked and (not isinstance(checked[name], int) or checked[name] < 1):
                raise ValueError(f"{name} must be a positive integer, got {checked[name]!r}.")
        return checked

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        results: list[list[Feature] | BaseException] = [[] for _ in items]
        ok: list[int] = []
        for i, item in enumerate(items):
            problem = _check_item(item)
            if problem is not None:
                results[i] = problem
            else:
                ok.append(i)
        if not ok:
            return results
        limit = min(params["max_seq_len"], self.max_length or params["max_seq_len"])
        stride = min(params["doc_stride"], limit // 2)
        questions = [items[i]["question"] for i in ok]
        contexts = [items[i]["context"] for i in ok]
        rows = self.tokenize(
            questions,
            contexts,
            truncation="only_second",
            max_length=limit,
            stride=stride,
            return_overflowing_tokens=True,
            padding=False,
        )
        for i, r in zip(ok, rows):
            results[i] = r if isinstance(r, BaseException) else [self.feature(row) for row in r]
        return results

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        start, end = output.start_logits.float().cpu(), output.end_logits.float().cpu()
        return [(start[b, : f.size], end[b, : f.size]) for b, f in enumerate(features)]

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        context: str = item["context"]
        top_k = params["top_k"]
        candidates: list[tuple[float, int, int]] = []
        null_score = 1.0  # the lowest 'no answer' score over the windows
        for feature, (start_logits, end_logits) in outputs:
            row = feature.meta["row"]
            in_context = torch.tensor([s == 1 for s in row["sequence_ids"]])
            allowed = in_context.clone()
            allowed[0] = True  # the first token: "no answer"
            p_start = start_logits.masked_fill(~allowed, float("-inf")).softmax(-1)
            p_end = end_logits.masked_fill(~allowed, float("-inf")).softmax(-1)
            null_score = min(null_score, float(p_start[0] * p_end[0]))
            scores = p_start[:, None] * p_end[None, :]
            length = scores.shape[0]
            short = torch.ones(length, length, dtype=torch.bool).triu().tril(params["max_answer_len"] - 1)
            valid = short & in_context[:, None] & in_context[None, :]
            flat = valid.flatten().nonzero().squeeze(1)
            order = scores.flatten()[flat].argsort(descending=True)
            offsets = row["offset_mapping"]
            found: set[tuple[int, int]] = set()
            for index in flat[order].tolist():
                if len(found) == top_k:
                    break
                first, last = divmod(index, length)
                if params["align_to_words"]:  # tokens of one word give one span: keep its best score only
                    span = (_word_chars(row, first)[0], _word_chars(row, last)[1])
                else:
                    span = (int(offsets[first][0]), int(offsets[last][1]))
                if span not in found:
                    found.add(span)
                    candidates.append((float(scores[first, last]), *span))
        answers: list[dict[str, Any]] = []
        seen: set[tuple[int, int]] = set()
        for score, start, end in sorted(candidates, key=lambda c: -c[0]):
            if (start, end) in seen:
                continue  # the same span found in two overlapping windows
            seen.add((start, end))
            answers.append({"score": score, "start": start, "end": end, "answer": context[start:end]})
        if params["handle_impossible_answer"]:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
            answers.sort(key=lambda a: -a["score"])
        answers = answers[:top_k]
        if not answers:
            answers = [{"score": 0.0, "start": 0, "end": 0, "answer": ""}]
        return answers[0] if top_k == 1 else answers


def _pairs(question: Any, context: Any) -> Any:
    """``{"question", "context"}`` for one pair, a list of them for lists of questions and contexts."""
    if isinstance(question, str) and isinstance(context, str):
        return {"question": question, "context": context}
    if isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
        if len(question) != len(context):
            raise ValueError(f"got {len(question)} questions and {len(context)} contexts; they go in pairs.")
        return [{"question": q, "context": c} for q, c in zip(question, context)]
    if isinstance(question, (list, tuple)) and isinstance(context, str):
        return [{"question": q, "context": context} for q in question]
    raise TypeError("question-answering takes a question and a context (strings, or lists of them).")


def _check_item(item: Any) -> Exception | None:
    if not isinstance(item, dict) or not {"question", "context"} <= set(item):
        return TypeError(f"a question-answering input is {{'question': ..., 'context': ...}}, got {item!r:.80}")
    for key in ("question", "context"):
        value = item[key]
        if not isinstance(value, str) or not value.strip():
            return ValueError(f"the {key} must be a non-empty string, got {value!r:.80}")
    return None


def _word_chars(row: dict[str, Any], token: int) -> tuple[int, int]:
    """The character span of the whole context word that ``token`` belongs to."""
    offsets, word_ids, sequence_ids = row["offset_mapping"], row["word_ids"], row["sequence_ids"]
    word = word_ids[token]
    if word is None:
        return int(offsets[token][0]), int(offsets[token][1])
    same = [i for i, w in enumerate(word_ids) if w == word and sequence_ids[i] == 1]
    return int(offsets[same[0]][0]), int(offsets[same[-1]][1])
