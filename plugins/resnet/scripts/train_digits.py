"""Train the tiny ResNet digit classifier shipped in ``plugformers_resnet/checkpoints/resnet-digits`` (on CPU).

A two-stage basic-block ResNet on scikit-learn's 8x8 handwritten digits, each made an RGB picture and
upscaled to 32x32 by the image processor exactly as ``plugformers predict`` does it. Fixed seeds and one
thread make reruns give the same weights (about a minute on a busy CPU)::

    python plugins/resnet/scripts/train_digits.py [--output-dir DIR]

Needs plugformers-resnet and scikit-learn; the split, training loop and files are
:mod:`plugformers.testing.digits`'s, shared with the ViT plugin's script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugformers.testing.digits import ID2LABEL, training_script

NAME = "resnet-digits"
FOLDER = Path(__file__).resolve().parents[1] / "src" / "plugformers_resnet" / "checkpoints" / NAME
COMMAND = "python plugins/resnet/scripts/train_digits.py"
IMAGE_SIZE = 32


def build(mean: float, std: float) -> tuple[Any, Any]:
    """The model and its image processor (normalising with the digits' ``mean`` and ``std``)."""
    from plugformers_resnet.configuration_resnet import ResNetConfig
    from plugformers_resnet.image_processing_resnet import ConvNextImageProcessor
    from plugformers_resnet.modeling_resnet import ResNetForImageClassification

    config = ResNetConfig(
        embedding_size=16,
        hidden_sizes=[32, 64],
        depths=[1, 1],
        layer_type="basic",
        num_labels=10,
        id2label=ID2LABEL,
        label2id={v: k for k, v in ID2LABEL.items()},
    )
    # crop_pct=1: resize the shortest edge to 32 and keep the whole digit (no center crop).
    processor = ConvNextImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_pct=1.0, image_mean=[mean] * 3, image_std=[std] * 3
    )
    return ResNetForImageClassification(config), processor


if __name__ == "__main__":
    training_script(NAME, build, FOLDER, epochs=20, lr=3e-3, command=COMMAND, description=__doc__)
