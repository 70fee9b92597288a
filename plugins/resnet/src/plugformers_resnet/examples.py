"""Example inputs and an offline image processor for ResNet, named by the registration (tests, demo, export).

Imported only when the host or a test asks for them: registering the family stays free of torch.
"""

from __future__ import annotations

from typing import Any

#: Side of the example images: every stage still has at least one pixel after the stride-32 downsampling.
IMAGE_SIZE = 32


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Random 32x32 images and, with ``labels``, class ids for the classification head."""
    import torch

    from plugformers_resnet.modeling_resnet import ResNetForImageClassification

    g = torch.Generator().manual_seed(0)
    inputs: dict[str, Any] = {
        "pixel_values": torch.randn(batch_size, config.num_channels, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    }
    if labels and issubclass(model_class, ResNetForImageClassification):
        inputs["labels"] = torch.randint(0, max(config.num_labels, 1), (batch_size,), generator=g)
    return inputs


def example_preprocessor(config: Any) -> Any:
    """The family's image processor with its defaults (a convolutional network takes any size)."""
    from plugformers_resnet.image_processing_resnet import ConvNextImageProcessor

    return ConvNextImageProcessor()
