"""What every model ``forward`` returns besides its result, handled in one place: :func:`model_forward`.

- ``return_dict=False`` turns the output dataclass into a tuple.
- ``output_hidden_states`` / ``output_attentions``: a model class lists in ``recorded_outputs`` which of its
  submodules produce them (:class:`Record`); forward hooks, installed once by ``post_init``, collect those
  submodules' outputs while a call asks for them, and the decorator puts them into the output. The layers
  themselves neither take nor pass these switches. ``output_hidden_states`` may also be the indices of the hidden
  states wanted (``[0, -1]``): the tuple keeps its full length, with None at the positions not asked for.
- ``first_token_only``: a head class that reads only the first position of the last layer's output (a [CLS]
  classifier) sets it; while such a head runs without asking for hidden states or attentions, the last layer of
  its encoder computes that position alone (see :class:`~plugformers.modeling_layers.GradientCheckpointingLayer`).

The per-call state lives in a thread-local, so one model can serve several threads, and reading it compiles
under ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import functools
import inspect
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "Record",
    "first_token_layer",
    "install_first_token_layer",
    "install_recorders",
    "is_recording",
    "model_forward",
    "select_hidden_states",
]

F = TypeVar("F", bound=Callable[..., Any])

_local = threading.local()


@dataclass(frozen=True)
class Record:
    """Where one output field comes from: the output of every submodule of ``module_class`` in call order.

    ``index`` picks an item of a tuple output (``1`` for an attention module's weights); ``name`` keeps only the
    submodules held under that attribute name (e.g. ``"self_attn"`` but not ``"encoder_attn"`` of a decoder
    layer); ``with_input`` puts the first call's input (its first argument, or ``hidden_states=``) in front: hidden
    states start with the embeddings. Calls that return None for the field add nothing.

    A field whose name ends in ``attentions`` is recorded when ``output_attentions`` asks for it, any other when
    ``output_hidden_states`` does.
    """

    module_class: type[nn.Module] | tuple[type[nn.Module], ...]
    index: int | None = None
    name: str | None = None
    with_input: bool = False

    def matches(self, qualified_name: str, module: nn.Module) -> bool:
        return isinstance(module, self.module_class) and (
            self.name is None or qualified_name.rpartition(".")[2] == self.name
        )


class _Recording:
    """The fields one call records, and which submodule feeds which field.

    ``selection``: the hidden-state indices a call asked for (``output_hidden_states=[0, -1]``), or None for all;
    the hidden-state fields then hold None at the other positions. Without negative indices the others are not
    even kept while the call runs; with them the count is only known at the end (:meth:`result`).
    """

    def __init__(self, model: nn.Module, fields: dict[str, Record], selection: list[int] | None = None) -> None:
        self.sources: dict[nn.Module, list[tuple[str, Record]]] = {}
        for name, module in model.named_modules():
            for field, record in fields.items():
                if record.matches(name, module):
                    self.sources.setdefault(module, []).append((field, record))
        self.values: dict[str, list[Any]] = {field: [] for field in fields}
        self.selection = selection
        self.keep_all = selection is None or any(i < 0 for i in selection)

    def _keep(self, field: str, values: list[Any], value: Any) -> None:
        selected = self.keep_all or field.endswith("attentions") or len(values) in self.selection  # type: ignore[operator]
        values.append(value if selected else None)

    def add(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        for field, record in self.sources.get(module, ()):
            values = self.values[field]
            if record.with_input and not values:
                self._keep(field, values, args[0] if args else kwargs["hidden_states"])
            value = output if record.index is None else output[record.index]
            if value is not None:
                self._keep(field, values, value)

    def result(self) -> dict[str, tuple[Any, ...]]:
        """Each field's values as a tuple: hidden states at every position, None where not selected."""
        return {
            field: tuple(values) if field.endswith("attentions") else _selected(values, self.selection)
            for field, values in self.values.items()
        }


def _selected(states: Any, selection: list[int] | None) -> tuple[Any, ...]:
    n = len(states)
    wanted = range(n) if selection is None else {i % n for i in selection if -n <= i < n}
    return tuple(state if i in wanted else None for i, state in enumerate(states))


def select_hidden_states(states: tuple[Any, ...] | None, output_hidden_states: Any) -> tuple[Any, ...] | None:
    """What a call's ``output_hidden_states`` asks of ``states`` (all of a model's hidden states): None for
    False/None, all for True, else the full-length tuple with None where an index was not asked for. For a head
    that computes every hidden state for itself (a weighted layer sum) and returns only what the caller wanted."""
    selection = _hidden_state_selection(output_hidden_states)
    if states is None or not (output_hidden_states if selection is None else selection):
        return None
    return _selected(states, selection)


def _hidden_state_selection(value: Any) -> list[int] | None:
    """The indices ``output_hidden_states`` selects (an int or a sequence of ints), or None for a plain switch."""
    if value is None or isinstance(value, bool) or type(value).__name__ == "bool_":  # NumPy's bool too
        return None
    items = [value] if not isinstance(value, (list, tuple, set, frozenset, range)) else list(value)
    try:
        if any(isinstance(i, bool) for i in items):
            raise TypeError
        return [operator.index(i) for i in items]
    except TypeError:
        raise TypeError(
            "output_hidden_states must be True/False or the indices of the hidden states to return (an int or a "
            f"list of ints; negative ones count from the end), got {value!r}."
        ) from None


def _record_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
    stack: list[_Recording] | None = getattr(_local, "recordings", None)
    if stack:
        stack[-1].add(module, args, kwargs, output)


def install_recorders(model: nn.Module, fields: dict[str, Record]) -> None:
    """Put the recording hook on every submodule of ``model`` that a field of ``fields`` reads (once each)."""
    for name, module in model.named_modules():
        if any(record.matches(name, module) for record in fields.values()):
            if _record_hook not in module._forward_hooks.values():
                module.register_forward_hook(_record_hook, with_kwargs=True)


def is_recording(field: str) -> bool:
    """Whether the innermost call being recorded in this thread collects ``field`` (e.g. ``"attentions"``): an
    attention module computes its weights only then."""
    stack: list[_Recording] | None = getattr(_local, "recordings", None)
    return bool(stack) and field in stack[-1].values  # type: ignore[index]


def first_token_layer() -> nn.Module | None:
    """The layer that is to compute the first position only in this thread's current call, if any."""
    return getattr(_local, "first_token_layer", None)


def install_first_token_layer(head: Any) -> None:
    """Note which layer a ``first_token_only`` head trims: the last of the layers whose outputs are its base
    model's hidden states."""
    base = head.base_model
    record: Record | None = type(base).recorded_outputs.get("hidden_states")
    layers = [module for name, module in base.named_modules() if record is not None and record.matches(name, module)]
    if not layers:
        raise TypeError(
            f"{type(head).__name__} sets first_token_only, but its base model {type(base).__name__} records no "
            "hidden_states layers to take the last one from."
        )
    head.__dict__["_first_token_layer"] = layers[-1]  # a reference, not a child module


def _switch_positions(forward: Callable[..., Any]) -> dict[str, int]:
    names = list(inspect.signature(forward).parameters)[1:]  # after self
    return {name: i for i, name in enumerate(names) if name in ("return_dict", "output_hidden_states", "output_attentions")}


def model_forward(forward: F) -> F:
    """Decorate a model's ``forward`` (base models and heads alike) so that it honours ``return_dict``,
    ``output_hidden_states`` and ``output_attentions`` (argument, else the config) and its class's
    ``recorded_outputs`` and ``first_token_only``.

    The body always builds its output dataclass and may ignore those three arguments; a head passes
    ``output_hidden_states`` / ``output_attentions`` on to its base model and copies what comes back.
    """
    positions = _switch_positions(forward)

    def argument(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], default: Any) -> Any:
        position = positions.get(name)
        value = args[position] if position is not None and position < len(args) else kwargs.get(name)
        return default if value is None else value

    @functools.wraps(forward)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = self.config
        return_dict = bool(argument("return_dict", args, kwargs, config.use_return_dict))
        fields: dict[str, Record] = type(self).recorded_outputs
        first_token = type(self).first_token_only
        wanted: dict[str, Record] = {}
        selection = None
        if fields or first_token:
            hidden = argument("output_hidden_states", args, kwargs, config.output_hidden_states)
            selection = _hidden_state_selection(hidden)
            if hidden if selection is None else selection:
                wanted.update((k, r) for k, r in fields.items() if not k.endswith("attentions"))
                first_token = False
            if argument("output_attentions", args, kwargs, config.output_attentions):
                wanted.update((k, r) for k, r in fields.items() if k.endswith("attentions"))
                first_token = False
        if wanted:
            output = _recorded_call(forward, self, args, kwargs, wanted, selection)
        elif first_token:
            output = _first_token_call(forward, self, args, kwargs)
        else:
            output = forward(self, *args, **kwargs)
        return output if return_dict else output.to_tuple()

    return wrapper  # type: ignore[return-value]


def _recorded_call(
    forward: Callable[..., Any], self: Any, args: Any, kwargs: Any, fields: dict[str, Record], selection: list[int] | None
) -> Any:
    stack = getattr(_local, "recordings", None)
    if stack is None:
        stack = _local.recordings = []
    stack.append(_Recording(self, fields, selection))
    try:
        output = forward(self, *args, **kwargs)
    finally:
        recorded = stack.pop()
    # Rebuilt rather than updated, so that the fields keep their declared order in to_tuple().
    return type(output)(**{**output, **recorded.result()})


def _first_token_call(forward: Callable[..., Any], self: Any, args: Any, kwargs: Any) -> Any:
    previous = first_token_layer()
    _local.first_token_layer = self.__dict__["_first_token_layer"]  # set by post_init (install_first_token_layer)
    try:
        return forward(self, *args, **kwargs)
    finally:
        _local.first_token_layer = previous
