"""Keys of a ``config.json`` that older files carry: read the way the reference reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from plugformers_distilbert.modeling_distilbert import DistilBertModel
from test_distilbert_modeling import tiny_config


def _saved(path: Path, **keys: Any) -> DistilBertModel:
    torch.manual_seed(0)
    model = DistilBertModel(tiny_config()).eval()
    model.save_pretrained(path)
    data = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**data, **keys}))
    return model


def _ids() -> torch.Tensor:
    return torch.randint(1, 50, (2, 7), generator=torch.Generator().manual_seed(0))


def test_private_attention_backend_key_is_ignored(tmp_path: Path) -> None:
    """A file's ``_attn_implementation`` (written by some versions) neither picks the backend nor breaks loading."""
    model = _saved(tmp_path, _attn_implementation="flash_attention_2", _attn_implementation_internal="eager")
    loaded = DistilBertModel.from_pretrained(tmp_path).eval()
    assert loaded.config._attn_implementation == "sdpa"  # the default, as without the key
    with torch.no_grad():
        torch.testing.assert_close(loaded(_ids()).last_hidden_state, model(_ids()).last_hidden_state)
    loaded.save_pretrained(tmp_path / "again")
    assert not {k for k in json.loads((tmp_path / "again" / "config.json").read_text()) if k.startswith("_attn")}
    # The public keyword still chooses.
    assert DistilBertModel.from_pretrained(tmp_path, attn_implementation="eager").config._attn_implementation == "eager"


def test_gradient_checkpointing_key_switches_it_on_once(tmp_path: Path) -> None:
    _saved(tmp_path, gradient_checkpointing=True)
    loaded = DistilBertModel.from_pretrained(tmp_path)
    assert loaded.is_gradient_checkpointing
    assert not hasattr(loaded.config, "gradient_checkpointing")
    loaded.train()
    loaded(_ids()).last_hidden_state.sum().backward()  # runs through the checkpointed layers
    loaded.save_pretrained(tmp_path / "again")
    assert "gradient_checkpointing" not in json.loads((tmp_path / "again" / "config.json").read_text())
    assert not DistilBertModel.from_pretrained(tmp_path / "again").is_gradient_checkpointing
