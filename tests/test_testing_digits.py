"""The digits helpers the plugins' digit checkpoints, training scripts and tests share."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from plugformers.testing.digits import digit_image, load_digits_split


def test_split_is_the_last_fifth_held_out() -> None:
    train_x, train_y, heldout_x, heldout_y = load_digits_split()
    assert len(train_x) == len(train_y) == 1437 and len(heldout_x) == len(heldout_y) == 360
    assert train_x.max() <= 16 and heldout_x.min() >= 0
    assert sorted(set(heldout_y.tolist())) == list(range(10))


def test_digit_image_is_8x8_grayscale_and_rejects_out_of_range() -> None:
    import numpy as np

    image = digit_image(np.linspace(0, 16, 64))
    assert image.size == (8, 8) and image.mode == "L"
    assert np.asarray(image)[0, 0] == 0 and np.asarray(image)[7, 7] == 255
    with pytest.raises(ValueError, match=r"\[0, 16\]"):
        digit_image([17] * 64)
