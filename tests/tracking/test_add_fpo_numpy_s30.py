"""``run.add_fpo`` takes numpy's integers, as ``run.set(fpo=...)`` and ``gp.track`` do.

A count worked out with numpy (``6 * n_params * tokens`` over arrays) is an ``np.int64``:
``run.set(fpo=np.int64(5))`` recorded it, while ``run.add_fpo(np.int64(5))`` refused it
("fpo must be a non-negative integer, not np.int64(5)"). Floats, bools and negative numbers
are still refused, with nothing added.
"""

from __future__ import annotations

import numpy as np
import pytest

import greenprint as gp


def test_add_fpo_takes_numpy_integers_and_refuses_what_is_no_count(tmp_path):
    ledger = tmp_path / "l.db"
    with gp.track("x", ledger=ledger) as run:
        run.add_fpo(np.int64(6) * 1_000_000 * np.int32(3))
        run.add_fpo(2)
        for bad in (2e9, True, np.float64(3.0), -1, np.int64(-4)):
            with pytest.raises(gp.ConfigError, match="fpo must be a non-negative integer"):
                run.add_fpo(bad)
    stored = gp.Ledger(ledger).run(run.id).fpo
    assert stored == 18_000_002 and type(stored) is int
