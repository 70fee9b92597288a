"""Registers the ViT family with the plugformers host (names only: nothing is imported here)."""

from __future__ import annotations

from typing import Any

from plugformers import hookimpl

_PKG = "plugformers_vit"
_M = f"{_PKG}.modeling_vit"
_P = f"{_PKG}.image_processing_vit"

_MODELS = {
    "AutoModel": f"{_M}:ViTModel",
    "AutoModelForImageClassification": f"{_M}:ViTForImageClassification",
    "AutoModelForMaskedImageModeling": f"{_M}:ViTForMaskedImageModeling",
}


@hookimpl
def plugformers_register_families(register: Any) -> None:
    """Declare the ``vit`` model type: its config, models per Auto class and image processor."""
    register(
        "vit",
        config=f"{_PKG}.configuration_vit:ViTConfig",
        models=_MODELS,
        image_processor=f"{_P}:ViTImageProcessor",
        exports={
            "ViTPreTrainedModel": f"{_M}:ViTPreTrainedModel",
            "ViTFeatureExtractor": f"{_P}:ViTFeatureExtractor",
            "ViTImageProcessorPil": f"{_P}:ViTImageProcessorPil",
        },
        modality="image",
        tiny_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "image_size": 32,
            "patch_size": 8,
            "encoder_stride": 8,
            "num_labels": 3,
        },
        example_inputs=f"{_PKG}.examples:example_inputs",
        example_preprocessor=f"{_PKG}.examples:example_preprocessor",
        checkpoints={"vit-digits": f"{_PKG}:checkpoints/vit-digits"},
    )
