"""Registers MaskFormer (and the "detr" config type its ``decoder_config`` uses) with plugformers.

Only ``"module:Class"`` names are given here, so registering imports neither torch nor the model code.
"""

from __future__ import annotations

from plugformers import hookimpl
from plugformers.hookspecs import RegisterFamily

_PKG = "plugformers_maskformer"
_CFG = f"{_PKG}.configuration_maskformer"
_MOD = f"{_PKG}.modeling_maskformer"


@hookimpl
def plugformers_register_families(register: RegisterFamily) -> None:
    register(
        "maskformer",
        config=f"{_CFG}:MaskFormerConfig",
        models={
            "AutoModel": f"{_MOD}:MaskFormerModel",
            "AutoModelForInstanceSegmentation": f"{_MOD}:MaskFormerForInstanceSegmentation",
            "AutoModelForUniversalSegmentation": f"{_MOD}:MaskFormerForInstanceSegmentation",
        },
        image_processor=f"{_PKG}.image_processing_maskformer:MaskFormerImageProcessor",
        exports={
            "MaskFormerPreTrainedModel": f"{_MOD}:MaskFormerPreTrainedModel",
            "MaskFormerForInstanceSegmentationOutput": f"{_MOD}:MaskFormerForInstanceSegmentationOutput",
            "MaskFormerModelOutput": f"{_MOD}:MaskFormerModelOutput",
        },
    )
    # MaskFormer's transformer decoder is configured by a DETR-layout config (model_type "detr"), nested in
    # config.json as "decoder_config"; registering the type lets it round-trip through AutoConfig.
    register("detr", config=f"{_CFG}:MaskFormerDetrConfig")
