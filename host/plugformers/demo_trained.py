"""The trained checkpoints shipped in ``plugformers/data/models``: their data split and a demo of them.

``vit-digits`` and ``resnet-digits`` are tiny image classifiers trained by
``docs/examples/train_digits.py`` on scikit-learn's bundled 8x8 handwritten digits, so that
``plugformers predict`` gives right answers with no network. The split and the digit-to-image
conversion live here so that the training script, the tests and the demo agree on them exactly.
Nothing here imports torch or scikit-learn at module level.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

DATA = Path(__file__).parent / "data"
MODELS_DIR = DATA / "models"
DIGITS_DIR = DATA / "digits"
CHECKPOINTS = ("vit-digits", "resnet-digits")
# The checkpoints' plugins, by folder, so a missing plugin gives a clear line rather than a traceback.
_PLUGIN_OF = {"vit-digits": "plugformers_vit", "resnet-digits": "plugformers_resnet"}
# Where the held-out part starts, as a fraction of the dataset (its order is fixed, so no shuffling).
HELDOUT_FRACTION = 0.2
RESULTS_FILE = "eval_results.json"


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

    ``*_x`` are ``(n, 64)`` float arrays in [0, 16], ``*_y`` integer labels. Needs scikit-learn, which
    ships the dataset inside its wheel (no download).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits dataset comes from scikit-learn: `pip install scikit-learn`") from exc
    digits = load_digits()
    x, y = digits.data, digits.target
    cut = int(len(x) * (1 - HELDOUT_FRACTION))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def recorded_results(checkpoint: str | Path) -> dict[str, Any]:
    """The training run's results written next to a checkpoint (``eval_results.json``); ``{}`` if absent."""
    path = Path(checkpoint)
    if not path.is_absolute() and not path.exists():
        path = MODELS_DIR / path
    path = path / RESULTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    return data


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


def sample_pngs() -> list[Path]:
    """The shipped sample digits, ``digit-<label>.png`` each."""
    return sorted(DIGITS_DIR.glob("digit-*.png"))


def _plugin_missing(name: str) -> str | None:
    import importlib.util

    module = _PLUGIN_OF.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"the plugin {module.replace('_', '-')} is not installed"
    return None


def show_trained_models() -> None:
    """Print each shipped checkpoint's held-out accuracy and its predictions on the sample PNGs, with timings."""
    from PIL import Image

    import plugformers

    try:
        split = load_digits_split()
    except ImportError:
        split = None
    samples = sample_pngs()
    for name in CHECKPOINTS:
        folder = MODELS_DIR / name
        print(f"\n== trained checkpoint {name} ({folder})")
        missing = _plugin_missing(name)
        if missing:
            print(f"    skipped: {missing}")
            continue
        if not (folder / "config.json").is_file():
            print("    skipped: the checkpoint is not there (run docs/examples/train_digits.py)")
            continue
        start = time.perf_counter()
        model = plugformers.AutoModelForImageClassification.from_pretrained(folder)
        processor = plugformers.AutoImageProcessor.from_pretrained(folder)
        model.eval()
        n_params = sum(p.numel() for p in model.parameters())
        print(f"    {'load':<28} {time.perf_counter() - start:7.3f} s  ({type(model).__name__}, {n_params:,} parameters)")
        recorded = recorded_results(folder)
        if split is not None:
            _, _, heldout_x, heldout_y = split
            start = time.perf_counter()
            acc = heldout_accuracy(model, processor, [digit_image(x) for x in heldout_x], heldout_y)
            print(
                f"    {'held-out accuracy':<28} {time.perf_counter() - start:7.3f} s  "
                f"{acc:.2%} on {len(heldout_y)} digits (recorded at training: "
                f"{recorded.get('heldout_accuracy', float('nan')):.2%})"
            )
        elif recorded:
            print(
                f"    {'held-out accuracy':<28}    (recorded) {recorded['heldout_accuracy']:.2%} on "
                f"{recorded.get('heldout_samples', '?')} digits; install scikit-learn to recompute it"
            )
        for path in samples:
            import torch

            start = time.perf_counter()
            with Image.open(path) as im:
                image = im.convert("RGB")
            with torch.no_grad():
                logits = model(**processor(image, return_tensors="pt")).logits[0]
            probs = logits.softmax(-1)
            top = int(probs.argmax())
            label = model.config.id2label.get(top, str(top))
            expected = path.stem.split("-", 1)[-1]
            mark = "ok" if label == expected else f"WRONG, expected {expected}"
            print(
                f"    {'predict ' + path.name:<28} {time.perf_counter() - start:7.3f} s  "
                f"-> {label} ({float(probs[top]):.3f}) {mark}"
            )
