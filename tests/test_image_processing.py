"""Image processor contracts: inputs, both processing paths, printing, save/load and bad images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from plugformers.image_processing_utils import BaseImageProcessor, BatchFeature, get_size_dict
from plugformers.image_transforms import (
    center_crop,
    get_resize_output_image_size,
    resize,
    resize_weights,
    torch_center_crop,
    torch_resize,
)
from plugformers.image_utils import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    PILImageResampling,
    infer_channel_dimension_format,
    load_image,
    resolve_resample,
)
from plugformers.testing.preprocessing_tests import ImageProcessorTesterMixin, make_test_images


class TinyViTProcessor(BaseImageProcessor):
    do_resize = True
    size = {"height": 16, "width": 16}
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    do_normalize = True
    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD


class TestTinyViTProcessor(ImageProcessorTesterMixin):
    processor_class = TinyViTProcessor


def _gradient(h: int = 20, w: int = 28, seed: int = 0) -> np.ndarray:
    return np.asarray(make_test_images(1, h, w, seed=seed)[0])


def test_printed_form_matches_reference_layout():
    text = repr(TinyViTProcessor(size=224))
    assert text.startswith("TinyViTProcessor {\n  \"do_normalize\": true,")
    data = json.loads(text[len("TinyViTProcessor ") :])
    assert data == {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "TinyViTProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": 224, "width": 224},
    }


def test_resample_string_is_saved_as_its_number_and_used_as_box():
    proc = TinyViTProcessor(resample="PIL.Image.BOX", do_normalize=False, image_mean=[0.3, 0.3, 0.3])
    data = proc.to_dict()
    assert data["resample"] == 4 and data["do_normalize"] is False
    assert data["image_mean"] == [0.3, 0.3, 0.3]
    img = _gradient()
    got = proc(img, return_tensors="np")["pixel_values"][0]
    box = TinyViTProcessor(resample=PILImageResampling.BOX, do_normalize=False)(img, return_tensors="np")
    np.testing.assert_array_equal(got, box["pixel_values"][0])
    bilinear = TinyViTProcessor(do_normalize=False)(img, return_tensors="np")["pixel_values"][0]
    assert not np.array_equal(got, bilinear)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("PIL.Image.BOX", 4), ("bicubic", 3), ("Resampling.LANCZOS", 1), (0, 0), (PILImageResampling.HAMMING, 5)],
)
def test_resolve_resample(value, expected):
    assert resolve_resample(value) == expected


def test_resolve_resample_rejects_unknown():
    with pytest.raises(ValueError, match="Unknown resampling"):
        resolve_resample("PIL.Image.SMOOTH")
    with pytest.raises(ValueError):
        TinyViTProcessor(resample=9)


def test_get_size_dict_forms():
    assert get_size_dict(32) == {"height": 32, "width": 32}
    assert get_size_dict(32, default_to_square=False) == {"shortest_edge": 32}
    assert get_size_dict((10, 20)) == {"height": 10, "width": 20}
    with pytest.raises(ValueError, match="key sets"):
        get_size_dict({"height": 3})
    with pytest.raises(ValueError, match="positive"):
        get_size_dict({"height": 0, "width": 2})


def test_resize_output_size_rules():
    assert get_resize_output_image_size(480, 640, {"shortest_edge": 224}) == (224, 298)
    assert get_resize_output_image_size(640, 480, {"shortest_edge": 224}) == (298, 224)
    assert get_resize_output_image_size(100, 1000, {"shortest_edge": 50, "longest_edge": 200}) == (20, 200)
    assert get_resize_output_image_size(30, 40, {"height": 7, "width": 9}) == (7, 9)


def test_shortest_edge_processor_keeps_aspect_ratio():
    proc = TinyViTProcessor(size=12, do_normalize=False)
    proc.default_to_square = False
    proc.size = {"shortest_edge": 12}
    out = proc(_gradient(20, 28), return_tensors="np")["pixel_values"]
    assert out.shape == (1, 3, 12, 16)


@pytest.mark.parametrize("resample", list(PILImageResampling))
@pytest.mark.parametrize(
    ("source", "size"),
    [
        ((20, 28), (9, 13)), ((20, 28), (40, 50)), ((20, 28), (1, 1)), ((23, 18), (11, 15)), ((45, 16), (27, 8)),
        ((8, 32), (54, 48)), ((39, 15), (78, 1)), ((33, 1), (14, 74)), ((300, 200), (224, 224)), ((480, 640), (256, 341)),
    ],
)
def test_torch_resize_matches_pil_on_noise(resample, source, size):
    # Noise, not a smooth gradient: with smooth input a wrong tap or pass order hides within one level.
    img = np.random.default_rng(sum(source) + sum(size)).integers(0, 256, (3, *source), dtype=np.uint8)
    pil = resize(img, size, resample).astype(np.int32)
    tor = torch_resize(torch.from_numpy(img)[None], size, resample)[0].numpy().astype(np.int32)
    assert tor.shape == pil.shape
    enlarging_with_lobes = resolve_resample(resample).name in ("BICUBIC", "LANCZOS") and (
        size[0] > source[0] or size[1] > source[1]
    )
    # Pillow's fixed-point rounding between passes, amplified by negative lobes, can reach 2 levels there.
    assert np.abs(pil - tor).max() <= (2 if enlarging_with_lobes else 1)


def test_resize_weights_rows_sum_to_one_and_identity():
    w = resize_weights(10, 4, PILImageResampling.LANCZOS)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(resize_weights(6, 6, PILImageResampling.BILINEAR), np.eye(6), atol=1e-12)


def test_center_crop_and_pad_when_smaller():
    img = np.arange(2 * 4 * 6, dtype=np.uint8).reshape(2, 4, 6)
    crop = center_crop(img, (2, 2))
    np.testing.assert_array_equal(crop, img[:, 1:3, 2:4])
    padded = center_crop(img, (6, 6))
    assert padded.shape == (2, 6, 6) and padded[:, 0].sum() == 0
    np.testing.assert_array_equal(torch_center_crop(torch.from_numpy(img), (6, 6)).numpy(), padded)
    np.testing.assert_array_equal(torch_center_crop(torch.from_numpy(img), (2, 2)).numpy(), crop)


def test_both_paths_agree_on_a_mixed_batch():
    proc = TinyViTProcessor(size=14, do_center_crop=True, crop_size=10)
    images = [*make_test_images(3, 24, 32), Image.fromarray(_gradient(40, 30))]
    pil = proc(images, return_tensors="pt")["pixel_values"]
    tor = proc(images, return_tensors="pt", use_torch=True)["pixel_values"]
    assert pil.shape == tor.shape == (4, 3, 10, 10)
    assert (pil - tor).abs().max().item() <= 2 / 255 + 1e-6  # one grey level, normalised by std 0.5


def test_float_and_uint8_inputs_agree():
    img = _gradient()
    proc = TinyViTProcessor()
    from_uint8 = proc(img, return_tensors="np")["pixel_values"]
    from_float = proc(img.astype(np.float32) / 255, do_rescale=False, return_tensors="np")["pixel_values"]
    assert np.abs(from_uint8 - from_float).max() <= 2 / 255 + 1e-6


def test_torch_tensor_input_uses_torch_path_and_returns_on_device():
    t = torch.from_numpy(_gradient()).permute(2, 0, 1).contiguous()
    out = TinyViTProcessor()([t, t.clone()], return_tensors="pt")["pixel_values"]
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 16, 16) and out.dtype == torch.float32


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_whole_batch_tensor_matches_per_image_and_pil_paths(layout):
    arrays = [np.asarray(im) for im in make_test_images(3, 24, 32)]
    nhwc = torch.from_numpy(np.stack(arrays))
    batch = nhwc.permute(0, 3, 1, 2).contiguous() if layout == "nchw" else nhwc
    proc = TinyViTProcessor()
    whole = proc(batch, return_tensors="pt")["pixel_values"]
    per_image = proc(list(batch), return_tensors="pt")["pixel_values"]
    pil = proc([Image.fromarray(a) for a in arrays], return_tensors="pt")["pixel_values"]
    assert whole.shape == (3, 3, 16, 16) and whole.is_contiguous()
    torch.testing.assert_close(whole, per_image, rtol=0, atol=1e-6)
    assert (whole - pil).abs().max().item() <= 2 / 255 + 1e-6


def test_whole_batch_tensor_names_the_bad_image():
    batch = torch.rand(3, 3, 8, 8)
    batch[2, 1, 4, 4] = float("nan")
    with pytest.raises(ValueError, match="image 2 contains NaN"):
        TinyViTProcessor()(batch, do_rescale=False, return_tensors="pt")
    with pytest.raises(ValueError, match="batch of images is empty"):
        TinyViTProcessor()(torch.zeros(0, 3, 8, 8), return_tensors="pt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_path_on_cuda_matches_cpu():
    images = make_test_images(2, 24, 32)
    proc = TinyViTProcessor(resample="bicubic")
    cpu = proc(images, return_tensors="pt")["pixel_values"]
    gpu = proc(images, return_tensors="pt", device="cuda")["pixel_values"]
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max().item() <= 2 / 255 + 1e-5
    on_device = proc([torch.from_numpy(np.asarray(im)).cuda() for im in images], return_tensors="pt")
    assert on_device["pixel_values"].device.type == "cuda"


def test_image_modes_become_rgb():
    rgb = _gradient(10, 12)
    proc = TinyViTProcessor(do_resize=False, do_normalize=False)
    rgba = np.concatenate([rgb, np.full((10, 12, 1), 255, np.uint8)], axis=-1)
    out_rgba = proc(Image.fromarray(rgba, "RGBA"), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(out_rgba[0], rgb.transpose(2, 0, 1) / 255, atol=1e-6)
    transparent = rgba.copy()
    transparent[..., 3] = 0
    white = proc(Image.fromarray(transparent, "RGBA"), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(white, 1.0)
    gray = proc(Image.fromarray(rgb[..., 0], "L"), return_tensors="np")["pixel_values"][0]
    assert gray.shape == (3, 10, 12)
    np.testing.assert_array_equal(gray[0], gray[2])
    palette = Image.fromarray(rgb).convert("P")
    assert proc(palette, return_tensors="np")["pixel_values"].shape == (1, 3, 10, 12)
    deep = Image.fromarray(np.arange(120, dtype=np.uint16).reshape(10, 12) * 500)
    assert deep.mode.startswith("I;16")
    out = proc(deep, return_tensors="np")["pixel_values"][0, 0]
    # Clipped to 0-255 as Pillow's 8-bit conversion (and so the reference) does, not scaled by 1/257.
    np.testing.assert_allclose(out[0, :2], [0.0, 255 / 255], atol=1e-6)
    np.testing.assert_allclose(out[-1, -1], 1.0, atol=1e-6)


def test_one_pixel_image_and_torch_rgba():
    proc = TinyViTProcessor()
    one = np.full((1, 1, 3), 200, np.uint8)
    assert proc(one, return_tensors="pt")["pixel_values"].shape == (1, 3, 16, 16)
    rgba = torch.zeros(4, 5, 5, dtype=torch.uint8)
    rgba[3] = 255
    out = TinyViTProcessor(do_resize=False, do_normalize=False)(rgba, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 5, 5) and out.abs().max() == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((6, 6, 5), np.uint8), "got 6 and 5"),
        (np.zeros((5, 6, 6), np.float32), "got 5 and 6"),
        (np.zeros((0, 6, 3), np.uint8), "empty"),
        (np.array([[[np.nan] * 3] * 4] * 4, np.float32), "NaN"),
        (np.zeros((2, 2, 2, 2, 3), np.uint8), "dimensions"),
        (np.full((4, 4, 3), 300, np.int32), "outside 0-255"),
    ],
)
def test_bad_images_raise_clear_errors(bad, message):
    for use_torch in (False, True):
        with pytest.raises(ValueError, match=message):
            TinyViTProcessor()(bad, use_torch=use_torch)


def test_wrong_types_raise_type_error():
    with pytest.raises(FileNotFoundError, match=r"cat\.png"):
        TinyViTProcessor()("cat.png")
    with pytest.raises(FileNotFoundError, match=r"cat\.png"):
        TinyViTProcessor()(["cat.png"])
    with pytest.raises(TypeError, match="Unsupported image in list: int; pass PIL images"):
        TinyViTProcessor()([1, 2, 3])
    with pytest.raises(TypeError, match="unexpected"):
        TinyViTProcessor()(_gradient(), colour="red")
    with pytest.raises(ValueError, match="empty"):
        TinyViTProcessor()([])


def test_channel_inference():
    assert infer_channel_dimension_format(np.zeros((3, 10, 12))) == "channels_first"
    assert infer_channel_dimension_format(np.zeros((10, 12, 3))) == "channels_last"
    # Both ends could be channels: channel-first, as the reference library decides.
    for shape in ((3, 40, 3), (4, 4, 3), (3, 9, 1), (1, 5, 3)):
        assert infer_channel_dimension_format(np.zeros(shape)) == "channels_first"
    with pytest.raises(ValueError, match="no valid channel axis"):
        infer_channel_dimension_format(np.zeros((7, 8, 9)))


@pytest.mark.parametrize("use_torch", [False, True])
def test_ambiguous_array_is_read_channel_first_unless_told(use_torch):
    x = np.random.default_rng(0).integers(0, 256, (3, 40, 3), dtype=np.uint8)
    proc = TinyViTProcessor(do_resize=False, do_normalize=False)
    out = proc(x, use_torch=use_torch, return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(out[0], x / 255, atol=1e-6)
    told = proc(x, use_torch=use_torch, input_data_format="channels_last", return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(told[0], x.transpose(2, 0, 1) / 255, atol=1e-6)


@pytest.mark.parametrize("use_torch", [False, True])
def test_boolean_images_are_zero_and_one(use_torch):
    x = np.zeros((6, 5, 3), dtype=bool)
    x[0, 0] = True
    out = TinyViTProcessor(do_resize=False, do_normalize=False)(x, use_torch=use_torch, return_tensors="np")
    np.testing.assert_allclose(out["pixel_values"][0, :, 0, 0], 1 / 255, atol=1e-7)
    assert out["pixel_values"][0, :, 1:, 1:].max() == 0


def test_sixteen_and_thirty_two_bit_images_are_clipped_to_eight_bits():
    proc = TinyViTProcessor(do_resize=False, do_normalize=False, do_convert_rgb=True)
    values = np.array([[0, 100, 200, 255], [1000, 30000, 65535, 50]])
    for image in (Image.fromarray(values.astype(np.uint16)), Image.fromarray(values.astype(np.int32) - 60)):
        out = np.round(proc(image, return_tensors="np")["pixel_values"][0, 0] * 255)
        np.testing.assert_array_equal(out, np.clip(np.asarray(image), 0, 255))


@pytest.mark.parametrize("use_torch", [False, True])
def test_local_image_paths_are_opened(tmp_path, use_torch):
    from pathlib import Path

    pixels = _gradient()
    path = tmp_path / "img.png"
    Image.fromarray(pixels).save(path)
    rgba_path = tmp_path / "rgba.png"
    Image.fromarray(np.concatenate([pixels, pixels[..., :1]], -1), "RGBA").save(rgba_path)
    proc = TinyViTProcessor()
    expected = proc(pixels, use_torch=use_torch, return_tensors="np")["pixel_values"]
    for given in (str(path), Path(path), [str(path), Path(path)]):
        out = proc(given, use_torch=use_torch, return_tensors="np")["pixel_values"]
        np.testing.assert_array_equal(out, np.concatenate([expected] * (2 if isinstance(given, list) else 1)))
    # Like load_image: the file's RGB channels (alpha dropped), as the reference opens files.
    out = proc(str(rgba_path), use_torch=use_torch, return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(out, expected)


def test_image_urls_are_refused_with_a_hint():
    for given in ("https://example.com/cat.png", ["http://example.com/cat.png"]):
        with pytest.raises(ValueError, match=r"only open local files.*load_image\(url\)"):
            TinyViTProcessor()(given)


@pytest.mark.parametrize("use_torch", [False, True])
def test_data_format_none_gives_channel_first(use_torch):
    proc = TinyViTProcessor()
    x = _gradient()
    first = proc(x, use_torch=use_torch, return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(proc(x, use_torch=use_torch, data_format=None, return_tensors="np")["pixel_values"], first)
    last = proc(x, use_torch=use_torch, data_format="channels_last", return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(last, first.transpose(0, 2, 3, 1))


def test_resample_given_as_a_name_is_saved_as_its_number(tmp_path):
    TinyViTProcessor(resample="bicubic").save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["resample"] == 3 and type(saved["resample"]) is int
    assert TinyViTProcessor.from_pretrained(tmp_path).resample == 3


def test_mean_with_wrong_length_names_the_problem():
    proc = TinyViTProcessor(image_mean=[0.5, 0.5], do_convert_rgb=False)
    with pytest.raises(ValueError, match="image_mean has 2 values") as info:
        proc(_gradient())
    # A 3-channel image: converting to RGB would not help, so that is not suggested.
    assert "do_convert_rgb" not in str(info.value) and "one value per channel (3 values" in str(info.value)


def test_rgba_and_grayscale_with_an_rgb_mean_suggest_a_conversion_that_works():
    proc = TinyViTProcessor(do_convert_rgb=False)
    rgba = np.concatenate([_gradient(), _gradient()[..., :1]], -1)
    gray = _gradient()[..., 0]
    for image, kind in ((rgba, "RGBA"), (gray, "grayscale")):
        with pytest.raises(ValueError, match=f"{kind} image; pass do_convert_rgb=True"):
            proc(image)
        assert proc(image, do_convert_rgb=True, return_tensors="np")["pixel_values"].shape == (1, 3, 16, 16)


def test_zero_std_error_prints_plain_numbers():
    with pytest.raises(ValueError, match=r"got \[0\.0, 0\.0, 0\.0\]"):
        TinyViTProcessor(image_std=[0, 0, 0])(_gradient())


@pytest.mark.parametrize("resample", [PILImageResampling.BILINEAR, PILImageResampling.BICUBIC, PILImageResampling.LANCZOS])
def test_float_images_with_an_eight_bit_form_are_resized_as_eight_bits(resample):
    pixels = np.moveaxis(_gradient(37, 53), -1, 0)
    as_uint8 = resize(pixels, (24, 30), resample)
    np.testing.assert_array_equal(resize(pixels.astype(np.float32), (24, 30), resample), as_uint8)
    # [0, 1] floats: times 255, truncated, resized as 8 bits, divided back.
    unit = (pixels.astype(np.float32) + 0.3) / 256
    truncated = (unit.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_allclose(resize(unit, (24, 30), resample), resize(truncated, (24, 30), resample) / 255, atol=1e-7)
    torch_out = torch_resize(torch.from_numpy(pixels.astype(np.float32))[None], (24, 30), resample)[0].numpy()
    assert np.abs(torch_out - as_uint8).max() <= 1
    # No 8-bit form (negative values): resized in float, within the input's range.
    signed = pixels.astype(np.float32) / 127.5 - 1
    out = resize(signed, (24, 30), resample)
    assert out.dtype == np.float32 and out.min() >= -1 and out.max() <= 1
    assert not np.allclose(out * 127.5, np.round(out * 127.5))


def test_save_load_keeps_unknown_keys_and_overrides(tmp_path):
    proc = TinyViTProcessor(size=20, custom_flag="yes")
    proc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["custom_flag"] == "yes" and saved["image_processor_type"] == "TinyViTProcessor"
    loaded = TinyViTProcessor.from_pretrained(tmp_path, size=12)
    assert loaded.custom_flag == "yes" and loaded.size == {"height": 12, "width": 12}
    loaded2, unused = TinyViTProcessor.from_pretrained(
        tmp_path / "preprocessor_config.json", do_resize=False, not_a_setting=1, return_unused_kwargs=True
    )
    assert loaded2.do_resize is False and unused == {"not_a_setting": 1}
    assert TinyViTProcessor.from_dict(saved).to_dict() == proc.to_dict()


def test_save_is_atomic_and_keeps_other_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    TinyViTProcessor().save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == b"x"
    assert not [p for p in tmp_path.parent.iterdir() if ".staging-" in p.name]


def test_missing_config_is_a_clear_os_error(tmp_path):
    with pytest.raises(OSError, match=r"preprocessor_config\.json"):
        TinyViTProcessor.from_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text("{nope")
    with pytest.raises(OSError, match="not valid JSON"):
        TinyViTProcessor.from_pretrained(tmp_path)


def test_register_for_auto_class_writes_auto_map(tmp_path):
    class CustomProc(TinyViTProcessor):
        pass

    CustomProc.register_for_auto_class()
    assert CustomProc._auto_class == "AutoImageProcessor"
    assert TinyViTProcessor._auto_class is None
    assert CustomProc().to_dict()["auto_map"] == {"AutoImageProcessor": "test_image_processing.CustomProc"}


def test_batch_feature_access_and_moves():
    bf = BatchFeature({"pixel_values": [np.zeros((3, 2, 2), np.float32)] * 2, "mask": [[1, 0], [1, 1]]}, "pt")
    assert bf.pixel_values.shape == (2, 3, 2, 2) and bf["mask"].dtype == torch.int64
    bf.to(torch.float16)
    assert bf.pixel_values.dtype == torch.float16 and bf.mask.dtype == torch.int64
    with pytest.raises(AttributeError, match="no key"):
        _ = bf.missing
    with pytest.raises(ValueError, match="different"):
        BatchFeature({"x": [np.zeros(2), np.zeros(3)]}, "np")
    import pickle

    assert set(pickle.loads(pickle.dumps(bf))) == {"pixel_values", "mask"}


def test_load_image_local_file(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_gradient(), "RGB").convert("RGBA").save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (28, 20)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(OSError, match="not an image"):
        load_image(tmp_path / "bad.png")
