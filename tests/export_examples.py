"""Tiny configs and example inputs for the installed families, for the export tests.

The registry's ``tiny_config`` and ``example_inputs`` (each plugin's registration) are what the export
tests use; this table stands in for a family whose registration does not give them yet, so that every
registered class is still exported and verified.
"""

from __future__ import annotations

from typing import Any

import torch

from plugformers.plugins import FamilySpec, import_object

_TINY: dict[str, dict[str, Any]] = {
    "distilbert": dict(vocab_size=99, dim=32, hidden_dim=37, n_heads=4, n_layers=2, max_position_embeddings=64),
    "vit": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32,
        patch_size=8, encoder_stride=8, num_labels=3,
    ),
    "wav2vec2": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, conv_dim=(16, 16, 16),
        conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        vocab_size=12, num_labels=3, tdnn_dim=(8, 8, 12), tdnn_kernel=(3, 3, 1), tdnn_dilation=(1, 2, 1),
        xvector_output_dim=6, num_codevectors_per_group=10, num_codevector_groups=2, codevector_dim=16,
        proj_codevector_dim=12, num_negatives=5,
    ),
    "resnet": dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 2], num_labels=3, out_features=["stage1", "stage2"]),
    "maskformer": dict(
        backbone_config={
            "model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 16, 16, 32], "depths": [1, 1, 1, 1],
            "layer_type": "basic", "out_features": ["stage1", "stage2", "stage3", "stage4"],
        },
        decoder_config={
            "model_type": "detr", "d_model": 32, "decoder_layers": 2, "decoder_attention_heads": 2,
            "decoder_ffn_dim": 64, "num_queries": 4, "dropout": 0.0,
        },
        fpn_feature_size=32, mask_feature_size=32, num_labels=3,
    ),
}


def tiny_config(spec: FamilySpec) -> Any:
    """The family's tiny config: its registered overrides, else this table's."""
    config_class = import_object(spec.config)
    overrides = spec.tiny_config or _TINY.get(spec.model_type)
    if overrides is None:
        raise LookupError(f"no tiny config for {spec.model_type!r}")
    return config_class(**overrides)


def example_inputs(spec: FamilySpec) -> Any:
    """``f(config, model_class, batch_size=2, labels=False)``: the registered function, else one by modality."""
    if spec.example_inputs is not None:
        return import_object(spec.example_inputs)
    return _by_modality


def _by_modality(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Text ids with the last row padded, random images of the config's size, or padded speech-like audio."""
    gen = torch.Generator().manual_seed(batch_size)
    name = model_class.__name__
    if name.startswith(("DistilBert",)):
        shape: tuple[int, ...] = (batch_size, 3, 7) if name.endswith("MultipleChoice") else (batch_size, 7)
        ids = torch.randint(1, config.vocab_size, shape, generator=gen)
        mask = torch.ones(shape, dtype=torch.long)
        mask[-1, ..., 4:] = 0
        return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}
    if name.startswith("Wav2Vec2"):
        values = torch.randn(batch_size, 800, generator=gen)
        mask = torch.ones(batch_size, 800, dtype=torch.long)
        mask[-1, 500:] = 0
        return {"input_values": values * mask, "attention_mask": mask}
    size = getattr(config, "image_size", 32)
    inputs: dict[str, Any] = {"pixel_values": torch.randn(batch_size, 3, size, size, generator=gen)}
    if name == "ViTForMaskedImageModeling":
        patches = (size // config.patch_size) ** 2
        inputs["bool_masked_pos"] = torch.rand(batch_size, patches, generator=gen) > 0.5
    return inputs
