"""Token classification (named entities, parts of speech): a label per token, or per word and entity.

``aggregation_strategy``:

- ``"none"``: one entry per token: ``{"entity", "score", "index", "word", "start", "end"}``;
- ``"simple"``: consecutive tokens with the same entity type (``B-X`` starts one, ``I-X`` continues it) form
  one ``{"entity_group", "score" (the mean), "word", "start", "end"}``;
- ``"first"`` / ``"average"`` / ``"max"``: tokens are first joined into words (a word takes the label of its
  first token, of the average of its tokens' scores, or of its most confident token), then grouped as above.

Labels in ``ignore_labels`` (default ``["O"]``) are left out after grouping. ``start``/``end`` are character
offsets into the input (they need a fast tokenizer, as do the word-level strategies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from plugformers.pipelines.base import Feature
from plugformers.pipelines.text import TextPipeline

__all__ = ["AGGREGATION_STRATEGIES", "TokenClassificationPipeline"]

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(TextPipeline):
    """Entities found in texts; see the module docstring for the aggregation strategies."""

    task = "token-classification"
    parameters = {"aggregation_strategy": "none", "ignore_labels": ("O",)}
    want_offsets = True

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_params(params)
        strategy = checked.get("aggregation_strategy", "none")
        strategy = getattr(strategy, "value", strategy)  # an enum from ported code
        if isinstance(strategy, str):
            strategy = strategy.lower()
        if strategy not in AGGREGATION_STRATEGIES:
            raise ValueError(f"aggregation_strategy must be one of {', '.join(AGGREGATION_STRATEGIES)}; got {strategy!r}.")
        if strategy in ("first", "average", "max") and not self.tokenizer.is_fast:
            raise ValueError(f"aggregation_strategy={strategy!r} needs a fast tokenizer (word boundaries and offsets).")
        if "aggregation_strategy" in checked:
            checked["aggregation_strategy"] = strategy
        return checked

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        return [r if isinstance(r, BaseException) else [self.feature(r[0])] for r in self.tokenize(list(items))]

    def extract(self, output: Any, batch: dict[str, torch.Tensor], features: list[Feature], params: dict[str, Any]) -> list[Any]:
        return [output.logits[b, : f.size].float().softmax(-1).cpu() for b, f in enumerate(features)]

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((feature, probs),) = outputs
        tokens = self._tokens(item, feature.meta["row"], probs)
        strategy = params["aggregation_strategy"]
        ignore = set(params["ignore_labels"] or ())
        if strategy == "none":
            entities = [
                {
                    "entity": self._label(int(t["scores"].argmax())),
                    "score": float(t["scores"].max()),
                    "index": t["index"],
                    "word": t["word"],
                    "start": t["start"],
                    "end": t["end"],
                }
                for t in tokens
            ]
            return [e for e in entities if e["entity"] not in ignore]
        if strategy == "simple":
            units = [self._unit([t], t["scores"]) for t in tokens]
        else:
            units = [self._word(word, strategy) for word in _words(tokens)]
        return [g for g in self._group(units) if g["entity_group"] not in ignore]

    def _tokens(self, text: str, row: dict[str, Any], probs: torch.Tensor) -> list[dict[str, Any]]:
        """The non-special tokens with their scores, text, offsets and whether they continue a word."""
        ids = row["input_ids"]
        special = row.get("special_tokens_mask") or [0] * len(ids)
        offsets = row.get("offset_mapping")
        word_ids = row.get("word_ids")
        pieces = self.tokenizer.convert_ids_to_tokens(list(ids))
        unk = self.tokenizer.unk_token_id
        tokens: list[dict[str, Any]] = []
        previous_word: int | None = None
        for i, token_id in enumerate(ids):
            if special[i]:
                previous_word = None
                continue
            start, end = (int(offsets[i][0]), int(offsets[i][1])) if offsets is not None else (None, None)
            word = pieces[i]
            if token_id == unk and start is not None:
                word = text[start:end]  # the text the unknown token stands for
            word_id = word_ids[i] if word_ids is not None else None
            continues = word_id is not None and word_id == previous_word and token_id != unk
            previous_word = word_id
            tokens.append(
                {"word": word, "scores": probs[i], "start": start, "end": end, "index": i, "is_subword": continues}
            )
        return tokens

    def _unit(self, tokens: list[dict[str, Any]], values: torch.Tensor) -> dict[str, Any]:
        best = int(values.argmax())
        return {
            "entity": self._label(best),
            "score": float(values[best]),
            "word": self.tokenizer.convert_tokens_to_string([t["word"] for t in tokens]),
            "start": tokens[0]["start"],
            "end": tokens[-1]["end"],
        }

    def _word(self, tokens: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
        if strategy == "first":
            values = tokens[0]["scores"]
        elif strategy == "max":
            values = max(tokens, key=lambda t: float(t["scores"].max()))["scores"]
        else:
            values = torch.stack([t["scores"] for t in tokens]).mean(0)
        return self._unit(tokens, values)

    def _group(self, units: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Join consecutive units of one entity type (a ``B-`` label starts a new group)."""
        groups: list[list[dict[str, Any]]] = []
        for unit in units:
            prefix, kind = _tag(unit["entity"])
            if groups and prefix != "B" and _tag(groups[-1][-1]["entity"])[1] == kind:
                groups[-1].append(unit)
            else:
                groups.append([unit])
        return [
            {
                "entity_group": _tag(group[0]["entity"])[1],
                "score": float(sum(u["score"] for u in group) / len(group)),
                "word": self.tokenizer.convert_tokens_to_string([u["word"] for u in group]),
                "start": group[0]["start"],
                "end": group[-1]["end"],
            }
            for group in groups
        ]


def _tag(label: str) -> tuple[str, str]:
    """``("B", "PER")`` for ``B-PER``, ``("I", "PER")`` for ``I-PER``, and ``("I", label)`` for any other label."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _words(tokens: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    words: list[list[dict[str, Any]]] = []
    for token in tokens:
        if words and token["is_subword"]:
            words[-1].append(token)
        else:
            words.append([token])
    return words
