"""Parity of config.json keys: a file the reference writes or accepts builds the same DistilBERT here, both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_distilbert import modeling_distilbert as ours  # noqa: E402

SMALL: dict[str, Any] = dict(vocab_size=99, dim=32, hidden_dim=37, n_heads=4, n_layers=2, max_position_embeddings=64)


def _ids() -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _reference_checkpoint(path: Path, config_dict: dict[str, Any], **file_keys: Any) -> torch.Tensor:
    """Build the reference's model from ``config_dict``, save it, add ``file_keys`` to its config.json."""
    torch.manual_seed(0)
    ref = transformers.DistilBertForMaskedLM(transformers.DistilBertConfig.from_dict(config_dict)).eval()
    ref.save_pretrained(path)
    data = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**data, **file_keys}))
    with torch.no_grad():
        expected = ref(**_ids()).logits
        torch.testing.assert_close(transformers.DistilBertForMaskedLM.from_pretrained(path)(**_ids()).logits, expected)
    return expected


def _assert_same_model_both_ways(path: Path, expected: torch.Tensor, tmp_path: Path) -> Any:
    model, info = ours.DistilBertForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(**_ids()).logits, expected, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path / "ours")
    back = transformers.DistilBertForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(**_ids()).logits, expected, atol=1e-5, rtol=1e-5)
    return model


def test_parity_private_attention_backend_key(tmp_path: Path) -> None:
    """The reference ignores ``_attn_implementation`` in a file; a backend we lack must not stop the load."""
    expected = _reference_checkpoint(tmp_path / "ref", SMALL, _attn_implementation="flash_attention_2")
    model = _assert_same_model_both_ways(tmp_path / "ref", expected, tmp_path)
    assert model.config._attn_implementation == "sdpa"


def test_parity_gradient_checkpointing_key(tmp_path: Path) -> None:
    expected = _reference_checkpoint(tmp_path / "ref", SMALL, gradient_checkpointing=True)
    ref = transformers.DistilBertForMaskedLM.from_pretrained(tmp_path / "ref")
    model = _assert_same_model_both_ways(tmp_path / "ref", expected, tmp_path)
    assert model.is_gradient_checkpointing and ref.is_gradient_checkpointing
    ref.save_pretrained(tmp_path / "ref_again")
    for folder in ("ref_again", "ours"):
        assert "gradient_checkpointing" not in json.loads((tmp_path / folder / "config.json").read_text())


@pytest.mark.parametrize(
    "alias", [{"hidden_size": 48}, {"num_attention_heads": 2}, {"num_hidden_layers": 3}], ids=lambda a: next(iter(a))
)
def test_parity_long_alias_next_to_the_short_name(alias: dict[str, int], tmp_path: Path) -> None:
    """A file with both ``dim`` and ``hidden_size`` (and the like): the alias wins in both libraries."""
    # The reference saves only the short name; the file gets both back, the short one with its old value.
    expected = _reference_checkpoint(tmp_path / "ref", {**SMALL, **alias}, **SMALL, **alias)
    _assert_same_model_both_ways(tmp_path / "ref", expected, tmp_path)
