"""The demo's data: scikit-learn's bundled digits, read and split without importing scikit-learn.

Importing scikit-learn imports scipy.stats and pandas with it (about 1.3 s of CPU, 2-3 % of the
whole demo) for the two things the demo takes from it: the digits' data file, which ships with
scikit-learn, and a stratified train/test split. :func:`load_digits` reads the file as
``sklearn.datasets.load_digits`` does, and :func:`train_test_split` draws the split that
``sklearn.model_selection.train_test_split(x, y, test_size=..., stratify=y,
random_state=seed)`` draws (scikit-learn's ``StratifiedShuffleSplit`` with a ``RandomState``), so
the demo's runs and figures are those of the split it made with scikit-learn. Where the file is
not found, scikit-learn's own ``load_digits`` reads it.
"""

from __future__ import annotations

import gzip
import importlib.machinery
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_digits", "train_test_split"]

#: The digits' data file inside the scikit-learn package: 1,797 rows of 64 pixel values (0-16)
#: and the label, comma-separated.
_DATA = ("datasets", "data", "digits.csv.gz")


def load_digits() -> tuple[Any, Any]:
    """The 1,797 digits as ``(pixels, labels)``, as ``sklearn.datasets.load_digits`` gives them.

    ``pixels``: values 0-16 as float64, shape (1797, 64) (its ``data``); ``labels``: ints 0-9
    (its ``target``).

    Raises:
        MissingDependencyError: scikit-learn is not installed (extra ``demo``).
    """
    # the package's folder on sys.path, found without importing it
    spec = importlib.machinery.PathFinder.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    path = next((p for f in folders if (p := Path(f).joinpath(*_DATA)).is_file()), None)
    if path is None:  # another layout: scikit-learn reads its own file
        from greenprint._imports import require

        datasets = require("sklearn.datasets", extra="demo", purpose="greenprint demo")
        digits = datasets.load_digits()
        return digits.data, digits.target
    with gzip.open(path, mode="rt", encoding="utf-8") as rows:
        data = np.loadtxt(rows, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int, copy=False)


def train_test_split(x: Any, y: Any, *, test_size: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """``(x_train, x_test, y_train, y_test)``: a shuffled split stratified by the labels ``y``.

    The split of ``sklearn.model_selection.train_test_split(x, y, test_size=test_size,
    stratify=y, random_state=seed)``: ``ceil(test_size * n)`` test rows, each label's share of
    both parts as near its share of ``y`` as whole rows allow (ties broken at random), the rows
    drawn and ordered with ``numpy.random.RandomState(seed)`` in scikit-learn's order of draws.

    Args:
        x: the rows (an array indexed on its first axis).
        y: their labels, one per row; every label at least twice.
        test_size: the test part's share of the rows, in (0, 1).
        seed: the seed of the draws.
    """
    n = len(y)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    labels, label_of, counts = np.unique(y, return_inverse=True, return_counts=True)
    # each label's rows, in row order (np.unique sorted the labels)
    members = np.split(np.argsort(label_of, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    train_counts = _approximate_mode(counts, n_train, rng)
    test_counts = _approximate_mode(counts - train_counts, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for k in range(len(labels)):
        rows = members[k].take(rng.permutation(counts[k]), mode="clip")
        train.extend(rows[: train_counts[k]])
        test.extend(rows[train_counts[k] : train_counts[k] + test_counts[k]])
    train_rows, test_rows = rng.permutation(train), rng.permutation(test)
    return x[train_rows], x[test_rows], y[train_rows], y[test_rows]


def _approximate_mode(counts: Any, draws: int, rng: Any) -> Any:
    """How many of ``draws`` rows each label gets, as scikit-learn's ``_approximate_mode``.

    Each label's share rounded down, then one more for the largest remainders until the total
    is ``draws`` (ties drawn with ``rng``).
    """
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    missing = int(draws - floored.sum())
    if missing > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            now = min(len(tied), missing)
            floored[rng.choice(tied, size=now, replace=False)] += 1
            missing -= now
            if missing == 0:
                break
    return floored.astype(int)
