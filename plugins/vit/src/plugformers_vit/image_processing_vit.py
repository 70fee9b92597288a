"""`ViTImageProcessor`: resize to 224x224 (bilinear), rescale to [0, 1], normalise with mean = std = 0.5.

Everything is configured through the host base's settings, so every setting can be overridden in the
constructor (``ViTImageProcessor(resample="PIL.Image.BOX", do_normalize=False)``) or per call. Images go
through the batched torch path by default (the reference library's default "torchvision" backend; CUDA
tensors stay on the GPU) or through Pillow one by one with ``backend="pil"``, which is what
``ViTImageProcessorPil`` (the reference's name for that backend) starts with.
"""

from __future__ import annotations

from typing import Any

from plugformers.image_processing_utils import BaseImageProcessor
from plugformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, PILImageResampling
from plugformers.utils.logging import warn_once

__all__ = ["ViTFeatureExtractor", "ViTImageProcessor", "ViTImageProcessorPil"]


class ViTImageProcessor(BaseImageProcessor):
    """The ViT image processor; the defaults are those of the published ViT checkpoints."""

    model_input_names = ["pixel_values"]

    do_resize = True
    size = {"height": 224, "width": 224}
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD


class ViTImageProcessorPil(ViTImageProcessor):
    """:class:`ViTImageProcessor` on the "pil" backend by default; saved as a ``ViTImageProcessor``."""

    default_backend = "pil"


class ViTFeatureExtractor(ViTImageProcessor):
    """Deprecated name of :class:`ViTImageProcessor`, kept because older guides and checkpoints use it.

    It saves itself as a ``ViTImageProcessor`` (the type name current readers, the reference library
    included, recognise), so a folder it writes loads anywhere.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warn_once(
            "ViTFeatureExtractor is deprecated and will be removed; use ViTImageProcessor instead "
            "(same settings, same results).",
            FutureWarning,
        )
        super().__init__(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out[self._type_key] = ViTImageProcessor.__name__
        return out
