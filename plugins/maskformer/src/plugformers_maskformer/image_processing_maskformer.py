"""MaskFormer's image processor: images to padded ``pixel_values``/``pixel_mask``, segmentation maps to per-segment
binary ``mask_labels`` and ``class_labels``, and model outputs back to semantic, instance or panoptic maps.

Saved as ``preprocessor_config.json`` with the reference library's keys, so processors load both ways.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from plugformers.feature_extraction_utils import BatchFeature
from plugformers.image_processing_utils import BaseImageProcessor, channels_last_output, get_size_dict
from plugformers.image_transforms import (
    convert_to_rgb,
    normalize,
    rescale,
    resize,
    torch_convert_to_rgb,
    torch_normalize,
    torch_resize,
)
from plugformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    PILImageResampling,
    is_torch_tensor,
    make_list_of_images,
    resolve_resample,
    to_channel_first_array,
)

__all__ = ["MaskFormerImageProcessor", "MaskFormerImageProcessorPil", "convert_segmentation_map_to_binary_masks"]


def _aspect_preserving_size(height: int, width: int, shortest: int, longest: int | None) -> tuple[int, int]:
    """Short side to ``shortest`` unless that would push the long side past ``longest`` (DETR-style rounding)."""
    short, long = min(height, width), max(height, width)
    target = shortest
    exact: float | None = None
    if longest is not None and long / short * shortest > longest:
        exact = longest * short / long
        target = round(exact)
    if short == target:
        return height, width
    scale_from = exact if exact is not None else target
    if width < height:
        return int(scale_from * height / width), target
    return target, int(scale_from * width / height)


def _target_size(height: int, width: int, size: dict[str, int], size_divisor: int) -> tuple[int, int]:
    if "shortest_edge" in size and "longest_edge" in size:
        new_h, new_w = _aspect_preserving_size(height, width, int(size["shortest_edge"]), int(size["longest_edge"]))
    elif "shortest_edge" in size:
        new_h, new_w = _aspect_preserving_size(height, width, int(size["shortest_edge"]), None)
    elif "max_height" in size and "max_width" in size:
        scale = min(size["max_height"] / height, size["max_width"] / width)
        new_h, new_w = max(int(height * scale), 1), max(int(width * scale), 1)
    elif "height" in size and "width" in size:
        new_h, new_w = int(size["height"]), int(size["width"])
    else:
        raise ValueError(
            f"size must have 'shortest_edge' (+ 'longest_edge'), 'height' + 'width' or 'max_height' + 'max_width', "
            f"got {size!r}."
        )
    if size_divisor and size_divisor > 0:
        new_h = int(math.ceil(new_h / size_divisor) * size_divisor)
        new_w = int(math.ceil(new_w / size_divisor) * size_divisor)
    return new_h, new_w


def convert_segmentation_map_to_binary_masks(
    segmentation_map: np.ndarray,
    instance_id_to_semantic_id: dict[int, int] | None = None,
    ignore_index: int | None = None,
    do_reduce_labels: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One binary mask per id present in ``segmentation_map`` (``ignore_index`` skipped) and each mask's class.

    With ``do_reduce_labels`` id 0 (background) becomes ``ignore_index`` and the others shift down by one. With
    ``instance_id_to_semantic_id`` the map holds instance ids, and the classes come from that mapping.
    """
    if do_reduce_labels and ignore_index is None:
        raise ValueError("do_reduce_labels=True needs an ignore_index for the background pixels.")
    seg = np.asarray(segmentation_map)
    if do_reduce_labels:
        assert ignore_index is not None  # checked above
        seg = np.where(seg == 0, ignore_index, seg - 1)
    ids = np.unique(seg)
    if ignore_index is not None:
        ids = ids[ids != ignore_index]
    masks = (
        np.stack([seg == i for i in ids]).astype(np.float32)
        if len(ids)
        else np.zeros((0, *seg.shape), dtype=np.float32)
    )
    if instance_id_to_semantic_id is None:
        return masks, ids.astype(np.int64)
    classes = np.zeros(len(ids), dtype=np.int64)
    for n, instance in enumerate(ids):
        key = int(instance) + 1 if do_reduce_labels else int(instance)
        if key not in instance_id_to_semantic_id:
            raise ValueError(f"Instance id {key} of the segmentation map is missing from instance_id_to_semantic_id.")
        semantic = int(instance_id_to_semantic_id[key])
        classes[n] = semantic - 1 if do_reduce_labels else semantic
    return masks, classes


def _segmentation_map_array(seg: Any, index: int) -> np.ndarray:
    """A segmentation map (PIL, array or tensor; ``(H, W)`` or ``(1, H, W)``) as an integer ``(H, W)`` array."""
    if is_torch_tensor(seg):
        seg = seg.detach().cpu().numpy()
    elif not isinstance(seg, np.ndarray):
        try:
            seg = np.asarray(seg)
        except Exception as exc:
            raise TypeError(f"segmentation map {index} of type {type(seg).__name__} cannot be read: {exc}") from exc
    if seg.ndim == 3 and 1 in (seg.shape[0], seg.shape[-1]):
        seg = seg.reshape(seg.shape[1:] if seg.shape[0] == 1 else seg.shape[:-1])
    if seg.ndim != 2:
        raise ValueError(f"segmentation map {index} must be (height, width), got shape {tuple(seg.shape)}.")
    if np.issubdtype(seg.dtype, np.floating):
        if not np.all(np.isfinite(seg)) or not np.all(seg == np.round(seg)):
            raise ValueError(f"segmentation map {index} must hold integer ids, got non-integer values.")
    elif not (np.issubdtype(seg.dtype, np.integer) or seg.dtype == np.bool_):
        raise ValueError(f"segmentation map {index} must hold integer ids, got dtype {seg.dtype}.")
    return seg.astype(np.int64)


def _to_channels_last(pixel_values: Any) -> Any:
    """Channel-first images (one batch array/tensor or a list of single images) moved to channel-last."""
    if isinstance(pixel_values, list):
        return [_to_channels_last(pv[None])[0] for pv in pixel_values]
    if is_torch_tensor(pixel_values):
        return pixel_values.permute(0, 2, 3, 1)
    return np.moveaxis(pixel_values, 1, -1)


class MaskFormerImageProcessor(BaseImageProcessor):
    """Resize (short side 800, long side at most 1333, rounded up to a multiple of 32), rescale, normalise, pad.

    ``preprocess(images, segmentation_maps=None, instance_id_to_semantic_id=None, return_tensors=None)`` returns
    ``pixel_values`` and ``pixel_mask`` (1 on real pixels, 0 on padding), plus ``mask_labels`` and
    ``class_labels`` (one entry per image) when segmentation maps are given.
    """

    model_input_names = ["pixel_values", "pixel_mask"]
    default_to_square = False
    do_resize = True
    size = {"shortest_edge": 800, "longest_edge": 1333}
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    # Always set by __init__ (default 32); 0 means no rounding.
    size_divisor: int

    def __init__(self, **kwargs: Any) -> None:
        # Names older saved configs use for the same settings.
        if "size_divisibility" in kwargs:
            kwargs.setdefault("size_divisor", kwargs.pop("size_divisibility"))
        if "reduce_labels" in kwargs:
            kwargs.setdefault("do_reduce_labels", kwargs.pop("reduce_labels"))
        # Legacy configs (the Hub's facebook/maskformer-*) give "size": 800 with "max_size": 1333; as in the
        # reference, max_size caps the long side of an int (or the default) size and is ignored otherwise.
        max_size = kwargs.pop("max_size", None)
        size = kwargs.pop("size", None)
        if size is None:
            size = dict(type(self).size)
            if max_size is not None:
                size["longest_edge"] = max_size
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            size = get_size_dict(int(size), default_to_square=False, max_size=max_size)
        kwargs["size"] = size
        kwargs.setdefault("size_divisor", 32)
        kwargs.setdefault("do_reduce_labels", False)
        for key in ("ignore_index", "num_labels", "pad_size"):
            if kwargs.get(key, 0) is None:
                kwargs.pop(key)
        super().__init__(**kwargs)
        divisor = self.size_divisor
        if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 0:
            raise ValueError(f"size_divisor must be a non-negative int, got {divisor!r}.")

    # -- preprocessing ----------------------------------------------------------------------------------------

    def preprocess(  # type: ignore[override]
        self,
        images: Any,
        segmentation_maps: Any = None,
        instance_id_to_semantic_id: list[dict[int, int]] | dict[int, int] | None = None,
        *,
        return_tensors: str | None = None,
        use_torch: bool | None = None,
        device: Any = None,
        input_data_format: Any = None,
        data_format: Any = "channels_first",
        **overrides: Any,
    ) -> BatchFeature:
        """Images (and optionally their segmentation maps) to model inputs; keyword arguments override settings.

        Like the other image processors, the "torchvision" backend (the default; or ``use_torch=True``) takes
        the torch path: images are resized, normalised and padded on their device, and ``pixel_values`` and
        ``pixel_mask`` come back there; the "pil" backend (or ``use_torch=False``) goes through Pillow. Segmentation maps always take the NumPy path. ``do_convert_rgb=True``
        turns RGBA and grayscale images into RGB first (RGBA is composited over white); without it they keep
        their channels, as in the reference. ``do_pad`` is
        accepted but, as in the reference library, batches are always padded: ``pixel_mask`` describes it.
        ``data_format`` is as for :meth:`BaseImageProcessor.preprocess`.
        """
        known = {
            "do_convert_rgb", "do_resize", "size", "resample", "size_divisor", "do_rescale", "rescale_factor",
            "do_normalize", "image_mean", "image_std", "ignore_index", "do_reduce_labels", "do_pad", "pad_size",
            "num_labels",
        }
        channels_last = channels_last_output(data_format)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"{type(self).__name__}.preprocess got unexpected keyword(s) {unknown}.")
        p: dict[str, Any] = {key: overrides.get(key, getattr(self, key, None)) for key in known}
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")

        image_list = make_list_of_images(images)
        use_torch, like = self._pick_path(use_torch, device)
        arrays: list[Any]
        if use_torch:
            arrays = [self._to_chw_tensor(im, input_data_format, device, index=i) for i, im in enumerate(image_list)]
            arrays = [torch_convert_to_rgb(a) if p["do_convert_rgb"] else a for a in arrays]
        else:
            arrays = [to_channel_first_array(im, input_data_format, index=i) for i, im in enumerate(image_list)]
            arrays = [convert_to_rgb(a) if p["do_convert_rgb"] else a for a in arrays]
        seg_list: list[np.ndarray] | None = None
        if segmentation_maps is not None:
            raw = segmentation_maps if isinstance(segmentation_maps, (list, tuple)) else [segmentation_maps]
            if len(raw) == 1 and len(arrays) > 1 and getattr(raw[0], "ndim", 2) == 3 and raw[0].shape[0] == len(arrays):
                raw = list(raw[0])
            if len(raw) != len(arrays):
                raise ValueError(f"Got {len(arrays)} images but {len(raw)} segmentation maps; give one map per image.")
            seg_list = [_segmentation_map_array(s, i) for i, s in enumerate(raw)]
            for i, (img, seg) in enumerate(zip(arrays, seg_list)):
                if tuple(seg.shape) != tuple(img.shape[1:]):
                    raise ValueError(
                        f"segmentation map {i} has size {seg.shape[0]}x{seg.shape[1]} but its image is "
                        f"{img.shape[1]}x{img.shape[2]}; they must match pixel for pixel."
                    )
        if p["do_reduce_labels"] and seg_list is not None and p["ignore_index"] is None:
            raise ValueError("do_reduce_labels=True needs ignore_index (the id given to background pixels).")

        if p["do_resize"]:
            if p["size"] is None:
                raise ValueError("do_resize=True needs a size.")
            resample = resolve_resample(p["resample"])
            size = dict(p["size"])
            for i, img in enumerate(arrays):
                new_size = _target_size(img.shape[1], img.shape[2], size, int(p["size_divisor"] or 0))
                arrays[i] = (
                    torch_resize(img[None], new_size, resample, like=like)[0]
                    if use_torch
                    else resize(img, new_size, resample)
                )
                if seg_list is not None:
                    seg_list[i] = self._resize_segmentation_map(seg_list[i], new_size)

        mask_labels: list[np.ndarray] = []
        class_labels: list[np.ndarray] = []
        if seg_list is not None:
            mapping = instance_id_to_semantic_id
            for i, seg in enumerate(seg_list):
                one = mapping[i] if isinstance(mapping, (list, tuple)) else mapping
                masks, classes = convert_segmentation_map_to_binary_masks(
                    seg, one, ignore_index=p["ignore_index"], do_reduce_labels=bool(p["do_reduce_labels"])
                )
                num_labels = p["num_labels"]
                if num_labels is not None and classes.size and (classes.min() < 0 or classes.max() >= num_labels):
                    bad = sorted({int(c) for c in classes if c < 0 or c >= num_labels})
                    raise ValueError(
                        f"segmentation map {i} has class ids {bad} outside 0..{num_labels - 1} (num_labels="
                        f"{num_labels}); mark pixels to skip with ignore_index={p['ignore_index']!r}."
                    )
                mask_labels.append(masks)
                class_labels.append(classes)

        processed = []
        for img in arrays:
            if use_torch:
                if p["do_rescale"]:
                    self._warn_if_already_scaled(img)
                # Normalised later, straight into the padded batch (see _pad_torch).
            else:
                if p["do_rescale"]:
                    img = rescale(img, p["rescale_factor"])
                if p["do_normalize"]:
                    img = normalize(img, p["image_mean"], p["image_std"])
                img = img.astype(np.float32, copy=False)
            processed.append(img)

        if p["pad_size"] is not None:
            pad_h, pad_w = int(p["pad_size"]["height"]), int(p["pad_size"]["width"])
        else:
            pad_h = max(img.shape[1] for img in processed)
            pad_w = max(img.shape[2] for img in processed)
        for img in processed:
            if img.shape[1] > pad_h or img.shape[2] > pad_w:
                raise ValueError(
                    f"pad_size {pad_h}x{pad_w} is smaller than a processed image ({img.shape[1]}x{img.shape[2]})."
                )
        pixel_values: Any
        pixel_mask: Any
        if use_torch:
            pixel_values, pixel_mask = self._normalise_and_pad_torch(processed, p, pad_h, pad_w, return_tensors)
        elif len({img.shape[0] for img in processed}) == 1:
            # Pad straight into one batch array: no per-image canvases to stack (and copy) afterwards.
            pixel_values = np.zeros((len(processed), processed[0].shape[0], pad_h, pad_w), dtype=np.float32)
            pixel_mask = np.zeros((len(processed), pad_h, pad_w), dtype=np.int64)
            for i, img in enumerate(processed):
                pixel_values[i, :, : img.shape[1], : img.shape[2]] = img
                pixel_mask[i, : img.shape[1], : img.shape[2]] = 1
            if return_tensors is None:
                pixel_values, pixel_mask = list(pixel_values), list(pixel_mask)
        else:
            pixel_values, pixel_mask = [], []
            for img in processed:
                canvas = np.zeros((img.shape[0], pad_h, pad_w), dtype=np.float32)
                canvas[:, : img.shape[1], : img.shape[2]] = img
                valid = np.zeros((pad_h, pad_w), dtype=np.int64)
                valid[: img.shape[1], : img.shape[2]] = 1
                pixel_values.append(canvas)
                pixel_mask.append(valid)
        # Padding of the binary masks uses ignore_index, as the reference does (0 without one).
        fill = p["ignore_index"] if p["ignore_index"] is not None else 0
        for i, masks in enumerate(mask_labels):
            n, h, w = masks.shape
            padded = np.full((n, pad_h, pad_w), fill, dtype=np.float32)
            padded[:, :h, :w] = masks
            mask_labels[i] = padded

        data: dict[str, Any] = {"pixel_values": pixel_values, "pixel_mask": pixel_mask}
        encoded = BatchFeature(data, tensor_type=return_tensors)
        if channels_last:
            encoded["pixel_values"] = _to_channels_last(encoded["pixel_values"])
        if seg_list is not None:
            if return_tensors == "pt":
                import torch

                encoded["mask_labels"] = [torch.from_numpy(m) for m in mask_labels]
                encoded["class_labels"] = [torch.from_numpy(c) for c in class_labels]
            else:
                encoded["mask_labels"] = mask_labels
                encoded["class_labels"] = class_labels
        return encoded

    @staticmethod
    def _normalise_and_pad_torch(
        images: list[Any], p: dict[str, Any], pad_h: int, pad_w: int, return_tensors: str | None
    ) -> tuple[Any, Any]:
        """Rescale and normalise the torch path's images straight into one padded batch on their device.

        Every element of the (large) outputs is written once: no zero-filled canvas that the images are then
        copied into. Images with different channel counts get one canvas each, as on the NumPy path.
        """
        import torch

        def fill(values: Any, mask: Any, img: Any) -> None:
            h, w = img.shape[1], img.shape[2]
            torch_normalize(
                img[None],
                rescale_factor=p["rescale_factor"] if p["do_rescale"] else None,
                mean=p["image_mean"] if p["do_normalize"] else None,
                std=p["image_std"] if p["do_normalize"] else None,
                out=values[None, :, :h, :w],
            )
            values[:, h:, :] = 0
            values[:, :h, w:] = 0
            mask[:h, :w] = 1
            mask[h:, :] = 0
            mask[:h, w:] = 0

        first = images[0]
        if len({img.shape[0] for img in images}) == 1:
            values = torch.empty((len(images), first.shape[0], pad_h, pad_w), dtype=torch.float32, device=first.device)
            mask = torch.empty((len(images), pad_h, pad_w), dtype=torch.int64, device=first.device)
            for i, img in enumerate(images):
                fill(values[i], mask[i], img)
            if return_tensors == "np":
                return values.cpu().numpy(), mask.cpu().numpy()
            return (values, mask) if return_tensors == "pt" else (list(values), list(mask))
        values_list, mask_list = [], []
        for img in images:
            values_list.append(torch.empty((img.shape[0], pad_h, pad_w), dtype=torch.float32, device=img.device))
            mask_list.append(torch.empty((pad_h, pad_w), dtype=torch.int64, device=img.device))
            fill(values_list[-1], mask_list[-1], img)
        return values_list, mask_list

    @staticmethod
    def _resize_segmentation_map(seg: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Nearest-neighbour resize of an integer id map (Pillow's NEAREST, like images get their filter)."""
        if tuple(seg.shape) == tuple(size):
            return seg
        if seg.size and (seg.min() < 0 or seg.max() > np.iinfo(np.int32).max):
            raise ValueError("segmentation map ids must be between 0 and 2**31 - 1.")
        out = resize(seg[None].astype(np.float32), size, PILImageResampling.NEAREST)
        return np.rint(out[0]).astype(np.int64)

    # -- post-processing --------------------------------------------------------------------------------------

    @staticmethod
    def _check_target_sizes(target_sizes: Any, batch: int) -> list[tuple[int, int]] | None:
        if target_sizes is None:
            return None
        sizes = [tuple(int(v) for v in s) for s in (target_sizes.tolist() if hasattr(target_sizes, "tolist") else target_sizes)]
        if len(sizes) != batch:
            raise ValueError(f"Got {len(sizes)} target_sizes for a batch of {batch} predictions; give one per image.")
        for s in sizes:
            if len(s) != 2 or s[0] <= 0 or s[1] <= 0:
                raise ValueError(f"Each target size must be (height, width) with positive values, got {s}.")
        return sizes  # type: ignore[return-value]

    def post_process_semantic_segmentation(
        self, outputs: Any, target_sizes: Any = None, return_segmentation_scores: bool = False
    ) -> list[Any]:
        """Per image, an ``(H, W)`` map of class ids (the class with the highest query-weighted mask probability).

        With ``return_segmentation_scores=True`` each entry is a dict with ``segmentation`` and the per-class
        ``segmentation_scores`` ``(num_classes, H, W)``.
        """
        import torch

        class_probs = outputs.class_queries_logits.softmax(dim=-1)[..., :-1]
        mask_probs = outputs.masks_queries_logits.sigmoid()
        scores = torch.einsum("bqc,bqhw->bchw", class_probs, mask_probs)
        sizes = self._check_target_sizes(target_sizes, scores.shape[0])
        results: list[Any] = []
        for i in range(scores.shape[0]):
            per_class = scores[i]
            if sizes is not None:
                per_class = torch.nn.functional.interpolate(
                    per_class[None], size=sizes[i], mode="bilinear", align_corners=False
                )[0]
            seg = per_class.argmax(dim=0)
            results.append({"segmentation": seg, "segmentation_scores": per_class} if return_segmentation_scores else seg)
        return results

    def post_process_instance_segmentation(
        self,
        outputs: Any,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        target_sizes: Any = None,
        return_coco_annotation: bool | None = False,
        return_binary_maps: bool | None = False,
    ) -> list[dict[str, Any]]:
        """Per image, ``{"segmentation": (H, W) segment ids (-1 = none), "segments_info": [...]}``.

        The best ``num_queries`` (query, class) pairs are kept; a pair's score is its class probability times
        the mean probability inside its mask, and pairs below ``threshold`` or with empty masks are dropped.
        ``return_binary_maps`` gives the stacked binary masks instead; ``return_coco_annotation`` run-length
        encodes the map. (``mask_threshold`` and ``overlap_mask_area_threshold`` are accepted for interface
        compatibility; masks are the positive logits, as in the reference.)
        """
        import torch

        if return_coco_annotation and return_binary_maps:
            raise ValueError("return_coco_annotation and return_binary_maps cannot both be True.")
        class_logits = outputs.class_queries_logits
        mask_logits = outputs.masks_queries_logits
        batch, num_queries, num_classes_plus_one = class_logits.shape
        num_classes = num_classes_plus_one - 1
        sizes = self._check_target_sizes(target_sizes, batch)
        results = []
        for i in range(batch):
            probs = class_logits[i].softmax(dim=-1)[:, :-1]
            top_scores, top_flat = probs.flatten().topk(num_queries, sorted=False)
            top_classes = top_flat % num_classes
            query_of = torch.div(top_flat, num_classes, rounding_mode="floor")
            logits = mask_logits[i][query_of]
            binary = (logits > 0).float()
            mean_inside = (logits.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
            scores = top_scores * mean_inside
            if sizes is not None:
                segmentation = torch.zeros(sizes[i]) - 1
                binary = torch.nn.functional.interpolate(binary[None], size=sizes[i], mode="nearest")[0]
            else:
                segmentation = torch.zeros(mask_logits.shape[2:]) - 1
            segments: list[dict[str, Any]] = []
            maps: list[torch.Tensor] = []
            for j in range(num_queries):
                score = float(scores[j])
                if score >= threshold and bool(binary[j].any()):
                    segment_id = len(segments)
                    segmentation[binary[j] == 1] = segment_id
                    segments.append(
                        {"id": segment_id, "label_id": int(top_classes[j]), "was_fused": False, "score": round(score, 6)}
                    )
                    maps.append(binary[j])
            result: Any = segmentation
            if return_coco_annotation:
                result = _segmentation_to_rle(segmentation)
            if return_binary_maps and maps:
                result = torch.stack(maps)
            results.append({"segmentation": result, "segments_info": segments})
        return results

    def post_process_panoptic_segmentation(
        self,
        outputs: Any,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        label_ids_to_fuse: set[int] | None = None,
        target_sizes: Any = None,
    ) -> list[dict[str, Any]]:
        """Per image, a map of segment ids (0 = unassigned, -1 when nothing was found) and their ``segments_info``.

        Queries predicting "no object" or scoring at most ``threshold`` are dropped; each pixel goes to the query
        with the highest score-weighted mask probability; a segment survives when it keeps more than
        ``overlap_mask_area_threshold`` of the pixels its own mask has above ``mask_threshold``. Classes in
        ``label_ids_to_fuse`` (stuff) share one segment per image.
        """
        import torch

        fuse = set(label_ids_to_fuse or ())
        class_logits = outputs.class_queries_logits
        batch = class_logits.shape[0]
        num_labels = class_logits.shape[-1] - 1
        sizes = self._check_target_sizes(target_sizes, batch)
        mask_probs = outputs.masks_queries_logits.sigmoid()
        pred_scores, pred_labels = class_logits.softmax(dim=-1).max(-1)
        results = []
        for i in range(batch):
            keep = pred_labels[i].ne(num_labels) & (pred_scores[i] > threshold)
            probs, scores, labels = mask_probs[i][keep], pred_scores[i][keep], pred_labels[i][keep]
            if probs.shape[0] == 0:
                height, width = sizes[i] if sizes is not None else tuple(probs.shape[1:])
                results.append({"segmentation": torch.zeros((height, width)) - 1, "segments_info": []})
                continue
            if sizes is not None:
                probs = torch.nn.functional.interpolate(probs[None], size=sizes[i], mode="bilinear", align_corners=False)[0]
            height, width = probs.shape[1:]
            segmentation = torch.zeros((height, width), dtype=torch.int32, device=probs.device)
            weighted = probs * scores.view(-1, 1, 1)
            owner = weighted.argmax(0)
            segments: list[dict[str, Any]] = []
            stuff_ids: dict[int, int] = {}
            next_id = 0
            for k in range(labels.shape[0]):
                label = int(labels[k])
                region = owner == k
                area = region.sum()
                own_area = (weighted[k] >= mask_threshold).sum()
                if not (area > 0 and own_area > 0 and float(area / own_area) > overlap_mask_area_threshold):
                    continue
                if label in stuff_ids:
                    segment_id = stuff_ids[label]
                else:
                    next_id += 1
                    segment_id = next_id
                segmentation[region] = segment_id
                segments.append(
                    {"id": segment_id, "label_id": label, "was_fused": label in fuse, "score": round(float(scores[k]), 6)}
                )
                if label in fuse:
                    stuff_ids[label] = segment_id
            results.append({"segmentation": segmentation, "segments_info": segments})
        return results


class MaskFormerImageProcessorPil(MaskFormerImageProcessor):
    """:class:`MaskFormerImageProcessor` on the "pil" backend by default; saved as a ``MaskFormerImageProcessor``."""

    default_backend = "pil"


def _binary_mask_to_rle(mask: Any) -> list[int]:
    """Run-length encoding (1-based start, length pairs over the row-major flattened mask) of a 0/1 mask."""
    flat = np.asarray(mask.cpu() if hasattr(mask, "cpu") else mask).flatten()
    padded = np.concatenate([[0], flat, [0]])
    changes = np.where(padded[1:] != padded[:-1])[0] + 1
    changes[1::2] -= changes[::2]
    return [int(v) for v in changes]


def _segmentation_to_rle(segmentation: Any) -> list[list[int]]:
    import torch

    return [_binary_mask_to_rle(torch.where(segmentation == v, 1, 0)) for v in torch.unique(segmentation)]
