"""What the benchmark runs for each model family: the head class, the reference config, inputs and outputs.

Both implementations load the same checkpoint (written once by the reference library at its default config),
get the same inputs and are compared on the same output tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAMILIES = ["distilbert", "vit", "wav2vec2", "resnet", "maskformer"]
# Height and width of the generated photographs the image processors are measured on.
PHOTO_HW = (480, 640)
MASKFORMER_STAGES = ["stage1", "stage2", "stage3", "stage4"]


@dataclass(frozen=True)
class FamilySpec:
    """One family's benchmark setup (class names are the same in both libraries)."""

    name: str
    model_class: str
    # The batch named in the family's issue, and what one sample of it is (for the table).
    batch: int
    shape_note: str
    outputs: tuple[str, ...]
    # Name of our opt-in fast-path method (called with no arguments), or None.
    fast_path: str | None = None
    image_processor: str | None = None
    # Whether that processor has the batched torch path (issue 3 wants it >= 2x its PIL path).
    torch_image_path: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


SPECS: dict[str, FamilySpec] = {
    "distilbert": FamilySpec(
        "distilbert", "DistilBertForSequenceClassification", 8, "x128 tokens", ("logits",), fast_path="enable_fast_path",
        extra={"seq_len": 128},
    ),
    "vit": FamilySpec(
        "vit", "ViTForImageClassification", 8, "x224x224", ("logits",), fast_path="enable_fast_path",
        image_processor="ViTImageProcessor", torch_image_path=True, extra={"size": 224},
    ),
    "wav2vec2": FamilySpec(
        "wav2vec2", "Wav2Vec2ForCTC", 4, "x4 s of 16 kHz audio", ("logits",), fast_path="enable_fast_path",
        extra={"samples": 64000},
    ),
    "resnet": FamilySpec(
        "resnet", "ResNetForImageClassification", 8, "x224x224", ("logits",), fast_path="enable_fast_path",
        image_processor="ConvNextImageProcessor", torch_image_path=True, extra={"size": 224},
    ),
    "maskformer": FamilySpec(
        "maskformer", "MaskFormerForInstanceSegmentation", 2, "x384x384",
        ("class_queries_logits", "masks_queries_logits"), fast_path="enable_fast_path",
        image_processor="MaskFormerImageProcessor", torch_image_path=True,
        note="ResNet-50 backbone (the reference's default Swin backbone has no plugformers plugin)",
        extra={"size": 384},
    ),
}


def reference_config(transformers: Any, family: str) -> Any:
    """The default config of ``family`` in the reference library (MaskFormer with a ResNet-50 backbone)."""
    if family == "maskformer":
        backbone = transformers.ResNetConfig(out_features=MASKFORMER_STAGES)
        return transformers.MaskFormerConfig(backbone_config=backbone)
    return transformers.AutoConfig.for_model(family)


def make_inputs(family: str, batch: int, *, vocab_size: int = 100, seed: int = 0) -> dict[str, Any]:
    """Deterministic model inputs for ``family`` at ``batch``."""
    import torch

    spec = SPECS[family]
    gen = torch.Generator().manual_seed(seed)
    if family == "distilbert":
        seq = spec.extra["seq_len"]
        ids = torch.randint(0, vocab_size, (batch, seq), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if family == "wav2vec2":
        return {"input_values": torch.randn(batch, spec.extra["samples"], generator=gen)}
    size = spec.extra["size"]
    return {"pixel_values": torch.randn(batch, 3, size, size, generator=gen)}


SYLLABLES = [
    "ka", "to", "ri", "men", "sa", "lo", "ver", "tan", "qui", "bel", "dor", "fi", "nu", "ple", "gra", "sho",
    "win", "ter", "ex", "ab", "pro", "con", "ing", "ed", "ly", "tion", "al", "er", "re", "un",
]


def words(count: int, seed: int) -> list[str]:
    """``count`` made-up words of 1-4 syllables (the generated vocabulary and corpus share them)."""
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(count)]
