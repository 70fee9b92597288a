"""Turning whatever the user passes as an image into one checked array layout.

Image processors accept PIL images, NumPy arrays (height-width-channel or channel-height-width, integer or
float) and torch tensors, alone or in lists. Everything here converts them to channel-first NumPy arrays (or
batched torch tensors) and rejects bad input early with a message naming the problem, so that resizing and
normalising never fail deep inside with an obscure error.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "IMAGENET_STANDARD_MEAN",
    "IMAGENET_STANDARD_STD",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ChannelDimension",
    "PILImageResampling",
    "get_image_size",
    "infer_channel_dimension_format",
    "is_pil_image",
    "is_torch_tensor",
    "is_valid_image",
    "load_image",
    "make_list_of_images",
    "pil_to_array",
    "resolve_resample",
    "to_channel_first_array",
    "validate_image_array",
]

IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]
IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5]
IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5]
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

VALID_CHANNEL_COUNTS = (1, 3, 4)


class PILImageResampling(enum.IntEnum):
    """Resampling filters, numbered like Pillow's ``Image.Resampling`` (the numbers saved in configs)."""

    NEAREST = 0
    LANCZOS = 1
    BILINEAR = 2
    BICUBIC = 3
    BOX = 4
    HAMMING = 5


class ChannelDimension(str, enum.Enum):
    """Where the channel axis of an image array is."""

    FIRST = "channels_first"
    LAST = "channels_last"


_RESAMPLE_ALIASES = {"ANTIALIAS": "LANCZOS", "LINEAR": "BILINEAR", "CUBIC": "BICUBIC"}


def resolve_resample(value: Any) -> PILImageResampling:
    """Map a resampling filter given as an enum, an int, or a string such as ``"PIL.Image.BOX"`` to the enum.

    Strings are matched on their last dotted component, case-insensitively (``"bilinear"``,
    ``"Resampling.BICUBIC"``, ``"PIL.Image.BOX"``), because configs written by hand use all of these.
    """
    if value is None:
        return PILImageResampling.BILINEAR
    if isinstance(value, PILImageResampling):
        return value
    if isinstance(value, str):
        name = value.strip().rsplit(".", 1)[-1].upper()
        name = _RESAMPLE_ALIASES.get(name, name)
        if name in PILImageResampling.__members__:
            return PILImageResampling[name]
        raise ValueError(
            f"Unknown resampling filter {value!r}; expected one of "
            f"{', '.join(PILImageResampling.__members__)} (optionally written like 'PIL.Image.BOX') or 0-5."
        )
    if isinstance(value, bool):
        raise TypeError(f"resample must be a filter name or number, not the boolean {value!r}.")
    try:
        number = int(value)  # PIL.Image.Resampling members and plain ints
    except (TypeError, ValueError):
        raise TypeError(f"resample must be a PILImageResampling, an int 0-5 or a filter name, got {value!r}.") from None
    try:
        return PILImageResampling(number)
    except ValueError:
        raise ValueError(f"Unknown resampling filter number {number}; valid numbers are 0-5.") from None


def is_pil_image(obj: Any) -> bool:
    """True for a Pillow image (checked without importing Pillow when it is not loaded yet)."""
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def is_torch_tensor(obj: Any) -> bool:
    """True for a torch tensor, without importing torch when it is not loaded yet."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_valid_image(obj: Any) -> bool:
    """Whether ``obj`` is one image of a supported type (a list of images is not)."""
    if is_pil_image(obj):
        return True
    if isinstance(obj, np.ndarray) or is_torch_tensor(obj):
        return obj.ndim in (2, 3)
    return False


def make_list_of_images(images: Any) -> list[Any]:
    """Return the images as a flat list, accepting one image, a list/tuple of them, or a 4-D batch.

    Local image file paths (``str`` or ``os.PathLike``, alone or in lists) are opened with
    :func:`load_image`, as RGB Pillow images.
    """
    if images is None:
        raise ValueError("No images were given (got None).")
    if is_pil_image(images):
        return [images]
    if isinstance(images, np.ndarray) or is_torch_tensor(images):
        if images.ndim == 4:
            return list(images)
        if images.ndim in (2, 3):
            return [images]
        raise ValueError(
            f"An image array must have 2 (H, W), 3 (H, W, C or C, H, W) or 4 (batch) dimensions; "
            f"got shape {tuple(images.shape)}."
        )
    if isinstance(images, (str, os.PathLike)):
        return [_open_local_image(images)]
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("The list of images is empty.")
        out: list[Any] = []
        for item in images:
            if isinstance(item, (list, tuple)) or (
                (isinstance(item, np.ndarray) or is_torch_tensor(item)) and item.ndim == 4
            ):
                out.extend(make_list_of_images(item))
            elif isinstance(item, (str, os.PathLike)):
                out.append(_open_local_image(item))
            elif is_valid_image(item):
                out.append(item)
            else:
                raise TypeError(
                    f"Unsupported image in list: {_describe(item)}; pass PIL images, NumPy arrays, torch tensors "
                    "or paths of local image files."
                )
        return out
    raise TypeError(
        f"Unsupported image type {_describe(images)}; pass PIL images, NumPy arrays, torch tensors or paths of "
        "local image files (or a list of them)."
    )


def _open_local_image(path: str | os.PathLike[str]) -> Any:
    """A local image file as an RGB Pillow image; URLs are refused (processors never go to the network)."""
    source = os.fspath(path)
    if isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        raise ValueError(
            f"Image processors only open local files, not URLs ({source!r}). Download the image first, e.g. "
            "with plugformers.image_utils.load_image(url), and pass the result."
        )
    return load_image(source)


def _describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray) or is_torch_tensor(obj):
        return f"{type(obj).__name__} of shape {tuple(obj.shape)}"
    return type(obj).__name__


def infer_channel_dimension_format(
    image: Any, num_channels: Sequence[int] = VALID_CHANNEL_COUNTS
) -> ChannelDimension:
    """Guess whether a 3-D array is channel-first or channel-last from which axis has a channel count.

    When both ends could be channels (a 3x40x3 or 4x4x3 array) channel-first wins, as in the reference
    library, so the same array means the same image in both; pass ``input_data_format`` to say otherwise.
    Raises ``ValueError`` naming the shape when neither end is a valid channel count.
    """
    shape = tuple(image.shape)
    if len(shape) == 2:
        return ChannelDimension.FIRST
    if len(shape) != 3:
        raise ValueError(f"Cannot tell the channel axis of an array with shape {shape}: expected 3 dimensions.")
    if shape[0] in num_channels:
        return ChannelDimension.FIRST
    if shape[2] in num_channels:
        return ChannelDimension.LAST
    raise ValueError(
        f"Image of shape {shape} has no valid channel axis: the first or last dimension must be one of "
        f"{tuple(num_channels)} channels (got {shape[0]} and {shape[2]})."
    )


def get_image_size(image: Any, channel_dim: ChannelDimension = ChannelDimension.FIRST) -> tuple[int, int]:
    """(height, width) of a channel-first or channel-last array."""
    if image.ndim == 2:
        return int(image.shape[0]), int(image.shape[1])
    if channel_dim == ChannelDimension.FIRST:
        return int(image.shape[-2]), int(image.shape[-1])
    return int(image.shape[-3]), int(image.shape[-2])


def validate_image_array(image: Any, *, what: str = "image") -> None:
    """Reject an empty image, a bad channel count, a non-numeric dtype or NaN/inf pixels (channel-first)."""
    shape = tuple(image.shape)
    if len(shape) != 3:
        raise ValueError(f"{what} must be a channel-first 3-D array here, got shape {shape}.")
    if shape[0] not in VALID_CHANNEL_COUNTS:
        raise ValueError(
            f"{what} has {shape[0]} channels; only 1 (grayscale), 3 (RGB) or 4 (RGBA) are supported."
        )
    if shape[1] == 0 or shape[2] == 0:
        raise ValueError(f"{what} is empty: its height x width is {shape[1]}x{shape[2]}.")
    if isinstance(image, np.ndarray):
        if image.dtype == np.bool_:
            return
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise ValueError(f"{what} has the non-numeric dtype {image.dtype}.")
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise ValueError(f"{what} contains NaN or infinite pixel values.")
    else:
        if image.is_complex():
            raise ValueError(f"{what} has the complex dtype {image.dtype}.")
        if image.is_floating_point() and not bool(image.isfinite().all()):
            raise ValueError(f"{what} contains NaN or infinite pixel values.")


def pil_to_array(image: Any) -> np.ndarray:
    """A Pillow image as a channel-first array: uint8 for 8-bit modes, float32 for mode ``F``.

    Grayscale stays 1 channel and RGBA/LA keep alpha (4 channels) so that callers decide how to convert;
    palette images become RGB (RGBA when the palette has transparency); 16-bit and 32-bit integer images
    are clipped to 0-255, as Pillow's conversion to 8 bits (and so the reference library) does.
    """
    mode = image.mode
    if mode in ("RGB", "L", "RGBA"):
        arr = np.asarray(image)
    elif mode == "1":
        arr = np.asarray(image.convert("L"))
    elif mode == "P":
        has_alpha = "transparency" in image.info or (image.palette is not None and image.palette.mode == "RGBA")
        arr = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    elif mode in ("LA", "La", "PA", "RGBa"):
        arr = np.asarray(image.convert("RGBA"))
    elif mode.startswith("I;16") or mode == "I":
        # Clipped to 0-255, as Pillow's own conversion of these modes to 8 bits does.
        arr = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    elif mode == "F":
        arr = np.asarray(image, dtype=np.float32)
    else:
        arr = np.asarray(image.convert("RGB"))
    # A channel-first view of Pillow's height-width-channel buffer: no copy.
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def to_channel_first_array(
    image: Any,
    input_data_format: ChannelDimension | str | None = None,
    *,
    index: int | None = None,
    keep_float64: bool = False,
) -> np.ndarray:
    """One image of any supported type as a checked channel-first NumPy array (uint8 or float32).

    ``keep_float64=True`` leaves float64 images in float64 (torchvision resizes them so).

    The result may be a view of the input (for example of a height-width-channel buffer), not a copy.

    Integer inputs other than uint8 must already be in 0-255; booleans become 0/1 (as in the reference
    library, so True rescales to 1/255); float inputs keep their values (rescaling is the processor's job). ``index`` only improves error messages.
    """
    what = "image" if index is None else f"image {index}"
    if is_pil_image(image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"{what} is empty: its size is {image.width}x{image.height}.")
        arr = pil_to_array(image)
    else:
        if is_torch_tensor(image):
            image = image.detach().cpu().numpy()
        if not isinstance(image, np.ndarray):
            raise TypeError(f"Unsupported {what} type {_describe(image)}.")
        if image.ndim == 2:
            arr = image[None]
        elif image.ndim == 3:
            fmt = (
                ChannelDimension(input_data_format)
                if input_data_format is not None
                else infer_channel_dimension_format(image)
            )
            arr = image if fmt == ChannelDimension.FIRST else np.moveaxis(image, -1, 0)
        else:
            raise ValueError(f"{what} must have 2 or 3 dimensions, got shape {tuple(image.shape)}.")
    validate_image_array(arr, what=what)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(
                f"{what} has integer dtype {arr.dtype} with values {arr.min()}..{arr.max()} outside 0-255; "
                "convert it to uint8 or float first."
            )
        arr = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.float32:
        if not (keep_float64 and arr.dtype == np.float64):
            arr = arr.astype(np.float32)
    return arr


def load_image(image: Any, timeout: float | None = 10.0) -> Any:
    """Open an image file (a local path, a ``file://`` or ``http(s)://`` URL) as an RGB Pillow image.

    A Pillow image passes through (converted to RGB). The EXIF orientation is applied, as photo viewers do.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if is_pil_image(image):
        pil = image
    elif isinstance(image, (str, os.PathLike)):
        source = os.fspath(image)
        if source.startswith(("http://", "https://")):
            import io
            import urllib.request

            try:
                with urllib.request.urlopen(source, timeout=timeout) as resp:
                    data = resp.read()
            except OSError as exc:
                raise OSError(f"Could not download the image at {source!r}: {exc}") from exc
            stream: Any = io.BytesIO(data)
        else:
            if source.startswith("file://"):
                source = source[len("file://") :]
            if not os.path.isfile(source):
                raise FileNotFoundError(f"No image file at {source!r}.")
            stream = source
        try:
            pil = Image.open(stream)
            pil.load()
        except UnidentifiedImageError as exc:
            raise OSError(f"{os.fspath(image)!r} is not an image file Pillow can read.") from exc
    else:
        raise TypeError(f"load_image takes a path, URL or PIL image, not {_describe(image)}.")
    pil = ImageOps.exif_transpose(pil)
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def as_float_list(value: float | Iterable[float], *, name: str) -> list[float]:
    """A mean/std given as one number or a sequence, as a list of floats (checked to be finite numbers)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = [float(value)]
    else:
        try:
            values = [float(v) for v in value]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or a list of numbers, got {value!r}.") from None
    if not values or not all(np.isfinite(values)):
        raise ValueError(f"{name} must hold finite numbers, got {value!r}.")
    return values
