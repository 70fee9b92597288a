"""Parity of config.json fields the reference fills in or reads loosely: the same file builds the same ViT here.

Audit result for ViT (issue 18, part 5): no field the reference writes is ignored there but read here, or the
other way round; these cases guard the derived and list-valued ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_vit import modeling_vit as ours  # noqa: E402

SMALL: dict[str, Any] = dict(
    hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8
)


@pytest.mark.parametrize(
    "file_keys",
    [{"pooler_output_size": None}, {"pooler_output_size": 0}, {"image_size": [32, 32], "patch_size": [8, 8]}],
    ids=["pooler-null", "pooler-zero", "size-lists"],
)
def test_parity_derived_and_list_fields(file_keys: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = transformers.ViTModel(transformers.ViTConfig(**SMALL)).eval()
    ref.save_pretrained(tmp_path / "ref")
    data = json.loads((tmp_path / "ref" / "config.json").read_text())
    (tmp_path / "ref" / "config.json").write_text(json.dumps({**data, **file_keys}))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(pixels).pooler_output
        torch.testing.assert_close(transformers.ViTModel.from_pretrained(tmp_path / "ref")(pixels).pooler_output, expected)
    model, info = ours.ViTModel.from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(pixels).pooler_output, expected, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path / "ours")
    with torch.no_grad():
        back = transformers.ViTModel.from_pretrained(tmp_path / "ours").eval()
        torch.testing.assert_close(back(pixels).pooler_output, expected, atol=1e-5, rtol=1e-5)
