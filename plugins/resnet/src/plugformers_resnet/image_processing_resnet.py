"""`ConvNextImageProcessor`: the preprocessing that the reference library's ResNet checkpoints name.

Their ``preprocessor_config.json`` says ``"image_processor_type": "ConvNextImageProcessor"`` (older ones
``"feature_extractor_type": "ConvNextFeatureExtractor"``), so the class keeps that name. Below 384 pixels
the image is resized so its shortest edge is ``shortest_edge / crop_pct`` and then center-cropped to a
``shortest_edge`` square (the usual "resize 256, crop 224" evaluation); from 384 up it is warped to the
square directly. Then rescale and normalize, as any image processor.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from plugformers.image_processing_utils import BaseImageProcessor, BatchFeature, get_size_dict
from plugformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, PILImageResampling

__all__ = ["ConvNextImageProcessor", "ConvNextImageProcessorPil"]

# At and above this size the image is resized to the square directly, without crop_pct.
_NO_CROP_FROM = 384


class ConvNextImageProcessor(BaseImageProcessor):
    """Shortest-edge resize by ``1 / crop_pct``, center crop to ``size["shortest_edge"]``, rescale, normalize."""

    default_to_square: ClassVar[bool] = False

    do_resize = True
    size: Any = {"shortest_edge": 384}
    resample: Any = PILImageResampling.BICUBIC
    do_rescale = True
    do_normalize = True
    image_mean: Any = IMAGENET_STANDARD_MEAN
    image_std: Any = IMAGENET_STANDARD_STD

    def __init__(self, crop_pct: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crop_pct = _check_crop_pct(224 / 256 if crop_pct is None else crop_pct)
        if getattr(self, "size", None) is not None and "shortest_edge" not in self.size:
            raise ValueError(f"{type(self).__name__} needs size={{'shortest_edge': n}}, got {self.size}.")

    def preprocess(self, images: Any, *, crop_pct: float | None = None, **kwargs: Any) -> BatchFeature:
        """Preprocess ``images`` into ``pixel_values``; any setting (and ``crop_pct``) can be overridden per call."""
        crop_pct = _check_crop_pct(self.crop_pct if crop_pct is None else crop_pct)
        do_resize = kwargs.pop("do_resize", self.do_resize)
        if not do_resize:
            return super().preprocess(images, do_resize=False, **kwargs)
        size = get_size_dict(kwargs.pop("size", self.size), default_to_square=False)
        if "shortest_edge" not in size:
            raise ValueError(f"{type(self).__name__} needs size={{'shortest_edge': n}}, got {size}.")
        edge = size["shortest_edge"]
        if edge >= _NO_CROP_FROM:
            return super().preprocess(images, do_resize=True, size={"height": edge, "width": edge}, **kwargs)
        resized = {"shortest_edge": int(edge / crop_pct)}
        square = {"height": edge, "width": edge}
        if not kwargs.get("do_center_crop", self.do_center_crop):
            return super().preprocess(
                images, do_resize=True, size=resized, do_center_crop=True, crop_size=square, **kwargs
            )
        # A crop_size crop as well: the crop_pct square first (no rescaling yet), then the usual pipeline.
        return_tensors = kwargs.pop("return_tensors", None)
        passthrough = {k: kwargs[k] for k in ("use_torch", "device", "input_data_format") if k in kwargs}
        first = super().preprocess(
            images,
            do_resize=True,
            size=resized,
            do_center_crop=True,
            crop_size=square,
            do_rescale=False,
            do_normalize=False,
            do_pad=False,
            **passthrough,
        )["pixel_values"]
        kwargs.pop("input_data_format", None)
        return super().preprocess(
            first,
            do_resize=False,
            input_data_format="channels_first",
            return_tensors=return_tensors,
            **kwargs,
        )


class ConvNextImageProcessorPil(ConvNextImageProcessor):
    """:class:`ConvNextImageProcessor` on the "pil" backend by default; saved as a ``ConvNextImageProcessor``."""

    default_backend = "pil"


def _check_crop_pct(crop_pct: Any) -> float:
    if (
        isinstance(crop_pct, bool)
        or not isinstance(crop_pct, (int, float))
        or not math.isfinite(crop_pct)
        or not 0 < crop_pct <= 1
    ):
        raise ValueError(f"crop_pct must be a number in (0, 1], got {crop_pct!r}.")
    return float(crop_pct)
