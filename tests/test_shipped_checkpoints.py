"""The trained digit checkpoints shipped in ``plugformers/data/models`` really predict.

They load through the Auto classes, keep the held-out accuracy recorded at training time on the same
split, and ``plugformers predict`` names the right digit for each shipped sample PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("plugformers_vit")
pytest.importorskip("plugformers_resnet")
pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

import plugformers  # noqa: E402
from plugformers.cli import main  # noqa: E402
from plugformers.demo_trained import (  # noqa: E402
    CHECKPOINTS,
    MODELS_DIR,
    digit_image,
    heldout_accuracy,
    load_digits_split,
    recorded_results,
    sample_pngs,
    show_trained_models,
)

# Held-out accuracy may differ from the recorded one by float rounding across machines, not more.
MARGIN = 0.01


@pytest.fixture(scope="module")
def heldout() -> tuple[list, list]:
    _, _, x, y = load_digits_split()
    return [digit_image(v) for v in x], list(y)


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoint_files_and_labels(name: str) -> None:
    folder = MODELS_DIR / name
    for filename in ("config.json", "model.safetensors", "preprocessor_config.json", "eval_results.json"):
        assert (folder / filename).is_file(), filename
    assert (folder / "model.safetensors").stat().st_size < 2_000_000
    config = plugformers.AutoConfig.from_pretrained(folder)
    assert config.id2label == {i: str(i) for i in range(10)}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_heldout_accuracy_matches_recorded(name: str, heldout: tuple[list, list]) -> None:
    folder = MODELS_DIR / name
    model = plugformers.AutoModelForImageClassification.from_pretrained(folder)
    processor = plugformers.AutoImageProcessor.from_pretrained(folder)
    recorded = recorded_results(folder)
    images, labels = heldout
    assert recorded["heldout_samples"] == len(labels) == 360
    acc = heldout_accuracy(model, processor, images, labels)
    assert acc >= recorded["heldout_accuracy"] - MARGIN
    assert acc >= 0.9


def test_split_is_the_last_fifth() -> None:
    train_x, train_y, heldout_x, heldout_y = load_digits_split()
    assert len(train_x) == len(train_y) == 1437 and len(heldout_x) == len(heldout_y) == 360
    assert train_x.max() <= 16 and heldout_x.min() >= 0


def test_digit_image_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 16\]"):
        digit_image([17] * 64)


def test_samples_are_the_heldout_digits() -> None:
    """Each ``digit-<n>.png`` is the first held-out example of digit n, pixel for pixel."""
    import numpy as np
    from PIL import Image

    _, _, x, y = load_digits_split()
    samples = sample_pngs()
    assert [p.stem for p in samples] == [f"digit-{i}" for i in range(10)]
    for path in samples:
        label = int(path.stem.split("-")[1])
        first = int(np.flatnonzero(y == label)[0])
        with Image.open(path) as im:
            assert np.array_equal(np.asarray(im), np.asarray(digit_image(x[first])))


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_cli_predict_names_the_digit(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    samples = [str(p) for p in sample_pngs()]
    assert main(["predict", str(MODELS_DIR / name), *samples, "--json", "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "image-classification"
    assert len(out["results"]) == len(samples)
    for result in out["results"]:
        expected = Path(result["input"]).stem.split("-")[1]
        assert result["top"][0]["label"] == expected, result
        assert result["top"][0]["score"] > result["top"][1]["score"]


def test_show_trained_models_prints_accuracy_and_predictions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without scikit-learn the demo shows the recorded accuracy (the recomputation is tested above)."""
    import plugformers.demo_trained as demo

    def no_sklearn() -> None:
        raise ImportError("no scikit-learn")

    monkeypatch.setattr(demo, "load_digits_split", no_sklearn)
    show_trained_models()
    out = capsys.readouterr().out
    for name in CHECKPOINTS:
        assert f"trained checkpoint {name}" in out
        assert f"(recorded) {recorded_results(name)['heldout_accuracy']:.2%}" in out
    assert out.count("held-out accuracy") == len(CHECKPOINTS)
    assert out.count(" ok") == 10 * len(CHECKPOINTS)
    assert "WRONG" not in out
