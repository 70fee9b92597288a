"""Text pipelines: the shared text machinery, and text classification, zero-shot, fill-mask, feature extraction.

:class:`TextPipeline` tokenizes a whole window of inputs in one tokenizer call, batches the sequences by
length and runs each batch padding-free (:mod:`plugformers.pipelines.packing`) when the model allows it: the
first packed batch of a pipeline is checked against the padded run, and a model whose outputs differ is run
padded from then on, with a warning. ``padding_free="auto"`` (the default) leaves a head that reads only the
first position (``first_token_only``, a [CLS] classifier) on length-sorted padded batches, where its last
layer computes that position alone; ``True`` packs it anyway.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from plugformers.pipelines.base import Feature, Pipeline, ranked, scores
from plugformers.pipelines.packing import can_pack, padding_free
from plugformers.pipelines.pooling import check_pooling, pool

__all__ = [
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "TextClassificationPipeline",
    "TextPipeline",
    "ZeroShotClassificationPipeline",
]

_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()

#: Largest difference between a packed and a padded batch that still counts as the same output.
PACKED_TOLERANCE = 1e-4
#: The same for int8 layers (``quantize="int8"``): their padded batches differ from one text alone by up to
#: 4e-4 on all-MiniLM-L6-v2 (packed ones not at all), far inside int8's own error and far below what a model
#: that mixes positions gives.
QUANTIZED_PACKED_TOLERANCE = 5e-3
#: For 16-bit weights, this many machine epsilons of their dtype: on all-MiniLM-L6-v2 in bfloat16 packed and
#: padded batches differ by up to 5e-3 (per-token outputs up to 0.84); 4 eps is 0.031 in bfloat16.
HALF_PACKED_EPS = 4


def packing_tolerance(model: torch.nn.Module) -> float:
    """How far a packed batch may be from the padded one and still count as the same: by the model's precision."""
    from plugformers.precision import inference_settings

    tolerance = QUANTIZED_PACKED_TOLERANCE if inference_settings(model)["quantize"] is not None else PACKED_TOLERANCE
    dtype = getattr(model, "dtype", torch.float32)
    if dtype.is_floating_point and torch.finfo(dtype).bits == 16:
        tolerance = max(tolerance, HALF_PACKED_EPS * torch.finfo(dtype).eps)
    return tolerance


class TextPipeline(Pipeline):
    """Tokenization, padding and the padding-free forward shared by the text tasks."""

    #: Per-row fields asked of the tokenizer beyond ids and masks (offsets, special-token masks).
    want_offsets = False

    def __init__(self, model: Any, *, tokenizer: Any = None, padding_free: bool | str = "auto", **kwargs: Any) -> None:
        if tokenizer is None:
            raise ValueError(f"The {self.task} pipeline needs a tokenizer: pass tokenizer= (a folder, repo id or object).")
        if padding_free not in (True, False, "auto"):
            raise ValueError(f"padding_free must be True, False or 'auto', got {padding_free!r}.")
        super().__init__(model, tokenizer=tokenizer, **kwargs)
        self._accepts = self._model_accepts()
        packable = can_pack(self.model)
        if padding_free is True and not packable:
            raise ValueError(
                f"{type(self.model).__name__} cannot run padding-free: its base model's forward must take "
                "input_ids, attention_mask and position_ids."
            )
        # A head that reads only the first position computes its last layer for that row alone in a padded
        # batch, which measured faster than packing once batches are sorted by length: "auto" keeps it padded.
        trims = bool(getattr(type(self.model), "first_token_only", False)) and self.bucketing
        self.padding_free = packable and (padding_free is True or (padding_free == "auto" and not trims))
        self._packing_checked = padding_free is True
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.max_length = _max_length(tokenizer, self.model.config)

    # ----- tokenization ------------------------------------------------------------------------------

    def tokenize(
        self, texts: Sequence[Any], pairs: Sequence[Any] | None = None, **options: Any
    ) -> list[list[dict[str, Any]] | BaseException]:
        """Rows per input (several with ``return_overflowing_tokens``), or the exception that input raised."""
        for values in (texts, pairs or ()):
            for value in values:
                if not isinstance(value, str):
                    return [self._tokenize_one(t, None if pairs is None else p, options) for t, p in _zip(texts, pairs)]
        try:
            rows = self._rows(self._call_tokenizer(list(texts), None if pairs is None else list(pairs), options), len(texts))
            return list[list[dict[str, Any]] | BaseException](rows)
        except Exception:  # find the input that broke the batch
            return [self._tokenize_one(t, None if pairs is None else p, options) for t, p in _zip(texts, pairs)]

    def _tokenize_one(self, text: Any, pair: Any, options: dict[str, Any]) -> list[dict[str, Any]] | BaseException:
        try:
            for value in (text, pair):
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"expected a text (str), got {type(value).__name__}: {value!r:.80}")
            return self._rows(self._call_tokenizer([text], None if pair is None else [pair], options), 1)[0]
        except Exception as exc:
            return exc

    def _call_tokenizer(self, texts: list[str], pairs: list[str] | None, options: dict[str, Any]) -> Any:
        options = {"truncation": True, "max_length": self.max_length, **options}
        if self.want_offsets:
            options.setdefault("return_offsets_mapping", self.tokenizer.is_fast)
            options.setdefault("return_special_tokens_mask", True)
        return self.tokenizer(texts, pairs, **options) if pairs is not None else self.tokenizer(texts, **options)

    def _rows(self, encoding: Any, n_inputs: int) -> list[list[dict[str, Any]]]:
        rows: list[list[dict[str, Any]]] = [[] for _ in range(n_inputs)]
        mapping = encoding.get("overflow_to_sample_mapping")
        keys = [k for k in encoding.keys() if k != "overflow_to_sample_mapping"]
        fast = encoding.encodings is not None
        for i in range(len(encoding["input_ids"])):
            row = {k: encoding[k][i] for k in keys}
            if fast:
                row["word_ids"] = encoding.word_ids(i)
                row["sequence_ids"] = encoding.sequence_ids(i)
            rows[mapping[i] if mapping is not None else i].append(row)
        return rows

    def feature(self, row: dict[str, Any], **meta: Any) -> Feature:
        """A feature holding the model inputs of one tokenized row; the rest of the row goes to ``meta``."""
        inputs: dict[str, Any] = {
            k: row[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in row and self._takes(k)
        }
        return Feature(inputs, len(row["input_ids"]), {**meta, "row": row})

    def _takes(self, name: str) -> bool:
        return "*" in self._accepts or name in self._accepts

    def compatible(self, first: Feature, other: Feature) -> bool:
        # Any lengths, padded or packed, for a model that takes a padding mask; equal lengths otherwise.
        return self._takes("attention_mask") or first.size == other.size

    def collate(self, features: list[Feature]) -> dict[str, torch.Tensor]:
        longest = max(f.size for f in features)
        batch: dict[str, torch.Tensor] = {}
        for name in features[0].inputs:
            fill = self.pad_token_id if name == "input_ids" else 0
            rows = [list(f.inputs[name]) + [fill] * (longest - f.size) for f in features]
            batch[name] = torch.tensor(rows, dtype=torch.long)
        if "attention_mask" not in batch and self._takes("attention_mask"):
            batch["attention_mask"] = torch.tensor([[1] * f.size + [0] * (longest - f.size) for f in features])
        return {k: v.to(self.device) for k, v in batch.items()}

    # ----- the forward ------------------------------------------------------------------------------

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        batch = self.collate(features)
        packed = self.padding_free and len(features) > 1
        if packed and not self._packing_checked:
            self._packing_checked = True
            outputs = self._run(batch, features, params, packed=True)
            padded = self._run(batch, features, params, packed=False)
            if not _same(outputs, padded, packing_tolerance(self.model)):
                self.padding_free = False
                warnings.warn(
                    f"{type(self.model).__name__} gave different outputs packed and padded; this pipeline runs it "
                    "padded (pass padding_free=False to skip the check).",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return padded
        return self._run(batch, features, params, packed=packed)

    def _run(self, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any], *, packed: bool) -> list[Any]:
        if packed:
            with padding_free(self.model):
                output = self.model(**batch, return_dict=True)
        else:
            output = self.model(**batch, return_dict=True)
        return self.extract(output, batch, features, params)

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        """One output per feature (on the CPU) from the model's batch output."""
        raise NotImplementedError


def _zip(texts: Sequence[Any], pairs: Sequence[Any] | None) -> list[tuple[Any, Any]]:
    return list(zip(texts, pairs if pairs is not None else [None] * len(texts)))


def _max_length(tokenizer: Any, config: Any) -> int | None:
    """The longest sequence to tokenize: the tokenizer's limit, else the model's position table."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    positions = getattr(config, "max_position_embeddings", None)
    return positions if isinstance(positions, int) and positions > 0 else None


def _same(a: Any, b: Any, tolerance: float = PACKED_TOLERANCE) -> bool:
    """Whether two per-feature outputs agree within ``tolerance``."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), atol=tolerance, rtol=tolerance))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b))
    return bool(a == b)


def _default_function(config: Any) -> str:
    """How scores are made from logits when the caller does not say: as the model was trained."""
    problem = getattr(config, "problem_type", None)
    if problem == "regression":
        return "none"
    if problem == "multi_label_classification" or getattr(config, "num_labels", 2) == 1:
        return "sigmoid"
    return "softmax"


# ----- text classification ---------------------------------------------------------------------------------


class TextClassificationPipeline(TextPipeline):
    """Labels with scores for texts (``"text"``) or text pairs (``{"text": ..., "text_pair": ...}``).

    ``top_k`` unset gives the best label as a dict per input (a one-element list for a single string, as the
    reference does); an integer gives that many labels best first, ``None`` all of them.
    ``function_to_apply``: ``"softmax"``, ``"sigmoid"`` or ``"none"`` (default: as the model was trained).
    """

    task = "text-classification"
    parameters = {"top_k": _UNSET, "function_to_apply": None}

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        texts: list[Any] = []
        pairs: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                unknown = set(item) - {"text", "text_pair"}
                if "text" not in item or unknown:
                    texts.append(TypeError(f"a text pair is {{'text': ..., 'text_pair': ...}}, got keys {sorted(item)}"))
                    pairs.append(None)
                    continue
                texts.append(item["text"])
                pairs.append(item.get("text_pair"))
            else:
                texts.append(item)
                pairs.append(None)
        results: list[list[Feature] | BaseException] = [[] for _ in items]
        singles = [i for i, p in enumerate(pairs) if p is None and not isinstance(texts[i], BaseException)]
        doubles = [i for i, p in enumerate(pairs) if p is not None]
        for i, t in enumerate(texts):
            if isinstance(t, BaseException):
                results[i] = t
        for group, with_pairs in ((singles, False), (doubles, True)):
            if not group:
                continue
            rows = self.tokenize([texts[i] for i in group], [pairs[i] for i in group] if with_pairs else None)
            for i, r in zip(group, rows):
                results[i] = r if isinstance(r, BaseException) else [self.feature(r[0])]
        return results

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        return list(output.logits.float().cpu())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((_, logits),) = outputs
        function = params["function_to_apply"] or _default_function(self.model.config)
        values = scores(logits, function)
        if params["top_k"] is _UNSET:
            return ranked(values, 1, self._label)[0]
        return ranked(values, params["top_k"], self._label)

    def _single_result(self, inputs: Any, result: Any) -> Any:
        return [result] if isinstance(result, dict) and isinstance(inputs, str) else result


# ----- zero-shot classification ------------------------------------------------------------------------------


class ZeroShotClassificationPipeline(TextPipeline):
    """Scores for labels named at call time, from a natural-language-inference head.

    Each ``(text, hypothesis_template.format(label))`` pair is classified; the entailment score ranks the
    labels (softmax across labels, or per label against contradiction with ``multi_label=True`` or a single
    label). The entailment class is the label whose name starts with "entail".
    """

    task = "zero-shot-classification"
    parameters = {"candidate_labels": None, "hypothesis_template": "This example is {}.", "multi_label": False}

    def _call_inputs(self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if len(args) > 1:
            raise TypeError("zero-shot-classification takes (sequences, candidate_labels) positionally, no more.")
        if args:
            kwargs = {**kwargs, "candidate_labels": args[0]}
        return inputs, kwargs

    def _labels(self, params: dict[str, Any]) -> list[str]:
        labels = params["candidate_labels"]
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        if not labels or not all(isinstance(label, str) for label in labels):
            raise ValueError("zero-shot-classification needs candidate_labels: a list of label names (or 'a, b, c').")
        template = params["hypothesis_template"]
        if not isinstance(template, str) or template.format(labels[0]) == template:
            raise ValueError(f"hypothesis_template must hold a '{{}}' where the label goes, got {template!r}.")
        return list(labels)

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        labels = self._labels(params)
        hypotheses = [params["hypothesis_template"].format(label) for label in labels]
        texts = [t for t in items for _ in labels]
        rows = self.tokenize(texts, hypotheses * len(items), truncation="only_first")
        results: list[list[Feature] | BaseException] = []
        for i in range(len(items)):
            mine = rows[i * len(labels) : (i + 1) * len(labels)]
            failed = next((r for r in mine if isinstance(r, BaseException)), None)
            if failed is not None:
                results.append(failed)
            else:
                results.append([self.feature(r[0], label=j) for j, r in enumerate(mine) if not isinstance(r, BaseException)])
        return results

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        return list(output.logits.float().cpu())

    def _entailment_id(self) -> int:
        label2id = getattr(self.model.config, "label2id", None) or {}
        for name, index in label2id.items():
            if str(name).lower().startswith("entail"):
                return int(index)
        warnings.warn(
            "zero-shot-classification found no entailment label in the model's label2id; the last label is used. "
            "Use a natural-language-inference model whose labels name 'entailment'.",
            UserWarning,
            stacklevel=3,
        )
        return -1

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        labels = self._labels(params)
        logits = torch.stack([out for _, out in sorted(outputs, key=lambda fo: fo[0].meta["label"])])
        entail = self._entailment_id()
        if params["multi_label"] or len(labels) == 1:
            values = logits[:, [0, entail]].softmax(-1)[:, 1]
        else:
            values = logits[:, entail].softmax(-1)
        order = values.argsort(descending=True).tolist()
        return {"sequence": item, "labels": [labels[i] for i in order], "scores": [float(values[i]) for i in order]}


# ----- fill-mask --------------------------------------------------------------------------------------------


class FillMaskPipeline(TextPipeline):
    """The likeliest tokens for each mask token: ``{"score", "token", "token_str", "sequence"}`` best first.

    One mask gives a list of candidates, several masks a list per mask. ``targets`` restricts the candidates
    to those words (a word outside the vocabulary stands for its first token, with a warning).
    """

    task = "fill-mask"
    parameters = {"top_k": 5, "targets": None}

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise ValueError("fill-mask needs a tokenizer with a mask token; this one has none.")
        results: list[list[Feature] | BaseException] = []
        for item, rows in zip(items, self.tokenize(list(items))):
            if isinstance(rows, BaseException):
                results.append(rows)
                continue
            positions = [i for i, t in enumerate(rows[0]["input_ids"]) if t == mask_id]
            if not positions:
                results.append(ValueError(f"no mask token {self.tokenizer.mask_token} in the input {item!r:.80}"))
                continue
            results.append([self.feature(rows[0], masks=positions)])
        return results

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        logits = output.logits
        return [logits[b, f.meta["masks"]].float().softmax(-1).cpu() for b, f in enumerate(features)]

    def _target_ids(self, targets: Any) -> list[int] | None:
        if targets is None:
            return None
        if isinstance(targets, str):
            targets = [targets]
        vocab = self.tokenizer.get_vocab()
        ids: list[int] = []
        for target in targets:
            index = vocab.get(target)
            if index is None:
                pieces = self.tokenizer(target, add_special_tokens=False)["input_ids"]
                if not pieces:
                    warnings.warn(f"fill-mask target {target!r} gives no token; it is left out.", UserWarning, stacklevel=4)
                    continue
                index = pieces[0]
                warnings.warn(
                    f"fill-mask target {target!r} is not in the vocabulary; its first token "
                    f"{self.tokenizer.decode([index])!r} stands for it.",
                    UserWarning,
                    stacklevel=4,
                )
            if index not in ids:
                ids.append(index)
        if not ids:
            raise ValueError("fill-mask targets gave no token of the vocabulary.")
        return ids

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((feature, probs),) = outputs
        ids = list(feature.meta["row"]["input_ids"])
        targets = self._target_ids(params["targets"])
        masks = feature.meta["masks"]
        per_mask = []
        for m, position in enumerate(masks):
            values = probs[m]
            candidates = torch.tensor(targets) if targets is not None else None
            if candidates is not None:
                values = values[candidates]
            k = max(0, min(int(params["top_k"]), values.shape[0]))
            best, order = values.topk(k)
            answers = []
            for score, index in zip(best.tolist(), order.tolist()):
                token = int(candidates[index]) if candidates is not None else int(index)
                filled = list(ids)
                filled[position] = token
                answers.append(
                    {
                        "score": float(score),
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        "sequence": self.tokenizer.decode(filled, skip_special_tokens=len(masks) == 1),
                    }
                )
            per_mask.append(answers)
        return per_mask[0] if len(per_mask) == 1 else per_mask


# ----- feature extraction ------------------------------------------------------------------------------------


class FeatureExtractionPipeline(TextPipeline):
    """Hidden states per token (``[[[...] per token]]`` like the reference), or one pooled vector per text.

    ``pooling="mean"`` (average over the text's tokens, the sentence-transformers default), ``"cls"`` (first
    token) or ``"max"`` gives a vector per input, ``normalize=True`` scales it to unit length (cosine
    similarity becomes a dot product). ``return_tensors=True`` gives tensors instead of nested lists.
    """

    task = "feature-extraction"
    parameters = {"return_tensors": False, "pooling": None, "normalize": False}

    def __init__(self, model: Any, *, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if max_length is not None:
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
                raise ValueError(f"max_length must be a positive integer, got {max_length!r}.")
            self.max_length = max_length

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_params(params)
        check_pooling(checked.get("pooling"))
        return checked

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        return [r if isinstance(r, BaseException) else [self.feature(r[0])] for r in self.tokenize(list(items))]

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        hidden = output[0] if not hasattr(output, "last_hidden_state") else output.last_hidden_state
        if params["pooling"] is None:
            return [hidden[b, : f.size].float().cpu() for b, f in enumerate(features)]
        return list(pool(hidden, batch.get("attention_mask"), params["pooling"], params["normalize"]).cpu())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((_, values),) = outputs
        if params["pooling"] is None:
            if params["normalize"]:
                values = torch.nn.functional.normalize(values, p=2, dim=-1)
            values = values[None]
        return values if params["return_tensors"] else values.tolist()


