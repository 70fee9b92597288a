"""Output containers returned by models: dataclasses that also behave like ordered dicts and tuples.

``out.logits``, ``out["logits"]`` and ``out[0]`` all work; fields left as ``None`` are skipped by key,
index and :meth:`ModelOutput.to_tuple` access, which is what ``return_dict=False`` returns.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

import torch

__all__ = [
    "BackboneOutput",
    "BaseModelOutput",
    "BaseModelOutputWithNoAttention",
    "BaseModelOutputWithPooling",
    "BaseModelOutputWithPoolingAndNoAttention",
    "CausalLMOutput",
    "ImageClassifierOutput",
    "ImageClassifierOutputWithNoAttention",
    "MaskedImageModelingOutput",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "XVectorOutput",
]

Tensor = torch.Tensor
Tensors = tuple[torch.Tensor, ...]


class ModelOutput(OrderedDict):  # type: ignore[type-arg]
    """Base of every output dataclass: attribute, key and index access over the fields that are set."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Let torch.export / torch.compile flatten outputs like tuples of tensors.
        try:
            from torch.utils._pytree import register_pytree_node

            register_pytree_node(
                cls,
                lambda out: (list(out.values()), list(out.keys())),
                lambda values, keys: cls(**dict(zip(keys, values))),
                serialized_type_name=f"{cls.__module__}.{cls.__name__}",
            )
        except (ImportError, ValueError):  # already registered (class re-created) or no pytree
            pass

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return dict.__getitem__(self, key)
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() or (value is not None and name in {f.name for f in fields(self)}):  # type: ignore[arg-type]
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __delitem__(self, key: Any) -> None:
        raise TypeError(f"Cannot delete items of {type(self).__name__}; set the field to None instead.")

    def setdefault(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not support setdefault.")

    def pop(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not support pop.")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} does not support update.")

    def __reduce__(self) -> Any:
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))  # type: ignore[arg-type]

    def to_tuple(self) -> tuple[Any, ...]:
        """The set fields, in declaration order (what ``return_dict=False`` returns)."""
        return tuple(self[k] for k in self.keys())


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Tensor | None = None
    pooler_output: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class BaseModelOutputWithNoAttention(ModelOutput):
    last_hidden_state: Tensor | None = None
    hidden_states: Tensors | None = None


@dataclass
class BaseModelOutputWithPoolingAndNoAttention(ModelOutput):
    last_hidden_state: Tensor | None = None
    pooler_output: Tensor | None = None
    hidden_states: Tensors | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class ImageClassifierOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class ImageClassifierOutputWithNoAttention(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None


@dataclass
class MaskedImageModelingOutput(ModelOutput):
    loss: Tensor | None = None
    reconstruction: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class CausalLMOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class BackboneOutput(ModelOutput):
    feature_maps: Tensors | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class XVectorOutput(ModelOutput):
    """Speaker-embedding heads: ``embeddings`` are the x-vectors, ``logits`` what the AM-softmax loss scores."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    embeddings: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None
