"""ViTImageProcessor: printed settings, overrides, save/load, and the PIL and torch paths on real photographs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from plugformers_vit.image_processing_vit import ViTFeatureExtractor, ViTImageProcessor

DATA = Path(__file__).parent / "data"
PHOTOS = ("astronaut", "chelsea", "coffee")
GREY_LEVEL = 1 / 255


def photo(name: str) -> Image.Image:
    with Image.open(DATA / f"{name}.jpg") as im:
        return im.convert("RGB")


def as_chw_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


def test_default_settings_print_as_the_reference_does() -> None:
    text = repr(ViTImageProcessor())
    head, body = text.split(" ", 1)
    assert head == "ViTImageProcessor"
    assert json.loads(body) == {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": 224, "width": 224},
    }
    # Sorted keys, two-space indent: the exact layout the guide shows.
    assert body.startswith('{\n  "do_normalize": true,\n  "do_rescale": true,')


def test_guide_overrides_are_kept_and_printed() -> None:
    proc = ViTImageProcessor(resample="PIL.Image.BOX", do_normalize=False, image_mean=[0.3, 0.3, 0.3])
    data = json.loads(repr(proc).split(" ", 1)[1])
    assert data["resample"] == 4  # the filter's number: the reference library ignores filter names in files
    assert data["do_normalize"] is False
    assert data["image_mean"] == [0.3, 0.3, 0.3]
    assert data["image_std"] == [0.5, 0.5, 0.5]
    out = proc(photo("chelsea"), return_tensors="np")["pixel_values"]
    # No normalisation: values are the rescaled pixels in [0, 1].
    assert out.shape == (1, 3, 224, 224) and out.min() >= 0.0 and out.max() <= 1.0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    proc = ViTImageProcessor(size={"height": 64, "width": 48}, resample=3, image_std=[0.2, 0.3, 0.4])
    proc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "ViTImageProcessor" and saved["size"] == {"height": 64, "width": 48}
    again = ViTImageProcessor.from_pretrained(tmp_path)
    assert again.to_dict() == proc.to_dict()
    image = photo("coffee")
    np.testing.assert_array_equal(
        again(image, return_tensors="np")["pixel_values"], proc(image, return_tensors="np")["pixel_values"]
    )


def test_auto_image_processor_finds_vit(tmp_path: Path) -> None:
    from plugformers import AutoImageProcessor

    ViTImageProcessor(size=96).save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is ViTImageProcessor and loaded.size == {"height": 96, "width": 96}


def test_int_size_means_a_square() -> None:
    assert ViTImageProcessor(size=96).size == {"height": 96, "width": 96}


def test_default_output_is_normalised_to_minus_one_one() -> None:
    out = ViTImageProcessor()([photo(n) for n in PHOTOS], return_tensors="pt")["pixel_values"]
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    # A uniform grey image maps to the matching constant.
    grey = Image.new("RGB", (50, 70), (51, 51, 51))
    value = ViTImageProcessor()(grey, return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(value, (51 / 255 - 0.5) / 0.5, atol=1e-6)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("settings", [{}, {"resample": "PIL.Image.BOX"}, {"resample": 3}])
def test_torch_path_matches_pil_path_within_one_grey_level(name: str, settings: dict[str, Any]) -> None:
    proc = ViTImageProcessor(**settings)
    image = photo(name)
    pil = proc(image, return_tensors="np")["pixel_values"]
    batched = proc([as_chw_tensor(image)] * 2, return_tensors="pt")["pixel_values"]
    assert batched.shape == (2, 3, 224, 224)
    # Differences are measured in pixel units (before the division by std).
    diff = np.abs(batched[1].numpy() - pil[0]) * 0.5
    assert diff.max() <= GREY_LEVEL + 1e-6


def test_odd_inputs_grey_rgba_tiny_large() -> None:
    proc = ViTImageProcessor()
    rng = np.random.default_rng(0)
    grey = photo("chelsea").convert("L")
    rgba = photo("coffee").convert("RGBA")
    tiny = Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8))
    one = Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8))
    large = Image.fromarray(rng.integers(0, 256, (1200, 1700, 3), dtype=np.uint8))
    out = proc([grey, rgba, tiny, one, large], return_tensors="np")["pixel_values"]
    assert out.shape == (5, 3, 224, 224)
    # Grey becomes three equal channels; an opaque RGBA image gives the RGB result.
    np.testing.assert_array_equal(out[0, 0], out[0, 2])
    np.testing.assert_array_equal(out[1], proc(photo("coffee"), return_tensors="np")["pixel_values"][0])
    # A single pixel is stretched to a constant image.
    assert np.ptp(out[3], axis=(1, 2)).max() < 1e-6


def test_numpy_inputs_in_both_layouts() -> None:
    proc = ViTImageProcessor()
    image = photo("astronaut")
    hwc = np.array(image)
    from_pil = proc(image, return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(proc(hwc, return_tensors="np")["pixel_values"], from_pil)
    np.testing.assert_array_equal(proc(hwc.transpose(2, 0, 1), return_tensors="np")["pixel_values"], from_pil)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"size": {"width": 10}}, ValueError),
        ({"size": -3}, ValueError),
        ({"resample": "PIL.Image.SHARPEST"}, ValueError),
    ],
)
def test_bad_settings_are_refused_early(bad: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ViTImageProcessor(**bad)


def test_bad_images_are_refused_with_a_clear_error() -> None:
    proc = ViTImageProcessor()
    with pytest.raises(FileNotFoundError):  # a string is read as the path of an image file
        proc("not an image at all", return_tensors="np")
    with pytest.raises(TypeError):
        proc(object(), return_tensors="np")
    with pytest.raises(ValueError):
        proc(np.zeros((4, 4, 4, 4, 4), dtype=np.uint8), return_tensors="np")


def test_feature_extractor_alias_warns_once_and_behaves_the_same(tmp_path: Path) -> None:
    from plugformers.utils import logging as plog

    for message in [m for m in plog._warned_once if "ViTFeatureExtractor" in m]:
        plog._warned_once.discard(message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = ViTFeatureExtractor()
        ViTFeatureExtractor(do_normalize=False)
    messages = [w for w in caught if "ViTFeatureExtractor is deprecated" in str(w.message)]
    assert len(messages) == 1 and issubclass(messages[0].category, FutureWarning)
    assert isinstance(first, ViTImageProcessor)
    image = photo("chelsea")
    np.testing.assert_array_equal(
        first(image, return_tensors="np")["pixel_values"], ViTImageProcessor()(image, return_tensors="np")["pixel_values"]
    )
    first.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "ViTImageProcessor"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_path_runs_on_cuda_and_matches_cpu() -> None:
    proc = ViTImageProcessor()
    images = [as_chw_tensor(photo(n)) for n in PHOTOS]
    cpu = proc(images, return_tensors="pt")["pixel_values"]
    gpu = proc([im.cuda() for im in images], return_tensors="pt")["pixel_values"]
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max().item() * 0.5 <= GREY_LEVEL + 1e-6
