"""Example inputs and an offline image processor for MaskFormer, named by the registration (tests, demo, export).

Imported only when the host or a test asks for them: registering the family stays free of torch.
"""

from __future__ import annotations

from typing import Any

#: Side of the example images: the backbone's stride-32 stage still has one pixel.
IMAGE_SIZE = 32


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Random 32x32 images and, with ``labels``, two or three binary masks with a class each per image."""
    import torch

    from plugformers_maskformer.modeling_maskformer import MaskFormerForInstanceSegmentation

    g = torch.Generator().manual_seed(0)
    channels = getattr(config.backbone_config, "num_channels", 3)
    inputs: dict[str, Any] = {
        "pixel_values": torch.randn(batch_size, channels, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    }
    if labels and issubclass(model_class, MaskFormerForInstanceSegmentation):
        masks = [(torch.rand(2 + i % 2, IMAGE_SIZE, IMAGE_SIZE, generator=g) > 0.5).float() for i in range(batch_size)]
        inputs["mask_labels"] = masks
        inputs["class_labels"] = [torch.randint(0, config.num_labels, (len(m),), generator=g) for m in masks]
    return inputs


def example_preprocessor(config: Any) -> Any:
    """The MaskFormer image processor with its defaults."""
    from plugformers_maskformer.image_processing_maskformer import MaskFormerImageProcessor

    return MaskFormerImageProcessor()
