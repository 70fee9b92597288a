"""Padding-free text batches: the real tokens of a batch run as one packed sequence.

A padded batch of ``B`` texts costs ``B x longest`` token positions in every linear layer. Packed, the same
batch costs only its real tokens: the base model receives ``(1, total)`` ids whose position ids restart at 0
for each text, and attention runs separately inside each text (texts of equal length share one fused call),
so no text sees another and no work goes to padding.

This rides on the shared model blocks. :func:`padding_free` hooks the model's base module
(``model.base_model``): a forward pre-hook packs the padded inputs the head passes in and enters
:func:`plugformers.masking_utils.packing`, under which the shared attention block
(:class:`plugformers.modeling_layers.MultiHeadAttention`) attends per text and a first-token head does not trim
its last layer; a forward hook scatters the per-token outputs back to ``(B, longest, ...)`` so the head
(pooling, classifier) sees the layout it expects. What a family keeps for this to hold:

- its attention is the shared :class:`~plugformers.modeling_layers.MultiHeadAttention` (or a subclass);
- the base model's ``forward`` takes ``attention_mask`` and ``position_ids``; nothing else mixes positions
  (no convolution or pooling over the sequence inside the base model);
- outputs are per-token tensors ``(batch, seq, ...)``; a ``pooler_output`` is recomputed by the base module's
  ``pooler`` on the restored hidden states.

Anything else (a mask that is not right padding, ``output_attentions``, ``inputs_embeds``, an output that is
neither per-token nor a known pooler) runs the ordinary padded forward instead. The pipelines also compare
the first packed batch of a model with its padded run and switch packing off if they disagree.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch

from plugformers.masking_utils import PackedSequences, packing
from plugformers.modeling_layers import MultiHeadAttention

__all__ = ["can_pack", "padding_free"]


def can_pack(model: torch.nn.Module) -> bool:
    """Whether the model's base module attends through the shared block and takes ``attention_mask`` and ``position_ids``."""
    base = getattr(model, "base_model", model)
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False
    if not {"input_ids", "attention_mask", "position_ids"} <= set(params):
        return False
    return any(isinstance(module, MultiHeadAttention) for module in base.modules())


class _Plan:
    """The state of one packed call, shared by the pre-hook and the hook around the base module."""

    def __init__(self, base: torch.nn.Module) -> None:
        self.base = base
        self.signature = inspect.signature(base.forward)
        self.index: torch.Tensor | None = None  # flat (B*L) positions of the real tokens
        self.shape: tuple[int, int] = (0, 0)
        self.scope: contextlib.ExitStack | None = None
        self.packed_calls = 0
        self.padded_calls = 0
        self.original: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})

    def pre(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.index = None
        self.original = (args, kwargs)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        arguments = dict(bound.arguments)
        variadic = next((p.name for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
        arguments.update(arguments.pop(variadic, {}) if variadic else {})
        mask = arguments.get("attention_mask")
        ids = arguments.get("input_ids")
        if (
            not isinstance(mask, torch.Tensor)
            or not isinstance(ids, torch.Tensor)
            or mask.dim() != 2
            or tuple(ids.shape) != tuple(mask.shape)
            or arguments.get("inputs_embeds") is not None
            or arguments.get("output_attentions")
        ):
            self.padded_calls += 1
            return None
        batch, length = mask.shape
        keep = mask.bool()
        lengths = keep.sum(1)
        if not torch.equal(keep, torch.arange(length, device=mask.device)[None, :] < lengths[:, None]):
            self.padded_calls += 1  # not right padding: run as it is
            return None
        sequences = PackedSequences.from_lengths(lengths.tolist())
        index = keep.flatten().nonzero().squeeze(1)
        packed: dict[str, Any] = {}
        for name, value in arguments.items():
            if name.startswith("_"):
                continue  # private switches assume the padded layout
            if name == "attention_mask":
                packed[name] = None
            elif isinstance(value, torch.Tensor) and value.dim() >= 2 and tuple(value.shape[:2]) == (batch, length):
                packed[name] = value.reshape(batch * length, *value.shape[2:])[index][None]
            else:
                packed[name] = value
        if packed.get("position_ids") is None:
            packed["position_ids"] = sequences.position_ids(mask.device)
        self.index, self.shape = index, (batch, length)
        self.scope = contextlib.ExitStack()
        self.scope.enter_context(packing(sequences))
        self.packed_calls += 1
        return (), packed

    def post(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> Any:
        if self.index is None:
            return None
        self.close()
        restored = self._restore(output)
        if restored is None:  # an output packing cannot map back: run the padded forward after all
            self.packed_calls -= 1
            self.padded_calls += 1
            args, kwargs = self.original
            return module.forward(*args, **kwargs)
        return restored

    def close(self) -> None:
        if self.scope is not None:
            self.scope.close()
            self.scope = None

    def _unpack(self, value: torch.Tensor) -> torch.Tensor | None:
        assert self.index is not None
        if value.dim() < 2 or value.shape[0] != 1 or value.shape[1] != self.index.numel():
            return None
        batch, length = self.shape
        full = value.new_zeros((batch * length, *value.shape[2:]))
        full[self.index] = value[0]
        return full.view(batch, length, *value.shape[2:])

    def _restore(self, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return self._unpack(output)
        if isinstance(output, tuple) and not hasattr(output, "keys"):
            items = [self._restore_field("", v) for v in output]
            return None if any(i is _FAIL for i in items) else type(output)(items)
        if hasattr(output, "keys"):
            restored: dict[str, Any] = {}
            for key in list(output.keys()):
                value = self._restore_field(key, output[key])
                if value is _FAIL:
                    return None
                restored[key] = value
            if "pooler_output" in restored:
                pooler, hidden = getattr(self.base, "pooler", None), restored.get("last_hidden_state")
                if not callable(pooler) or hidden is None:
                    return None
                restored["pooler_output"] = pooler(hidden)
            for key, value in restored.items():
                output[key] = value
            return output
        return None

    def _restore_field(self, key: str, value: Any) -> Any:
        if key == "pooler_output" or value is None:
            return value  # a pooler output is recomputed from the restored hidden states
        if isinstance(value, torch.Tensor):
            unpacked = self._unpack(value)
            return _FAIL if unpacked is None else unpacked
        if isinstance(value, tuple):
            items = [self._unpack(v) if isinstance(v, torch.Tensor) else None for v in value]
            return _FAIL if any(i is None for i in items) else tuple(items)
        return _FAIL


_FAIL = object()


@contextlib.contextmanager
def padding_free(model: torch.nn.Module) -> Iterator[_Plan]:
    """Run ``model(**padded_batch)`` inside this block to compute on the real tokens only (same outputs)."""
    base = getattr(model, "base_model", model)
    plan = _Plan(base)
    handles = [
        base.register_forward_pre_hook(plan.pre, with_kwargs=True),
        base.register_forward_hook(plan.post, with_kwargs=True),
    ]
    try:
        yield plan
    finally:
        plan.close()
        for handle in handles:
            handle.remove()
