"""``pipeline(task, model=...)``: a model and its preprocessing as one callable, batched and in input order.

>>> from plugformers import pipeline                                          # doctest: +SKIP
>>> classify = pipeline("text-classification", model="path/or/repo", batch_size=32)
>>> classify(["a sentence", "another one"])
[{'label': 'POSITIVE', 'score': 0.99}, {'label': 'NEGATIVE', 'score': 0.97}]

The task names are those of :data:`plugformers.vocabulary.TASKS`. A task is served by the model classes
registered under its Auto classes (:func:`plugformers.vocabulary.auto_classes_for_task`), so a plugin's new
family gets every task its heads are registered for without a change here. Importing this package is cheap;
torch and the task modules load when a pipeline is built.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from plugformers.vocabulary import TASKS, auto_classes_for_task, closest

if TYPE_CHECKING:
    from plugformers.pipelines.base import Pipeline

__all__ = ["PIPELINES", "pipeline", "pipeline_class"]

#: The pipeline class of each task, as ``"module:Class"``; every task of the vocabulary has one.
PIPELINES: dict[str, str] = {
    "feature-extraction": "plugformers.pipelines.text:FeatureExtractionPipeline",
    "text-classification": "plugformers.pipelines.text:TextClassificationPipeline",
    "zero-shot-classification": "plugformers.pipelines.text:ZeroShotClassificationPipeline",
    "fill-mask": "plugformers.pipelines.text:FillMaskPipeline",
    "token-classification": "plugformers.pipelines.token_classification:TokenClassificationPipeline",
    "question-answering": "plugformers.pipelines.question_answering:QuestionAnsweringPipeline",
    "image-classification": "plugformers.pipelines.vision:ImageClassificationPipeline",
    "image-feature-extraction": "plugformers.pipelines.vision:ImageFeatureExtractionPipeline",
    "image-segmentation": "plugformers.pipelines.vision:ImageSegmentationPipeline",
    "automatic-speech-recognition": "plugformers.pipelines.audio:AutomaticSpeechRecognitionPipeline",
    "audio-classification": "plugformers.pipelines.audio:AudioClassificationPipeline",
    "audio-feature-extraction": "plugformers.pipelines.audio:AudioFeatureExtractionPipeline",
}

#: Other names the reference library accepts for a task.
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def pipeline_class(task: str) -> type[Pipeline]:
    """The class that serves ``task`` (a name of :data:`plugformers.vocabulary.TASKS` or an alias)."""
    name = ALIASES.get(task, task)
    if name not in TASKS or name not in PIPELINES:
        raise KeyError(f"unknown task {task!r}{closest(task, [*TASKS, *ALIASES])}; tasks: {', '.join(TASKS)}.")
    module, _, attr = PIPELINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def pipeline(
    task: str | None = None,
    model: Any = None,
    *,
    tokenizer: Any = None,
    image_processor: Any = None,
    feature_extractor: Any = None,
    processor: Any = None,
    device: Any = None,
    dtype: Any = None,
    quantize: str | None = None,
    fast_path: bool | None = None,
    batch_size: int | None = None,
    num_workers: int = 0,
    revision: str | None = None,
    token: str | bool | None = None,
    trust_remote_code: bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline of ``task`` for ``model`` (a folder, a Hub repository id or a loaded model).

    ``task`` may be left out when the checkpoint names its head in ``architectures``. ``tokenizer`` /
    ``image_processor`` / ``feature_extractor`` / ``processor`` default to the model's own files. ``device``:
    ``"cpu"``, ``"cuda"``, ``"cuda:1"``, an index (``-1`` is the CPU) or a ``torch.device``; ``dtype``: a torch
    dtype or its name (``"bfloat16"``, ``"auto"``); on the CPU a half-precision dtype and ``quantize="int8"`` go
    through :func:`plugformers.precision.to_inference` (inputs cast on each call; int8 linear layers).
    ``fast_path=True`` turns on the model's inference fast path, ``False`` leaves it off; by default (None) it is
    on where it pays off: a float32 model that the pipeline loaded itself, on a CPU whose matmuls it makes faster
    (:func:`plugformers.fast_path.onednn_preferred`). A model passed in is never changed unasked.
    ``batch_size`` inputs run per forward pass (inputs are sorted by length first, results come back in input
    order). For ``feature-extraction`` on a folder written
    by sentence-transformers, its pooling, normalisation and maximum length are the defaults. Other keywords are the task's call parameters
    (their defaults for every call, e.g. ``top_k=3``) or the pipeline's options (``padding_free`` for text).
    """
    if model is None:
        raise ValueError(
            "pipeline() needs model=: a checkpoint folder, a Hub repository id or a loaded model "
            "(plugformers picks no default model)."
        )
    if "torch_dtype" in kwargs:
        dtype = kwargs.pop("torch_dtype") if dtype is None else dtype
    import torch

    from plugformers.pipelines.base import resolve_device
    from plugformers.plugins import get_registry

    registry = get_registry()
    hub: dict[str, Any] = {k: v for k, v in (("revision", revision), ("token", token)) if v is not None}
    source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    if source is not None:
        from plugformers.auto import AutoConfig

        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **hub)
    else:
        config = getattr(model, "config", None)
        if config is None:
            raise TypeError(f"model must be a checkpoint folder, a Hub repository id or a plugformers model, got {model!r:.80}.")
        source = getattr(config, "name_or_path", "") or None
    if task is None:
        task = _infer_task(model, config, registry)
    task = ALIASES.get(task, task)
    klass = pipeline_class(task)
    spec = registry.family_for_config_class(type(config))
    modality = TASKS[task].modality
    if spec is not None and spec.modality is not None and spec.modality != modality:
        raise ValueError(
            f"{task!r} is a {modality} task, but {type(config).__name__} models read {spec.modality}; "
            f"choose a {spec.modality} task or a {modality} model."
        )
    torch_dtype = _dtype(dtype, torch)
    target = resolve_device(device)
    loaded_here = isinstance(model, (str, os.PathLike))
    if loaded_here:
        auto = _auto_class(task, config, registry)
        load: dict[str, Any] = dict(model_kwargs or {})
        if torch_dtype is not None:
            load["dtype"] = torch_dtype
        if target is not None:
            load["device_map"] = str(target)
        model = auto.from_pretrained(os.fspath(model), config=config, trust_remote_code=trust_remote_code, **hub, **load)
    elif isinstance(torch_dtype, torch.dtype):
        model = model.to(torch_dtype)
    on_cpu = target is None or target.type == "cpu"
    half = torch_dtype in (torch.bfloat16, torch.float16)
    if quantize is not None or (half and on_cpu):
        from plugformers.precision import to_inference

        to_inference(model, torch_dtype if half else None, quantize)
    if fast_path is None:
        fast_path = loaded_here and on_cpu and quantize is None and _fast_path_pays_off(model)
    if fast_path:
        model.enable_fast_path()
    if task == "feature-extraction" and source is not None and os.path.isdir(source):
        for key, value in _sentence_defaults(source, explicit="pooling" in kwargs).items():
            kwargs.setdefault(key, value)
    preprocessors = _preprocessors(
        modality, task, source, hub, tokenizer=tokenizer, image_processor=image_processor,
        feature_extractor=feature_extractor, processor=processor,
    )
    return klass(model, device=target, batch_size=batch_size, num_workers=num_workers, **preprocessors, **kwargs)


def _fast_path_pays_off(model: Any) -> bool:
    """Whether the fast path is the better default for ``model``: float32 weights where oneDNN's packed matmuls are
    faster (on AVX-512 at MiniLM's shapes, 0.34-0.93x the time of a plain one from 1 to 1,024 rows, and a third
    less batch-1 latency; on AVX2-only CPUs no faster, so off there)."""
    import torch

    from plugformers import fast_path

    float32 = getattr(model, "dtype", None) == torch.float32
    return bool(getattr(model, "supports_fast_path", False)) and float32 and fast_path.onednn_preferred()


def _sentence_defaults(folder: str, *, explicit: bool) -> dict[str, Any]:
    """Pooling, normalisation and maximum length of a sentence-transformers folder (``{}`` for other folders).

    A folder whose embedding cannot be reproduced (say, a dense layer after pooling) is an error, unless the
    caller chose ``pooling=`` and so asks for the encoder's output pooled their way.
    """
    from plugformers.pipelines.pooling import sentence_folder_defaults

    try:
        return sentence_folder_defaults(folder)
    except ValueError:
        if explicit:
            return {}
        raise


def _infer_task(model: Any, config: Any, registry: Any) -> str:
    """The first task of the model's class (a loaded model), or of the checkpoint's ``architectures``.

    A class of a family that declares no modality and serves tasks of several (a bare model: text or image
    features?) does not decide it.
    """
    names = [type(model)] if not isinstance(model, (str, os.PathLike)) else list(getattr(config, "architectures", None) or [])
    for name in names:
        tasks = registry.tasks_of(name)
        if tasks and len({TASKS[t].modality for t in tasks}) == 1:
            return str(tasks[0])
    shown = ", ".join(n if isinstance(n, str) else n.__name__ for n in names) or "none"
    raise ValueError(f"cannot infer the task from the model (architectures: {shown}); pass task=, one of {', '.join(TASKS)}.")


def _auto_class(task: str, config: Any, registry: Any) -> Any:
    """The first Auto class of ``task`` that has a model for ``config``."""
    from plugformers import auto

    keys = auto_classes_for_task(task)
    for key in keys:
        if registry.model_for_config_class(type(config), key) is not None:
            return getattr(auto, key)
    auto_map = getattr(config, "auto_map", None)
    for key in keys:
        if isinstance(auto_map, dict) and key in auto_map:
            return getattr(auto, key)
    raise ValueError(
        f"{type(config).__name__} has no model for {task!r}: it needs one registered under {' or '.join(keys)}."
    )


def _dtype(dtype: Any, torch: Any) -> Any:
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or its name ('float32', 'bfloat16', ...), got {dtype!r}.")
    return value


def _preprocessors(
    modality: str,
    task: str,
    source: str | None,
    hub: dict[str, Any],
    *,
    tokenizer: Any,
    image_processor: Any,
    feature_extractor: Any,
    processor: Any,
) -> dict[str, Any]:
    """The tokenizer / image processor / feature extractor a task reads, loaded from the model's files if not given."""
    from plugformers import auto

    if processor is not None and not isinstance(processor, (str, os.PathLike)):
        tokenizer = tokenizer or getattr(processor, "tokenizer", None)
        image_processor = image_processor or getattr(processor, "image_processor", None)
        feature_extractor = feature_extractor or getattr(processor, "feature_extractor", None)
    elif processor is not None:
        source = os.fspath(processor)

    def load(value: Any, auto_class: Any, what: str) -> Any:
        if value is not None and not isinstance(value, (str, os.PathLike)):
            return value
        where = os.fspath(value) if value is not None else source
        if where is None:
            raise ValueError(f"the {task!r} pipeline needs {what}= (a folder, repo id or object): the model has no files to read it from.")
        return auto_class.from_pretrained(where, **hub)

    found: dict[str, Any] = {}
    if modality == "text":
        found["tokenizer"] = load(tokenizer, auto.AutoTokenizer, "tokenizer")
    elif modality == "image":
        found["image_processor"] = load(image_processor, auto.AutoImageProcessor, "image_processor")
    else:
        found["feature_extractor"] = load(feature_extractor, auto.AutoFeatureExtractor, "feature_extractor")
        if task == "automatic-speech-recognition":
            found["tokenizer"] = load(tokenizer, auto.AutoTokenizer, "tokenizer")
    return found
