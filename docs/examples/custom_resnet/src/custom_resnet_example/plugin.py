"""Entry-point hook: tells plugformers about the "custom-resnet" family (names only, nothing imported)."""

from __future__ import annotations

from plugformers import hookimpl

_CONFIG = "custom_resnet_example.configuration_resnet:ResnetConfig"
_MODELING = "custom_resnet_example.modeling_resnet"


@hookimpl
def plugformers_register_families(register):
    register(
        "custom-resnet",
        config=_CONFIG,
        models={
            "AutoModel": f"{_MODELING}:ResnetModel",
            "AutoModelForImageClassification": f"{_MODELING}:ResnetModelForImageClassification",
        },
    )
