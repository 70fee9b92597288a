"""Registers the BERT family with the plugformers host (names only: nothing is imported here)."""

from __future__ import annotations

from typing import Any

from plugformers import hookimpl

_PKG = "plugformers_bert"
_M = f"{_PKG}.modeling_bert"


@hookimpl
def plugformers_register_families(register: Any) -> None:
    """Declare the ``bert`` model type, its config, models per Auto class, tokenizers and test data."""
    register(
        "bert",
        config=f"{_PKG}.configuration_bert:BertConfig",
        models={
            "AutoModel": f"{_M}:BertModel",
            "AutoModelForPreTraining": f"{_M}:BertForPreTraining",
            "AutoModelForMaskedLM": f"{_M}:BertForMaskedLM",
            "AutoModelForNextSentencePrediction": f"{_M}:BertForNextSentencePrediction",
            "AutoModelForSequenceClassification": f"{_M}:BertForSequenceClassification",
            "AutoModelForMultipleChoice": f"{_M}:BertForMultipleChoice",
            "AutoModelForTokenClassification": f"{_M}:BertForTokenClassification",
            "AutoModelForQuestionAnswering": f"{_M}:BertForQuestionAnswering",
        },
        tokenizer=f"{_PKG}.tokenization_bert:BertTokenizer",
        tokenizer_fast=f"{_PKG}.tokenization_bert_fast:BertTokenizerFast",
        exports={
            "BertPreTrainedModel": f"{_M}:BertPreTrainedModel",
            "BertForPreTrainingOutput": f"{_M}:BertForPreTrainingOutput",
        },
        modality="text",
        tiny_config={
            "vocab_size": 128,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "max_position_embeddings": 64,
            "type_vocab_size": 2,
        },
        example_inputs=f"{_PKG}.examples:example_inputs",
        example_preprocessor=f"{_PKG}.examples:example_preprocessor",
    )
