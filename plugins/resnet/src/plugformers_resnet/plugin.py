"""Registers the ResNet family with plugformers (names only; nothing heavy is imported here)."""

from __future__ import annotations

from typing import Any

from plugformers import hookimpl

_M = "plugformers_resnet.modeling_resnet"
_IP = "plugformers_resnet.image_processing_resnet"


@hookimpl
def plugformers_register_families(register: Any) -> None:
    register(
        "resnet",
        config="plugformers_resnet.configuration_resnet:ResNetConfig",
        models={
            "AutoModel": f"{_M}:ResNetModel",
            "AutoModelForImageClassification": f"{_M}:ResNetForImageClassification",
            "AutoBackbone": f"{_M}:ResNetBackbone",
        },
        image_processor=f"{_IP}:ConvNextImageProcessor",
        exports={
            "ResNetPreTrainedModel": f"{_M}:ResNetPreTrainedModel",
            # The name older ResNet checkpoints write as "feature_extractor_type"; same class.
            "ConvNextFeatureExtractor": f"{_IP}:ConvNextImageProcessor",
        },
    )
