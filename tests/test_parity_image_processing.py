"""Our BaseImageProcessor configured like ViT against the reference ViT processor, backend by backend.

The reference's default backend ("torchvision") needs torchvision; without it the reference itself falls
back to Pillow, so the comparisons with its default skip.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from plugformers.image_processing_utils import BaseImageProcessor  # noqa: E402
from plugformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, PILImageResampling  # noqa: E402
from plugformers.testing.preprocessing_tests import reference_on_torchvision  # noqa: E402


class ViTImageProcessor(BaseImageProcessor):
    do_resize = True
    size = {"height": 224, "width": 224}
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    do_normalize = True
    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD


def _reference(**kwargs):
    cls = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kwargs)


def _reference_default(**kwargs):
    return reference_on_torchvision(lambda: transformers.ViTImageProcessor(**kwargs))


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1), 127 + 100 * np.sin((xx + yy) / 9)], -1)
    return np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)


LEVEL = 1 / 255 / 0.5 + 1e-5  # one grey level after rescale and normalisation with std 0.5

IMAGES = {
    "photo": lambda: Image.fromarray(_photo(120, 160)),
    "tiny": lambda: Image.fromarray(_photo(3, 5, 1)),
    "large": lambda: Image.fromarray(_photo(600, 500, 2)),
    "grayscale": lambda: Image.fromarray(_photo(50, 70, 3)[..., 0], "L"),
    "rgba": lambda: Image.fromarray(np.concatenate([_photo(40, 60, 4), _photo(40, 60, 5)[..., :1]], -1), "RGBA"),
}


@pytest.mark.parametrize("name", list(IMAGES))
@pytest.mark.parametrize("resample", [PILImageResampling.BILINEAR, PILImageResampling.BICUBIC, PILImageResampling.BOX])
def test_pixel_values_match_reference(name, resample):
    image = IMAGES[name]()
    ref = _reference(resample=int(resample))(image, return_tensors="np", do_convert_rgb=True)["pixel_values"]
    ours = ViTImageProcessor(resample=resample)
    pil_path = ours(image, return_tensors="np", use_torch=False)["pixel_values"]
    assert np.array_equal(ViTImageProcessor(resample=resample, backend="pil")(image, return_tensors="np")["pixel_values"], pil_path)
    assert pil_path.shape == ref.shape
    assert np.abs(pil_path - ref).max() <= EXACT
    default = ours(image, return_tensors="np")["pixel_values"]
    assert np.array_equal(ours(image, return_tensors="np", use_torch=True)["pixel_values"], default)
    if resample == PILImageResampling.BOX:
        # The reference's torchvision backend has no box filter; ours follows Pillow's there.
        assert np.abs(default - ref).max() <= LEVEL
        return
    ref_default = _reference_default(resample=int(resample))(image, return_tensors="np", do_convert_rgb=True)
    assert np.abs(default - ref_default["pixel_values"]).max() <= EXACT


def test_numpy_and_float_inputs_match_reference():
    arr = _photo(64, 48, 7)
    ref = _reference()(arr, return_tensors="np")["pixel_values"]
    assert np.abs(ViTImageProcessor(backend="pil")(arr, return_tensors="np")["pixel_values"] - ref).max() <= EXACT
    ref_f = _reference()(arr.astype(np.float32) / 255, do_rescale=False, return_tensors="np")["pixel_values"]
    ours_f = ViTImageProcessor(backend="pil")(arr.astype(np.float32) / 255, do_rescale=False, return_tensors="np")
    assert np.abs(ours_f["pixel_values"] - ref_f).max() <= EXACT


@pytest.mark.parametrize("resample", [PILImageResampling.BILINEAR, PILImageResampling.BICUBIC, PILImageResampling.NEAREST])
def test_default_backend_matches_the_reference_default_on_pil_and_numpy_inputs(resample):
    ref, ours = _reference_default(resample=int(resample)), ViTImageProcessor(resample=resample)
    arr = _photo(61, 83, 16)
    for image, kwargs in (
        (Image.fromarray(arr), {}),
        (arr, {}),
        (_photo(300, 250, 17), {}),  # shrinking
        (arr.astype(np.float32), {}),  # float, resized as float by torchvision (not as 8 bits)
        (arr.astype(np.float64) / 255, {"do_rescale": False}),
        ([arr, _photo(20, 30, 18)], {}),
    ):
        expected = np.asarray(ref(image, return_tensors="np", **kwargs)["pixel_values"])
        got = ours(image, return_tensors="np", **kwargs)["pixel_values"]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= EXACT


def test_printed_form_and_files_are_interchangeable(tmp_path):
    ref = _reference()
    ours = ViTImageProcessor()
    ref_dict = json.loads(ref.to_json_string())
    assert ours.to_dict() == ref_dict
    ref.save_pretrained(tmp_path / "ref")
    loaded = ViTImageProcessor.from_pretrained(tmp_path / "ref")
    assert loaded.to_dict() == ref_dict
    ViTImageProcessor(resample="PIL.Image.BOX", image_mean=[0.3, 0.3, 0.3], size=32).save_pretrained(tmp_path / "ours")
    back = _reference().from_pretrained(tmp_path / "ours")
    assert back.size["height"] == 32 and list(back.image_mean) == [0.3, 0.3, 0.3]
    # A filter name is saved as its number (4), which the reference reads as the box filter it names.
    guide = json.loads(_reference(resample=4, do_normalize=False, image_mean=[0.3, 0.3, 0.3]).to_json_string())
    assert ViTImageProcessor(resample="PIL.Image.BOX", do_normalize=False, image_mean=[0.3, 0.3, 0.3]).to_dict() == guide


def _pixels(ref_proc, ours_proc, image, use_torch=False, **kwargs):
    """The reference's and our pixel values (ours on the Pillow path unless use_torch)."""
    ref = np.asarray(ref_proc(image, return_tensors="np", **kwargs)["pixel_values"])
    ours = ours_proc(image, return_tensors="np", use_torch=use_torch, **kwargs)["pixel_values"]
    assert ref.shape == ours.shape
    return ref, ours


EXACT = 1e-6  # float rounding only


@pytest.mark.parametrize("resample", [PILImageResampling.BILINEAR, PILImageResampling.BICUBIC, PILImageResampling.LANCZOS])
def test_float_images_are_resized_as_eight_bits_like_the_reference(resample):
    arr = _photo(37, 53, 8)
    ref_proc, ours = _reference(resample=int(resample)), ViTImageProcessor(resample=resample)
    for image, kwargs in (
        (arr.astype(np.float32), {}),  # whole numbers in 0-255, rescaled by the processor
        ((arr.astype(np.float32) + 0.4) / 256, {"do_rescale": False}),  # [0, 1]: times 255, truncated
        (np.moveaxis(arr, -1, 0).astype(np.float64), {}),
    ):
        ref, pil_path = _pixels(ref_proc, ours, image, **kwargs)
        assert np.abs(pil_path - ref).max() <= EXACT
        # Pillow's numbers on the torch path (the "pil" backend given a device): within one grey level.
        pillow_torch = ViTImageProcessor(resample=resample, backend="pil")(
            torch.from_numpy(image), device="cpu", return_tensors="np", **kwargs
        )["pixel_values"]
        assert np.abs(pillow_torch - ref).max() <= LEVEL


def test_ambiguous_channel_axis_bool_and_16_bit_images_match_the_reference():
    rng = np.random.default_rng(3)
    ref_proc, ours = _reference(), ViTImageProcessor()
    cases = [
        (rng.integers(0, 256, (3, 40, 3), dtype=np.uint8), {}),
        (rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), {"do_convert_rgb": True}),
        (rng.integers(0, 256, (3, 30, 1), dtype=np.uint8), {}),
        (rng.random((20, 30, 3)) > 0.5, {}),
        (Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16)), {"do_convert_rgb": True}),
        (Image.fromarray(rng.integers(-100, 600, (20, 30), dtype=np.int32)), {"do_convert_rgb": True}),
    ]
    for image, kwargs in cases:
        ref, got = _pixels(ref_proc, ours, image, **kwargs)
        assert np.abs(got - ref).max() <= EXACT


def test_image_file_paths_and_data_format_none_match_the_reference(tmp_path):
    Image.fromarray(_photo(30, 40, 9)).save(tmp_path / "a.png")
    rgba = np.concatenate([_photo(30, 40, 10), _photo(30, 40, 11)[..., :1]], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    ref_proc, ours = _reference(resample=3), ViTImageProcessor(resample=3)
    paths = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    for given in (paths[0], paths):
        ref, got = _pixels(ref_proc, ours, given)
        assert np.abs(got - ref).max() <= EXACT
    ref, got = _pixels(ref_proc, ours, _photo(20, 30, 12), data_format=None)
    assert got.shape == (1, 3, 224, 224) and np.abs(got - ref).max() <= EXACT


def test_a_resample_name_is_saved_so_the_reference_uses_that_filter(tmp_path):
    ours = ViTImageProcessor(resample="bicubic")
    ours.save_pretrained(tmp_path)
    loaded = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    image = _photo(37, 53, 13)
    ref = np.asarray(loaded(image, return_tensors="np")["pixel_values"])
    # The reference's Auto class picks its default backend; ours does the same.
    assert np.abs(ours(image, return_tensors="np", use_torch=loaded.backend == "torchvision")["pixel_values"] - ref).max() <= EXACT
    bilinear = ViTImageProcessor()(image, return_tensors="np")["pixel_values"]
    assert np.abs(bilinear - ref).max() > LEVEL


def test_image_processor_nested_in_processor_config_loads_like_the_reference(tmp_path):
    from plugformers import AutoImageProcessor

    settings = json.loads(_reference(size={"height": 100, "width": 120}, resample=3).to_json_string())
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": settings, "processor_class": "X"}))
    ref = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    for ours in (AutoImageProcessor.from_pretrained(tmp_path, backend="pil"), ViTImageProcessor.from_pretrained(tmp_path)):
        assert ours.size == {"height": 100, "width": 120} and ours.resample == 3
        got, expected = _pixels(ref, ours, _photo(50, 70, 14))
        assert np.abs(got - expected).max() <= EXACT


def test_uint8_tensors_match_each_backend_of_the_reference():
    t = torch.from_numpy(_photo(137, 153, 15)).permute(2, 0, 1).contiguous()
    for resample in (PILImageResampling.BILINEAR, PILImageResampling.BICUBIC):
        ref_proc, ours = _reference(resample=int(resample)), ViTImageProcessor(resample=resample)
        ref = np.asarray(ref_proc(t, return_tensors="np")["pixel_values"])
        assert np.abs(ours(t, use_torch=False, return_tensors="np")["pixel_values"] - ref).max() <= EXACT
        pillow_on_torch = ViTImageProcessor(resample=resample, backend="pil")(t, device="cpu", return_tensors="np")
        assert np.abs(pillow_on_torch["pixel_values"] - ref).max() <= LEVEL
        ref_default = np.asarray(_reference_default(resample=int(resample))(t, return_tensors="np")["pixel_values"])
        assert np.abs(ours(t, return_tensors="np")["pixel_values"] - ref_default).max() <= EXACT
