"""Registers the DistilBERT family with the plugformers host (names only: nothing is imported here)."""

from __future__ import annotations

from typing import Any

from plugformers import hookimpl

_PKG = "plugformers_distilbert"
_M = f"{_PKG}.modeling_distilbert"

_MODELS = {
    "AutoModel": f"{_M}:DistilBertModel",
    "AutoModelForMaskedLM": f"{_M}:DistilBertForMaskedLM",
    # DistilBERT was pretrained as a masked language model only, so that is its pretraining head.
    "AutoModelForPreTraining": f"{_M}:DistilBertForMaskedLM",
    "AutoModelForSequenceClassification": f"{_M}:DistilBertForSequenceClassification",
    "AutoModelForQuestionAnswering": f"{_M}:DistilBertForQuestionAnswering",
    "AutoModelForTokenClassification": f"{_M}:DistilBertForTokenClassification",
    "AutoModelForMultipleChoice": f"{_M}:DistilBertForMultipleChoice",
}


@hookimpl
def plugformers_register_families(register: Any) -> None:
    """Declare the ``distilbert`` model type, its config, models per Auto class and tokenizers."""
    register(
        "distilbert",
        config=f"{_PKG}.configuration_distilbert:DistilBertConfig",
        models=_MODELS,
        tokenizer=f"{_PKG}.tokenization_distilbert:DistilBertTokenizer",
        tokenizer_fast=f"{_PKG}.tokenization_distilbert_fast:DistilBertTokenizerFast",
        exports={"DistilBertPreTrainedModel": f"{_M}:DistilBertPreTrainedModel"},
        modality="text",
        tiny_config={
            "vocab_size": 99,
            "dim": 32,
            "hidden_dim": 37,
            "n_heads": 4,
            "n_layers": 2,
            "max_position_embeddings": 64,
        },
        example_inputs=f"{_PKG}.examples:example_inputs",
        example_preprocessor=f"{_PKG}.examples:example_preprocessor",
    )
