"""MaskFormerImageProcessor: sizes, padding, labels from segmentation maps, post-processing and bad input."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from plugformers import AutoImageProcessor, MaskFormerImageProcessor


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_resize_keeps_aspect_caps_long_side_and_rounds_to_divisor() -> None:
    proc = MaskFormerImageProcessor(size={"shortest_edge": 40, "longest_edge": 64})
    out = proc([_image(45, 61), _image(70, 33, 1)], return_tensors="pt")
    # 45x61 -> 40x54 -> 64x64 after rounding up to 32; 70x33 -> 64x30 (long side capped) -> 64x32.
    assert tuple(out["pixel_values"].shape) == (2, 3, 64, 64)
    mask = out["pixel_mask"]
    assert mask[0].sum() == 64 * 64
    assert mask[1, :, :32].all() and not mask[1, :, 32:].any()
    assert (out["pixel_values"][1, :, :, 32:] == 0).all()


def test_padding_is_the_same_for_every_return_type_and_for_mixed_channel_counts() -> None:
    proc = MaskFormerImageProcessor(size={"shortest_edge": 40, "longest_edge": 64})
    images = [_image(45, 61), _image(70, 33, 1)]
    pt = proc(images, return_tensors="pt")
    listed = proc(images)
    assert isinstance(listed["pixel_values"], list) and len(listed["pixel_values"]) == 2
    for i in range(2):
        np.testing.assert_array_equal(listed["pixel_values"][i], pt["pixel_values"][i].numpy())
        np.testing.assert_array_equal(listed["pixel_mask"][i], pt["pixel_mask"][i].numpy())
    # A grayscale image among RGB ones keeps its own channel count (one array per image).
    gray = proc([images[0], _image(45, 61)[..., 0]], do_normalize=False)
    assert [v.shape[0] for v in gray["pixel_values"]] == [3, 1]
    np.testing.assert_array_equal(gray["pixel_mask"][0], gray["pixel_mask"][1])


def test_torch_path_matches_the_numpy_path_on_every_return_type() -> None:
    # Enlarging (bilinear) and shrinking, sizes rounded to the divisor, padding of unequal sizes.
    proc = MaskFormerImageProcessor(size={"shortest_edge": 40, "longest_edge": 64})
    images = [_image(45, 61), _image(70, 33, 1), _image(20, 25, 2)]
    reference = proc(images, return_tensors="pt", use_torch=False)
    # One pixel level of difference, after normalising by the smallest std (0.225), is 0.0175.
    level = 1 / 255 / min(proc.image_std)
    for inputs in ([torch.from_numpy(im).permute(2, 0, 1) for im in images], images):
        out = proc(inputs, return_tensors="pt", use_torch=True)
        assert isinstance(out["pixel_values"], torch.Tensor) and out["pixel_values"].dtype == torch.float32
        torch.testing.assert_close(out["pixel_values"], reference["pixel_values"], atol=level * 1.01, rtol=0)
        assert torch.equal(out["pixel_mask"], reference["pixel_mask"])
    as_np = proc([torch.from_numpy(im) for im in images], return_tensors="np")
    assert isinstance(as_np["pixel_values"], np.ndarray) and as_np["pixel_values"].shape == (3, 3, 64, 64)
    listed = proc([torch.from_numpy(im) for im in images])
    assert isinstance(listed["pixel_values"], list) and isinstance(listed["pixel_values"][0], torch.Tensor)
    np.testing.assert_array_equal(np.stack([m.numpy() for m in listed["pixel_mask"]]), as_np["pixel_mask"])
    # Mixed channel counts keep one tensor per image, as on the NumPy path.
    gray = proc([torch.from_numpy(images[0]), torch.from_numpy(images[0][..., 0])], do_normalize=False)
    assert [v.shape[0] for v in gray["pixel_values"]] == [3, 1]


def test_torch_path_takes_segmentation_maps_and_float_input() -> None:
    seg = np.zeros((8, 8), dtype=np.int64)
    seg[:4] = 2
    proc = MaskFormerImageProcessor(size={"shortest_edge": 16, "longest_edge": 32}, ignore_index=255)
    image = _image(8, 8)
    numpy_out = proc(image, segmentation_maps=seg, return_tensors="pt")
    torch_out = proc(torch.from_numpy(image), segmentation_maps=seg, return_tensors="pt")
    assert torch_out["class_labels"][0].tolist() == numpy_out["class_labels"][0].tolist() == [0, 2]
    assert torch.equal(torch_out["mask_labels"][0], numpy_out["mask_labels"][0])
    floats = proc(torch.from_numpy(image).float() / 255, do_rescale=False, return_tensors="pt")
    torch.testing.assert_close(floats["pixel_values"], numpy_out["pixel_values"], atol=0.02, rtol=0)
    with pytest.raises(ValueError, match=r"(?i)nan"):
        proc(torch.full((3, 8, 8), float("nan")), return_tensors="pt")


def test_segmentation_maps_become_masks_and_classes(tmp_path: Any) -> None:
    seg = np.zeros((8, 8), dtype=np.int64)
    seg[:4] = 2
    seg[4:, :4] = 5
    seg[4:, 4:] = 255
    proc = MaskFormerImageProcessor(do_resize=False, ignore_index=255)
    out = proc(_image(8, 8), segmentation_maps=seg, return_tensors="pt")
    assert out["class_labels"][0].tolist() == [2, 5]
    masks = out["mask_labels"][0]
    assert masks.shape == (2, 8, 8) and masks[0, :4].all() and masks[1, 4:, :4].all() and masks.sum() == 48


def test_reduce_labels_turns_background_into_ignore_index() -> None:
    seg = np.array([[0, 1], [2, 2]])
    proc = MaskFormerImageProcessor(do_resize=False, do_reduce_labels=True, ignore_index=255)
    out = proc(_image(2, 2), segmentation_maps=seg)
    assert out["class_labels"][0].tolist() == [0, 1]
    assert out["mask_labels"][0].sum() == 3  # the background pixel belongs to no mask


def test_instance_ids_map_to_semantic_classes() -> None:
    seg = np.array([[1, 1], [2, 3]])
    proc = MaskFormerImageProcessor(do_resize=False)
    out = proc(_image(2, 2), segmentation_maps=seg, instance_id_to_semantic_id={1: 7, 2: 7, 3: 4})
    assert out["class_labels"][0].tolist() == [7, 7, 4]


def test_segmentation_map_of_another_size_is_refused() -> None:
    proc = MaskFormerImageProcessor()
    with pytest.raises(ValueError, match="segmentation map 0 has size 5x5 but its image is 8x8"):
        proc(_image(8, 8), segmentation_maps=np.zeros((5, 5), dtype=np.int64))


def test_class_ids_above_num_labels_are_refused_unless_ignored() -> None:
    seg = np.array([[0, 9], [255, 1]])
    proc = MaskFormerImageProcessor(do_resize=False, num_labels=3, ignore_index=255)
    with pytest.raises(ValueError, match=r"class ids \[9\] outside 0\.\.2"):
        proc(_image(2, 2), segmentation_maps=seg)
    ok = proc(_image(2, 2), segmentation_maps=np.array([[0, 2], [255, 1]]))
    assert ok["class_labels"][0].tolist() == [0, 1, 2]


def test_mismatched_counts_and_bad_arguments() -> None:
    proc = MaskFormerImageProcessor(do_resize=False)
    with pytest.raises(ValueError, match="2 images but 1 segmentation maps"):
        proc([_image(5, 6), _image(5, 6)], segmentation_maps=[np.zeros((5, 6), dtype=np.int64)])
    with pytest.raises(ValueError, match="needs ignore_index"):
        proc(_image(5, 6), segmentation_maps=np.zeros((5, 6), dtype=np.int64), do_reduce_labels=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        proc(_image(5, 6), crop_size=3)


def test_save_load_and_auto_class(tmp_path: Any) -> None:
    proc = MaskFormerImageProcessor(size_divisor=16, ignore_index=255)
    proc.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, MaskFormerImageProcessor)
    assert loaded.to_dict() == proc.to_dict()


def test_legacy_setting_names_are_understood() -> None:
    proc = MaskFormerImageProcessor(max_size=640, size_divisibility=16, reduce_labels=True)
    assert proc.size == {"shortest_edge": 800, "longest_edge": 640}
    assert proc.size_divisor == 16 and proc.do_reduce_labels is True


def _outputs() -> SimpleNamespace:
    torch.manual_seed(0)
    return SimpleNamespace(class_queries_logits=torch.randn(2, 5, 4) * 3, masks_queries_logits=torch.randn(2, 5, 6, 6) * 3)


def test_semantic_post_processing_sizes_and_classes() -> None:
    maps = MaskFormerImageProcessor().post_process_semantic_segmentation(_outputs(), target_sizes=[(12, 9), (3, 4)])
    assert [tuple(m.shape) for m in maps] == [(12, 9), (3, 4)]
    assert all(int(m.max()) < 3 for m in maps)  # never the "no object" class
    with pytest.raises(ValueError, match="2 predictions"):
        MaskFormerImageProcessor().post_process_semantic_segmentation(_outputs(), target_sizes=[(4, 4)])


def test_instance_and_panoptic_post_processing_are_consistent() -> None:
    proc = MaskFormerImageProcessor()
    for result in proc.post_process_instance_segmentation(_outputs(), threshold=0.1, target_sizes=[(6, 6), (12, 12)]):
        ids = {s["id"] for s in result["segments_info"]}
        assert set(result["segmentation"].unique().tolist()) - {-1} <= ids
        assert all(s["score"] >= 0.1 for s in result["segments_info"])
    for result in proc.post_process_panoptic_segmentation(_outputs(), threshold=0.1, label_ids_to_fuse={1}):
        ids = [s["id"] for s in result["segments_info"] if s["label_id"] != 1]
        assert len(ids) == len(set(ids))
        assert set(result["segmentation"].unique().tolist()) - {0, -1} <= {s["id"] for s in result["segments_info"]}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_path_runs_on_cuda_and_matches_the_numpy_path() -> None:
    proc = MaskFormerImageProcessor(size={"shortest_edge": 40, "longest_edge": 64})
    images = [_image(45, 61), _image(70, 33, 1)]
    reference = proc(images, return_tensors="pt", use_torch=False)
    out = proc([torch.from_numpy(im).permute(2, 0, 1).cuda() for im in images], return_tensors="pt")
    assert out["pixel_values"].device.type == "cuda" and out["pixel_mask"].device.type == "cuda"
    assert (out["pixel_values"].cpu() - reference["pixel_values"]).abs().max().item() <= 2 / 255 / 0.225 + 1e-6
    assert torch.equal(out["pixel_mask"].cpu(), reference["pixel_mask"])


def test_legacy_int_size_with_max_size(tmp_path: Any) -> None:
    # The Hub's facebook/maskformer-* configs: "size": 800 with "max_size": 1333.
    assert MaskFormerImageProcessor(size=512, max_size=2048).size == {"shortest_edge": 512, "longest_edge": 2048}
    assert MaskFormerImageProcessor(size=512).size == {"shortest_edge": 512}
    assert MaskFormerImageProcessor(max_size=2048).size == {"shortest_edge": 800, "longest_edge": 2048}
    # As in the reference, max_size only applies to an int (or default) size.
    assert MaskFormerImageProcessor(size={"shortest_edge": 600}, max_size=2000).size == {"shortest_edge": 600}
    legacy = {"image_processor_type": "MaskFormerFeatureExtractor", "size": 800, "max_size": 1333,
              "size_divisibility": 32, "do_resize": True, "ignore_index": 255}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(legacy))
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, MaskFormerImageProcessor)
    assert loaded.size == {"shortest_edge": 800, "longest_edge": 1333} and loaded.size_divisor == 32


@pytest.mark.parametrize("use_torch", [False, True])
def test_do_convert_rgb_from_the_constructor_or_the_call(use_torch: bool) -> None:
    rgba = np.concatenate([_image(40, 50), np.full((40, 50, 1), 255, np.uint8)], -1)
    rgb = _image(40, 50)
    expected = MaskFormerImageProcessor()(rgb, use_torch=use_torch, return_tensors="np")["pixel_values"]
    for proc, kwargs in ((MaskFormerImageProcessor(do_convert_rgb=True), {}),
                         (MaskFormerImageProcessor(), {"do_convert_rgb": True})):
        out = proc(rgba, use_torch=use_torch, return_tensors="np", **kwargs)["pixel_values"]
        np.testing.assert_allclose(out, expected, atol=1e-6)
    # Without it RGBA stays 4 channels, and the error names the fix.
    with pytest.raises(ValueError, match="RGBA image; pass do_convert_rgb=True"):
        MaskFormerImageProcessor()(rgba, use_torch=use_torch)


@pytest.mark.parametrize("use_torch", [False, True])
def test_do_pad_and_data_format_are_accepted(use_torch: bool) -> None:
    proc = MaskFormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 100})
    images = [_image(60, 80), _image(90, 50, 1)]
    padded = proc(images, use_torch=use_torch, return_tensors="np")
    # do_pad=False is accepted; batches are still padded (pixel_mask describes the padding), as in the reference.
    unpadded = proc(images, use_torch=use_torch, do_pad=False, return_tensors="np")
    np.testing.assert_array_equal(unpadded["pixel_values"], padded["pixel_values"])
    for fmt in ("channels_first", None):
        same = proc(images, use_torch=use_torch, data_format=fmt, return_tensors="np")["pixel_values"]
        np.testing.assert_array_equal(same, padded["pixel_values"])
    last = proc(images, use_torch=use_torch, data_format="channels_last")["pixel_values"]
    np.testing.assert_array_equal(np.stack([np.asarray(v) for v in last]), padded["pixel_values"].transpose(0, 2, 3, 1))
