"""The two image-processing backends: "torchvision" (batched torch, the default) and "pil" (Pillow).

Which one runs, how ``backend=`` and the per-call ``use_torch=`` map onto each other, that the choice is
checked, never saved, and that the torch path needs no torchvision. Parity with the reference library's
two backends is in the ``parity`` test files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import plugformers
from plugformers.image_processing_utils import BACKENDS, BaseImageProcessor, check_backend
from plugformers.image_transforms import torch_center_crop, torch_resize
from plugformers.image_utils import PILImageResampling

pytest.importorskip("plugformers_vit")
pytest.importorskip("plugformers_resnet")
pytest.importorskip("plugformers_maskformer")

FAMILIES = {
    "ViTImageProcessor": {},
    "ConvNextImageProcessor": {"size": {"shortest_edge": 32}},
    "MaskFormerImageProcessor": {"size": {"shortest_edge": 24, "longest_edge": 40}},
}


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([255 * xx / w, 255 * yy / h, 127 + 100 * np.sin((xx + yy) / 5)], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _processor(name: str, **kwargs: Any) -> Any:
    return getattr(plugformers, name)(**FAMILIES[name], resample=PILImageResampling.BICUBIC, **kwargs)


def _pixels(proc: Any, image: Any, **kwargs: Any) -> np.ndarray:
    return np.asarray(proc(image, return_tensors="np", **kwargs)["pixel_values"])


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_default_backend_is_the_torch_path_for_pil_and_numpy_inputs(name: str) -> None:
    arr = _photo(37, 53)
    proc = _processor(name)
    assert proc.backend == "torchvision" and type(proc).default_backend == "torchvision"
    for image in (arr, Image.fromarray(arr)):
        default = _pixels(proc, image)
        np.testing.assert_array_equal(default, _pixels(proc, image, use_torch=True))
        # Bicubic on the torch path rounds differently from Pillow's: the default is not the Pillow path.
        assert np.abs(default - _pixels(proc, image, use_torch=False)).max() > 1e-3
        # The torch path's own output type: tensors even for NumPy and Pillow inputs.
        assert isinstance(proc(image)["pixel_values"][0], torch.Tensor)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_backend_pil_is_the_pillow_path_and_use_torch_overrides_it_per_call(name: str) -> None:
    arr = _photo(41, 29, 1)
    default, pil = _processor(name), _processor(name, backend="pil")
    assert pil.backend == "pil"
    np.testing.assert_array_equal(_pixels(pil, arr), _pixels(default, arr, use_torch=False))
    assert isinstance(pil(arr)["pixel_values"][0], np.ndarray)
    # use_torch=True is the "torchvision" backend for one call, whatever the processor's own backend.
    np.testing.assert_array_equal(_pixels(pil, arr, use_torch=True), _pixels(default, arr))
    # ...Pil classes start on the "pil" backend and process like backend="pil".
    pil_class = getattr(plugformers, name + "Pil")
    assert issubclass(pil_class, getattr(plugformers, name)) and pil_class().backend == "pil"
    np.testing.assert_array_equal(_pixels(pil_class(**FAMILIES[name], resample=3), arr), _pixels(pil, arr))


def test_the_pil_backend_given_a_device_keeps_pillows_numbers_on_the_torch_path() -> None:
    arr = _photo(50, 70, 2)
    proc = _processor("ViTImageProcessor", backend="pil")
    on_device = proc(arr, device="cpu", return_tensors="pt")["pixel_values"]
    assert isinstance(on_device, torch.Tensor)
    # Within one grey level (std 0.5) of the Pillow path, unlike the torchvision numbers.
    assert np.abs(on_device.numpy() - _pixels(proc, arr)).max() <= 2 / 255 + 1e-6


@pytest.mark.parametrize("bad", ["torch", "PIL", "fast", "", None, 1])
def test_a_bad_backend_is_refused_naming_the_accepted_values(bad: Any, tmp_path: Any) -> None:
    plugformers.ViTImageProcessor().save_pretrained(tmp_path)
    attempts = [
        lambda: plugformers.ViTImageProcessor(backend=bad),
        lambda: plugformers.ViTImageProcessor.from_pretrained(tmp_path, backend=bad),
        lambda: setattr(plugformers.ViTImageProcessor(), "backend", bad),
    ]
    if bad is not None:  # None is "not given" where a keyword is optional
        attempts.append(lambda: plugformers.AutoImageProcessor.from_pretrained(tmp_path, backend=bad))
    else:
        attempts = attempts[2:]
    for attempt in attempts:
        with pytest.raises(ValueError, match=r"backend must be one of \['torchvision', 'pil'\]"):
            attempt()
    assert BACKENDS == ("torchvision", "pil") and check_backend("pil") == "pil"


def test_use_torch_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="use_torch must be True, False or None"):
        plugformers.ViTImageProcessor()(_photo(8, 8), use_torch="yes")


def test_the_backend_is_not_saved_and_pil_classes_save_under_the_plain_name(tmp_path: Any) -> None:
    plugformers.ViTImageProcessorPil(size=32).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert "backend" not in saved and "_backend" not in saved
    assert saved["image_processor_type"] == "ViTImageProcessor"
    assert "backend" not in plugformers.ViTImageProcessor(backend="pil").to_dict()
    loaded = plugformers.ViTImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is plugformers.ViTImageProcessor and loaded.backend == "torchvision" and loaded.size["height"] == 32
    assert plugformers.ViTImageProcessor.from_pretrained(tmp_path, backend="pil").backend == "pil"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_auto_image_processor_picks_the_backend_and_its_class(name: str, tmp_path: Any) -> None:
    getattr(plugformers, name)(**FAMILIES[name]).save_pretrained(tmp_path)
    cases = {
        (): (name, "torchvision"),
        (("backend", "torchvision"),): (name, "torchvision"),
        (("backend", "pil"),): (name + "Pil", "pil"),
        (("use_fast", False),): (name + "Pil", "pil"),  # the older spelling
        (("use_fast", True),): (name, "torchvision"),
    }
    for kwargs, (class_name, backend) in cases.items():
        proc = plugformers.AutoImageProcessor.from_pretrained(tmp_path, **dict(kwargs))
        assert (type(proc).__name__, proc.backend) == (class_name, backend), kwargs
    # An explicit backend wins over use_fast.
    assert plugformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil", use_fast=True).backend == "pil"


def test_a_subclass_can_choose_its_default_backend() -> None:
    class TinyPillowFirst(BaseImageProcessor):
        default_backend = "pil"
        do_resize = True
        size = {"height": 8, "width": 8}

    assert TinyPillowFirst().backend == "pil" and TinyPillowFirst(backend="torchvision").backend == "torchvision"
    assert isinstance(TinyPillowFirst()(_photo(10, 12))["pixel_values"][0], np.ndarray)


def test_torchvision_numbers_resize_floats_as_floats_and_uint8_in_one_pass() -> None:
    rng = np.random.default_rng(3)
    floats = torch.from_numpy(rng.random((1, 3, 23, 31)).astype(np.float32))
    got = torch_resize(floats, (11, 40), PILImageResampling.BICUBIC, like="torchvision")
    expected = torch.nn.functional.interpolate(floats, size=(11, 40), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    # Pillow's numbers go through 8 bits for such floats (values in [0, 1]), so they differ.
    assert (torch_resize(floats, (11, 40), PILImageResampling.BICUBIC) - expected).abs().max() > 1e-4
    small = torch.from_numpy(rng.integers(0, 256, (1, 3, 9, 7), dtype=np.uint8))
    grown = torch_resize(small, (20, 15), PILImageResampling.BICUBIC, like="torchvision")
    # On CPU, torchvision hands uint8 straight to torch's 8-bit kernel (no Pillow-style pass order or clipping).
    native = torch.nn.functional.interpolate(small, size=(20, 15), mode="bicubic", antialias=True, align_corners=False)
    assert grown.dtype == torch.uint8 and torch.equal(grown, native)
    assert not torch.equal(torch_resize(small, (20, 15), PILImageResampling.BICUBIC), native)
    with pytest.raises(ValueError, match="like must be one of"):
        torch_resize(small, (4, 4), like="opencv")


def test_torchvision_numbers_pad_an_odd_centre_crop_at_the_bottom_right() -> None:
    ones = torch.ones(1, 1, 3, 3)
    tv = torch_center_crop(ones, (6, 6), like="torchvision")[0, 0]
    pillow = torch_center_crop(ones, (6, 6))[0, 0]
    assert tv[1:4, 1:4].eq(1).all() and tv.sum() == 9  # one row/column of zeros above/left, two below/right
    assert pillow[2:5, 2:5].eq(1).all() and pillow.sum() == 9


def test_the_default_torch_path_needs_no_torchvision() -> None:
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import numpy as np, plugformers\n"
        "for name in ('ViTImageProcessor', 'ConvNextImageProcessor', 'MaskFormerImageProcessor'):\n"
        "    p = getattr(plugformers, name)()\n"
        "    out = p(np.zeros((40, 50, 3), np.uint8), return_tensors='pt')['pixel_values']\n"
        "    assert p.backend == 'torchvision' and out.ndim == 4, name\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
