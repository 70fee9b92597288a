"""ConvNextImageProcessor (the ResNet checkpoints' preprocessing): sizes, crop_pct, save/load, Auto, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from plugformers_resnet.image_processing_resnet import ConvNextImageProcessor


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_defaults_match_the_reference_settings() -> None:
    processor = ConvNextImageProcessor()
    data = processor.to_dict()
    assert data["size"] == {"shortest_edge": 384}
    assert data["crop_pct"] == pytest.approx(0.875)
    assert data["resample"] == 3 and data["image_mean"] == [0.5, 0.5, 0.5]
    assert data["image_processor_type"] == "ConvNextImageProcessor"


def test_small_sizes_resize_by_crop_pct_then_center_crop() -> None:
    processor = ConvNextImageProcessor(size=32, crop_pct=0.5, do_normalize=False, backend="pil")
    img = image(40, 80)
    out = processor(img, return_tensors="np")["pixel_values"]
    assert out.shape == (1, 3, 32, 32)
    # Same as resizing the short side to 64 (keeping the aspect) and cutting out the central 32x32.
    resized = np.asarray(Image.fromarray(img).resize((128, 64), Image.Resampling.BICUBIC), dtype=np.float32)
    expected = resized[16:48, 48:80].transpose(2, 0, 1) / 255
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_large_sizes_warp_to_the_square_without_cropping() -> None:
    processor = ConvNextImageProcessor(size={"shortest_edge": 384}, do_normalize=False, backend="pil")
    img = image(20, 60)
    out = processor(img, return_tensors="np")["pixel_values"]
    assert out.shape == (1, 3, 384, 384)
    expected = np.asarray(Image.fromarray(img).resize((384, 384), Image.Resampling.BICUBIC), dtype=np.float32)
    np.testing.assert_allclose(out[0], expected.transpose(2, 0, 1) / 255, atol=1e-6)


def test_per_call_overrides_and_extra_center_crop() -> None:
    processor = ConvNextImageProcessor(size=32)
    assert processor(image(50, 70), size=24, return_tensors="np")["pixel_values"].shape == (1, 3, 24, 24)
    crop = processor(image(50, 70), do_center_crop=True, crop_size=16, return_tensors="np")["pixel_values"]
    full = processor(image(50, 70), return_tensors="np")["pixel_values"]
    assert crop.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(crop[0], full[0, :, 8:24, 8:24], atol=1e-6)
    unresized = processor(image(10, 12), do_resize=False, return_tensors="np")["pixel_values"]
    assert unresized.shape == (1, 3, 10, 12)


def test_torch_path_agrees_with_the_pillow_path() -> None:
    processor = ConvNextImageProcessor(size=32)
    images = [image(40, 56, seed=1), image(64, 48, seed=2)]
    pil = processor(images, return_tensors="pt")["pixel_values"]
    fast = processor([torch.from_numpy(im) for im in images], return_tensors="pt")["pixel_values"]
    assert fast.shape == pil.shape == (2, 3, 32, 32)
    # within about one grey level after normalisation (2/255 / 0.5 std)
    assert (fast - pil).abs().max() < 0.02


def test_save_and_load_round_trip(tmp_path) -> None:
    processor = ConvNextImageProcessor(size=48, crop_pct=0.9, image_mean=[0.1, 0.2, 0.3])
    processor.save_pretrained(tmp_path)
    again = ConvNextImageProcessor.from_pretrained(tmp_path)
    assert again.to_dict() == processor.to_dict()
    img = image(33, 50)
    np.testing.assert_array_equal(
        again(img, return_tensors="np")["pixel_values"], processor(img, return_tensors="np")["pixel_values"]
    )


def test_auto_image_processor_reads_a_reference_resnet_config(tmp_path) -> None:
    from plugformers.auto import AutoImageProcessor

    # What microsoft/resnet-50 ships: the legacy feature-extractor name and an int size.
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_pct": 0.875,
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "ConvNextFeatureExtractor",
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "resample": 3,
                "size": 224,
            }
        )
    )
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(processor, ConvNextImageProcessor)
    assert processor.size == {"shortest_edge": 224}
    out = processor(Image.fromarray(image(300, 400)), return_tensors="pt")["pixel_values"]
    assert tuple(out.shape) == (1, 3, 224, 224)


def test_image_processor_is_registered_for_resnet(tmp_path) -> None:
    import plugformers
    from plugformers.auto import AutoImageProcessor
    from plugformers.plugins import get_registry, import_object

    assert plugformers.ConvNextImageProcessor is ConvNextImageProcessor
    assert plugformers.ConvNextFeatureExtractor is ConvNextImageProcessor  # legacy name in old checkpoints
    assert import_object(get_registry().family("resnet").image_processor) is ConvNextImageProcessor
    ConvNextImageProcessor(size=32).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert data["image_processor_type"] == "ConvNextImageProcessor"
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), ConvNextImageProcessor)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_pct": 0}, "crop_pct"),
        ({"crop_pct": 1.5}, "crop_pct"),
        ({"crop_pct": "0.9"}, "crop_pct"),
        ({"size": {"height": 32, "width": 32}}, "shortest_edge"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConvNextImageProcessor(**kwargs)


def test_bad_call_arguments_are_named() -> None:
    processor = ConvNextImageProcessor(size=32)
    with pytest.raises(ValueError, match="shortest_edge"):
        processor(image(40, 40), size={"height": 8, "width": 8})
    with pytest.raises(ValueError, match="crop_pct"):
        processor(image(40, 40), crop_pct=-1)
