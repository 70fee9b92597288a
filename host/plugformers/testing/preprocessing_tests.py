"""Generic checks every image processor and feature extractor should pass; family test classes reuse them.

Usage::

    class TestViTImageProcessor(ImageProcessorTesterMixin):
        processor_class = ViTImageProcessor
        def make_processor(self):
            return ViTImageProcessor(size=32)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np


def make_test_images(count: int = 2, height: int = 24, width: int = 32, seed: int = 0) -> list[Any]:
    """Small photograph-like RGB Pillow images: smooth colour gradients plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for i in range(count):
        base = np.stack(
            [xx / max(width - 1, 1) * 255, yy / max(height - 1, 1) * 255, (xx + yy + 40 * i) % 256], axis=-1
        )
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(noisy, mode="RGB"))
    return images


def reference_on_torchvision(make: Callable[[], Any]) -> Any:
    """The reference image processor ``make()`` builds when it runs on torchvision, else skip the test.

    For parity tests with the reference library's default backend: without torchvision installed, the
    reference's default classes quietly fall back to its Pillow backend, which is not what is compared.
    """
    import pytest

    pytest.importorskip("torchvision", reason="the reference's default backend needs torchvision")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = make()
    if getattr(proc, "backend", None) != "torchvision":
        pytest.skip("the reference fell back to its Pillow backend")
    return proc


class ImageProcessorTesterMixin:
    """Checks for a ``BaseImageProcessor`` subclass; set ``processor_class`` and override ``make_processor``."""

    processor_class: ClassVar[type | None] = None

    def make_processor(self) -> Any:
        assert self.processor_class is not None
        return self.processor_class()

    def test_printed_form_is_sorted_json_with_type(self) -> None:
        proc = self.make_processor()
        text = repr(proc)
        name = type(proc).__name__
        assert text.startswith(f"{name} {{")
        data = json.loads(text[len(name) + 1 :])
        assert data["image_processor_type"] == name
        assert list(data) == sorted(data)

    def test_save_load_round_trip(self, tmp_path: Any) -> None:
        proc = self.make_processor()
        proc.save_pretrained(tmp_path)
        loaded = type(proc).from_pretrained(tmp_path)
        assert loaded.to_dict() == proc.to_dict()

    def test_pil_numpy_and_torch_inputs_agree(self) -> None:
        import torch

        proc = self.make_processor()
        images = make_test_images()
        arrays = [np.asarray(im) for im in images]
        from_pil = proc(images, return_tensors="np")["pixel_values"]
        from_hwc = proc(arrays, return_tensors="np")["pixel_values"]
        from_chw = proc([a.transpose(2, 0, 1) for a in arrays], return_tensors="np")["pixel_values"]
        from_torch = proc([torch.from_numpy(a.copy()) for a in arrays], return_tensors="np")["pixel_values"]
        np.testing.assert_array_equal(from_pil, from_hwc)
        np.testing.assert_array_equal(from_pil, from_chw)
        scale = self._one_level(proc)
        assert np.abs(from_torch - from_pil).max() <= scale + 1e-5

    @staticmethod
    def _one_level(proc: Any) -> float:
        """One grey level (1/255 of the input range) after this processor's rescale and normalisation."""
        level = 1.0
        if getattr(proc, "do_rescale", False):
            level *= proc.rescale_factor
        if getattr(proc, "do_normalize", False) and proc.image_std is not None:
            std = proc.image_std if isinstance(proc.image_std, (int, float)) else min(proc.image_std)
            level /= std
        return float(level)

    def test_default_backend_is_the_torch_path_and_pil_the_pillow_path(self) -> None:
        proc = self.make_processor()
        assert proc.backend == "torchvision"
        images = make_test_images()
        default = proc(images)["pixel_values"]
        assert all(type(pv).__name__ == "Tensor" for pv in default)  # the torch path's outputs
        np.testing.assert_array_equal(
            proc(images, return_tensors="np")["pixel_values"],
            proc(images, return_tensors="np", use_torch=True)["pixel_values"],
        )
        proc.backend = "pil"
        assert all(isinstance(pv, np.ndarray) for pv in proc(images)["pixel_values"])
        np.testing.assert_array_equal(
            proc(images, return_tensors="np")["pixel_values"],
            proc(images, return_tensors="np", use_torch=False)["pixel_values"],
        )

    def test_backend_is_checked_and_not_saved(self, tmp_path: Any) -> None:
        import pytest

        proc = self.make_processor()
        with pytest.raises(ValueError, match=r"backend must be one of \['torchvision', 'pil'\].*got 'fast'"):
            proc.backend = "fast"
        proc.backend = "pil"
        proc.save_pretrained(tmp_path)
        assert "backend" not in json.loads((tmp_path / "preprocessor_config.json").read_text())
        assert type(proc).from_pretrained(tmp_path).backend == type(proc).default_backend
        assert type(proc).from_pretrained(tmp_path, backend="pil").backend == "pil"
        with pytest.raises(ValueError, match="backend must be one of"):
            type(proc).from_pretrained(tmp_path, backend="torch")

    def test_bad_inputs_raise_value_error(self) -> None:
        import pytest

        proc = self.make_processor()
        with pytest.raises(ValueError, match="channels"):
            proc(np.zeros((8, 8, 5), dtype=np.uint8))
        with pytest.raises(ValueError, match="empty"):
            proc(np.zeros((0, 8, 3), dtype=np.uint8))
        bad = np.full((8, 8, 3), 0.5, dtype=np.float32)
        bad[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            proc(bad)


class FeatureExtractorTesterMixin:
    """Checks for a ``SequenceFeatureExtractor`` subclass; set ``extractor_class``, override ``make_extractor``."""

    extractor_class: ClassVar[type | None] = None

    def make_extractor(self) -> Any:
        assert self.extractor_class is not None
        return self.extractor_class()

    def make_audio(self, lengths: tuple[int, ...] = (50, 80), seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [np.sin(np.arange(n) / 5.0).astype(np.float32) + rng.normal(0, 0.05, n).astype(np.float32) for n in lengths]

    def test_printed_form_is_sorted_json_with_type(self) -> None:
        fe = self.make_extractor()
        name = type(fe).__name__
        data = json.loads(repr(fe)[len(name) + 1 :])
        assert data["feature_extractor_type"] == name
        for key in ("feature_size", "sampling_rate", "padding_value", "padding_side", "return_attention_mask"):
            assert key in data

    def test_save_load_round_trip(self, tmp_path: Any) -> None:
        fe = self.make_extractor()
        fe.save_pretrained(tmp_path)
        assert type(fe).from_pretrained(tmp_path).to_dict() == fe.to_dict()

    def test_batch_pads_to_longest(self) -> None:
        fe = self.make_extractor()
        out = fe(self.make_audio(), sampling_rate=fe.sampling_rate, padding=True, return_tensors="np")
        values = out[fe.model_input_names[0]]
        assert values.shape[0] == 2

    def test_wrong_sampling_rate_is_refused(self) -> None:
        import pytest

        fe = self.make_extractor()
        other = fe.sampling_rate // 2
        with pytest.raises(ValueError, match=str(other)):
            fe(self.make_audio()[0], sampling_rate=other)

    def test_bad_audio_raises_value_error(self) -> None:
        import pytest

        fe = self.make_extractor()
        sr = fe.sampling_rate
        with pytest.raises(ValueError):
            fe(np.zeros(0, dtype=np.float32), sampling_rate=sr)
        with pytest.raises(ValueError, match="NaN"):
            fe(np.array([0.0, np.nan, 1.0], dtype=np.float32), sampling_rate=sr)
        with pytest.raises(ValueError, match="non-numeric"):
            fe([np.array(["a", "b"])], sampling_rate=sr)
