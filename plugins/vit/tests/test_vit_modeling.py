"""ViT models: the shared model checks plus ViT-specific behaviour (masking, resolutions, errors, fast path)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from plugformers_vit.configuration_vit import ViTConfig
from plugformers_vit.modeling_vit import (
    ViTForImageClassification,
    ViTForMaskedImageModeling,
    ViTModel,
)
from safetensors.torch import load_file, save_file

from plugformers.configuration_utils import ConfigError
from plugformers.plugins import get_registry
from plugformers.testing.model_tests import ModelExtraTestsMixin, assert_close_outputs

SPEC = get_registry().family("vit")


def tiny_config(**overrides: Any) -> ViTConfig:
    """The registration's tiny config (32x32 images, 8x8 patches, 3 labels), with ``overrides``."""
    return SPEC.build_config(tiny=True, **overrides)


def pixels(batch: int = 2, size: int | tuple[int, int] = 32, seed: int = 0) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


class TestViTModels(ModelExtraTestsMixin):
    """The mixin's extras; the conformance suite (conftest.py) runs the generic checks on this config."""

    all_model_classes = (ViTModel, ViTForImageClassification, ViTForMaskedImageModeling)

    def get_config(self) -> ViTConfig:
        return tiny_config()

    def prepare_inputs(self, config: ViTConfig, model_class: type) -> dict[str, Any]:
        return SPEC.build_example_inputs(config, model_class, labels=True)


# ----- config ------------------------------------------------------------------------------------------


def test_default_config_json_has_the_reference_keys() -> None:
    data = json.loads(ViTConfig().to_json_string())
    data.pop("plugformers_version")
    assert data == {
        "attention_probs_dropout_prob": 0.0,
        "encoder_stride": 16,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": 768,
        "image_size": 224,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-12,
        "model_type": "vit",
        "num_attention_heads": 12,
        "num_channels": 3,
        "num_hidden_layers": 12,
        "patch_size": 16,
        "pooler_act": "tanh",
        "pooler_output_size": 768,
        "qkv_bias": True,
    }


def test_pooler_output_size_follows_hidden_size_and_round_trips(tmp_path: Any) -> None:
    config = tiny_config()
    assert config.pooler_output_size == 32
    config.save_pretrained(tmp_path)
    again = ViTConfig.from_pretrained(tmp_path)
    assert again.pooler_output_size == 32 and again.hidden_size == 32


def test_image_size_pair_loads_from_json(tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "vit", "image_size": [32, 48], "patch_size": 8, "hidden_size": 32,
                    "num_attention_heads": 4})
    )
    config = ViTConfig.from_pretrained(tmp_path)
    assert config.image_hw == (32, 48)
    model = ViTModel(tiny_config(image_size=[32, 48])).eval()
    assert model(pixels(1, (32, 48))).last_hidden_state.shape == (1, 1 + 4 * 6, 32)


def test_hidden_size_not_divisible_by_heads_refuses_the_model_not_the_config(tmp_path) -> None:
    config = tiny_config(hidden_size=30, num_attention_heads=4)  # accepted, as the reference accepts it
    config.save_pretrained(tmp_path)
    assert ViTConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=r"ViTConfig\.hidden_size \(30\).*num_attention_heads \(4\)"):
        ViTModel(config)


@pytest.mark.parametrize(
    "bad", [{"patch_size": 0}, {"image_size": [32, 32, 3]}, {"num_hidden_layers": -1}, {"hidden_dropout_prob": 2.0}]
)
def test_nonsense_config_values_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        tiny_config(**bad)


# ----- forward behaviour -------------------------------------------------------------------------------


def test_shapes_pooler_and_hidden_states() -> None:
    torch.manual_seed(0)
    model = ViTModel(tiny_config()).eval()
    out = model(pixels(), output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (2, 17, 32)
    assert out.pooler_output.shape == (2, 32)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 4, 17, 17)
    # The final LayerNorm is applied after the last recorded hidden state.
    torch.testing.assert_close(model.layernorm(out.hidden_states[-1]), out.last_hidden_state)
    # The pooler is tanh(dense(CLS)).
    expected = torch.tanh(model.pooler.dense(out.last_hidden_state[:, 0]))
    torch.testing.assert_close(out.pooler_output, expected)
    assert ViTModel(tiny_config(), add_pooling_layer=False).eval()(pixels()).pooler_output is None


def test_mask_token_replaces_exactly_the_masked_patches() -> None:
    torch.manual_seed(0)
    model = ViTModel(tiny_config(), use_mask_token=True).eval()
    with torch.no_grad():
        model.embeddings.mask_token.fill_(3.0)
    x = pixels(1)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [1, 5]] = True
    plain = model.embeddings(x)
    masked = model.embeddings(x, bool_masked_pos=mask)
    changed = (plain - masked).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [2, 6]  # +1 for the CLS token
    pos = model.embeddings.position_embeddings
    torch.testing.assert_close(masked[0, 2], 3.0 + pos[0, 2])


def test_interpolated_position_encodings() -> None:
    torch.manual_seed(0)
    model = ViTModel(tiny_config()).eval()
    x = pixels(1)
    # Same resolution: interpolation is the identity.
    torch.testing.assert_close(model(x, interpolate_pos_encoding=True).last_hidden_state, model(x).last_hidden_state)
    big = model(pixels(1, (48, 40)), interpolate_pos_encoding=True)
    assert big.last_hidden_state.shape == (1, 1 + 6 * 5, 32)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(pixels(1, 48))


def test_image_size_not_multiple_of_patch_names_the_problem() -> None:
    model = ViTModel(tiny_config()).eval()
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        model(pixels(1, 30))


def test_wrong_channel_count_is_a_clear_error() -> None:
    model = ViTModel(tiny_config()).eval()
    with pytest.raises(ValueError, match="num_channels=3"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="pixel_values is required"):
        model()


def test_bool_masked_pos_of_wrong_shape_is_refused() -> None:
    model = ViTForMaskedImageModeling(tiny_config()).eval()
    with pytest.raises(ValueError, match=r"bool_masked_pos must have shape \(batch_size, num_patches\)"):
        model(pixels(), bool_masked_pos=torch.zeros(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="no mask token"):
        ViTModel(tiny_config())(pixels(), bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="encoder_stride"):
        ViTForMaskedImageModeling(tiny_config(encoder_stride=16))(
            pixels(), bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool)
        )


def test_masked_image_modeling_loss_counts_only_masked_pixels() -> None:
    torch.manual_seed(0)
    model = ViTForMaskedImageModeling(tiny_config()).eval()
    x = pixels(1)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 0] = True  # top-left 8x8 patch
    out = model(x, bool_masked_pos=mask)
    assert out.reconstruction.shape == x.shape
    l1 = (x - out.reconstruction).abs()[:, :, :8, :8]
    expected = l1.sum() / (64 + 1e-5) / 3  # the mask counts pixels once, not per channel
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize(
    ("problem_type", "labels"),
    [
        ("single_label_classification", torch.tensor([0, 2])),
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
        ("regression", torch.randn(2, 3)),
    ],
)
def test_classification_losses_by_problem_type(problem_type: str, labels: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_config(problem_type=problem_type)).eval()
    out = model(pixels(), labels=labels)
    logits = out.logits
    if problem_type == "single_label_classification":
        expected = torch.nn.functional.cross_entropy(logits, labels)
    elif problem_type == "multi_label_classification":
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    else:
        expected = torch.nn.functional.mse_loss(logits, labels)
    torch.testing.assert_close(out.loss, expected)


def test_attention_mask_hides_tokens() -> None:
    torch.manual_seed(0)
    model = ViTModel(tiny_config()).eval()
    x = pixels(1)
    keep = torch.ones(1, 17, dtype=torch.long)
    torch.testing.assert_close(model(x, attention_mask=keep).last_hidden_state, model(x).last_hidden_state)
    keep[0, 5] = 0
    out = model(x, attention_mask=keep, output_attentions=True)
    assert torch.all(out.attentions[0][..., 5] == 0)
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model(x, attention_mask=torch.ones(1, 16))


def test_4d_masks_equal_the_2d_mask_and_keep_the_cls_shortcut() -> None:
    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_config()).eval()
    x = pixels(2)
    keep2 = torch.ones(2, 17, dtype=torch.long)
    keep2[1, 9:] = 0
    keep4 = keep2.bool()[:, None, None, :].expand(2, 1, 17, 17)
    additive = torch.zeros(keep4.shape).masked_fill(~keep4, torch.finfo(torch.float32).min)
    causal = torch.tril(torch.ones(17, 17, dtype=torch.bool))[None, None] & keep4
    with torch.no_grad():
        expected = model(x, attention_mask=keep2).logits
        torch.testing.assert_close(model(x, attention_mask=keep4).logits, expected)
        torch.testing.assert_close(model(x, attention_mask=additive).logits, expected)
        # Different query rows: the [CLS]-only last layer must use row 0 of the mask.
        short = model(x, attention_mask=causal).logits
        full = model(x, attention_mask=causal, output_hidden_states=True).logits
    torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model(x, attention_mask=torch.ones(2, 1, 17, 16))


def test_prune_heads_keeps_the_other_heads() -> None:
    torch.manual_seed(0)
    model = ViTModel(tiny_config()).eval()
    x = pixels(1)
    head_mask = torch.ones(2, 4)
    head_mask[0, 1] = 0
    expected = model(x, head_mask=head_mask).last_hidden_state
    model.prune_heads({0: [1]})
    assert model.layers[0].attention.q_proj.out_features == 24
    torch.testing.assert_close(model(x).last_hidden_state, expected, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_config())
    model.train()
    x, labels = pixels(), torch.tensor([0, 1])
    model(x, labels=labels).loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model(x, labels=labels).loss.backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(a, p.grad)


# ----- checkpoints -------------------------------------------------------------------------------------

_LEGACY = {
    "attention.q_proj": "attention.attention.query",
    "attention.k_proj": "attention.attention.key",
    "attention.v_proj": "attention.attention.value",
    "attention.o_proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}


def _to_legacy(key: str) -> str:
    key = key.replace("layers.", "encoder.layer.")
    for new, old in _LEGACY.items():
        key = key.replace(new, old)
    return key


def test_legacy_checkpoint_layout_loads(tmp_path: Any) -> None:
    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    legacy = {_to_legacy(k): v for k, v in weights.items()}
    assert "vit.encoder.layer.1.attention.attention.query.weight" in legacy
    assert "vit.encoder.layer.1.output.dense.bias" in legacy
    save_file(legacy, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded, info = ViTForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    x = pixels()
    assert_close_outputs(model(x), loaded(x), atol=0, rtol=0)


def test_saved_state_dict_keys() -> None:
    keys = set(ViTForMaskedImageModeling(tiny_config()).state_dict())
    assert {
        "vit.embeddings.cls_token",
        "vit.embeddings.mask_token",
        "vit.embeddings.position_embeddings",
        "vit.embeddings.patch_embeddings.projection.weight",
        "vit.layers.0.attention.q_proj.weight",
        "vit.layers.0.layernorm_before.weight",
        "vit.layers.1.mlp.fc2.bias",
        "vit.layernorm.weight",
        "decoder.0.weight",
    } <= keys
    assert not any("fused" in k for k in keys)


# ----- fast path ---------------------------------------------------------------------------------------


def test_fast_path_with_other_activation_pruned_heads_and_interpolation() -> None:
    # The mixin's test_fast_path_* cover matching, staleness, training and copies; these are ViT's own cases.
    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_config(hidden_act="gelu_new")).eval()
    x = pixels()
    with torch.no_grad():
        plain = model(x).logits
        torch.testing.assert_close(model.enable_fast_path()(x).logits, plain, atol=1e-5, rtol=1e-5)
        big = pixels(2, 48)
        fast_big = model(big, interpolate_pos_encoding=True).logits
        model.prune_heads({0: [1]})
        pruned_fast = model(x).logits
        model.disable_fast_path()
        torch.testing.assert_close(model(x).logits, pruned_fast, atol=1e-5, rtol=1e-5)
        model.enable_fast_path()
    assert fast_big.shape == plain.shape


def test_auto_classes_and_top_level_names() -> None:
    import plugformers

    assert plugformers.ViTModel is ViTModel
    config = plugformers.AutoConfig.for_model("vit", hidden_size=32, num_attention_heads=4)
    assert isinstance(config, ViTConfig)
    assert type(plugformers.AutoModelForMaskedImageModeling.from_config(tiny_config())) is ViTForMaskedImageModeling
    assert type(plugformers.AutoModelForImageClassification.from_config(tiny_config())) is ViTForImageClassification


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_sdpa_half_precision_matches_float32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = ViTForMaskedImageModeling(tiny_config()).eval().cuda()
    x = pixels().cuda()
    mask = torch.rand(2, 16, device="cuda") > 0.5
    with torch.no_grad():
        ref = model(x, bool_masked_pos=mask)
        half = model.to(dtype)(x.to(dtype), bool_masked_pos=mask)
        interp = model(pixels(2, 48).cuda().to(dtype), interpolate_pos_encoding=True)
    assert half.reconstruction.dtype == dtype
    torch.testing.assert_close(half.reconstruction.float(), ref.reconstruction, atol=5e-2, rtol=5e-2)
    assert torch.isfinite(half.loss) and torch.isfinite(interp.reconstruction).all()


def test_fast_path_without_onednn_falls_back_to_plain_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    from plugformers import fast_path

    torch.manual_seed(0)
    model = ViTModel(tiny_config()).eval()
    x = pixels()
    with torch.no_grad():
        plain = model(x).last_hidden_state
        monkeypatch.setattr(fast_path, "onednn_available", lambda: False)
        torch.testing.assert_close(model.enable_fast_path()(x).last_hidden_state, plain, atol=1e-5, rtol=1e-5)


def test_classifier_first_token_shortcut_gives_the_full_computation() -> None:
    # The head computes only [CLS] in the last layer unless hidden states or attentions are asked for.
    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_config()).eval()
    assert ViTForImageClassification.first_token_only and not ViTForMaskedImageModeling.first_token_only
    x, mask = pixels(), torch.ones(2, 17, dtype=torch.long)
    mask[1, 5:] = 0
    positions: list[int] = []
    model.vit.layers[-1].register_forward_hook(lambda module, args, out: positions.append(out.shape[1]))
    with torch.no_grad():
        for fast in (False, True):
            if fast:
                model.enable_fast_path()
            for kwargs in ({}, {"attention_mask": mask}, {"head_mask": torch.tensor([1.0, 0.0, 1.0, 1.0])}):
                short = model(x, **kwargs).logits
                full = model(x, output_hidden_states=True, **kwargs).logits
                torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-6)
        model.vit(x)  # the base model on its own computes every position
    assert positions == [1, 17] * 6 + [17]
