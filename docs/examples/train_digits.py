"""Train the tiny digit classifiers shipped in ``plugformers/data/models`` (reproducibly, on CPU).

Trains a ViT and a ResNet from plugformers on scikit-learn's bundled 8x8 handwritten digits (first 80%
of the dataset; the last 20% is held out), each image made an RGB picture and upscaled to 32x32 by its
own image processor exactly as ``plugformers predict`` does it. Saves each model with its image processor
and ``eval_results.json`` (the held-out accuracy), writes one sample PNG per digit from the held-out part
and the results table in ``plugformers/data/models/README.md``.

    python docs/examples/train_digits.py            # both models (about a minute each on a busy CPU)
    python docs/examples/train_digits.py --only vit  # one of them

Needs plugformers-vit, plugformers-resnet and scikit-learn. Fixed seeds and one thread make reruns
give the same weights.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

import plugformers
from plugformers.demo_trained import (
    DIGITS_DIR,
    MODELS_DIR,
    RESULTS_FILE,
    digit_image,
    heldout_accuracy,
    load_digits_split,
)
from plugformers.utils.io import atomic_write_text, write_json

SEED = 0
IMAGE_SIZE = 32
ID2LABEL = {i: str(i) for i in range(10)}
COMMAND = "python docs/examples/train_digits.py"


def model_specs(mean: float, std: float) -> dict[str, dict[str, Any]]:
    """The two models: config, image processor and optimisation settings each."""
    norm = {"image_mean": [mean] * 3, "image_std": [std] * 3}
    return {
        "vit": {
            "folder": "vit-digits",
            "config": plugformers.ViTConfig(
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
            ),
            "model": plugformers.ViTForImageClassification,
            "processor": plugformers.ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, **norm),
            "epochs": 50,
            "lr": 5e-3,
            "max_shift": 2,
        },
        "resnet": {
            "folder": "resnet-digits",
            "config": plugformers.ResNetConfig(
                embedding_size=16,
                hidden_sizes=[32, 64],
                depths=[1, 1],
                layer_type="basic",
                num_labels=10,
                id2label=ID2LABEL,
                label2id={v: k for k, v in ID2LABEL.items()},
            ),
            "model": plugformers.ResNetForImageClassification,
            # crop_pct=1: resize the shortest edge to 32 and keep the whole digit (no center crop).
            "processor": plugformers.ConvNextImageProcessor(
                size={"shortest_edge": IMAGE_SIZE}, crop_pct=1.0, **norm
            ),
            "epochs": 20,
            "lr": 3e-3,
            "max_shift": 2,
        },
    }


def shifted(batch: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Randomly translate each image by up to ``max_shift`` pixels (digits are not always centred).

    The rolled-out border comes back on the other side; it is background in these digits."""
    out = torch.empty_like(batch)
    shifts = torch.randint(-max_shift, max_shift + 1, (len(batch), 2), generator=generator)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = torch.roll(batch[i], shifts=(dy, dx), dims=(1, 2))
    return out


def train_one(name: str, spec: dict[str, Any], train_images: list[Any], train_y: np.ndarray,
              heldout_images: list[Any], heldout_y: np.ndarray) -> dict[str, Any]:
    """Train one model, save it with its processor and results; return the results."""
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    processor = spec["processor"]
    model = spec["model"](spec["config"])
    pixels = processor(train_images, return_tensors="pt")["pixel_values"]
    labels = torch.as_tensor(train_y, dtype=torch.long)
    epochs, batch_size = spec["epochs"], 64
    steps = epochs * math.ceil(len(labels) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec["lr"], total_steps=steps, pct_start=0.15)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = model(pixel_values=shifted(pixels[idx], generator, spec["max_shift"]), labels=labels[idx]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        if epoch % 5 == 4 or epoch == epochs - 1:
            print(f"  {name} epoch {epoch + 1:>3}/{epochs}  loss {total / len(labels):.4f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - start
    acc = heldout_accuracy(model, processor, heldout_images, heldout_y)
    print(f"  {name}: held-out accuracy {acc:.2%} on {len(heldout_y)} digits, trained in {train_seconds:.0f} s")
    folder = MODELS_DIR / spec["folder"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    results = {
        "heldout_accuracy": round(acc, 4),
        "heldout_samples": len(heldout_y),
        "train_samples": len(labels),
        "epochs": epochs,
        "seed": SEED,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": "sklearn.datasets.load_digits (first 80% train, last 20% held out)",
        "command": COMMAND,
    }
    write_json(folder / RESULTS_FILE, results)
    return results


def write_samples(heldout_x: np.ndarray, heldout_y: np.ndarray) -> list[str]:
    """Save the first held-out example of each digit as ``digit-<label>.png`` (8x8 grayscale, as in the data)."""
    DIGITS_DIR.mkdir(parents=True, exist_ok=True)
    names = []
    for label in range(10):
        index = int(np.flatnonzero(heldout_y == label)[0])
        path = DIGITS_DIR / f"digit-{label}.png"
        digit_image(heldout_x[index]).save(path)
        names.append(f"{path.name} (held-out index {index})")
    return names


def write_readme(results: dict[str, dict[str, Any]], samples: list[str]) -> None:
    """The results table, with the command that reproduces it."""
    rows = "\n".join(
        f"| `{r['folder']}` | {r['parameters']:,} | {r['epochs']} | {r['heldout_accuracy']:.2%} |"
        for r in results.values()
    )
    text = f"""# Trained checkpoints shipped with plugformers

Tiny image classifiers for the 8x8 handwritten digits bundled with scikit-learn
(`sklearn.datasets.load_digits`, 1797 images; the first 80% trained on, the last 20% held out), so that
`plugformers predict` gives right answers with no network (from the repository root):

    plugformers predict host/plugformers/data/models/vit-digits host/plugformers/data/digits/digit-7.png

Each folder holds `config.json`, `model.safetensors` (float32), `preprocessor_config.json` (32x32 RGB,
normalised with the digits' own mean and standard deviation) and `eval_results.json`.

| checkpoint | parameters | epochs | held-out accuracy |
|---|---|---|---|
{rows}

Reproduce (CPU, fixed seeds, one thread; needs plugformers-vit, plugformers-resnet and scikit-learn):

    {COMMAND}

`../digits/` holds the first held-out example of each digit as an 8x8 grayscale PNG (the dataset's
resolution; the image processors upscale it): {", ".join(samples)}.
"""
    atomic_write_text(MODELS_DIR / "README.md", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["vit", "resnet"], action="append", help="train only this model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    train_x, train_y, heldout_x, heldout_y = load_digits_split()
    train_images = [digit_image(x).convert("RGB") for x in train_x]
    heldout_images = [digit_image(x) for x in heldout_x]
    # Normalisation from the training digits at the stored 8-bit precision, as every image will arrive.
    scaled = np.stack([np.asarray(im, dtype=np.float64)[..., 0] / 255 for im in train_images])
    mean, std = round(float(scaled.mean()), 4), round(float(scaled.std()), 4)
    print(f"{len(train_y)} training digits, {len(heldout_y)} held out; pixel mean {mean}, std {std}")
    specs = model_specs(mean, std)
    results: dict[str, dict[str, Any]] = {}
    for name in args.only or list(specs):
        results[name] = {"folder": specs[name]["folder"], **train_one(
            name, specs[name], train_images, train_y, heldout_images, heldout_y)}
    for name, spec in specs.items():
        if name not in results:
            from plugformers.demo_trained import recorded_results

            previous = recorded_results(MODELS_DIR / spec["folder"])
            if previous:
                results[name] = {"folder": spec["folder"], **previous}
    samples = write_samples(heldout_x, heldout_y)
    write_readme(results, samples)


if __name__ == "__main__":
    main()
