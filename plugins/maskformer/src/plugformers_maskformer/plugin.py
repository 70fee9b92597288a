"""Registers MaskFormer (and the "detr" config type its ``decoder_config`` uses) with plugformers.

Only ``"module:Class"`` names are given here, so registering imports neither torch nor the model code.
"""

from __future__ import annotations

from plugformers import hookimpl
from plugformers.hookspecs import RegisterFamily

_PKG = "plugformers_maskformer"
_CFG = f"{_PKG}.configuration_maskformer"
_MOD = f"{_PKG}.modeling_maskformer"

_MODELS = {
    "AutoModel": f"{_MOD}:MaskFormerModel",
    "AutoModelForInstanceSegmentation": f"{_MOD}:MaskFormerForInstanceSegmentation",
    "AutoModelForUniversalSegmentation": f"{_MOD}:MaskFormerForInstanceSegmentation",
}

@hookimpl
def plugformers_register_families(register: RegisterFamily) -> None:
    register(
        "maskformer",
        config=f"{_CFG}:MaskFormerConfig",
        models=_MODELS,
        image_processor=f"{_PKG}.image_processing_maskformer:MaskFormerImageProcessor",
        exports={
            "MaskFormerPreTrainedModel": f"{_MOD}:MaskFormerPreTrainedModel",
            "MaskFormerImageProcessorPil": f"{_PKG}.image_processing_maskformer:MaskFormerImageProcessorPil",
            "MaskFormerForInstanceSegmentationOutput": f"{_MOD}:MaskFormerForInstanceSegmentationOutput",
            "MaskFormerModelOutput": f"{_MOD}:MaskFormerModelOutput",
        },
        modality="image",
        # A basic-block ResNet of four one-block stages as the backbone, a two-layer decoder of four queries.
        tiny_config={
            "backbone_config": {
                "model_type": "resnet",
                "embedding_size": 8,
                "hidden_sizes": [8, 16, 16, 32],
                "depths": [1, 1, 1, 1],
                "layer_type": "basic",
                "out_features": ["stage1", "stage2", "stage3", "stage4"],
            },
            "decoder_config": {
                "model_type": "detr",
                "d_model": 32,
                "decoder_layers": 2,
                "decoder_attention_heads": 2,
                "decoder_ffn_dim": 64,
                "num_queries": 4,
                "dropout": 0.0,
            },
            "fpn_feature_size": 32,
            "mask_feature_size": 32,
            "num_labels": 3,
        },
        example_inputs=f"{_PKG}.examples:example_inputs",
        example_preprocessor=f"{_PKG}.examples:example_preprocessor",
    )
    # MaskFormer's transformer decoder is configured by a DETR-layout config (model_type "detr"), nested in
    # config.json as "decoder_config"; registering the type lets it round-trip through AutoConfig.
    register("detr", config=f"{_CFG}:MaskFormerDetrConfig")
