"""The image processor base classes: settings (save/load/print) and a generic ``preprocess``.

A family's image processor is usually just class-level defaults::

    class ViTImageProcessor(BaseImageProcessor):
        do_resize = True
        size = {"height": 224, "width": 224}
        resample = PILImageResampling.BILINEAR
        do_rescale = True
        do_normalize = True
        image_mean = IMAGENET_STANDARD_MEAN
        image_std = IMAGENET_STANDARD_STD

``BaseImageProcessor.__init__`` copies the defaults that are not ``None`` onto the instance (so they are
what gets saved and printed), lets keyword arguments override them, and ``preprocess`` runs
convert-to-RGB -> resize -> center crop -> rescale -> normalize -> pad on one of two backends, as the
reference library's image processors do: ``"torchvision"`` (the default: batched with torch on the
input's device, giving the reference's default torchvision-backend numbers without needing torchvision)
or ``"pil"`` (image by image with Pillow: the reference's Pillow-backend numbers). A ``...Pil`` subclass
(``ViTImageProcessorPil``) defaults to ``"pil"`` and saves itself under the plain class name.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np

from plugformers.feature_extraction_utils import BatchFeature, PreprocessingConfigMixin
from plugformers.image_transforms import (
    center_crop,
    convert_to_rgb,
    get_resize_output_image_size,
    normalize,
    pad,
    rescale,
    resize,
    torch_center_crop,
    torch_convert_to_rgb,
    torch_normalize,
    torch_resize,
)
from plugformers.image_utils import (
    ChannelDimension,
    as_float_list,
    infer_channel_dimension_format,
    is_torch_tensor,
    make_list_of_images,
    resolve_resample,
    to_channel_first_array,
    validate_image_array,
)
from plugformers.utils.logging import get_logger, warn_once

logger = get_logger(__name__)

__all__ = [
    "BACKENDS",
    "BaseImageProcessor",
    "BatchFeature",
    "ImageProcessingMixin",
    "channels_last_output",
    "check_backend",
    "get_size_dict",
]

# What ``backend=`` accepts: the batched torch path (the default) and Pillow image by image.
BACKENDS = ("torchvision", "pil")
# The suffix of an image processor class whose default backend is "pil", as the reference library names them.
PIL_SUFFIX = "Pil"


def check_backend(backend: Any) -> str:
    """``backend`` itself when it is one of :data:`BACKENDS`, else a ValueError naming the accepted values."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(
            f"backend must be one of {list(BACKENDS)} ('torchvision': batched with torch, the default; "
            f"'pil': Pillow image by image), got {backend!r}."
        )
    return backend

_SIZE_KEY_SETS = (
    {"height", "width"},
    {"shortest_edge"},
    {"shortest_edge", "longest_edge"},
    {"longest_edge"},
    {"max_height", "max_width"},
)

# Settings the generic preprocess understands; class attributes of these names are defaults.
_SETTINGS = (
    "do_convert_rgb",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_pad",
    "pad_size",
)


def get_size_dict(
    size: int | tuple[int, int] | list[int] | dict[str, int] | None = None,
    default_to_square: bool = True,
    param_name: str = "size",
    max_size: int | None = None,
) -> dict[str, int]:
    """Normalise a size given as an int, an ``(height, width)`` pair or a dict into a checked dict.

    An int means a square ``{"height": s, "width": s}`` when ``default_to_square`` else
    ``{"shortest_edge": s}`` (plus ``"longest_edge": max_size`` when given).
    """
    if isinstance(size, bool):
        raise TypeError(f"{param_name} must be an int, a (height, width) pair or a dict, not {size!r}.")
    if isinstance(size, (int, np.integer)):
        if default_to_square:
            if max_size is not None:
                raise ValueError(f"max_size cannot be used with a square {param_name}.")
            out = {"height": int(size), "width": int(size)}
        else:
            out = {"shortest_edge": int(size)}
            if max_size is not None:
                out["longest_edge"] = int(max_size)
    elif isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"{param_name} as a sequence must be (height, width), got {size!r}.")
        out = {"height": int(size[0]), "width": int(size[1])}
    elif isinstance(size, dict):
        out = {str(k): v for k, v in size.items() if v is not None}
        if set(out) not in _SIZE_KEY_SETS:
            raise ValueError(
                f"{param_name} dict must have one of the key sets {[sorted(k) for k in _SIZE_KEY_SETS]}, got {sorted(size)}."
            )
    else:
        raise TypeError(f"{param_name} must be an int, a (height, width) pair or a dict, got {size!r}.")
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{param_name}[{key!r}] must be a positive integer, got {value!r}.")
        out[key] = int(value)
    return out


def channels_last_output(data_format: ChannelDimension | str | None) -> bool:
    """Whether ``data_format`` asks for channel-last outputs; None means channel-first, as in the reference."""
    return data_format is not None and ChannelDimension(data_format) == ChannelDimension.LAST


class ImageProcessingMixin(PreprocessingConfigMixin):
    """Settings of an image processor, saved as ``preprocessor_config.json`` with ``image_processor_type``."""

    _type_key: ClassVar[str] = "image_processor_type"
    _default_auto_class: ClassVar[str] = "AutoImageProcessor"


class BaseImageProcessor(ImageProcessingMixin):
    """An image processor whose ``__call__`` runs the generic :meth:`preprocess` from its settings."""

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    # An int ``size`` means a square (True) or the shortest edge (False).
    default_to_square: ClassVar[bool] = True
    # The backend of an instance made without ``backend=`` (one of BACKENDS).
    default_backend: ClassVar[str] = "torchvision"

    do_convert_rgb: bool | None = None
    do_resize: bool | None = None
    size: Any = None
    resample: Any = None
    do_center_crop: bool | None = None
    crop_size: Any = None
    do_rescale: bool | None = None
    rescale_factor: float | None = 1 / 255
    do_normalize: bool | None = None
    image_mean: Any = None
    image_std: Any = None
    do_pad: bool | None = None
    pad_size: Any = None

    def __init__(self, *, backend: str | None = None, **kwargs: Any) -> None:
        settings = self._default_settings()
        settings.update(kwargs)
        super().__init__(**settings)
        self.backend = self.default_backend if backend is None else backend
        self._normalise_settings()

    @property
    def backend(self) -> str:
        """Where images go unless a call says otherwise: "torchvision" (batched torch) or "pil" (Pillow).

        Chosen at construction or by ``from_pretrained(..., backend=...)``; like the reference library, it is
        not written to ``preprocessor_config.json``. ``preprocess(use_torch=True/False)`` overrides it per call.
        """
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_backend(value)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        name = out.get(self._type_key)
        if isinstance(name, str) and name.endswith(PIL_SUFFIX) and name != PIL_SUFFIX:
            # A ...Pil class is the same processor on the other backend: saved under the plain name, as the
            # reference library saves its Pillow-backend classes, so the folder loads with either backend.
            out[self._type_key] = name[: -len(PIL_SUFFIX)]
        return out

    @classmethod
    def _default_settings(cls) -> dict[str, Any]:
        """The class-level defaults of the known settings that are not ``None``."""
        out = {}
        for key in _SETTINGS:
            value = getattr(cls, key, None)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def _normalise_settings(self) -> None:
        """Check the settings early and store sizes as dicts, as the saved format does."""
        if getattr(self, "size", None) is not None:
            self.size = get_size_dict(self.size, default_to_square=self.default_to_square)
        if getattr(self, "crop_size", None) is not None:
            self.crop_size = get_size_dict(self.crop_size, param_name="crop_size")
        if getattr(self, "pad_size", None) is not None:
            self.pad_size = get_size_dict(self.pad_size, param_name="pad_size")
        resample = getattr(self, "resample", None)
        if resample is not None:
            # Saved as Pillow's filter number whatever form it was given in: the reference library reads a
            # string such as "bicubic" from a file but then resizes bilinearly.
            self.resample = int(resolve_resample(resample))  # raises on a bad value
        for key in ("image_mean", "image_std"):
            value = getattr(self, key, None)
            if value is not None:
                floats = as_float_list(value, name=key)
                setattr(self, key, floats[0] if isinstance(value, (int, float)) else floats)

    # -- processing -------------------------------------------------------------------------------------------

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, *args, **kwargs)

    def _resolve(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(k for k in overrides if k not in _SETTINGS)
        if unknown:
            raise TypeError(f"{type(self).__name__}.preprocess got unexpected keyword(s) {unknown}.")
        params = {key: overrides.get(key, getattr(self, key, None)) for key in _SETTINGS}
        if params["do_resize"]:
            if params["size"] is None:
                raise ValueError("do_resize=True needs a size.")
            params["size"] = get_size_dict(params["size"], default_to_square=self.default_to_square)
            params["resample"] = resolve_resample(params["resample"])
        if params["do_center_crop"]:
            if params["crop_size"] is None:
                raise ValueError("do_center_crop=True needs a crop_size.")
            params["crop_size"] = get_size_dict(params["crop_size"], param_name="crop_size")
        if params["do_rescale"]:
            factor = params["rescale_factor"]
            if factor is None or not isinstance(factor, (int, float)) or not math.isfinite(factor):
                raise ValueError(f"do_rescale=True needs a finite rescale_factor, got {factor!r}.")
        if params["do_normalize"] and (params["image_mean"] is None or params["image_std"] is None):
            raise ValueError("do_normalize=True needs image_mean and image_std.")
        if params["do_pad"] and params["pad_size"] is not None:
            params["pad_size"] = get_size_dict(params["pad_size"], param_name="pad_size")
        return params

    def _wants_rgb(self, channels: int, params: dict[str, Any]) -> bool:
        flag = params["do_convert_rgb"]
        if flag is not None:
            return bool(flag) and channels != 3
        if channels == 4:
            return True
        if channels == 1:
            mean = params["image_mean"] if params["do_normalize"] else None
            return not (isinstance(mean, (list, tuple)) and len(mean) == 1)
        return False

    def preprocess(
        self,
        images: Any,
        *,
        return_tensors: str | None = None,
        use_torch: bool | None = None,
        device: Any = None,
        input_data_format: ChannelDimension | str | None = None,
        data_format: ChannelDimension | str | None = ChannelDimension.FIRST,
        **overrides: Any,
    ) -> BatchFeature:
        """Turn images into ``pixel_values`` (channel-first float32), using this processor's settings.

        Any setting (``size=``, ``do_normalize=``...) can be overridden for this call. Which path the images
        take follows :attr:`backend` unless ``use_torch`` says otherwise (see :meth:`_pick_path`); the torch
        path returns tensors on the input's device (or ``device``). ``return_tensors`` is "pt", "np" or None (a
        list of per-image arrays or tensors). ``data_format`` is "channels_first" (also what None gives, as in
        the reference library) or "channels_last".
        """
        channels_last = channels_last_output(data_format)
        params = self._resolve(overrides)
        image_list = make_list_of_images(images)
        use_torch, like = self._pick_path(use_torch, device)
        if use_torch:
            if is_torch_tensor(images) and images.ndim == 4:
                # Already one batch: process it whole rather than image by image.
                pixel_values = self._preprocess_torch_batch(images, params, device, input_data_format, like=like)
            else:
                pixel_values = self._preprocess_torch(image_list, params, device, input_data_format, like=like)
            if channels_last:
                pixel_values = [pv.permute(-2, -1, -3) for pv in pixel_values] if isinstance(
                    pixel_values, list) else pixel_values.permute(0, 2, 3, 1)
            if return_tensors is None and not isinstance(pixel_values, list):
                pixel_values = list(pixel_values)
            elif return_tensors == "np":
                pixel_values = [pv.cpu().numpy() for pv in pixel_values] if isinstance(
                    pixel_values, list) else pixel_values.cpu().numpy()
        else:
            pixel_values = [
                self._preprocess_one(im, params, input_data_format, index=i) for i, im in enumerate(image_list)
            ]
            if channels_last:
                pixel_values = [np.moveaxis(pv, 0, -1) for pv in pixel_values]
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)

    def _pick_path(self, use_torch: bool | None, device: Any) -> tuple[bool, str]:
        """Whether this call takes the torch path, and whose resize numbers it follows there.

        ``use_torch=True`` is the "torchvision" backend and ``use_torch=False`` the "pil" one, for this call
        only; None follows :attr:`backend`. A ``device`` with the "pil" backend keeps the torch path (the
        Pillow path cannot run on a GPU) but with Pillow's numbers, to within one grey level.
        """
        if use_torch is None:
            if self.backend == "torchvision":
                return True, "torchvision"
            return device is not None, "pillow"
        if not isinstance(use_torch, bool):
            raise TypeError(f"use_torch must be True, False or None, got {use_torch!r}.")
        return use_torch, "torchvision" if use_torch else "pillow"

    def _preprocess_one(
        self, image: Any, params: dict[str, Any], input_data_format: Any, *, index: int
    ) -> np.ndarray:
        arr = to_channel_first_array(image, input_data_format, index=index)
        if self._wants_rgb(arr.shape[0], params):
            arr = convert_to_rgb(arr)
        if params["do_resize"]:
            new_size = get_resize_output_image_size(arr.shape[1], arr.shape[2], params["size"])
            arr = resize(arr, new_size, params["resample"])
        if params["do_center_crop"]:
            crop = params["crop_size"]
            arr = center_crop(arr, (crop["height"], crop["width"]))
        if params["do_rescale"]:
            self._warn_if_already_scaled(arr)
            arr = rescale(arr, params["rescale_factor"])
        if params["do_normalize"]:
            arr = normalize(arr, params["image_mean"], params["image_std"])
        arr = arr.astype(np.float32, copy=False)
        if params["do_pad"] and params["pad_size"] is not None:
            arr = pad(arr, (params["pad_size"]["height"], params["pad_size"]["width"]))
        return arr

    @staticmethod
    def _warn_if_already_scaled(arr: Any) -> None:
        if not (arr.dtype == np.uint8 or str(arr.dtype) == "torch.uint8"):
            top = float(arr.max())
            if 0.0 <= float(arr.min()) and top <= 1.0:
                warn_once(
                    "Rescaling float images whose values are already in [0, 1]; pass do_rescale=False if they "
                    "are already scaled."
                )

    def _preprocess_torch(
        self, images: list[Any], params: dict[str, Any], device: Any, input_data_format: Any, *, like: str
    ) -> Any:
        """The processed images as one ``(N, C, H, W)`` tensor when they share a size, else a list."""
        import torch

        keep_float64 = like == "torchvision"  # torchvision resizes float64 images in float64
        tensors = []
        for i, image in enumerate(images):
            tensors.append(self._to_chw_tensor(image, input_data_format, device, index=i, keep_float64=keep_float64))
        # Group equally sized images so that every operation runs once per group on a whole batch.
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault((tuple(t.shape), t.dtype, t.device), []).append(i)
        results: list[Any] = [None] * len(tensors)
        for indices in groups.values():
            members = [tensors[i] for i in indices]
            if self._wants_rgb(members[0].shape[0], params):
                members = [torch_convert_to_rgb(m) for m in members]
            new_size = (
                get_resize_output_image_size(members[0].shape[1], members[0].shape[2], params["size"])
                if params["do_resize"]
                else None
            )
            if new_size is not None and members[0].device.type == "cpu":
                # On CPU, resize image by image straight from each buffer (Pillow's height-width-channel
                # layout is torch's channels_last, which its 8-bit kernel wants): this avoids copying the
                # full-size images into one large batch first; only the small outputs are stacked.
                resized = torch.cat([torch_resize(m[None], new_size, params["resample"], like=like) for m in members])
                batch = self._torch_chain(resized, None, params, like=like)
            else:
                batch = self._torch_chain(torch.stack(members), new_size, params, like=like)
            if len(groups) == 1:
                return batch  # one batch tensor: nothing to split and stack again
            for j, i in enumerate(indices):
                results[i] = batch[j]
        return results

    def _preprocess_torch_batch(
        self, images: Any, params: dict[str, Any], device: Any, input_data_format: Any, *, like: str
    ) -> Any:
        """One ``(N, C, H, W)`` or ``(N, H, W, C)`` tensor processed as a whole (no splitting and restacking)."""
        batch = self._to_chw_tensor(images, input_data_format, device, index=0, keep_float64=like == "torchvision")
        if self._wants_rgb(batch.shape[1], params):
            batch = torch_convert_to_rgb(batch)
        new_size = (
            get_resize_output_image_size(batch.shape[2], batch.shape[3], params["size"]) if params["do_resize"] else None
        )
        return self._torch_chain(batch, new_size, params, like=like)

    def _torch_chain(
        self, batch: Any, new_size: tuple[int, int] | None, params: dict[str, Any], *, like: str
    ) -> Any:
        """Resize, crop, rescale, normalise and pad one ``(N, C, H, W)`` batch on its device.

        ``like`` ("torchvision" or "pillow") is whose resize and crop numbers to follow.
        """
        import torch

        if new_size is not None:
            batch = torch_resize(batch, new_size, params["resample"], like=like)
        if params["do_center_crop"]:
            crop = params["crop_size"]
            batch = torch_center_crop(batch, (crop["height"], crop["width"]), like=like)
        if params["do_rescale"]:
            self._warn_if_already_scaled(batch)
        batch = torch_normalize(
            batch,
            rescale_factor=params["rescale_factor"] if params["do_rescale"] else None,
            mean=params["image_mean"] if params["do_normalize"] else None,
            std=params["image_std"] if params["do_normalize"] else None,
        )
        if params["do_pad"] and params["pad_size"] is not None:
            target = params["pad_size"]
            extra_h, extra_w = target["height"] - batch.shape[2], target["width"] - batch.shape[3]
            if extra_h < 0 or extra_w < 0:
                raise ValueError(
                    f"Cannot pad images of {batch.shape[2]}x{batch.shape[3]} to the smaller pad_size {target}."
                )
            batch = torch.nn.functional.pad(batch, (0, extra_w, 0, extra_h))
        return batch

    @staticmethod
    def _to_chw_tensor(
        image: Any, input_data_format: Any, device: Any, *, index: int, keep_float64: bool = False
    ) -> Any:
        import torch

        what = f"image {index}"
        if is_torch_tensor(image):
            # One image (H, W), (C, H, W) or (H, W, C), or a whole batch of them with a leading axis.
            t = image.detach()
            if t.ndim == 4 and t.shape[0] == 0:
                raise ValueError("The batch of images is empty (its first dimension is 0).")
            if t.ndim == 2:
                t = t[None]
            elif t.ndim in (3, 4):
                fmt = (
                    ChannelDimension(input_data_format)
                    if input_data_format is not None
                    else infer_channel_dimension_format(t if t.ndim == 3 else t[0])
                )
                if fmt == ChannelDimension.LAST:
                    t = t.movedim(-1, -3)
            else:
                raise ValueError(f"{what} must have 2 or 3 dimensions, got shape {tuple(t.shape)}.")
            if t.ndim == 4:
                for i, one in enumerate(t):
                    validate_image_array(one, what=f"image {i}")
            else:
                validate_image_array(t, what=what)
            if t.dtype == torch.bool:
                t = t.to(torch.uint8)  # 0/1, as on the NumPy path
            elif not t.is_floating_point() and t.dtype != torch.uint8:
                if t.numel() and (int(t.min()) < 0 or int(t.max()) > 255):
                    raise ValueError(f"{what} has integer values outside 0-255; convert it to uint8 or float first.")
                t = t.to(torch.uint8)
            elif t.is_floating_point() and t.dtype != torch.float32:
                if not (keep_float64 and t.dtype == torch.float64):
                    t = t.to(torch.float32)
        else:
            arr = to_channel_first_array(image, input_data_format, index=index, keep_float64=keep_float64)
            if arr.flags.writeable:
                t = torch.from_numpy(arr)
            else:
                # Pillow's buffers are read-only; they are only read (stacking copies), so skip a copy.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    t = torch.from_numpy(arr)
        if device is not None:
            t = t.to(device)
        return t

