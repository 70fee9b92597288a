"""Parity of the backbone fields of a ResNet config.json: the same file returns the same stages here.

Audit result for ResNet (issue 18, part 5): ``stage_names`` is derived from ``depths`` in both libraries (a
stale saved list is refused by the reference and recomputed here); the stage selection may come as
``out_features``, ``out_indices`` or both, or as the private names some files carry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_resnet.modeling_resnet import ResNetBackbone  # noqa: E402

SMALL: dict[str, Any] = dict(embedding_size=8, hidden_sizes=[8, 16, 16], depths=[1, 1, 1], layer_type="basic")


@pytest.mark.parametrize(
    "file_keys",
    [
        {"out_features": None, "out_indices": [1, 3]},
        {"out_features": ["stage1", "stage3"], "out_indices": None},
        {"out_features": None, "out_indices": [-2, -1]},
        {"_out_features": ["stage2"], "_out_indices": [2]},
    ],
    ids=["indices-only", "features-only", "negative-indices", "private-names"],
)
def test_parity_stage_selection(file_keys: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = transformers.ResNetBackbone(transformers.ResNetConfig(**SMALL)).eval()
    ref.save_pretrained(tmp_path / "ref")
    data = json.loads((tmp_path / "ref" / "config.json").read_text())
    (tmp_path / "ref" / "config.json").write_text(json.dumps({**data, **file_keys}))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = transformers.ResNetBackbone.from_pretrained(tmp_path / "ref").eval()(pixels).feature_maps
    model, info = ResNetBackbone.from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        got = model.eval()(pixels).feature_maps
    assert len(got) == len(expected)
    for ours_map, ref_map in zip(got, expected):
        torch.testing.assert_close(ours_map, ref_map, atol=1e-4, rtol=1e-4)
    model.save_pretrained(tmp_path / "ours")
    with torch.no_grad():
        back = transformers.ResNetBackbone.from_pretrained(tmp_path / "ours").eval()(pixels).feature_maps
    for back_map, ref_map in zip(back, expected):
        torch.testing.assert_close(back_map, ref_map, atol=1e-4, rtol=1e-4)
