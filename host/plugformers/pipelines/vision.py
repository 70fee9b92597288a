"""Image pipelines: classification, feature extraction and segmentation.

Inputs are file paths, ``http(s)`` URLs, PIL images or ``(height, width, 3)`` uint8 arrays. Each image goes
through the family's image processor (in ``num_workers`` threads when asked); images whose processed
tensors have the same shape share a batch (fixed shapes need no padding). Segmentation uses the image
processor's own ``post_process_{panoptic,instance,semantic}_segmentation`` and returns masks as PIL images
the size of the input.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch

from plugformers.pipelines.base import Feature, Pipeline, ranked, scores
from plugformers.pipelines.pooling import check_pooling, pool
from plugformers.pipelines.text import _default_function

__all__ = ["ImageClassificationPipeline", "ImageFeatureExtractionPipeline", "ImageSegmentationPipeline", "load_image"]


def load_image(image: Any, timeout: float | None = 30.0) -> Any:
    """An RGB PIL image from a path, a URL, bytes, a PIL image or an ``(H, W, 3)`` array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, (str, os.PathLike)):
        where = os.fspath(image)
        if where.startswith(("http://", "https://")):
            import urllib.request

            with urllib.request.urlopen(where, timeout=timeout) as response:
                image = response.read()
        else:
            try:
                with Image.open(where) as opened:
                    return opened.convert("RGB")
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read image {where!r}: {exc}") from exc
    if isinstance(image, (bytes, bytearray)):
        try:
            with Image.open(io.BytesIO(image)) as opened:
                return opened.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the image bytes: {exc}") from exc
    if isinstance(image, (np.ndarray, torch.Tensor)):
        array = image.cpu().numpy() if isinstance(image, torch.Tensor) else image
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(1, 2, 0)  # channels first
        if array.ndim == 2:
            array = array[..., None].repeat(3, -1)
        if array.ndim != 3 or array.shape[-1] not in (1, 3):
            raise ValueError(f"an image array must be (height, width, 3), got shape {array.shape}.")
        if array.dtype != np.uint8:
            array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8) if array.max() <= 1.0 else array.astype(np.uint8)
        return Image.fromarray(array.repeat(3, -1) if array.shape[-1] == 1 else array)
    raise TypeError(f"an image is a path, a URL, bytes, a PIL image or an array; got {type(image).__name__}.")


class _ImagePipeline(Pipeline):
    """Load, process and batch images of equal processed shape."""

    def __init__(self, model: Any, *, image_processor: Any = None, **kwargs: Any) -> None:
        if image_processor is None:
            raise ValueError(f"The {self.task} pipeline needs an image processor: pass image_processor=.")
        super().__init__(model, image_processor=image_processor, **kwargs)
        self._accepts = self._model_accepts()

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        image = load_image(item)
        processed = self.image_processor(image, return_tensors="pt")
        inputs = {
            k: v[0] for k, v in processed.items() if isinstance(v, torch.Tensor) and ("*" in self._accepts or k in self._accepts)
        }
        pixels = inputs.get("pixel_values")
        size = tuple(pixels.shape) if pixels is not None else 0
        return [Feature(inputs, size, {"size": (image.height, image.width)})]

    def run(self, features: list[Feature]) -> Any:
        batch = {k: self._to_model(torch.stack([f.inputs[k] for f in features])) for k in features[0].inputs}
        return self.model(**batch, return_dict=True)


class ImageClassificationPipeline(_ImagePipeline):
    """``[{"label", "score"}]`` best first (``top_k``, default 5) per image."""

    task = "image-classification"
    parameters = {"top_k": 5, "function_to_apply": None}

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        return list(self.run(features).logits.float().cpu())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((_, logits),) = outputs
        values = scores(logits, params["function_to_apply"] or _default_function(self.model.config))
        return ranked(values, params["top_k"], self._label)


class ImageFeatureExtractionPipeline(_ImagePipeline):
    """The last hidden state per image as nested lists (``[[...]]``), the model's pooled output with ``pool=True``,
    or one vector per image with ``pooling``.

    ``pooling="cls"`` takes the first position of the last hidden state (a ViT's [CLS] token, before any pooler
    head), ``"mean"`` averages every position it holds ([CLS] included, as text mean pooling includes
    [CLS]/[SEP]; a convolutional feature map ``(channels, height, width)`` is averaged over height and width);
    ``normalize=True`` scales the vector to unit length.
    """

    task = "image-feature-extraction"
    parameters = {"pool": False, "return_tensors": False, "pooling": None, "normalize": False}

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_params(params)
        check_pooling(checked.get("pooling"), ("cls", "mean"))
        return checked

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        output = self.run(features)
        if params["pooling"] is not None:
            if params["pool"]:
                raise ValueError("pass either pool=True (the model's pooler) or pooling=, not both.")
            hidden = output.last_hidden_state
            if hidden.dim() == 4:  # (batch, channels, height, width): positions are the pixels of the map
                if params["pooling"] == "cls":
                    raise ValueError(f"{type(self.model).__name__} outputs a feature map without a [CLS] position; use pooling='mean'.")
                hidden = hidden.flatten(2).transpose(1, 2)
            return list(pool(hidden, None, params["pooling"], params["normalize"]).cpu())
        if params["pool"]:
            pooled = getattr(output, "pooler_output", None)
            if pooled is None:
                raise ValueError(f"{type(self.model).__name__} has no pooled output; call with pool=False.")
            return list(pooled.float().cpu())
        return list(output.last_hidden_state.float().cpu())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((_, values),) = outputs
        if params["pooling"] is None:
            values = values[None]
        return values if params["return_tensors"] else values.tolist()


class ImageSegmentationPipeline(_ImagePipeline):
    """``[{"score", "label", "mask"}]`` per image: one entry per segment (``mask`` a black/white PIL image).

    ``subtask``: ``"panoptic"``, ``"instance"`` or ``"semantic"`` (default: the first of these the image
    processor can post-process). Semantic segments have no score (``None``).
    """

    task = "image-segmentation"
    parameters = {
        "subtask": None,
        "threshold": 0.9,
        "mask_threshold": 0.5,
        "overlap_mask_area_threshold": 0.5,
    }

    def _subtask(self, params: dict[str, Any]) -> str:
        available = [s for s in ("panoptic", "instance", "semantic") if hasattr(self.image_processor, f"post_process_{s}_segmentation")]
        subtask = params["subtask"]
        if subtask is None:
            if not available:
                raise ValueError(f"{type(self.image_processor).__name__} has no segmentation post-processing.")
            return available[0]
        if subtask not in available:
            raise ValueError(
                f"subtask {subtask!r} is not available for {type(self.image_processor).__name__}; "
                f"choose one of {', '.join(available) or 'none'}."
            )
        return str(subtask)

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        output = self.run(features)
        subtask = self._subtask(params)
        post = getattr(self.image_processor, f"post_process_{subtask}_segmentation")
        sizes = [f.meta["size"] for f in features]
        if subtask == "semantic":
            maps = post(output, target_sizes=sizes)
            return [(m.cpu(), None) for m in maps]
        options = {k: params[k] for k in ("threshold", "mask_threshold", "overlap_mask_area_threshold")}
        results = post(output, target_sizes=sizes, **options)
        return [(r["segmentation"].cpu(), r["segments_info"]) for r in results]

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        from PIL import Image

        ((_, (segmentation, segments)),) = outputs
        seg = segmentation.numpy()
        entries = []
        if segments is None:
            for label in np.unique(seg):
                mask = Image.fromarray(((seg == label) * 255).astype(np.uint8), mode="L")
                entries.append({"score": None, "label": self._label(int(label)), "mask": mask})
            return entries
        for segment in segments:
            mask = Image.fromarray(((seg == segment["id"]) * 255).astype(np.uint8), mode="L")
            entries.append({"score": segment["score"], "label": self._label(int(segment["label_id"])), "mask": mask})
        return entries
