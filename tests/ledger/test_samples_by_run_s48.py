"""Every run's samples read at once as they were read before, made without a call each.

``samples_by_run`` made each sample through ``PowerSample``'s keyword constructor with a
``float()`` of each power, and sorted each run's by a key function: 1.8 s of the JSON export's
read of 500,000 samples. Now a sample whose powers are stored as floats (or NULL) is made by
the slotted constructor, a run's samples already in order are not sorted, and a read of most of
a ledger's runs scans every sample, skipping the other runs'. The samples must be those the
old code made, in its order, on any rows: powers stored as text ``'NaN'`` or integers, starts
that are NaN, text or equal, runs not wanted.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import PowerSample
from greenprint.ledger._rows import _start_order, samples_by_run


def _before(rows: list[tuple[Any, ...]], wanted: set[str] | None) -> dict[str, list[PowerSample]]:
    """The samples as ``samples_by_run`` made them before (the reference)."""
    by_run: dict[str, list[PowerSample]] = {}
    for run_id, t0, t1, *powers in rows:
        if wanted is not None and run_id not in wanted:
            continue
        by_run.setdefault(run_id, []).append(
            PowerSample(t0, t1, *(None if v is None else float(v) for v in powers))
        )
    for found in by_run.values():
        found.sort(key=_start_order)
    return by_run


STARTS = (
    st.sampled_from([0.0, 1.0, 1.0, 2.5, -1.0]) | st.floats() | st.just("NaN") | st.integers(0, 3)
)
POWERS = st.none() | st.floats() | st.integers(0, 5) | st.sampled_from(["NaN", "nan", "1.5"])
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]), STARTS, st.floats(), POWERS, POWERS, POWERS, POWERS
    ),
    max_size=30,
)


def _texts(by_run: dict[str, list[PowerSample]]) -> dict[str, list[str]]:
    """Each run's samples as texts (NaN equal to NaN; ``1`` and ``1.0`` apart)."""
    return {
        run_id: [
            repr((s.t0, s.t1, s.cpu_w, s.gpu_w, s.ram_w, s.intensity_g_per_kwh)) for s in found
        ]
        for run_id, found in by_run.items()
    }


@settings(max_examples=500, deadline=None)
@given(rows=ROWS, wanted=st.none() | st.sets(st.sampled_from(["a", "b", "x"])))
def test_any_rows_give_the_samples_made_before_in_their_order(
    rows: list[tuple[Any, ...]], wanted: set[str] | None
) -> None:
    found = samples_by_run(rows, wanted)
    assert _texts(found) == _texts(_before(rows, wanted))
    assert list(found) == list(_before(rows, wanted))  # runs in the order first seen
    for samples in found.values():
        assert all(type(s) is PowerSample for s in samples)
        assert all(type(v) in (float, type(None)) for s in samples for v in _powers(s))


def _powers(sample: PowerSample) -> tuple[Any, ...]:
    return sample.cpu_w, sample.gpu_w, sample.ram_w, sample.intensity_g_per_kwh
