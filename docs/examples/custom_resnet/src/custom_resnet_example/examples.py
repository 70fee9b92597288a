"""Example inputs for the "custom-resnet" family (named by plugin.py; imported only when used)."""

from __future__ import annotations

from typing import Any


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Random 32x32 images, plus class ids for the classifier's loss with ``labels``."""
    import torch

    from .modeling_resnet import ResnetModelForImageClassification

    g = torch.Generator().manual_seed(0)
    inputs: dict[str, Any] = {"pixel_values": torch.randn(batch_size, config.input_channels, 32, 32, generator=g)}
    if labels and issubclass(model_class, ResnetModelForImageClassification):
        inputs["labels"] = torch.randint(0, config.num_classes, (batch_size,), generator=g)
    return inputs

