"""Fields of a MaskFormer ``config.json`` that build nothing: the model comes from the nested configs alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from plugformers_maskformer.modeling_maskformer import MaskFormerForInstanceSegmentation
from test_maskformer_modeling import ALL_STAGES, tiny_config

DECODER = tiny_config().decoder_config.to_dict()


def _saved_model(path: Path, **config_fields: Any) -> MaskFormerForInstanceSegmentation:
    torch.manual_seed(0)
    model = MaskFormerForInstanceSegmentation(tiny_config(**config_fields)).eval()
    model.save_pretrained(path)
    return model


def _edit_config(path: Path, **top_level: Any) -> dict[str, Any]:
    data = json.loads((path / "config.json").read_text())
    data.update(top_level)
    (path / "config.json").write_text(json.dumps(data))
    return data


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Any:
    """Captures what is logged at WARNING while the test runs (read ``.messages``)."""
    with caplog.at_level(logging.WARNING):
        yield caplog


def test_top_level_num_queries_builds_nothing_and_the_saved_weights_load(tmp_path: Path, warnings_logged: Any) -> None:
    """The issue's file: a top-level num_queries that disagrees with decoder_config.num_queries."""
    model = _saved_model(tmp_path)
    _edit_config(tmp_path, num_queries=9)
    loaded, info = MaskFormerForInstanceSegmentation.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert loaded.model.transformer_module.queries_embedder.weight.shape == (4, 32)
    assert loaded.config.decoder_config.num_queries == 4
    assert loaded.config.num_queries == 9  # kept as written, like any field the model does not read
    assert any("num_queries=9 is not used" in m and "decoder_config.num_queries=4" in m for m in warnings_logged.messages)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(pixels).class_queries_logits, model(pixels).class_queries_logits)

    loaded.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["num_queries"] == 9 and saved["decoder_config"]["num_queries"] == 4


def test_num_queries_as_a_keyword_does_not_resize_the_model(tmp_path: Path) -> None:
    _saved_model(tmp_path)
    loaded = MaskFormerForInstanceSegmentation.from_pretrained(tmp_path, num_queries=9)
    assert loaded.model.transformer_module.queries_embedder.num_embeddings == 4
    assert loaded.config.num_queries == 9
    # Built in code, too: the decoder config decides.
    assert MaskFormerForInstanceSegmentation(tiny_config(num_queries=9)).model.transformer_module.queries_embedder.num_embeddings == 4


def test_num_queries_without_a_top_level_value_is_the_decoders() -> None:
    config = tiny_config()
    assert config.num_queries == 4 and "num_queries" not in config.to_diff_dict()
    config.decoder_config.num_queries = 6
    assert config.num_queries == 6


@pytest.mark.parametrize(
    "fields",
    [
        {"backbone": "some-org/some-backbone", "use_pretrained_backbone": False},
        {"backbone": "some-org/some-backbone", "use_pretrained_backbone": True},
        {"backbone_kwargs": {"out_indices": [4]}},
        {"use_timm_backbone": True},
        {"use_pretrained_backbone": True},
        {"backbone": None, "use_pretrained_backbone": False, "use_timm_backbone": False, "backbone_kwargs": None},
    ],
)
def test_backbone_fields_next_to_backbone_config_are_ignored(
    fields: dict[str, Any], tmp_path: Path, warnings_logged: Any
) -> None:
    """Once backbone_config is there, the other ways of naming a backbone build nothing (nothing is downloaded)."""
    model = _saved_model(tmp_path)
    _edit_config(tmp_path, **fields)
    loaded, info = MaskFormerForInstanceSegmentation.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert loaded.config.backbone_config.out_features == ALL_STAGES
    assert loaded.config._pretrained_backbone is None
    set_fields = [name for name, value in fields.items() if value]
    assert any(all(name in m for name in set_fields) and "ignored" in m for m in warnings_logged.messages) == bool(set_fields)
    loaded.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert not {"backbone", "use_pretrained_backbone", "use_timm_backbone", "backbone_kwargs"} & set(saved)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(pixels).class_queries_logits, model(pixels).class_queries_logits)


@pytest.mark.parametrize("auxiliary_loss", [False, True])
def test_decoder_config_auxiliary_loss_feeds_each_layer_the_normalised_output(auxiliary_loss: bool) -> None:
    """decoder_config.auxiliary_loss (not the top-level use_auxiliary_loss) changes what the decoder layers read."""
    torch.manual_seed(0)
    model = MaskFormerForInstanceSegmentation(
        tiny_config(decoder_config={**DECODER, "auxiliary_loss": auxiliary_loss})
    ).eval()
    decoder = model.model.transformer_module.decoder
    with torch.no_grad():
        decoder.layernorm.weight.uniform_(0.5, 1.5)
        decoder.layernorm.bias.uniform_(-0.5, 0.5)
    seen: dict[str, torch.Tensor] = {}

    def keep_output(module: Any, args: Any, out: Any) -> None:
        seen["out0"] = out  # decoder layers return their hidden states alone

    def keep_input(module: Any, args: Any) -> None:
        seen["in1"] = args[0]

    decoder.layers[0].register_forward_hook(keep_output)
    decoder.layers[1].register_forward_pre_hook(keep_input)
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
        expected = decoder.layernorm(seen["out0"]) if auxiliary_loss else seen["out0"]
    torch.testing.assert_close(seen["in1"], expected)


def test_decoder_weights_are_drawn_with_decoder_config_init_std() -> None:
    """The DETR decoder's layers use decoder_config.init_std; the rest of the model the top-level init_std."""
    torch.manual_seed(0)
    model = MaskFormerForInstanceSegmentation(tiny_config(init_std=0.5, decoder_config={**DECODER, "init_std": 0.001}))
    layer = model.model.transformer_module.decoder.layers[0]
    for weight in (layer.fc1.weight, layer.self_attn.q_proj.weight, layer.encoder_attn.v_proj.weight):
        assert 0.0008 < weight.std().item() < 0.0012
    for weight in (model.class_predictor.weight, model.model.transformer_module.queries_embedder.weight):
        assert 0.3 < weight.std().item() < 0.7
