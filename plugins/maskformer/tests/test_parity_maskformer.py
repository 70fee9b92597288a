"""Parity with the reference library: checkpoints load both ways, logits and loss agree, post-processing equal."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

import plugformers  # noqa: E402

STAGES = ["stage1", "stage2", "stage3", "stage4"]
CONFIGS = {
    "bottleneck": {"layer_type": "bottleneck", "hidden_sizes": [32, 32, 32, 32], "aux": False, "queries": 5},
    "basic": {"layer_type": "basic", "hidden_sizes": [8, 16, 16, 32], "aux": False, "queries": 3},
}


def _reference_model(kind: str) -> Any:
    spec = CONFIGS[kind]
    backbone = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=spec["hidden_sizes"], depths=[1, 1, 1, 1], layer_type=spec["layer_type"],
        out_features=STAGES,
    )
    config = transformers.MaskFormerConfig(
        backbone_config=backbone,
        fpn_feature_size=32,
        mask_feature_size=32,
        num_labels=3,
        decoder_config={
            "model_type": "detr", "d_model": 32, "decoder_layers": 2, "decoder_attention_heads": 2,
            "decoder_ffn_dim": 64, "num_queries": spec["queries"],
        },
    )
    torch.manual_seed(0)
    model = transformers.MaskFormerForInstanceSegmentation(config).eval()
    # Non-trivial norm statistics, so the backbone's BatchNorm layers are really compared.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def _inputs(seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randn(2, 3, 64, 64, generator=gen)
    masks = [(torch.rand(2, 64, 64, generator=gen) > 0.5).float(), (torch.rand(3, 64, 64, generator=gen) > 0.5).float()]
    classes = [torch.tensor([0, 2]), torch.tensor([1, 1, 0])]
    return pixels, masks, classes


def _compare(ours: Any, ref: Any) -> None:
    for name in ("class_queries_logits", "masks_queries_logits", "loss"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_reference_checkpoint_loads_and_matches(kind: str, tmp_path: Any) -> None:
    ref = _reference_model(kind)
    ref.save_pretrained(tmp_path)
    ours, info = plugformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    pixels, masks, classes = _inputs()
    with torch.no_grad():
        expected = ref(pixels, mask_labels=masks, class_labels=classes)
        got = ours.eval()(pixels, mask_labels=masks, class_labels=classes)
    _compare(got, expected)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_our_checkpoint_loads_in_the_reference(attn: str, tmp_path: Any) -> None:
    ref = _reference_model("basic")
    ref.save_pretrained(tmp_path / "ref")
    ours = plugformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "ref", attn_implementation=attn)
    ours.save_pretrained(tmp_path / "ours")
    config = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert config["backbone_config"]["model_type"] == "resnet" and config["decoder_config"]["model_type"] == "detr"
    back = transformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "ours").eval()
    assert sorted(back.state_dict()) == sorted(ref.state_dict())
    pixels, masks, classes = _inputs(1)
    with torch.no_grad():
        _compare(ours.eval()(pixels, mask_labels=masks, class_labels=classes), back(pixels, mask_labels=masks, class_labels=classes))


def test_state_dict_keys_and_config_keys_match() -> None:
    ref = _reference_model("bottleneck")
    config = plugformers.MaskFormerConfig.from_dict(ref.config.to_dict())
    ours = plugformers.MaskFormerForInstanceSegmentation(config)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    # The reference renames its decoder's attention output and MLP weights on save; ours use the file names.
    renamed = {
        k.replace(".o_proj.", ".out_proj.").replace(".mlp.fc1.", ".fc1.").replace(".mlp.fc2.", ".fc2."): v
        for k, v in ref_shapes.items()
    }
    assert our_shapes == renamed
    drop = {"transformers_version", "plugformers_version"}
    ref_keys = set(transformers.MaskFormerConfig(backbone_config=transformers.ResNetConfig()).to_dict()) - drop
    assert set(plugformers.MaskFormerConfig(backbone_config=plugformers.ResNetConfig()).to_dict()) - drop == ref_keys


def test_saved_files_hold_the_same_key_names(tmp_path: Any) -> None:
    """In memory the reference names some decoder weights differently (see docs/differences.md); on disk not."""
    from safetensors.torch import load_file

    ref = _reference_model("basic")
    ref.save_pretrained(tmp_path / "ref")
    ours = plugformers.MaskFormerForInstanceSegmentation.from_pretrained(tmp_path / "ref")
    ours.save_pretrained(tmp_path / "ours")
    ref_file = load_file(str(tmp_path / "ref" / "model.safetensors"))
    our_file = load_file(str(tmp_path / "ours" / "model.safetensors"))
    assert sorted(our_file) == sorted(ref_file)
    assert sorted(our_file) == sorted(ours.state_dict())
    assert any(".self_attn.out_proj." in k for k in ref_file) and any(".layers.0.fc1." in k for k in ref_file)


def test_default_backend_matches_the_reference_default() -> None:
    from PIL import Image

    from plugformers.testing.preprocessing_tests import reference_on_torchvision

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (45, 61, 3), dtype=np.uint8), rng.integers(0, 256, (70, 33, 3), dtype=np.uint8)]
    maps = [rng.integers(0, 5, (45, 61)), rng.integers(0, 5, (70, 33))]
    settings = {"size": {"shortest_edge": 40, "longest_edge": 64}, "ignore_index": 4, "do_reduce_labels": True}
    ref_proc = reference_on_torchvision(lambda: transformers.MaskFormerImageProcessor(**settings))
    ours_proc = plugformers.MaskFormerImageProcessor(**settings)
    assert ref_proc.backend == ours_proc.backend == "torchvision"
    for given in (images, [Image.fromarray(im) for im in images]):
        ref = ref_proc(given, segmentation_maps=maps, return_tensors="pt")
        ours = ours_proc(given, segmentation_maps=maps, return_tensors="pt")
        torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"], atol=1e-6, rtol=0)
        assert torch.equal(ours["pixel_mask"], ref["pixel_mask"])
        for a, b in zip(ours["mask_labels"] + ours["class_labels"], ref["mask_labels"] + ref["class_labels"]):
            assert torch.equal(a, b)


def test_image_processor_and_post_processing_match() -> None:
    from transformers.models.maskformer.image_processing_pil_maskformer import MaskFormerImageProcessorPil

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (45, 61, 3), dtype=np.uint8), rng.integers(0, 256, (70, 33, 3), dtype=np.uint8)]
    maps = [rng.integers(0, 5, (45, 61)), rng.integers(0, 5, (70, 33))]
    settings = {"size": {"shortest_edge": 40, "longest_edge": 64}, "ignore_index": 4, "do_reduce_labels": True}
    ref = MaskFormerImageProcessorPil(**settings)(images, segmentation_maps=maps, return_tensors="pt")
    ours = plugformers.MaskFormerImageProcessorPil(**settings)(images, segmentation_maps=maps, return_tensors="pt")
    torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"], atol=1e-6, rtol=0)
    assert torch.equal(ours["pixel_mask"], ref["pixel_mask"])
    for a, b in zip(ours["mask_labels"] + ours["class_labels"], ref["mask_labels"] + ref["class_labels"]):
        assert torch.equal(a, b)

    torch.manual_seed(0)
    outputs = plugformers.MaskFormerForInstanceSegmentationOutput(
        class_queries_logits=torch.randn(2, 6, 4) * 3, masks_queries_logits=torch.randn(2, 6, 12, 12) * 3
    )
    ref_proc, our_proc = MaskFormerImageProcessorPil(), plugformers.MaskFormerImageProcessor()
    sizes = [(20, 30), (7, 9)]
    for a, b in zip(
        our_proc.post_process_semantic_segmentation(outputs, target_sizes=sizes),
        ref_proc.post_process_semantic_segmentation(outputs, target_sizes=sizes),
    ):
        assert torch.equal(a, b)
    for threshold in (0.1, 0.3):
        for method, extra in (
            ("post_process_instance_segmentation", {"target_sizes": sizes}),
            ("post_process_instance_segmentation", {"return_coco_annotation": True}),
            ("post_process_panoptic_segmentation", {"target_sizes": sizes, "label_ids_to_fuse": {1}}),
            ("post_process_panoptic_segmentation", {"overlap_mask_area_threshold": 0.5}),
        ):
            mine = getattr(our_proc, method)(outputs, threshold=threshold, **extra)
            theirs = getattr(ref_proc, method)(outputs, threshold=threshold, **extra)
            for a, b in zip(mine, theirs):
                assert a["segments_info"] == b["segments_info"]
                if isinstance(a["segmentation"], torch.Tensor):
                    assert torch.equal(a["segmentation"].to(b["segmentation"].dtype), b["segmentation"])
                else:
                    assert a["segmentation"] == b["segmentation"]


def test_legacy_int_size_with_max_size_matches_the_reference(tmp_path: Any) -> None:
    from transformers.models.maskformer.image_processing_pil_maskformer import MaskFormerImageProcessorPil

    # The Hub's facebook/maskformer-* configs carry "size": 800 with "max_size": 1333.
    legacy = {"image_processor_type": "MaskFormerImageProcessor", "size": 96, "max_size": 120, "ignore_index": 255}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(legacy))
    ref = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    for ours in (plugformers.AutoImageProcessor.from_pretrained(tmp_path),
                 plugformers.MaskFormerImageProcessor(size=96, max_size=120)):
        assert ours.size == {k: v for k, v in dict(ref.size).items() if v is not None}
        image = np.random.default_rng(1).integers(0, 256, (60, 110, 3), dtype=np.uint8)
        expected = ref(image, return_tensors="pt")
        got = ours(image, return_tensors="pt")
        torch.testing.assert_close(got["pixel_values"], expected["pixel_values"], atol=1e-5, rtol=0)
    assert plugformers.MaskFormerImageProcessor(size=512).size == {
        k: v for k, v in dict(MaskFormerImageProcessorPil(size=512).size).items() if v is not None
    }


def test_convert_rgb_pad_and_data_format_keywords_match_the_reference() -> None:
    from transformers.models.maskformer.image_processing_pil_maskformer import MaskFormerImageProcessorPil

    rng = np.random.default_rng(2)
    rgb = [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), rng.integers(0, 256, (90, 50, 3), dtype=np.uint8)]
    rgba = rng.integers(0, 256, (60, 80, 4), dtype=np.uint8)
    settings = {"size": {"shortest_edge": 64, "longest_edge": 100}}
    for images, call, init in (
        (rgb, {"do_pad": False}, {}),
        (rgb, {"data_format": "channels_first"}, {}),
        (rgb, {"data_format": None}, {}),
        (rgba, {"do_convert_rgb": True}, {}),
        (rgba, {}, {"do_convert_rgb": True}),
    ):
        expected = MaskFormerImageProcessorPil(**settings, **init)(images, return_tensors="pt", **call)
        for use_torch in (False, True):
            got = plugformers.MaskFormerImageProcessor(**settings, **init)(
                images, return_tensors="pt", use_torch=use_torch, **call
            )
            level = 1 / 255 / 0.224 + 1e-5 if use_torch else 1e-5
            torch.testing.assert_close(got["pixel_values"], expected["pixel_values"], atol=level, rtol=0)
            assert torch.equal(got["pixel_mask"], expected["pixel_mask"])


def test_universal_segmentation_auto_class_matches_reference() -> None:
    config = _reference_model("basic").config
    ours = plugformers.MaskFormerConfig.from_dict(config.to_dict())
    ref_model = transformers.AutoModelForUniversalSegmentation.from_config(config)
    our_model = plugformers.AutoModelForUniversalSegmentation.from_config(ours)
    assert type(our_model).__name__ == type(ref_model).__name__ == "MaskFormerForInstanceSegmentation"


def test_nested_config_override_as_a_dict_matches_reference(tmp_path: Any) -> None:
    _reference_model("basic").config.save_pretrained(tmp_path)
    override = {"depths": [2, 1, 1, 1]}
    got = []
    for lib in (transformers, plugformers):
        config = lib.MaskFormerConfig.from_pretrained(tmp_path, backbone_config=override)
        assert type(config.backbone_config).__name__ == "ResNetConfig"
        got.append((config.backbone_config.depths, config.backbone_config.hidden_sizes))
        lib.MaskFormerForInstanceSegmentation(config)
    assert got[1] == got[0]
