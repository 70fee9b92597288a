"""scikit-learn's 8x8 handwritten digits: the split, images, training and checks behind the digit checkpoints.

Plugins ship tiny digit classifiers as package data (``checkpoints=`` in their registration) so that
``plugformers predict`` gives right answers with no network; their training scripts and tests share this
module, so they agree on the split and the digit-to-image conversion exactly. A checkpoint folder written
by :func:`train_digits_checkpoint` carries, as data, its held-out accuracy and one sample PNG per digit
with the label it should get (``eval_results.json``, ``samples/``), which is all the host's demo reads.
Nothing here imports torch or scikit-learn at module level; the dataset ships inside scikit-learn's wheel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugformers.demo_trained import RESULTS_FILE, recorded_results

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = [
    "HELDOUT_FRACTION",
    "ID2LABEL",
    "RESULTS_FILE",
    "SAMPLES_DIR",
    "check_digits_checkpoint",
    "digit_image",
    "heldout_accuracy",
    "load_digits_split",
    "recorded_results",
    "train_digits_checkpoint",
    "training_script",
]

#: Where the held-out part starts, as a fraction of the dataset (its order is fixed, so no shuffling).
HELDOUT_FRACTION = 0.2
SAMPLES_DIR = "samples"
SEED = 0
ID2LABEL = {i: str(i) for i in range(10)}
DATASET = "sklearn.datasets.load_digits (first 80% train, last 20% held out)"


def digit_image(pixels: Any) -> Image.Image:
    """An 8x8 grayscale PIL image from one digit's 64 values in [0, 16] (bright ink on black, like the data)."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(pixels, dtype=np.float64).reshape(8, 8)
    if arr.min() < 0 or arr.max() > 16:
        raise ValueError(f"digit pixels must lie in [0, 16], got the range [{arr.min()}, {arr.max()}].")
    return Image.fromarray(np.rint(arr * (255 / 16)).astype(np.uint8), mode="L")


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, heldout_x, heldout_y)``: the first 80% of the digits to train on, the last 20% held out.

    ``*_x`` are ``(n, 64)`` float arrays in [0, 16], ``*_y`` integer labels. Needs scikit-learn.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits dataset comes from scikit-learn: `pip install scikit-learn`") from exc
    digits = load_digits()
    x, y = digits.data, digits.target
    cut = int(len(x) * (1 - HELDOUT_FRACTION))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def heldout_accuracy(model: Any, processor: Any, images: list[Any], labels: Any, batch_size: int = 128) -> float:
    """Top-1 accuracy of ``model`` on PIL ``images`` preprocessed by ``processor`` (labels are class ids)."""
    import torch

    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if not images:
        raise ValueError("no images to evaluate.")
    correct = 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixel_values = processor([im.convert("RGB") for im in chunk], return_tensors="pt")["pixel_values"]
            predicted = model(pixel_values=pixel_values).logits.argmax(-1)
            truth = torch.as_tensor([int(v) for v in labels[start : start + batch_size]])
            correct += int((predicted == truth).sum())
    return correct / len(images)


def _shifted(batch: Any, generator: Any, max_shift: int) -> Any:
    """Randomly translate each image by up to ``max_shift`` pixels (digits are not always centred).

    The rolled-out border comes back on the other side; it is background in these digits."""
    import torch

    out = torch.empty_like(batch)
    shifts = torch.randint(-max_shift, max_shift + 1, (len(batch), 2), generator=generator)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = torch.roll(batch[i], shifts=(dy, dx), dims=(1, 2))
    return out


def _train(model: Any, processor: Any, images: list[Any], labels: Any, epochs: int, lr: float, name: str) -> float:
    """AdamW with a one-cycle schedule over shifted copies of the digits; returns the seconds it took."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    pixels = processor(images, return_tensors="pt")["pixel_values"]
    targets = torch.as_tensor(labels, dtype=torch.long)
    batch_size = 64
    steps = epochs * math.ceil(len(targets) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = model(pixel_values=_shifted(pixels[idx], generator, 2), labels=targets[idx]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        if epoch % 5 == 4 or epoch == epochs - 1:
            print(f"  {name} epoch {epoch + 1:>3}/{epochs}  loss {total / len(targets):.4f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return time.perf_counter() - start


def _write_samples(folder: Path, heldout_x: Any, heldout_y: Any) -> dict[str, str]:
    """The first held-out example of each digit as ``samples/digit-<label>.png``: ``{relative path: label}``."""
    import numpy as np

    (folder / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    samples = {}
    for label in range(10):
        index = int(np.flatnonzero(heldout_y == label)[0])
        relative = f"{SAMPLES_DIR}/digit-{label}.png"
        digit_image(heldout_x[index]).save(folder / relative)
        samples[relative] = ID2LABEL[label]
    return samples


def _model_card(name: str, results: dict[str, Any], command: str) -> str:
    return f"""# {name}

A tiny image classifier for the 8x8 handwritten digits bundled with scikit-learn
(`sklearn.datasets.load_digits`, 1797 images; the first 80% trained on, the last 20% held out), shipped so
that `plugformers predict` gives right answers with no network:

    plugformers predict <this folder> <this folder>/samples/digit-7.png

| parameters | epochs | held-out accuracy |
|---|---|---|
| {results['parameters']:,} | {results['epochs']} | {results['heldout_accuracy']:.2%} on {results['heldout_samples']} digits |

Files: `config.json`, `model.safetensors` (float32), `preprocessor_config.json` (32x32 RGB, normalised with
the digits' own mean and standard deviation), `eval_results.json` (the numbers above, and the label each
sample should get) and `samples/` (the first held-out example of each digit, as an 8x8 grayscale PNG).

Reproduce (CPU, fixed seeds, one thread; needs scikit-learn):

    {command}
"""


def train_digits_checkpoint(
    name: str,
    build: Callable[[float, float], tuple[Any, Any]],
    folder: str | Path,
    *,
    epochs: int,
    lr: float,
    command: str,
) -> dict[str, Any]:
    """Train a digit classifier and save it, with its processor, results, samples and model card, in ``folder``.

    ``build(mean, std)`` returns ``(model, image_processor)`` for 10 labels, the processor normalising with
    the given pixel mean and standard deviation (the training digits', measured here). It is called after
    the seed is set, so the same arguments give the same weights. Returns what ``eval_results.json`` holds.
    """
    import numpy as np
    import torch

    from plugformers.utils.io import atomic_write_text, write_json

    folder = Path(folder)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    train_x, train_y, heldout_x, heldout_y = load_digits_split()
    train_images = [digit_image(x).convert("RGB") for x in train_x]
    heldout_images = [digit_image(x) for x in heldout_x]
    # Normalisation from the training digits at the stored 8-bit precision, as every image will arrive.
    scaled = np.stack([np.asarray(im, dtype=np.float64)[..., 0] / 255 for im in train_images])
    mean, std = round(float(scaled.mean()), 4), round(float(scaled.std()), 4)
    print(f"{len(train_y)} training digits, {len(heldout_y)} held out; pixel mean {mean}, std {std}")
    torch.manual_seed(SEED)
    model, processor = build(mean, std)
    seconds = _train(model, processor, train_images, train_y, epochs, lr, name)
    accuracy = heldout_accuracy(model, processor, heldout_images, heldout_y)
    print(f"  {name}: held-out accuracy {accuracy:.2%} on {len(heldout_y)} digits, trained in {seconds:.0f} s")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    results = {
        "heldout_accuracy": round(accuracy, 4),
        "heldout_samples": len(heldout_y),
        "train_samples": len(train_y),
        "epochs": epochs,
        "seed": SEED,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": DATASET,
        "command": command,
    }
    results["summary"] = f"{results['heldout_accuracy']:.2%} held-out accuracy on {len(heldout_y)} digits"
    results["samples"] = _write_samples(folder, heldout_x, heldout_y)
    write_json(folder / RESULTS_FILE, results)
    atomic_write_text(folder / "README.md", _model_card(name, results, command))
    return results


def check_digits_checkpoint(
    folder: str | Path,
    build: Callable[[float, float], tuple[Any, Any]] | None = None,
    min_accuracy: float = 0.9,
    margin: float = 0.01,
) -> float:
    """Assert a shipped digit checkpoint still earns its recorded held-out accuracy and its samples are the data.

    The accuracy is recomputed on the same split (within ``margin`` of the recorded one, for float rounding
    across machines, and at least ``min_accuracy``); each ``samples/digit-<n>.png`` must be the first
    held-out example of digit n, pixel for pixel, labelled n. With its training script's ``build``, the
    script must still make the shipped architecture and processor. Returns the accuracy.
    """
    import numpy as np
    from PIL import Image

    import plugformers

    folder = Path(folder)
    recorded = recorded_results(folder)
    _, _, heldout_x, heldout_y = load_digits_split()
    assert recorded.get("heldout_samples") == len(heldout_y), f"{folder}: {recorded}"
    model = plugformers.AutoModelForImageClassification.from_pretrained(folder)
    processor = plugformers.AutoImageProcessor.from_pretrained(folder)
    assert model.config.id2label == ID2LABEL, model.config.id2label
    accuracy = heldout_accuracy(model, processor, [digit_image(x) for x in heldout_x], heldout_y)
    assert accuracy >= recorded["heldout_accuracy"] - margin, f"{folder}: {accuracy:.4f} < recorded {recorded['heldout_accuracy']}"
    assert accuracy >= min_accuracy, f"{folder}: held-out accuracy {accuracy:.4f}"
    if build is not None:
        made, made_processor = build(0.5, 0.25)
        assert type(made) is type(model) and made.num_parameters() == recorded["parameters"], type(made).__name__
        assert type(made_processor) is type(processor) and made_processor.size == processor.size
    samples = recorded.get("samples") or {}
    assert sorted(samples.values()) == [ID2LABEL[i] for i in range(10)], samples
    for relative, label in samples.items():
        first = int(np.flatnonzero(heldout_y == int(label))[0])
        with Image.open(folder / relative) as im:
            assert np.array_equal(np.asarray(im), np.asarray(digit_image(heldout_x[first]))), relative
    return accuracy


def training_script(
    name: str,
    build: Callable[[float, float], tuple[Any, Any]],
    folder: Path,
    *,
    epochs: int,
    lr: float,
    command: str,
    description: str,
) -> None:
    """The command line of a plugin's ``train_digits.py``: ``--output-dir`` (default: the shipped folder)."""
    import argparse

    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=folder, help=f"where to write it (default: {folder})")
    args = parser.parse_args()
    train_digits_checkpoint(name, build, args.output_dir, epochs=epochs, lr=lr, command=command)
