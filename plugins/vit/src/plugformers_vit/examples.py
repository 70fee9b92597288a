"""Example inputs and an offline image processor for ViT, named by the registration (tests, demo, export).

Imported only when the host or a test asks for them: registering the family stays free of torch.
"""

from __future__ import annotations

from typing import Any


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Random images of the config's size and, with ``labels``, the class ids or the patch mask the loss needs."""
    import torch

    from plugformers_vit.modeling_vit import ViTForImageClassification, ViTForMaskedImageModeling

    g = torch.Generator().manual_seed(0)
    size = config.image_size
    inputs: dict[str, Any] = {
        "pixel_values": torch.randn(batch_size, config.num_channels, size, size, generator=g)
    }
    if not labels:
        return inputs
    if issubclass(model_class, ViTForImageClassification):
        inputs["labels"] = torch.randint(0, config.num_labels, (batch_size,), generator=g)
    elif issubclass(model_class, ViTForMaskedImageModeling):
        # Masked image modelling has no labels: its loss reconstructs the patches this mask hides.
        patches = (size // config.patch_size) ** 2
        inputs["bool_masked_pos"] = torch.rand(batch_size, patches, generator=g) > 0.5
    return inputs


def example_preprocessor(config: Any) -> Any:
    """The ViT image processor, resizing to the config's ``image_size``."""
    from plugformers_vit.image_processing_vit import ViTImageProcessor

    return ViTImageProcessor(size={"height": config.image_size, "width": config.image_size})
