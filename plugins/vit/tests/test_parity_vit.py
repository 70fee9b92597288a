"""ViT against the reference library: config files, state-dict names, outputs (1e-5) and the image processor.

Runs only where the reference is installed (the nox ``parity`` session); checkpoints travel both ways.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from plugformers_vit import modeling_vit as ours  # noqa: E402
from plugformers_vit.configuration_vit import ViTConfig  # noqa: E402
from plugformers_vit.image_processing_vit import ViTImageProcessor  # noqa: E402

from plugformers.testing.preprocessing_tests import reference_on_torchvision  # noqa: E402

transformers.logging.set_verbosity_error()

ATOL = 1e-5
CLASSES = ("ViTModel", "ViTForImageClassification", "ViTForMaskedImageModeling")
SMALL: dict[str, Any] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8
)
# name -> (config kwargs, input (batch, channels, height, width), interpolate_pos_encoding, use a patch mask)
CASES: dict[str, tuple[dict[str, Any], tuple[int, int, int, int], bool, bool]] = {
    "small": (SMALL, (2, 3, 32, 32), False, False),
    "odd_size_interpolated": (dict(SMALL, image_size=40), (2, 3, 56, 56), True, False),
    "no_qkv_bias": (dict(SMALL, qkv_bias=False, hidden_act="gelu_new"), (2, 3, 32, 32), False, False),
    "masked_image_modeling": (dict(SMALL, encoder_stride=8, num_channels=1), (2, 1, 32, 32), False, True),
    "wide_pooler": (dict(SMALL, pooler_output_size=48, pooler_act="relu", num_labels=5), (1, 3, 32, 32), False, False),
}
DATA = Path(__file__).parent / "data"


def _reference_pil_processor(**kwargs: Any) -> Any:
    cls = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kwargs)


def _reference_default_processor(**kwargs: Any) -> Any:
    return reference_on_torchvision(lambda: transformers.ViTImageProcessor(**kwargs))


def _compare(a: Any, b: Any, what: str) -> None:
    keys = [k for k in a.keys() if a[k] is not None]
    assert keys == [k for k in b.keys() if b[k] is not None], what
    for key in keys:
        x, y = a[key], b[key]
        pairs = list(zip(x, y)) if isinstance(x, tuple) else [(x, y)]
        for i, (p, q) in enumerate(pairs):
            torch.testing.assert_close(q, p, atol=ATOL, rtol=0, msg=lambda m, k=key, i=i: f"{what} {k}[{i}]: {m}")


def _inputs(shape: tuple[int, int, int, int], masked: bool, patch: int = 8) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    inputs: dict[str, Any] = {"pixel_values": torch.randn(*shape, generator=g)}
    if masked:
        inputs["bool_masked_pos"] = torch.rand(shape[0], (shape[2] // patch) * (shape[3] // patch), generator=g) > 0.5
    return inputs


@pytest.mark.parametrize("kwargs", [{}, SMALL, dict(SMALL, qkv_bias=False, image_size=[32, 48], patch_size=8)])
def test_config_json_matches_and_loads_both_ways(kwargs: dict[str, Any], tmp_path: Path) -> None:
    ref = transformers.ViTConfig(**kwargs)
    mine = ViTConfig(**kwargs)
    ref_json = json.loads(ref.to_json_string())
    my_json = json.loads(mine.to_json_string())
    ref_json.pop("transformers_version")
    my_json.pop("plugformers_version")
    assert my_json == ref_json
    ref.save_pretrained(tmp_path / "ref")
    loaded = ViTConfig.from_pretrained(tmp_path / "ref").to_dict()
    assert all(loaded[k] == v for k, v in my_json.items() if k != "plugformers_version")
    mine.save_pretrained(tmp_path / "ours")
    back = transformers.ViTConfig.from_pretrained(tmp_path / "ours").to_dict()
    assert all(back[k] == v for k, v in ref_json.items())


@pytest.mark.parametrize("cls_name", CLASSES)
@pytest.mark.parametrize("kwargs", [SMALL, dict(SMALL, qkv_bias=False)])
def test_state_dict_names_and_shapes_match(cls_name: str, kwargs: dict[str, Any]) -> None:
    ref = getattr(transformers, cls_name)(transformers.ViTConfig(**kwargs))
    mine = getattr(ours, cls_name)(ViTConfig(**kwargs))
    assert {k: tuple(v.shape) for k, v in mine.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ref.state_dict().items()
    }


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("cls_name", CLASSES)
def test_reference_checkpoint_gives_the_same_outputs(case: str, cls_name: str, tmp_path: Path) -> None:
    kwargs, shape, interpolate, masked = CASES[case]
    if cls_name != "ViTForMaskedImageModeling":
        masked = False
    torch.manual_seed(0)
    ref = getattr(transformers, cls_name)(transformers.ViTConfig(**kwargs)).eval()
    ref.save_pretrained(tmp_path)
    mine, info = getattr(ours, cls_name).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    inputs = _inputs(shape, masked)
    with torch.no_grad():
        expected = ref(**inputs, interpolate_pos_encoding=interpolate, output_hidden_states=True)
        got = mine(**inputs, interpolate_pos_encoding=interpolate, output_hidden_states=True)
        _compare(expected, got, f"{case}/{cls_name}")
        mine.enable_fast_path()
        fast = mine(**inputs, interpolate_pos_encoding=interpolate, output_hidden_states=True)
        _compare(expected, fast, f"{case}/{cls_name} fast path")


@pytest.mark.parametrize("case", ["small", "masked_image_modeling"])
def test_our_checkpoint_loads_in_the_reference(case: str, tmp_path: Path) -> None:
    kwargs, shape, _, masked = CASES[case]
    torch.manual_seed(1)
    for cls_name in CLASSES:
        mine = getattr(ours, cls_name)(ViTConfig(**kwargs)).eval()
        mine.save_pretrained(tmp_path / cls_name)
        ref, info = getattr(transformers, cls_name).from_pretrained(tmp_path / cls_name, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
        inputs = _inputs(shape, masked and cls_name == "ViTForMaskedImageModeling")
        with torch.no_grad():
            _compare(ref.eval()(**inputs), mine(**inputs), f"ours->ref {case}/{cls_name}")


@pytest.mark.slow
def test_default_config_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = transformers.ViTModel(transformers.ViTConfig()).eval()
    ref.save_pretrained(tmp_path)
    mine = ours.ViTModel.from_pretrained(tmp_path)
    inputs = _inputs((1, 3, 224, 224), False)
    with torch.no_grad():
        expected = ref(**inputs)
        _compare(expected, mine(**inputs), "default")
        _compare(expected, mine.enable_fast_path()(**inputs), "default fast path")


def test_eager_attention_weights_match(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = transformers.ViTModel(transformers.ViTConfig(**SMALL)).eval()
    ref.set_attn_implementation("eager")
    ref.save_pretrained(tmp_path)
    mine = ours.ViTModel.from_pretrained(tmp_path, attn_implementation="eager")
    inputs = _inputs((2, 3, 32, 32), False)
    with torch.no_grad():
        _compare(ref(**inputs, output_attentions=True), mine(**inputs, output_attentions=True), "attentions")


def _causal_padding_mask(batch: int, seq: int, hidden_after: int) -> torch.Tensor:
    """An additive ``(batch, 1, seq, seq)`` mask whose query rows differ: causal, and row 1 padded."""
    keep = torch.tril(torch.ones(seq, seq, dtype=torch.bool))[None, None].repeat(batch, 1, 1, 1)
    keep[1, ..., hidden_after:] = False
    return torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("cls_name", ["ViTModel", "ViTForImageClassification"])
def test_4d_additive_attention_mask_matches(cls_name: str, attn: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = getattr(transformers, cls_name)(transformers.ViTConfig(**SMALL)).eval()
    ref.set_attn_implementation(attn)
    ref.save_pretrained(tmp_path)
    mine = getattr(ours, cls_name).from_pretrained(tmp_path, attn_implementation=attn)
    inputs = _inputs((2, 3, 32, 32), False)
    padding = torch.zeros(2, 1, 17, 17)
    padding[1, ..., 9:] = torch.finfo(torch.float32).min
    with torch.no_grad():
        for mask in (_causal_padding_mask(2, 17, 9), padding):
            _compare(ref(**inputs, attention_mask=mask), mine(**inputs, attention_mask=mask), f"{cls_name} 4-D mask")


# ----- image processor ---------------------------------------------------------------------------------


def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    out: dict[str, Image.Image] = {}
    for name in ("astronaut", "chelsea", "coffee"):
        with Image.open(DATA / f"{name}.jpg") as im:
            out[name] = im.convert("RGB")
    out["grey"] = out["chelsea"].convert("L")
    rgba = np.array(out["coffee"].convert("RGBA"))
    rgba[..., 3] = np.linspace(0, 255, rgba.shape[1]).astype(np.uint8)[None]
    out["rgba_transparent"] = Image.fromarray(rgba)
    out["tiny"] = Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8))
    out["one_pixel"] = Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8))
    out["large"] = Image.fromarray(rng.integers(0, 256, (1100, 1700, 3), dtype=np.uint8)).resize((1700, 1100))
    return out


SETTINGS = [
    {},
    # The guide's example. The reference silently resizes bilinearly when `resample` is the string
    # "PIL.Image.BOX"; we honour the box filter it names, so the reference is given the enum value.
    {"resample": "PIL.Image.BOX", "do_normalize": False, "image_mean": [0.3, 0.3, 0.3]},
    {"resample": 3, "size": {"height": 64, "width": 48}, "image_std": [0.2, 0.3, 0.4]},
]


def _reference_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if out.get("resample") == "PIL.Image.BOX":
        out["resample"] = 4
    return out


@pytest.mark.parametrize("settings", SETTINGS)
def test_printed_settings_match(settings: dict[str, Any]) -> None:
    # A filter name is printed and saved as its number, which the reference reads as that filter.
    ref = json.loads(_reference_pil_processor(**_reference_settings(settings)).to_json_string())
    mine = json.loads(ViTImageProcessor(**settings).to_json_string())
    assert mine == ref


@pytest.mark.parametrize("settings", SETTINGS)
def test_pil_path_matches_the_reference_within_one_grey_level(settings: dict[str, Any]) -> None:
    ref = _reference_pil_processor(**_reference_settings(settings))
    mine = ViTImageProcessor(**settings, backend="pil")
    std = np.array(mine.image_std if mine.do_normalize else [1.0, 1.0, 1.0], dtype=np.float32)[:, None, None]
    for name, image in _images().items():
        # The reference leaves grey and RGBA images as they are unless asked; ours makes RGB for the model.
        expected = ref(image, do_convert_rgb=True, return_tensors="np")["pixel_values"][0]
        got = mine(image, return_tensors="np")["pixel_values"][0]
        assert got.shape == expected.shape, name
        assert (np.abs(got - expected) * std).max() <= 1 / 255 + 1e-6, name


@pytest.mark.parametrize("settings", SETTINGS)
def test_torch_path_matches_the_reference_on_photographs(settings: dict[str, Any]) -> None:
    ref = _reference_pil_processor(**_reference_settings(settings))
    mine = ViTImageProcessor(**settings)
    std = np.array(mine.image_std if mine.do_normalize else [1.0, 1.0, 1.0], dtype=np.float32)[:, None, None]
    images = _images()
    for name in ("astronaut", "chelsea", "coffee", "one_pixel"):
        image = images[name]
        expected = ref(image, return_tensors="np")["pixel_values"][0]
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
        got = mine(tensor, input_data_format="channels_first", return_tensors="pt")["pixel_values"][0].numpy()
        assert (np.abs(got - expected) * std).max() <= 1 / 255 + 1e-6, name


@pytest.mark.parametrize("settings", [SETTINGS[0], SETTINGS[2]])  # the reference's torchvision has no box filter
def test_default_backend_matches_the_reference_default_on_pil_and_numpy_images(settings: dict[str, Any]) -> None:
    ref = _reference_default_processor(**_reference_settings(settings))
    mine = ViTImageProcessor(**settings)
    assert mine.backend == ref.backend == "torchvision"
    images = _images()
    for name in ("astronaut", "chelsea", "coffee", "tiny", "large"):
        for image in (images[name], np.array(images[name])):
            expected = ref(image, return_tensors="np")["pixel_values"]
            got = mine(image, return_tensors="np")["pixel_values"]
            assert got.shape == expected.shape, name
            assert np.abs(got - expected).max() <= 1e-6, name


def test_pil_classes_and_auto_backends_match_the_reference(tmp_path: Path) -> None:
    import plugformers

    image = np.array(_images()["chelsea"])
    ref_pil = _reference_pil_processor()
    ours_pil = plugformers.ViTImageProcessorPil()
    assert ours_pil.backend == "pil" and json.loads(ours_pil.to_json_string()) == json.loads(ref_pil.to_json_string())
    expected = ref_pil(image, return_tensors="np")["pixel_values"]
    assert np.abs(ours_pil(image, return_tensors="np")["pixel_values"] - expected).max() <= 1e-6
    ref_pil.save_pretrained(tmp_path)
    for backend in ("pil", "torchvision"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend=backend)
        if ref.backend != backend:
            continue  # the reference without torchvision
        ours_auto = plugformers.AutoImageProcessor.from_pretrained(tmp_path, backend=backend)
        assert type(ours_auto).__name__ == type(ref).__name__ and ours_auto.backend == ref.backend
        got = ours_auto(image, return_tensors="np")["pixel_values"]
        assert np.abs(got - np.asarray(ref(image, return_tensors="np")["pixel_values"])).max() <= 1e-6


@pytest.mark.parametrize("head", ["ViTForImageClassification", "ViTForMaskedImageModeling"])
def test_base_checkpoint_loading_info_matches_reference(head: str, tmp_path: Path) -> None:
    # The heads have no pooler: both libraries report a base checkpoint's pooler as unexpected.
    transformers.ViTModel(transformers.ViTConfig(**SMALL)).save_pretrained(tmp_path)
    infos = []
    for lib in (transformers, ours):
        _, info = getattr(lib, head).from_pretrained(tmp_path, output_loading_info=True)
        infos.append({k: sorted(map(str, info[k])) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")})
    assert infos[1] == infos[0]
    assert infos[0]["unexpected_keys"] == ["pooler.dense.bias", "pooler.dense.weight"]
