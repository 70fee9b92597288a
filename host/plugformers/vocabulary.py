"""The words plugformers and its plugins share: Auto classes, tasks, modalities and checkpoint file names.

This is the one place they are spelled. The package namespace, the Auto classes, the registry (which
refuses an unknown Auto key), the command line, remote-code checks and the docs' table all read it.
Standard library only, so anything may import it without importing torch or a plugin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ADAPTER_CONFIG_NAME",
    "ADAPTER_SAFE_WEIGHTS_NAME",
    "ADAPTER_WEIGHTS_NAME",
    "ADDED_TOKENS_FILE",
    "AUTO_MODEL_CLASSES",
    "AUTO_PREPROCESSING_CLASSES",
    "CONFIG_NAME",
    "CONFORMANCE_CHECKS",
    "EXPORT_FORMATS",
    "MODALITIES",
    "PICKLE_WEIGHTS_INDEX_NAME",
    "PICKLE_WEIGHTS_NAME",
    "PREPROCESSOR_CONFIG_NAME",
    "PROCESSOR_CONFIG_NAME",
    "QUANTIZE_MODES",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "SPECIAL_TOKENS_MAP_FILE",
    "TASKS",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "AutoModelClass",
    "Task",
    "all_auto_class_names",
    "auto_classes_for_task",
    "closest",
    "tasks_for",
]

# ----- checkpoint files (the reference library's names, so folders move between the two) ---------------

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
PICKLE_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
PROCESSOR_CONFIG_NAME = "processor_config.json"
# A PEFT adapter saved alone (peft's own names): its config, which names the base model, and its weights.
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_SAFE_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_WEIGHTS_NAME = "adapter_model.bin"

#: ``plugformers export`` formats and the file each writes.
EXPORT_FORMATS: dict[str, str] = {"onnx": "model.onnx", "torch-export": "model.pt2"}
#: What ``to_inference(quantize=...)``, ``pipeline(quantize=...)`` and ``predict --quantize`` accept.
QUANTIZE_MODES: tuple[str, ...] = ("int8",)

# ----- modalities: what a family's models read, and the input names its forward takes -------------------

#: The main model inputs of each modality, as ``forward`` keyword names.
MODALITIES: dict[str, tuple[str, ...]] = {
    "text": ("input_ids", "attention_mask"),
    "image": ("pixel_values",),
    "audio": ("input_values", "attention_mask"),
}


@dataclass(frozen=True)
class Task:
    """A job a user names (``pipeline("text-classification")``, ``plugformers predict --task ...``)."""

    name: str
    modality: str
    description: str


@dataclass(frozen=True)
class AutoModelClass:
    """An ``AutoModel...`` class: which heads it builds and the tasks a model registered under it serves.

    ``modality`` is None where any modality's family may register (the bare model, pretraining heads);
    such a class serves the task of its list whose modality is the family's.
    """

    name: str
    description: str
    modality: str | None
    tasks: tuple[str, ...] = ()


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("feature-extraction", "text", "Per-token hidden states, or pooled sentence embeddings."),
        Task("text-classification", "text", "A label (or a score per label) for a text or a text pair."),
        Task("zero-shot-classification", "text", "Labels chosen at call time, scored by a natural-language-inference head."),
        Task("token-classification", "text", "A label per word or token (named entities, parts of speech)."),
        Task("question-answering", "text", "The span of a context that answers a question."),
        Task("fill-mask", "text", "The likeliest tokens for each mask token in a text."),
        Task("image-feature-extraction", "image", "Pooled or per-patch features of an image."),
        Task("image-classification", "image", "A label for an image."),
        Task("image-segmentation", "image", "Masks with labels: semantic, instance or panoptic."),
        Task("automatic-speech-recognition", "audio", "The transcription of spoken audio."),
        Task("audio-classification", "audio", "A label for a clip of audio."),
        Task("audio-feature-extraction", "audio", "Per-frame hidden states, or pooled clip embeddings."),
    )
}

AUTO_MODEL_CLASSES: dict[str, AutoModelClass] = {
    a.name: a
    for a in (
        AutoModelClass(
            "AutoModel",
            "The bare model (hidden states out) of any registered family.",
            None,
            ("feature-extraction", "image-feature-extraction", "audio-feature-extraction"),
        ),
        AutoModelClass("AutoModelForPreTraining", "The head a family was pretrained with.", None),
        AutoModelClass(
            "AutoModelForSequenceClassification",
            "Text classification and regression heads.",
            "text",
            ("text-classification", "zero-shot-classification"),
        ),
        AutoModelClass("AutoModelForTokenClassification", "Per-token classification heads.", "text", ("token-classification",)),
        AutoModelClass("AutoModelForQuestionAnswering", "Extractive question answering heads.", "text", ("question-answering",)),
        AutoModelClass("AutoModelForMaskedLM", "Masked language modelling heads.", "text", ("fill-mask",)),
        AutoModelClass("AutoModelForMultipleChoice", "Multiple choice heads.", "text"),
        AutoModelClass("AutoModelForNextSentencePrediction", "Next sentence prediction heads.", "text"),
        AutoModelClass("AutoModelForImageClassification", "Image classification heads.", "image", ("image-classification",)),
        AutoModelClass("AutoModelForMaskedImageModeling", "Masked image modelling heads.", "image"),
        AutoModelClass(
            "AutoModelForUniversalSegmentation",
            "Semantic, instance and panoptic segmentation models.",
            "image",
            ("image-segmentation",),
        ),
        AutoModelClass("AutoModelForInstanceSegmentation", "Instance segmentation models.", "image", ("image-segmentation",)),
        AutoModelClass("AutoModelForSemanticSegmentation", "Semantic segmentation models.", "image", ("image-segmentation",)),
        AutoModelClass("AutoModelForCTC", "Speech recognition heads trained with CTC.", "audio", ("automatic-speech-recognition",)),
        AutoModelClass(
            "AutoModelForAudioClassification", "Utterance-level audio classification.", "audio", ("audio-classification",)
        ),
        AutoModelClass("AutoModelForAudioFrameClassification", "Frame-level audio classification.", "audio"),
        AutoModelClass("AutoModelForAudioXVector", "Speaker-embedding (x-vector) heads.", "audio"),
        AutoModelClass("AutoBackbone", "Feature-map backbones for composite vision models.", "image"),
    )
}

#: The Auto classes that are not models, with what each builds.
AUTO_PREPROCESSING_CLASSES: dict[str, str] = {
    "AutoConfig": "The configuration class of a checkpoint's model_type.",
    "AutoTokenizer": "The family's tokenizer (fast when it has one).",
    "AutoImageProcessor": "The family's image processor.",
    "AutoFeatureExtractor": "The family's audio feature extractor.",
    "AutoProcessor": "The family's processor, else its tokenizer, image processor or feature extractor.",
}


#: The checks of the conformance suite (:mod:`plugformers.testing.conformance`) a registered model class
#: runs. A plugin skips one only by naming it, with the reason, in its registration's ``skips``.
CONFORMANCE_CHECKS: dict[str, str] = {
    "forward": "forward pass on the tiny config, in eval mode, deterministic",
    "backward": "a loss (or the outputs' sum) back-propagates to every trainable parameter",
    "save_load": "save_pretrained then from_pretrained through the Auto class it is registered under",
    "outputs": "output_hidden_states, output_attentions and return_dict=False",
    "dtypes": "from_pretrained(dtype=torch.bfloat16) and float16 give models of that dtype",
    "base_head_loading": "a base checkpoint loads into every head and a head checkpoint into the base",
    "gradient_checkpointing": "training with gradient checkpointing gives the same gradients",
    "model_api": "declared tied weights share a tensor; get_encoder, get_text_config and the input-grad hooks work",
    "compile": "torch.compile(fullgraph=True) gives the eager outputs",
    "export": "torch.export.export gives the eager outputs",
    "onnx": "ONNX export runs in onnxruntime with the eager outputs",
}


def all_auto_class_names() -> tuple[str, ...]:
    """Every Auto class plugformers defines, models first."""
    return (*AUTO_MODEL_CLASSES, *AUTO_PREPROCESSING_CLASSES)


def tasks_for(auto_class: str, modality: str | None) -> tuple[str, ...]:
    """The tasks a model registered under ``auto_class`` serves for a family of ``modality``, default first."""
    entry = AUTO_MODEL_CLASSES.get(auto_class)
    if entry is None:
        return ()
    return tuple(t for t in entry.tasks if modality is None or TASKS[t].modality == modality)


def auto_classes_for_task(task: str) -> tuple[str, ...]:
    """The Auto classes whose models serve ``task``, in the order a pipeline tries them."""
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}{closest(task, TASKS)}; tasks: {', '.join(TASKS)}.")
    return tuple(name for name, entry in AUTO_MODEL_CLASSES.items() if task in entry.tasks)


def closest(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'X'?)"`` for the nearest of ``choices``, or ``""`` when none is near."""
    import difflib  # only on the error path: keeps `import plugformers` light

    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
