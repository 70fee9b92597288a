"""Image operations used by image processors, in two flavours that give the same numbers.

* The PIL/NumPy path works on one channel-first NumPy array at a time and resizes with Pillow, so that
  8-bit images come out exactly as the reference library's Pillow-based processors produce them.
* The torch path works on a batch tensor ``(N, C, H, W)`` on any device (CPU or CUDA) and comes in two
  flavours, chosen by ``like=``. ``like="torchvision"`` (what image processors use by default, as the
  reference library's default backend does) resizes as torchvision's tensor resize does: one antialiased
  ``torch.nn.functional.interpolate`` call, torch's native 8-bit kernel for uint8 on CPU, float images
  resized as they are. ``like="pillow"`` follows Pillow instead: antialiased interpolation per axis with
  8-bit rounding between the passes, ``nearest`` with Pillow's index arithmetic, and an explicit
  separable weight matrix built the way Pillow builds its filters for box, Hamming and Lanczos, so that it
  agrees with the Pillow path to within one grey level.

Like the reference library's Pillow backend, the PIL/NumPy path (and ``like="pillow"``) resizes float
images as 8 bits when they can be (whole numbers in 0-255, or values in [0, 1] scaled by 255); see
:func:`pil_8bit_scale`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from plugformers.image_utils import PILImageResampling, as_float_list, is_torch_tensor, resolve_resample

if TYPE_CHECKING:
    import torch

__all__ = [
    "RESIZE_FLAVOURS",
    "center_crop",
    "convert_to_rgb",
    "get_resize_output_image_size",
    "normalize",
    "pad",
    "pil_8bit_scale",
    "rescale",
    "resize",
    "resize_weights",
    "torch_center_crop",
    "torch_convert_to_rgb",
    "torch_normalize",
    "torch_resize",
]

# Filters that can overshoot the input range; Pillow clips their 8-bit results to 0-255.
_OVERSHOOTING = (PILImageResampling.BICUBIC, PILImageResampling.LANCZOS)

# Whose numbers the torch path reproduces (see the module docstring).
RESIZE_FLAVOURS = ("torchvision", "pillow")

# torch's interpolate modes for the filters it implements with antialiasing.
_INTERPOLATE_MODES = {
    PILImageResampling.BILINEAR: "bilinear",
    PILImageResampling.BICUBIC: "bicubic",
    PILImageResampling.LANCZOS: "lanczos",
}


# --------------------------------------------------------------------------------------------------------------
# Output sizes


def get_resize_output_image_size(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """The (height, width) an image of ``height x width`` is resized to, for a size dict.

    ``{"height", "width"}`` is an exact size. ``{"shortest_edge": s}`` scales the short side to ``s`` and the
    long side in proportion (truncated); with ``"longest_edge": l`` too, the long side is capped at ``l`` and
    the short side shrinks in proportion. ``{"longest_edge": l}`` alone scales the long side to ``l``.
    ``{"max_height", "max_width"}`` fits the image inside that box keeping its aspect ratio.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"Cannot resize an empty image of size {height}x{width}.")
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    if "shortest_edge" in size:
        short, long = (height, width) if height <= width else (width, height)
        new_short = int(size["shortest_edge"])
        new_long = int(new_short * long / short)
        max_long = size.get("longest_edge")
        if max_long is not None and new_long > max_long:
            new_short = int(max_long * new_short / new_long)
            new_long = int(max_long)
        new_short, new_long = max(new_short, 1), max(new_long, 1)
        return (new_short, new_long) if height <= width else (new_long, new_short)
    if "longest_edge" in size:
        scale = size["longest_edge"] / max(height, width)
        return max(round(height * scale), 1), max(round(width * scale), 1)
    if "max_height" in size and "max_width" in size:
        scale = min(size["max_height"] / height, size["max_width"] / width)
        return max(int(height * scale), 1), max(int(width * scale), 1)
    raise ValueError(
        f"Unsupported size {size!r}: use 'height'+'width', 'shortest_edge' (+ 'longest_edge'), 'longest_edge' "
        "or 'max_height'+'max_width'."
    )


# --------------------------------------------------------------------------------------------------------------
# PIL / NumPy path (one channel-first array at a time)


def _white_level(image: np.ndarray) -> float:
    if image.dtype == np.uint8:
        return 255.0
    return 1.0 if float(image.max(initial=0.0)) <= 1.0 else 255.0


def convert_to_rgb(image: np.ndarray) -> np.ndarray:
    """A channel-first image with 3 channels: grayscale is repeated, RGBA is composited over white."""
    channels = image.shape[0]
    if channels == 3:
        return image
    if channels == 1:
        return np.repeat(image, 3, axis=0)
    if channels != 4:
        raise ValueError(f"Cannot convert an image with {channels} channels to RGB (expected 1, 3 or 4).")
    if image.dtype == np.uint8:
        from PIL import Image

        rgba = Image.fromarray(np.ascontiguousarray(np.moveaxis(image, 0, -1)), mode="RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
        return np.ascontiguousarray(np.moveaxis(np.asarray(rgb), -1, 0))
    white = _white_level(image)
    alpha = image[3:4].astype(np.float32) / white
    return (image[:3] * alpha + white * (1.0 - alpha)).astype(image.dtype)


def pil_8bit_scale(image: Any) -> float | None:
    """The factor that turns a float image into the 8-bit image Pillow resizes, or None when none does.

    The reference library resizes every image as 8 bits: float images whose values are whole numbers in
    0-255 are cast as they are (factor 1), other float images in [0, 1] are multiplied by 255 and truncated
    (factor 255, divided out again after resizing). Other float images (negative, or fractional above 1)
    have no 8-bit form; they are resized in float instead (None). Works on NumPy arrays and torch tensors.
    """
    if is_torch_tensor(image):
        if not image.is_floating_point():
            return 1.0
        lo, hi = (float(image.amin()), float(image.amax())) if image.numel() else (0.0, 0.0)
        whole = bool(image.isclose(image.trunc(), rtol=1e-5, atol=1e-8).all())
    else:
        if not np.issubdtype(image.dtype, np.floating):
            return 1.0
        lo, hi = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        whole = bool(np.allclose(image, np.trunc(image)))
    if whole:
        return 1.0 if lo >= 0.0 and hi <= 255.0 else None
    return 255.0 if lo >= 0.0 and hi <= 1.0 else None


def resize(
    image: np.ndarray,
    size: tuple[int, int],
    resample: Any = PILImageResampling.BILINEAR,
    *,
    reducing_gap: float | None = None,
) -> np.ndarray:
    """Resize a channel-first image to ``size=(height, width)`` with Pillow, as the reference library does.

    uint8 images are resized as 8-bit Pillow images (3 channels together, others channel by channel, so
    that alpha is never premultiplied). Float images are first turned into 8 bits when the reference does
    so (see :func:`pil_8bit_scale`) and come back as float32 in their own range; the rest are resized
    channel by channel in Pillow's 32-bit float mode, clipped to the input's range for filters that
    overshoot (bicubic, Lanczos).
    """
    from PIL import Image

    filt = resolve_resample(resample)
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"Cannot resize to an empty size {height}x{width}.")
    if tuple(image.shape[1:]) == (height, width):
        return image.copy()
    if image.dtype != np.uint8:
        scale = pil_8bit_scale(image)
        if scale is not None:
            as_8bit = (image.astype(np.float64) * scale).astype(np.float32).astype(np.uint8)
            out8 = resize(as_8bit, (height, width), filt, reducing_gap=reducing_gap)
            return out8.astype(np.float32) if scale == 1.0 else (out8 * (1.0 / scale)).astype(np.float32)
    pil_size = (width, height)
    if image.dtype == np.uint8 and image.shape[0] == 3:
        pil = Image.fromarray(np.ascontiguousarray(np.moveaxis(image, 0, -1)), mode="RGB")
        out = np.asarray(pil.resize(pil_size, resample=int(filt), reducing_gap=reducing_gap))
        return np.ascontiguousarray(np.moveaxis(out, -1, 0))
    planes = []
    for plane in image:
        if image.dtype == np.uint8:
            pil = Image.fromarray(np.ascontiguousarray(plane), mode="L")
        else:
            pil = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        planes.append(np.asarray(pil.resize(pil_size, resample=int(filt), reducing_gap=reducing_gap)))
    out = np.stack(planes)
    if image.dtype != np.uint8 and filt in _OVERSHOOTING:
        out = np.clip(out, image.min(), image.max())
    return out


def center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop the centre ``(height, width)`` of a channel-first image; a smaller image is zero-padded first."""
    crop_h, crop_w = int(size[0]), int(size[1])
    if crop_h <= 0 or crop_w <= 0:
        raise ValueError(f"crop size must be positive, got {crop_h}x{crop_w}.")
    _, height, width = image.shape
    if crop_h > height or crop_w > width:
        new_h, new_w = max(crop_h, height), max(crop_w, width)
        canvas = np.zeros((image.shape[0], new_h, new_w), dtype=image.dtype)
        top, left = (new_h - height + 1) // 2, (new_w - width + 1) // 2
        canvas[:, top : top + height, left : left + width] = image
        image, height, width = canvas, new_h, new_w
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return np.ascontiguousarray(image[:, top : top + crop_h, left : left + crop_w])


def rescale(image: np.ndarray, scale: float) -> np.ndarray:
    """Multiply pixel values by ``scale`` (1/255 maps 8-bit values to [0, 1]); returns float32."""
    return image.astype(np.float32) * np.float32(scale)


def _per_channel(values: float | Iterable[float], channels: int, name: str) -> list[float]:
    vals = as_float_list(values, name=name)
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        message = f"{name} has {len(vals)} values but the image has {channels} channels"
        if len(vals) == 3 and channels in (1, 4):
            kind = "an RGBA" if channels == 4 else "a grayscale"
            message += f": it is {kind} image; pass do_convert_rgb=True to make it RGB first"
        else:
            message += f": give {name} one value per channel ({channels} values, or a single number for all)"
        raise ValueError(message + ".")
    return vals


def normalize(image: np.ndarray, mean: float | Iterable[float], std: float | Iterable[float]) -> np.ndarray:
    """``(image - mean) / std`` per channel of a channel-first image; returns float32."""
    channels = image.shape[0]
    mean_arr = np.asarray(_per_channel(mean, channels, "image_mean"), dtype=np.float32)[:, None, None]
    std_arr = np.asarray(_per_channel(std, channels, "image_std"), dtype=np.float32)[:, None, None]
    if (std_arr == 0).any():
        raise ValueError(f"image_std must not contain 0, got {std_arr.ravel().tolist()}.")
    return (image.astype(np.float32) - mean_arr) / std_arr


def pad(image: np.ndarray, size: tuple[int, int], constant_value: float = 0.0) -> np.ndarray:
    """Pad a channel-first image at the bottom and right to ``(height, width)`` with ``constant_value``."""
    _, height, width = image.shape
    target_h, target_w = int(size[0]), int(size[1])
    if target_h < height or target_w < width:
        raise ValueError(f"Cannot pad an image of {height}x{width} to the smaller size {target_h}x{target_w}.")
    return np.pad(
        image, ((0, 0), (0, target_h - height), (0, target_w - width)), constant_values=constant_value
    )


# --------------------------------------------------------------------------------------------------------------
# Torch path (batched, any device)


def _filter(kind: PILImageResampling) -> tuple[Any, float]:
    """The 1-D kernel and its support radius for the separable filters Pillow defines."""

    def sinc(x: np.ndarray) -> np.ndarray:
        return np.sinc(x)

    if kind == PILImageResampling.BOX:
        return (lambda x: ((x > -0.5) & (x <= 0.5)).astype(np.float64)), 0.5
    if kind == PILImageResampling.BILINEAR:
        return (lambda x: np.clip(1.0 - np.abs(x), 0.0, None)), 1.0
    if kind == PILImageResampling.HAMMING:
        return (lambda x: np.where(np.abs(x) < 1.0, sinc(x) * (0.54 + 0.46 * np.cos(np.pi * x)), 0.0)), 1.0
    if kind == PILImageResampling.BICUBIC:
        a = -0.5

        def cubic(x: np.ndarray) -> np.ndarray:
            x = np.abs(x)
            near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
            return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))

        return cubic, 2.0
    if kind == PILImageResampling.LANCZOS:
        return (lambda x: np.where(np.abs(x) < 3.0, sinc(x) * sinc(x / 3.0), 0.0)), 3.0
    raise ValueError(f"No separable filter for {kind!r}.")


def resize_weights(in_size: int, out_size: int, kind: PILImageResampling) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix that resamples one axis like Pillow's convolution resize.

    Each output pixel ``i`` is centred at ``(i + 0.5) * in/out`` in input coordinates; when shrinking, the
    kernel is stretched by the scale factor (this is what antialiases), and each row is normalised to sum 1.
    """
    func, support = _filter(kind)
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    radius = support * stretch
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo = max(int(centre - radius + 0.5), 0)
        hi = min(int(centre + radius + 0.5), in_size)
        taps = np.arange(lo, hi, dtype=np.float64)
        w = func((taps - centre + 0.5) / stretch)
        total = w.sum()
        if total != 0:
            w = w / total
        weights[i, lo:hi] = w
    return weights


def _check_flavour(like: str) -> str:
    if like not in RESIZE_FLAVOURS:
        raise ValueError(f"like must be one of {list(RESIZE_FLAVOURS)}, got {like!r}.")
    return like


def torch_resize(
    images: torch.Tensor,
    size: tuple[int, int],
    resample: Any = PILImageResampling.BILINEAR,
    *,
    like: str = "pillow",
) -> torch.Tensor:
    """Resize a batch ``(N, C, H, W)`` to ``size=(height, width)`` on its own device.

    ``like="pillow"``: uint8 batches come back as uint8 (rounded and clipped like Pillow's 8-bit resize).
    Float batches that :func:`resize` turns into 8 bits are resized as 8 bits too and come back as float32
    in their own range (the decision is taken for the whole batch, not image by image); other float batches
    are resized in float, clipped to the input range for overshooting filters.
    ``like="torchvision"``: see :func:`_torchvision_like_resize`.
    """
    import torch
    import torch.nn.functional as F

    filt = resolve_resample(resample)
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"Cannot resize to an empty size {height}x{width}.")
    if images.ndim != 4:
        raise ValueError(f"torch_resize expects a (N, C, H, W) batch, got shape {tuple(images.shape)}.")
    if tuple(images.shape[-2:]) == (height, width):
        return images.clone()
    if _check_flavour(like) == "torchvision" and (filt == PILImageResampling.NEAREST or filt in _INTERPOLATE_MODES):
        return _torchvision_like_resize(images, (height, width), filt)
    if images.is_floating_point():
        scale = pil_8bit_scale(images)
        if scale is not None:
            as_8bit = (images.double() * scale).float().to(torch.uint8)
            out8 = torch_resize(as_8bit, (height, width), filt)
            return out8.float() if scale == 1.0 else (out8.double() * (1.0 / scale)).float()
    is_uint8 = images.dtype == torch.uint8
    if filt == PILImageResampling.NEAREST:
        rows = torch.as_tensor(_nearest_indices(images.shape[-2], height), device=images.device)
        cols = torch.as_tensor(_nearest_indices(images.shape[-1], width), device=images.device)
        return images.index_select(-2, rows).index_select(-1, cols)
    in_h, in_w = int(images.shape[-2]), int(images.shape[-1])
    # Pillow resizes 8-bit images in two passes, rounding and clipping to 0-255 in between, so for filters
    # with negative lobes the pass order changes results by many levels.
    height_first = (
        is_uint8 and filt in _OVERSHOOTING and in_h != height and in_w != width
        and _pillow_resizes_height_first(in_h, in_w, height, width, filt)
    )
    native_ok = min(height, width) > 1 and is_uint8 and images.device.type == "cpu"  # (1-pixel outputs assert)
    shrinking = height <= in_h and width <= in_w
    if native_ok and (
        filt == PILImageResampling.BILINEAR or (filt == PILImageResampling.BICUBIC and shrinking and not height_first)
    ):
        # Torch's native 8-bit antialiased kernel rounds like Pillow and is several times faster. It goes width
        # first and does not clip between its passes: for bicubic that matches Pillow only when no axis grows.
        mode = "bilinear" if filt == PILImageResampling.BILINEAR else "bicubic"
        return F.interpolate(images, size=(height, width), mode=mode, antialias=True, align_corners=False)
    work = images if images.is_floating_point() else images.float()
    if is_uint8:
        axes = ((-2, height), (-1, width)) if height_first else ((-1, width), (-2, height))
        out = work
        for axis, new in axes:
            out = _resize_one_axis(out, new, filt, axis=axis).round_().clamp_(0, 255)
        return out.to(torch.uint8)
    out = _resize_one_axis(_resize_one_axis(work, width, filt, axis=-1), height, filt, axis=-2)
    if filt in _OVERSHOOTING:
        out = out.clamp(images.amin(), images.amax())
    return out


def _torchvision_like_resize(images: torch.Tensor, size: tuple[int, int], filt: PILImageResampling) -> torch.Tensor:
    """Resize as torchvision's tensor resize does (the reference library's default backend).

    One antialiased interpolation over both axes (``nearest-exact`` for nearest). uint8 stays uint8: on CPU
    through torch's native 8-bit kernel (bilinear only where the CPU has AVX2 or better, as torchvision
    decides), elsewhere in float32, clipped for bicubic and Lanczos and rounded. float32/float64 batches are
    resized as they are, without clipping; other dtypes go through float32 and back. Lanczos off the CPU
    becomes bicubic, as the reference library does there.
    """
    import torch
    import torch.nn.functional as F

    if filt == PILImageResampling.NEAREST:
        mode, antialias, align = "nearest-exact", False, None
    else:
        mode, antialias, align = _INTERPOLATE_MODES[filt], True, False
        if mode == "lanczos" and images.device.type != "cpu":
            mode = "bicubic"
    dtype = images.dtype
    native = dtype in (torch.float32, torch.float64) or (
        dtype == torch.uint8
        and (
            mode == "nearest-exact"
            or (
                images.device.type == "cpu"
                and (mode != "bilinear" or torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"))
            )
        )
    )
    work = images if native else images.to(torch.float32)
    out = F.interpolate(work, size=size, mode=mode, align_corners=align, antialias=antialias)
    if native:
        return out
    if dtype == torch.uint8 and mode in ("bicubic", "lanczos"):
        out = out.clamp_(0, 255)
    if not dtype.is_floating_point:
        out = out.round_()
    return out.to(dtype)


@functools.lru_cache(maxsize=256)
def _pillow_resizes_height_first(in_h: int, in_w: int, out_h: int, out_w: int, filt: PILImageResampling) -> bool:
    """Whether the installed Pillow runs its vertical pass first for an 8-bit resize of these sizes.

    The order is Pillow's own choice (it depends on the sizes, and has changed between releases), so rather
    than restate its rule this resizes a noise probe of exactly these sizes once and sees which order
    reproduces it. Cached per shape; a 640x480 probe takes a few milliseconds.
    """
    from PIL import Image

    probe = np.random.default_rng(0).integers(0, 256, (in_h, in_w), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(probe, "L").resize((out_w, out_h), resample=int(filt)), dtype=np.float64)
    rows, cols = resize_weights(in_h, out_h, filt), resize_weights(in_w, out_w, filt)

    def settle(x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(x + 0.5), 0, 255)

    source = probe.astype(np.float64)
    width_first = settle(rows @ settle(source @ cols.T))
    height_first = settle(settle(rows @ source) @ cols.T)
    return bool(np.abs(height_first - expected).max() < np.abs(width_first - expected).max())


def _nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output pixel for nearest resizing, with Pillow's float arithmetic.

    Pillow starts at ``scale / 2`` and adds ``scale`` once per output pixel, truncating each position; the
    accumulated rounding decides ties (a position that is exactly an integer on paper), so it is repeated
    here step by step rather than computed as ``(i + 0.5) * scale``.
    """
    scale = in_size / out_size
    position = scale * 0.5
    idx = np.empty(out_size, dtype=np.int64)
    for i in range(out_size):
        idx[i] = int(position)
        position += scale
    return np.clip(idx, 0, in_size - 1)


def _resize_one_axis(images: torch.Tensor, new: int, filt: PILImageResampling, *, axis: int) -> torch.Tensor:
    """Resample a float ``(N, C, H, W)`` batch along the height (-2) or width (-1) axis only."""
    import torch
    import torch.nn.functional as F

    old = images.shape[axis]
    if old == new:
        return images
    if filt in (PILImageResampling.BILINEAR, PILImageResampling.BICUBIC):
        mode = "bilinear" if filt == PILImageResampling.BILINEAR else "bicubic"
        # Always along the last axis: torch's antialiased kernel returns garbage when it resizes the height
        # of a batch whose width is 1 (torch 2.13), and the width pass has no such case.
        work = images if axis == -1 else images.transpose(-1, -2)
        out = F.interpolate(work, size=(work.shape[-2], new), mode=mode, antialias=True, align_corners=False)
        return out if axis == -1 else out.transpose(-1, -2)
    compute = torch.float64 if images.dtype == torch.float64 else torch.float32
    weights = torch.as_tensor(resize_weights(old, new, filt), dtype=compute, device=images.device)
    work = images.to(compute)
    out = torch.matmul(work, weights.T) if axis == -1 else torch.matmul(weights, work)
    return out.to(images.dtype)


def torch_convert_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Channel-first (or batched) tensor with 3 channels: grayscale repeated, RGBA composited over white."""
    import torch

    channels = image.shape[-3]
    if channels == 3:
        return image
    if channels == 1:
        reps = [1] * image.ndim
        reps[-3] = 3
        return image.repeat(*reps)
    if channels != 4:
        raise ValueError(f"Cannot convert an image with {channels} channels to RGB (expected 1, 3 or 4).")
    rgb, alpha = image[..., :3, :, :], image[..., 3:4, :, :]
    if image.dtype == torch.uint8:
        # Same integer rounding as Pillow's alpha_composite onto an opaque white background.
        a = alpha.to(torch.int32)
        blended = rgb.to(torch.int32) * a + 255 * (255 - a) + 128
        return ((blended + (blended >> 8)) >> 8).to(torch.uint8)
    white = 1.0 if float(image.max()) <= 1.0 else 255.0
    a = alpha / white
    return rgb * a + white * (1.0 - a)


def torch_center_crop(images: torch.Tensor, size: tuple[int, int], *, like: str = "pillow") -> torch.Tensor:
    """Centre crop of a ``(..., C, H, W)`` tensor, zero-padding first when it is smaller (as :func:`center_crop`).

    An odd amount of padding puts the extra row/column at the top/left with ``like="pillow"`` (as the
    Pillow path does) and at the bottom/right with ``like="torchvision"``.
    """
    import torch.nn.functional as F

    crop_h, crop_w = int(size[0]), int(size[1])
    if crop_h <= 0 or crop_w <= 0:
        raise ValueError(f"crop size must be positive, got {crop_h}x{crop_w}.")
    height, width = images.shape[-2], images.shape[-1]
    if crop_h > height or crop_w > width:
        new_h, new_w = max(crop_h, height), max(crop_w, width)
        odd = 1 if _check_flavour(like) == "pillow" else 0
        top, left = (new_h - height + odd) // 2, (new_w - width + odd) // 2
        images = F.pad(images, (left, new_w - width - left, top, new_h - height - top))
        height, width = new_h, new_w
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return images[..., top : top + crop_h, left : left + crop_w]


def torch_normalize(
    images: torch.Tensor,
    *,
    rescale_factor: float | None,
    mean: float | Iterable[float] | None,
    std: float | Iterable[float] | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rescale and/or normalise a ``(N, C, H, W)`` batch in one pass; returns float32 on the same device.

    ``out`` (float32, the batch's shape, for example a view into a padded canvas) receives the result.
    """
    import torch

    # A fresh contiguous float tensor: converting a channels-last batch (what the 8-bit resize returns) in
    # place of a copy is about twice as slow for every following operation, and models want NCHW anyway.
    if out is None:
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    elif out.shape != images.shape or out.dtype != torch.float32:
        raise ValueError(f"out must be float32 of shape {tuple(images.shape)}, got {out.dtype} {tuple(out.shape)}.")
    out.copy_(images)
    channels = images.shape[-3]
    scale = 1.0 if rescale_factor is None else float(rescale_factor)
    if mean is None or std is None:
        return out.mul_(scale) if rescale_factor is not None else out
    mean_t = torch.tensor(_per_channel(mean, channels, "image_mean"), dtype=torch.float32, device=out.device)
    std_t = torch.tensor(_per_channel(std, channels, "image_std"), dtype=torch.float32, device=out.device)
    if bool((std_t == 0).any()):
        raise ValueError(f"image_std must not contain 0, got {std_t.tolist()}.")
    # (x * scale - mean) / std == x * (scale / std) - mean / std: one multiply-add per pixel.
    mul = (scale / std_t).view(-1, 1, 1)
    add = (-mean_t / std_t).view(-1, 1, 1)
    return out.mul_(mul).add_(add)

