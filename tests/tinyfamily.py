"""A tiny model family used by the host tests, registered through the plugin hooks like a real plugin."""

from __future__ import annotations

import torch
from torch import nn

from plugformers import hookimpl
from plugformers.configuration_utils import PretrainedConfig
from plugformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput
from plugformers.modeling_utils import PreTrainedModel, classification_loss


class TinyConfig(PretrainedConfig):
    model_type = "tiny-test"
    attribute_map = {"hidden_size": "dim"}

    def __init__(self, vocab_size: int = 20, dim: int = 8, n_layers: int = 2, tie_word_embeddings: bool = True, **kwargs):
        self.vocab_size = vocab_size
        self.dim = dim
        self.n_layers = n_layers
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(**kwargs)


class TinyPreTrainedModel(PreTrainedModel):
    config_class = TinyConfig
    base_model_prefix = "tiny"
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, 0.2)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, 0.2)


class TinyModel(TinyPreTrainedModel):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(nn.Linear(config.dim, config.dim) for _ in range(config.n_layers))
        self.register_buffer("position_ids", torch.arange(64), persistent=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings = value

    def forward(self, input_ids, output_hidden_states=None, output_attentions=None, return_dict=None):
        h = self.embeddings(input_ids) + self.position_ids[: input_ids.shape[1], None].to(self.embeddings.weight.dtype) * 0.01
        states = [h]
        for layer in self.layers:
            h = torch.tanh(layer(h))
            states.append(h)
        out = BaseModelOutput(last_hidden_state=h, hidden_states=tuple(states) if output_hidden_states else None)
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


class TinyForMaskedLM(TinyPreTrainedModel):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.tiny = TinyModel(config)
        self.decoder = nn.Linear(config.dim, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.decoder

    def forward(self, input_ids, labels=None, output_hidden_states=None, output_attentions=None, return_dict=None):
        base = self.tiny(input_ids, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.decoder(base.last_hidden_state)
        loss = None if labels is None else nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


class TinyForSequenceClassification(TinyPreTrainedModel):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.tiny = TinyModel(config)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.post_init()

    def forward(self, input_ids, labels=None, output_hidden_states=None, output_attentions=None, return_dict=None):
        base = self.tiny(input_ids, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.last_hidden_state[:, 0])
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


class TinyPlugin:
    """The plugin object: what an entry-point module would contain; ``fields`` adds registration fields."""

    def __init__(self, **fields):
        self.fields = fields

    @hookimpl
    def plugformers_register_families(self, register):
        register(
            "tiny-test",
            config="tinyfamily:TinyConfig",
            models={
                "AutoModel": "tinyfamily:TinyModel",
                "AutoModelForMaskedLM": "tinyfamily:TinyForMaskedLM",
                "AutoModelForSequenceClassification": "tinyfamily:TinyForSequenceClassification",
            },
            **self.fields,
        )


def tiny_inputs(config: TinyConfig, model_class: type, batch_size: int = 2, labels: bool = False) -> dict:
    """Example inputs in the registration's format, for tests that give the tiny family registration data."""
    g = torch.Generator().manual_seed(0)
    inputs = {"input_ids": torch.randint(0, config.vocab_size, (batch_size, 5), generator=g)}
    if labels and issubclass(model_class, TinyForMaskedLM):
        inputs["labels"] = torch.randint(0, config.vocab_size, (batch_size, 5), generator=g)
    elif labels and issubclass(model_class, TinyForSequenceClassification):
        inputs["labels"] = torch.randint(0, config.num_labels, (batch_size,), generator=g)
    return inputs
