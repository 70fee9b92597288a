"""Train the tiny ViT digit classifier shipped in ``plugformers_vit/checkpoints/vit-digits`` (on CPU).

A 2-layer, 64-wide ViT on scikit-learn's 8x8 handwritten digits, each made an RGB picture and upscaled to
32x32 by the image processor exactly as ``plugformers predict`` does it. Fixed seeds and one thread make
reruns give the same weights (about a minute on a busy CPU)::

    python plugins/vit/scripts/train_digits.py [--output-dir DIR]

Needs plugformers-vit and scikit-learn; the split, training loop and files are
:mod:`plugformers.testing.digits`'s, shared with the ResNet plugin's script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugformers.testing.digits import ID2LABEL, training_script

NAME = "vit-digits"
FOLDER = Path(__file__).resolve().parents[1] / "src" / "plugformers_vit" / "checkpoints" / NAME
COMMAND = "python plugins/vit/scripts/train_digits.py"
IMAGE_SIZE = 32


def build(mean: float, std: float) -> tuple[Any, Any]:
    """The model and its image processor (normalising with the digits' ``mean`` and ``std``)."""
    from plugformers_vit.configuration_vit import ViTConfig
    from plugformers_vit.image_processing_vit import ViTImageProcessor
    from plugformers_vit.modeling_vit import ViTForImageClassification

    config = ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        hidden_dropout_prob=0.1,
        image_size=IMAGE_SIZE,
        patch_size=8,
        num_labels=10,
        id2label=ID2LABEL,
        label2id={v: k for k, v in ID2LABEL.items()},
    )
    processor = ViTImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[mean] * 3, image_std=[std] * 3
    )
    return ViTForImageClassification(config), processor


if __name__ == "__main__":
    training_script(NAME, build, FOLDER, epochs=50, lr=5e-3, command=COMMAND, description=__doc__)
