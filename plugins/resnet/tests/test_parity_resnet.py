"""Parity with the reference library: checkpoints load both ways, outputs agree within 1e-4 in float32.

Runs only where the reference is installed (the nox ``parity`` session); skipped elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from plugformers_resnet.configuration_resnet import ResNetConfig  # noqa: E402
from plugformers_resnet.image_processing_resnet import ConvNextImageProcessor  # noqa: E402
from plugformers_resnet.modeling_resnet import (  # noqa: E402
    ResNetBackbone,
    ResNetForImageClassification,
    ResNetModel,
)

from plugformers.testing.preprocessing_tests import reference_on_torchvision  # noqa: E402

ATOL = 1e-4

CONFIGS: dict[str, dict[str, Any]] = {
    "bottleneck": {"embedding_size": 8, "hidden_sizes": [8, 16, 24], "depths": [1, 2, 1]},
    "bottleneck-downsample-in-bottleneck": {
        "embedding_size": 8,
        "hidden_sizes": [8, 16],
        "depths": [2, 1],
        "downsample_in_bottleneck": True,
    },
    "basic": {"embedding_size": 8, "hidden_sizes": [8, 12, 16], "depths": [2, 1, 1], "layer_type": "basic"},
    "basic-downsample-first": {
        "embedding_size": 6,
        "hidden_sizes": [8, 16],
        "depths": [1, 2],
        "layer_type": "basic",
        "downsample_in_first_stage": True,
    },
}


def _randomise_batch_norms(model: torch.nn.Module) -> None:
    """Freshly initialised batch norms are identities; give them statistics so parity means something."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)


def _pixels(seed: int = 0, batch: int = 2, size: int = 48) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_classifier_checkpoint_loads_and_matches(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    ref = transformers.ResNetForImageClassification(transformers.ResNetConfig(num_labels=5, **CONFIGS[name]))
    _randomise_batch_norms(ref)
    ref.eval().save_pretrained(tmp_path)
    ours, info = ResNetForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ours.eval()
    x = _pixels()
    labels = torch.tensor([1, 4])
    with torch.no_grad():
        expected = ref(x, labels=labels, output_hidden_states=True)
        got = ours(x, labels=labels, output_hidden_states=True)
    _close(got.logits, expected.logits)
    _close(got.loss, expected.loss)
    assert len(got.hidden_states) == len(expected.hidden_states)
    for a, b in zip(got.hidden_states, expected.hidden_states):
        _close(a, b)


@pytest.mark.parametrize("name", ["bottleneck", "basic"])
def test_our_checkpoint_loads_in_the_reference(name: str, tmp_path) -> None:
    torch.manual_seed(1)
    ours = ResNetForImageClassification(ResNetConfig(num_labels=3, **CONFIGS[name]))
    _randomise_batch_norms(ours)
    ours.eval().save_pretrained(tmp_path)
    ref = transformers.ResNetForImageClassification.from_pretrained(tmp_path).eval()
    x = _pixels(seed=3)
    with torch.no_grad():
        _close(ours(x).logits, ref(x).logits)
    base = transformers.ResNetModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        _close(ours.resnet(x).pooler_output, base(x).pooler_output)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_backbone_feature_maps_match(name: str, tmp_path) -> None:
    kwargs = dict(CONFIGS[name])
    n_stages = len(kwargs["depths"]) + 1
    out_indices = list(range(n_stages))[::2] if n_stages > 2 else [0, 1, 2][:n_stages]
    torch.manual_seed(2)
    ref = transformers.ResNetBackbone(transformers.ResNetConfig(out_indices=out_indices, **kwargs))
    _randomise_batch_norms(ref)
    ref.eval().save_pretrained(tmp_path)
    ours = ResNetBackbone.from_pretrained(tmp_path).eval()
    assert ours.out_features == ref.out_features and ours.channels == ref.channels
    x = _pixels(seed=4)
    with torch.no_grad():
        expected = ref(x, output_hidden_states=True)
        got = ours(x, output_hidden_states=True)
    assert len(got.feature_maps) == len(expected.feature_maps) == len(out_indices)
    for a, b in zip(got.feature_maps, expected.feature_maps):
        _close(a, b)
    for a, b in zip(got.hidden_states, expected.hidden_states):
        _close(a, b)
    # The reference ignores output_attentions on this convolutional backbone.
    with torch.no_grad():
        expected, got = ref(x, output_attentions=True), ours(x, output_attentions=True)
    assert list(got.keys()) == list(expected.keys())
    for a, b in zip(got.feature_maps, expected.feature_maps):
        _close(a, b)


def test_state_dict_names_and_shapes_match() -> None:
    for name, kwargs in CONFIGS.items():
        for ours_cls, ref_cls in (
            (ResNetModel, transformers.ResNetModel),
            (ResNetForImageClassification, transformers.ResNetForImageClassification),
            (ResNetBackbone, transformers.ResNetBackbone),
        ):
            ours = {k: tuple(v.shape) for k, v in ours_cls(ResNetConfig(**kwargs)).state_dict().items()}
            ref = {
                k: tuple(v.shape)
                for k, v in ref_cls(transformers.ResNetConfig(**kwargs)).state_dict().items()
            }
            assert ours == ref, f"{name} {ours_cls.__name__}"


def _comparable(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict without the fields that name the writing library or the source folder."""
    return {
        k: v
        for k, v in data.items()
        if k not in ("plugformers_version", "transformers_version", "_name_or_path")
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"out_indices": [-1]},
        {
            "out_features": ["stem", "stage2"],
            "layer_type": "basic",
            "depths": [1, 1],
            "hidden_sizes": [8, 16],
        },
        {"num_labels": 3, "hidden_act": "gelu", "downsample_in_bottleneck": True},
    ],
)
def test_config_json_both_ways(kwargs: dict[str, Any], tmp_path) -> None:
    ours = ResNetConfig(**kwargs)
    ref = transformers.ResNetConfig(**kwargs)
    assert _comparable(json.loads(ours.to_json_string())) == _comparable(json.loads(ref.to_json_string()))
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    ref_from_ours = transformers.ResNetConfig.from_pretrained(tmp_path / "ours")
    assert _comparable(ref_from_ours.to_diff_dict()) == _comparable(ref.to_diff_dict())
    ours_from_ref = ResNetConfig.from_pretrained(tmp_path / "ref")
    assert ours_from_ref.out_features == ref.out_features and ours_from_ref.out_indices == ref.out_indices
    assert _comparable(ours_from_ref.to_diff_dict()) == _comparable(ours.to_diff_dict())


def _reference_image_processor(**kwargs: Any) -> Any:
    # Without torchvision the reference's ConvNextImageProcessor is its Pillow backend.
    cls = getattr(transformers, "ConvNextImageProcessorPil", None) or transformers.ConvNextImageProcessor
    return cls(**kwargs)


def _reference_default_image_processor(**kwargs: Any) -> Any:
    return reference_on_torchvision(lambda: transformers.ConvNextImageProcessor(**kwargs))


IMAGE_PROCESSOR_SETTINGS = [
    {},
    {"size": 32},
    {"size": {"shortest_edge": 24}, "crop_pct": 0.9, "resample": 2},
    {"size": 30, "do_center_crop": True, "crop_size": 20},
    {"size": 40, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
]


def _uint8_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 60), (64, 48), (100, 20)]]


@pytest.mark.parametrize("kwargs", IMAGE_PROCESSOR_SETTINGS)
def test_image_processor_matches(kwargs: dict[str, Any]) -> None:
    images = _uint8_images()
    ours = ConvNextImageProcessor(**kwargs, backend="pil")
    ref = _reference_image_processor(**kwargs)
    got = ours(images, return_tensors="np")["pixel_values"]
    expected = np.asarray(ref(images, return_tensors="np")["pixel_values"])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kwargs", IMAGE_PROCESSOR_SETTINGS)
def test_default_backend_matches_the_reference_default(kwargs: dict[str, Any]) -> None:
    from PIL import Image

    ours, ref = ConvNextImageProcessor(**kwargs), _reference_default_image_processor(**kwargs)
    assert ours.backend == ref.backend == "torchvision"
    images = _uint8_images()
    for given in (images, [Image.fromarray(im) for im in images], images[0].astype(np.float32)):
        got = ours(given, return_tensors="np")["pixel_values"]
        expected = np.asarray(ref(given, return_tensors="np")["pixel_values"])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_preprocessor_config_both_ways(tmp_path) -> None:
    ours = ConvNextImageProcessor(size=64, crop_pct=0.95)
    ours.save_pretrained(tmp_path / "ours")
    ref = _reference_image_processor(size=64, crop_pct=0.95)
    ref.save_pretrained(tmp_path / "ref")
    ours_json = json.loads((tmp_path / "ours" / "preprocessor_config.json").read_text())
    ref_json = json.loads((tmp_path / "ref" / "preprocessor_config.json").read_text())
    assert ours_json == ref_json
    loaded_ref = transformers.AutoImageProcessor.from_pretrained(tmp_path / "ours")
    assert loaded_ref.crop_pct == pytest.approx(0.95) and loaded_ref.size["shortest_edge"] == 64
    loaded_ours = ConvNextImageProcessor.from_pretrained(tmp_path / "ref")
    assert loaded_ours.to_dict() == ours.to_dict()


def test_float_images_in_0_255_match_the_reference_exactly() -> None:
    # ConvNext resizes bicubically: the reference resizes such floats as 8-bit images, and so do we.
    x = np.random.default_rng(0).integers(0, 256, (137, 153, 3)).astype(np.float32)
    expected = np.asarray(_reference_image_processor(size={"shortest_edge": 224})(x, return_tensors="np")["pixel_values"])
    got = ConvNextImageProcessor(size={"shortest_edge": 224}, backend="pil")(x, return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
