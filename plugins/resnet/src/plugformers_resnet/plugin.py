"""Registers the ResNet family with plugformers (names only; nothing heavy is imported here)."""

from __future__ import annotations

from typing import Any

from plugformers import hookimpl

_PKG = "plugformers_resnet"
_M = f"{_PKG}.modeling_resnet"
_IP = f"{_PKG}.image_processing_resnet"

_MODELS = {
    "AutoModel": f"{_M}:ResNetModel",
    "AutoModelForImageClassification": f"{_M}:ResNetForImageClassification",
    "AutoBackbone": f"{_M}:ResNetBackbone",
}

@hookimpl
def plugformers_register_families(register: Any) -> None:
    register(
        "resnet",
        config=f"{_PKG}.configuration_resnet:ResNetConfig",
        models=_MODELS,
        image_processor=f"{_IP}:ConvNextImageProcessor",
        exports={
            "ResNetPreTrainedModel": f"{_M}:ResNetPreTrainedModel",
            # The name older ResNet checkpoints write as "feature_extractor_type"; same class.
            "ConvNextFeatureExtractor": f"{_IP}:ConvNextImageProcessor",
            "ConvNextImageProcessorPil": f"{_IP}:ConvNextImageProcessorPil",
        },
        modality="image",
        tiny_config={"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 2], "num_labels": 3},
        example_inputs=f"{_PKG}.examples:example_inputs",
        example_preprocessor=f"{_PKG}.examples:example_preprocessor",
        checkpoints={"resnet-digits": f"{_PKG}:checkpoints/resnet-digits"},
        skips={
            ref.rpartition(":")[2]: {
                "gradient_checkpointing": "supports_gradient_checkpointing is False: like the reference's ResNet, "
                "its few convolution stages have no recomputation hook",
            }
            for ref in _MODELS.values()
        },
    )
