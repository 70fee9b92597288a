"""Padding-free text batches: the real tokens of a batch run as one packed sequence.

A padded batch of ``B`` texts costs ``B x longest`` token positions in every linear layer. Packed, the same
batch costs only its real tokens: the base model receives ``(1, total)`` ids whose position ids restart at 0
for each text, and attention runs separately inside each text (texts of equal length share one fused call),
so no text sees another and no work goes to padding.

The family's code is not changed. :func:`padding_free` hooks the model's base module (``model.base_model``):
a forward pre-hook packs the padded inputs the head passes in, the attention backend the layers look up
(:func:`plugformers.attention.get_attention_function`) is wrapped for the duration of that call, and a forward
hook scatters the per-token outputs back to ``(B, longest, ...)`` so the head (pooling, classifier) sees the
layout it expects. What a family must keep for this to hold:

- the base model's ``forward`` takes ``attention_mask`` and ``position_ids`` (positions restart per text);
- the layers look the attention function up at call time with ``get_attention_function`` and give it
  ``(batch, heads, seq, head_dim)`` tensors; nothing else mixes positions (no convolution over the sequence);
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

from plugformers.attention import PACKED_ATTENTION, AttentionFunction

__all__ = ["Segments", "can_pack", "padding_free"]


class Segments:
    """Where each text lies in the packed sequence, grouped by length (one fused attention call per length)."""

    def __init__(self, lengths: list[int], device: torch.device) -> None:
        self.lengths = lengths
        self.total = sum(lengths)
        by_length: dict[int, list[int]] = {}
        start = 0
        for n in lengths:
            by_length.setdefault(n, []).append(start)
            start += n
        # (texts of that length, length) token indices into the packed sequence.
        self.groups = [
            (torch.tensor(starts, device=device)[:, None] + torch.arange(n, device=device)[None, :])
            for n, starts in by_length.items()
            if n > 0
        ]

    def position_ids(self, device: torch.device) -> torch.Tensor:
        """``(1, total)``: 0, 1, ... restarting at each text."""
        return torch.cat([torch.arange(n, device=device) for n in self.lengths])[None, :]

    def wrap(self, backend: AttentionFunction) -> AttentionFunction:
        """``backend`` applied within each packed text instead of across the whole packed sequence."""

        def segmented(
            module: Any,
            query: torch.Tensor,
            key: torch.Tensor,
            value: torch.Tensor,
            attention_mask: torch.Tensor | None,
            **kwargs: Any,
        ) -> tuple[torch.Tensor, torch.Tensor | None]:
            if query.shape[0] != 1 or query.shape[2] != self.total or key.shape[2] != self.total:
                # Not the packed self-attention (a head's own attention, say): leave it alone.
                return backend(module, query, key, value, attention_mask, **kwargs)
            kwargs["output_attentions"] = False
            out = query.new_empty((*query.shape[:3], value.shape[-1]))
            for index in self.groups:
                # (heads, texts, length, dim) -> (texts, heads, length, dim)
                q, k, v = (t[0][:, index].transpose(0, 1) for t in (query, key, value))
                part, _ = backend(module, q, k, v, None, **kwargs)
                out[0][:, index] = part.transpose(0, 1).to(out.dtype)
            return out, None

        return segmented


def can_pack(model: torch.nn.Module) -> bool:
    """Whether the model's base module takes what packing passes (``attention_mask`` and ``position_ids``)."""
    base = getattr(model, "base_model", model)
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False
    return "attention_mask" in params and "position_ids" in params and "input_ids" in params


class _Plan:
    """The state of one packed call, shared by the pre-hook and the hook around the base module."""

    def __init__(self, base: torch.nn.Module) -> None:
        self.base = base
        self.signature = inspect.signature(base.forward)
        self.index: torch.Tensor | None = None  # flat (B*L) positions of the real tokens
        self.shape: tuple[int, int] = (0, 0)
        self.token: Any = None
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
        extra = arguments.pop(next((p.name for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD), ""), {})
        arguments.update(extra)
        mask = arguments.get("attention_mask")
        ids = arguments.get("input_ids")
        unsupported = (
            not isinstance(mask, torch.Tensor)
            or not isinstance(ids, torch.Tensor)
            or mask.dim() != 2
            or tuple(ids.shape) != tuple(mask.shape)
            or arguments.get("inputs_embeds") is not None
            or arguments.get("output_attentions")
        )
        if unsupported:
            self.padded_calls += 1
            return None
        assert isinstance(mask, torch.Tensor)
        batch, length = mask.shape
        keep = mask.bool()
        lengths = keep.sum(1)
        if not torch.equal(keep, torch.arange(length, device=mask.device)[None, :] < lengths[:, None]):
            self.padded_calls += 1  # not right padding: run as it is
            return None
        segments = Segments(lengths.tolist(), mask.device)
        index = keep.flatten().nonzero().squeeze(1)
        packed: dict[str, Any] = {}
        for name, value in arguments.items():
            if name.startswith("_"):
                continue  # private switches (e.g. "compute the first position only") assume the padded layout
            if name == "attention_mask":
                packed[name] = None
            elif isinstance(value, torch.Tensor) and value.dim() >= 2 and tuple(value.shape[:2]) == (batch, length):
                packed[name] = value.reshape(batch * length, *value.shape[2:])[index][None]
            else:
                packed[name] = value
        if packed.get("position_ids") is None:
            packed["position_ids"] = segments.position_ids(mask.device)
        self.index, self.shape = index, (batch, length)
        self.token = PACKED_ATTENTION.set(segments.wrap)
        self.packed_calls += 1
        return (), packed

    def post(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> Any:
        if self.index is None:
            return None
        self.reset()
        restored = self._restore(output)
        if restored is None:  # an output packing cannot map back: run the padded forward after all
            self.packed_calls -= 1
            self.padded_calls += 1
            args, kwargs = self.original
            return module.forward(*args, **kwargs)
        return restored

    def reset(self) -> None:
        if self.token is not None:
            PACKED_ATTENTION.reset(self.token)
            self.token = None

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
            pooler = getattr(self.base, "pooler", None)
            if "pooler_output" in restored:
                hidden = restored.get("last_hidden_state")
                if not callable(pooler) or hidden is None:
                    return None
                restored["pooler_output"] = pooler(hidden)
            for key, value in restored.items():
                output[key] = value
            return output
        return None

    def _restore_field(self, key: str, value: Any) -> Any:
        if key == "pooler_output":
            return value  # recomputed from the restored hidden states
        if value is None:
            return None
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
        plan.reset()
        for handle in handles:
            handle.remove()


