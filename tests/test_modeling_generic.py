"""The shared ModelTesterMixin run over the tiny in-test family: proves the mixin and the model base together."""

from __future__ import annotations

import torch

from plugformers.testing.model_tests import ModelTesterMixin

from tinyfamily import TinyConfig, TinyForMaskedLM, TinyForSequenceClassification, TinyModel


class TestTinyFamily(ModelTesterMixin):
    all_model_classes = (TinyModel, TinyForMaskedLM, TinyForSequenceClassification)
    has_attentions = False
    test_compile = False

    def get_config(self) -> TinyConfig:
        return TinyConfig(num_labels=3)

    def prepare_inputs(self, config, model_class):
        inputs = {"input_ids": torch.randint(0, config.vocab_size, (2, 5))}
        if model_class is TinyForMaskedLM:
            inputs["labels"] = torch.randint(0, config.vocab_size, (2, 5))
        if model_class is TinyForSequenceClassification:
            inputs["labels"] = torch.tensor([0, 2])
        return inputs
