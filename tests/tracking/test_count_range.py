"""A count the ledger cannot store is refused where it is given, and the run is still recorded.

The ledger stores ``dataset_size`` and ``param_count`` as 64-bit integers. A larger count given
through ``run.set`` used to be accepted and then refused when the run was written at its end:
the run stayed ``running`` (lost) with none of its metrics. Now ``gp.track`` and ``run.set``
refuse it at once with a ConfigError, record nothing of it, and the run ends as it should.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import greenprint as gp
from greenprint._validate import INT64_MAX


@pytest.mark.parametrize("field", ["dataset_size", "param_count"])
def test_a_count_above_64_bits_is_refused_by_set_and_the_run_is_recorded(
    tmp_path: Path, field: str
) -> None:
    ledger = tmp_path / "ledger.db"
    with gp.track("big", ledger=ledger) as run:
        run.log(accuracy=0.5)
        with pytest.raises(gp.ConfigError, match=rf"{field} must be at most 2\*\*63 - 1"):
            run.set(**{field: INT64_MAX + 1})
        run.set(**{field: INT64_MAX})  # the largest that fits is stored as it is
    with gp.Ledger(ledger, create=False) as led:
        (record,) = led.runs()
    assert record.status == "finished"
    assert getattr(record, field) == INT64_MAX
    assert record.metric("accuracy") == 0.5


def test_track_refuses_a_dataset_size_above_64_bits(tmp_path: Path) -> None:
    with pytest.raises(gp.ConfigError, match="integer of 22 digits"):
        gp.track("big", ledger=tmp_path / "ledger.db", dataset_size=2**70)
    assert not (tmp_path / "ledger.db").exists() or not gp.Ledger(tmp_path / "ledger.db").runs()
