"""What every pipeline shares: call conventions, length-bucketed batches in input order, devices, errors.

A pipeline turns each input into one or more *features* (a text, a text window of a long context, an audio
chunk), runs the model on batches of features and turns each input's feature outputs into its result. The
inputs are read in windows; within a window the features are sorted by size so that a batch holds features
of similar length (little padding), and the results come out in input order.

Call conventions follow the reference library's pipelines: one input gives one result, a list gives a list,
and any other iterable (a generator, a dataset with ``__len__``/``__getitem__``) gives a generator that reads
its inputs lazily. :meth:`Pipeline.stream` is the same generator with ``on_error="record"``: an input that
fails gives a :class:`PipelineItemError` in its place and the others carry on (``plugformers predict``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from plugformers.vocabulary import closest

__all__ = ["Feature", "Pipeline", "PipelineItemError", "resolve_device"]

#: How many batches of inputs are read and sorted together: bigger windows bucket better, smaller ones
#: give a generator's first results sooner.
WINDOW_BATCHES = 64


class PipelineItemError(Exception):
    """Why one input of a batch job failed (a result in :meth:`Pipeline.stream` with ``on_error="record"``)."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


@dataclass
class Feature:
    """One model input made from one pipeline input: ``inputs`` unbatched, ``size`` the batching key."""

    inputs: dict[str, Any]
    size: Any
    meta: dict[str, Any] = field(default_factory=dict)
    item: int = -1


def resolve_device(device: Any) -> torch.device | None:
    """``None``, ``-1``, ``"cpu"``, ``0``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    if isinstance(device, bool):
        raise TypeError(f"device must be a torch.device, a name like 'cuda:0' or an index, got {device!r}.")
    if isinstance(device, int):
        return torch.device("cpu") if device < 0 else torch.device("cuda", device)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N', an index or a torch.device.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device.")
    return resolved


def _is_single(inputs: Any) -> bool:
    """One input (a text, a path, an image, an array, a dict) rather than a collection of inputs."""
    if isinstance(inputs, (str, bytes, bytearray, dict, os.PathLike)):
        return True
    if hasattr(inputs, "shape") or hasattr(inputs, "getpixel"):  # arrays, tensors, PIL images
        return True
    return not isinstance(inputs, Iterable) and not hasattr(inputs, "__getitem__")


def _iterate(inputs: Any) -> Iterator[Any]:
    """Items of a list, generator or dataset-like object (``__len__`` and ``__getitem__`` without ``__iter__``)."""
    if isinstance(inputs, Iterable):
        return iter(inputs)
    return (inputs[i] for i in range(len(inputs)))


class Pipeline:
    """Base class: subclasses define ``task``, the call parameters and the preprocess/forward/postprocess steps."""

    task: ClassVar[str] = ""
    #: Call-time parameters and their defaults (``pipeline(..., top_k=3)`` sets a default for every call).
    parameters: ClassVar[dict[str, Any]] = {}
    default_batch_size: ClassVar[int] = 8

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        image_processor: Any = None,
        feature_extractor: Any = None,
        processor: Any = None,
        device: Any = None,
        batch_size: int | None = None,
        num_workers: int = 0,
        bucketing: bool = True,
        **params: Any,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.feature_extractor = feature_extractor
        self.processor = processor
        target = resolve_device(device)
        if target is not None and getattr(model, "device", target) != target:
            self.model = model.to(target)
        self.model.eval()
        self.device: torch.device = getattr(self.model, "device", torch.device("cpu"))
        self.batch_size = self._check_batch_size(batch_size if batch_size is not None else self.default_batch_size)
        self.num_workers = num_workers
        self.bucketing = bucketing
        self._defaults = self._check_params(params)
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device})"

    # ----- calling ---------------------------------------------------------------------------------------

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Results for ``inputs``: a result for one input, a list for a list, a generator for other iterables."""
        inputs, kwargs = self._call_inputs(inputs, args, kwargs)
        if _is_single(inputs):
            (result,) = list(self.stream([inputs], **kwargs))
            return self._single_result(inputs, result)
        if isinstance(inputs, (list, tuple)):
            return list(self.stream(inputs, **kwargs))
        return self.stream(_iterate(inputs), **kwargs)

    def stream(self, inputs: Iterable[Any], *, on_error: str = "raise", **kwargs: Any) -> Iterator[Any]:
        """Results in input order, reading ``inputs`` lazily; ``on_error="record"`` yields a PipelineItemError per failed input."""
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}.")
        batch_size = self._check_batch_size(kwargs.pop("batch_size", self.batch_size))
        params = {**self._defaults, **self._check_params(kwargs)}
        return self._stream(iter(inputs), params, batch_size, on_error)

    def _call_inputs(self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Fold task-specific positional arguments into the inputs and keywords (zero-shot labels, QA pairs)."""
        if args:
            raise TypeError(f"{type(self).__name__} takes the inputs as its only positional argument; got {len(args)} more.")
        return inputs, kwargs

    def _single_result(self, inputs: Any, result: Any) -> Any:
        """The result returned for a single input (some tasks wrap it in a list, as the reference does)."""
        return result

    # ----- parameters --------------------------------------------------------------------------------------

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in params if k not in self.parameters]
        if unknown:
            name = unknown[0]
            raise TypeError(
                f"{type(self).__name__} got an unexpected parameter {name!r}{closest(name, self.parameters)}; "
                f"it takes: {', '.join(sorted(self.parameters)) or 'none'}, batch_size."
            )
        return dict(params)

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every parameter, with the defaults filled in."""
        return {**self.parameters, **params}

    @staticmethod
    def _check_batch_size(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"batch_size must be a positive integer, got {value!r}.")
        return value

    # ----- the steps a task defines --------------------------------------------------------------------

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        """The features of one input."""
        raise NotImplementedError

    def preprocess_many(self, items: Sequence[Any], params: dict[str, Any]) -> list[list[Feature] | BaseException]:
        """Features per input, or the exception that input raised; parallel over ``num_workers`` threads."""

        def one(item: Any) -> list[Feature] | BaseException:
            try:
                return self.preprocess(item, params)
            except Exception as exc:  # reported for this input only
                return exc

        if self.num_workers > 1 and len(items) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="plugformers-preprocess")
            return list(self._pool.map(one, items))
        return [one(item) for item in items]

    def compatible(self, first: Feature, other: Feature) -> bool:
        """Whether ``other`` may join a batch that starts with ``first`` (default: same size)."""
        return bool(first.size == other.size)

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        """Run the model on one batch; one output per feature, on the CPU."""
        raise NotImplementedError

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        """The result of one input from its features' outputs."""
        raise NotImplementedError

    # ----- the engine ---------------------------------------------------------------------------------------

    def _stream(self, inputs: Iterator[Any], params: dict[str, Any], batch_size: int, on_error: str) -> Iterator[Any]:
        params = self._params(params)
        window = max(batch_size * WINDOW_BATCHES, 64)
        while True:
            items = list(itertools.islice(inputs, window))
            if not items:
                return
            yield from self._run_window(items, params, batch_size, on_error)

    def _run_window(self, items: list[Any], params: dict[str, Any], batch_size: int, on_error: str) -> Iterator[Any]:
        errors: dict[int, PipelineItemError] = {}

        def fail(index: int, exc: BaseException) -> None:
            if on_error == "raise":
                raise exc
            errors.setdefault(index, exc if isinstance(exc, PipelineItemError) else PipelineItemError(_reason(exc), exc))

        features: list[Feature] = []
        for index, prepared in enumerate(self.preprocess_many(items, params)):
            if isinstance(prepared, BaseException):
                fail(index, prepared)
                continue
            for feature in prepared:
                feature.item = index
                features.append(feature)
        outputs: list[Any] = [None] * len(features)
        with torch.inference_mode():
            for batch in self._batches(features, batch_size):
                try:
                    results = self.forward([features[j] for j in batch], params)
                except Exception as exc:
                    if on_error == "raise":
                        raise
                    # Find the input that broke the batch: run its features one at a time.
                    for j in batch:
                        try:
                            outputs[j] = self.forward([features[j]], params)[0]
                        except Exception as one_exc:
                            fail(features[j].item, one_exc)
                    del exc
                    continue
                for j, result in zip(batch, results):
                    outputs[j] = result
        per_item: list[list[tuple[Feature, Any]]] = [[] for _ in items]
        for feature, output in zip(features, outputs):
            per_item[feature.item].append((feature, output))
        for index, item in enumerate(items):
            if index in errors:
                yield errors[index]
                continue
            try:
                yield self.postprocess(item, per_item[index], params)
            except Exception as exc:
                fail(index, exc)
                yield errors[index]

    def _batches(self, features: list[Feature], batch_size: int) -> list[list[int]]:
        """Feature indices per batch: longest first when bucketing, each batch of compatible features."""
        order: Iterable[int] = range(len(features))
        if self.bucketing:
            order = sorted(order, key=lambda j: features[j].size, reverse=True)
        batches: list[list[int]] = []
        current: list[int] = []
        for j in order:
            if current and (len(current) == batch_size or not self.compatible(features[current[0]], features[j])):
                batches.append(current)
                current = []
            current.append(j)
        if current:
            batches.append(current)
        return batches

    # ----- helpers for subclasses ------------------------------------------------------------------------

    def _to_model(self, tensor: torch.Tensor) -> torch.Tensor:
        """A batch tensor on the model's device; floating inputs in the model's dtype."""
        if tensor.is_floating_point():
            return tensor.to(device=self.device, dtype=getattr(self.model, "dtype", tensor.dtype))
        return tensor.to(self.device)

    def _model_accepts(self) -> set[str]:
        import inspect

        try:
            params = inspect.signature(self.model.forward).parameters
        except (TypeError, ValueError):
            return set()
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return {"*"}
        return set(params)

    def _label(self, index: int) -> str:
        id2label = getattr(self.model.config, "id2label", None) or {}
        return str(id2label.get(index, id2label.get(str(index), f"LABEL_{index}")))

    def close(self) -> None:
        """Stop the preprocessing threads (they also stop when the pipeline is garbage collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def scores(logits: torch.Tensor, function: str) -> torch.Tensor:
    """``softmax`` / ``sigmoid`` / ``none`` over the last dimension, in float32."""
    logits = logits.float()
    if function == "softmax":
        return logits.softmax(-1)
    if function == "sigmoid":
        return logits.sigmoid()
    if function == "none":
        return logits
    raise ValueError(f"function_to_apply must be 'softmax', 'sigmoid' or 'none', got {function!r}.")


def ranked(values: torch.Tensor, top_k: int | None, label: Callable[[int], str], *, score_first: bool = False) -> list[dict[str, Any]]:
    """``[{"label", "score"}]`` best first, ``top_k`` of them (all with ``None``)."""
    k = values.shape[-1] if top_k is None else max(0, min(int(top_k), values.shape[-1]))
    best, indices = values.topk(k)
    if score_first:
        return [{"score": float(s), "label": label(int(i))} for s, i in zip(best, indices)]
    return [{"label": label(int(i)), "score": float(s)} for s, i in zip(best, indices)]
