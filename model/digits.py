"""The handwritten digits data set that scikit-learn ships, with one fixed train / held-out split.

scikit-learn bundles the 1,797 8x8 images of the UCI handwritten digits inside the package, so
training needs no download. The split is fixed (stratified, seeded), so every packaging, demo,
container test and benchmark sees the same held-out digits. This module needs the ``model``
dependency group (scikit-learn); the inference service never imports it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

#: Share of the data set kept out of training and used only to measure accuracy.
HOLDOUT_FRACTION: Final = 0.2
#: Seed of the split; changing it changes which digits are held out.
SPLIT_SEED: Final = 20261125
#: Pixel values run from 0 (white) to this value (black).
PIXEL_MAX: Final = 16
PIXELS: Final = 64
CLASSES: Final = 10

Split = tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]


def _split() -> tuple[Split, Split]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # The pixels are whole numbers 0..16 stored as float64; uint8 is their exact, compact form.
    images = bunch.data.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    x_train, x_holdout, y_train, y_holdout = train_test_split(
        images, labels, test_size=HOLDOUT_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return (x_train, y_train), (x_holdout, y_holdout)


def training_set() -> Split:
    """The training digits: pixels ``uint8 [n, 64]`` (0..16) and labels ``int64 [n]``."""
    return _split()[0]


def holdout() -> Split:
    """The held-out digits: pixels ``uint8 [n, 64]`` (0..16, raw) and labels ``int64 [n]``.

    These are what clients send to the service: raw pixels, since the model normalises inside.
    """
    return _split()[1]
