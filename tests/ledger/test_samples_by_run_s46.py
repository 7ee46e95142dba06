"""Every run's power samples in one read are the samples read run by run, on both stores.

``Ledger._samples_by_run`` (the JSON export's read: one query where ``samples(run_id)`` per run
took 100,000 reads and id lookups) groups the ``samples`` table by run and orders each run's as
``ORDER BY t0, seq`` does: by start, equal starts in the order written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprint import PowerSample
from greenprint.ledger import Ledger

from .conftest import make_record

NAN = float("nan")
INF = float("inf")


@pytest.fixture
def led(ledger_url: str) -> Ledger:
    with Ledger(ledger_url) as ledger:
        yield ledger


def _written(led: Ledger) -> None:
    """Runs of two studies, their samples written out of order over several flushes."""
    for run_id, study in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")):
        led.start_run(make_record(run_id, study=study))
    led.flush("a1", samples=[PowerSample(5.0, 6.0, cpu_w=5.0), PowerSample(1.0, 2.0, cpu_w=1.0)])
    led.flush("b1", samples=[PowerSample(3.0, 4.0, gpu_w=3.0, intensity_g_per_kwh=300.0)])
    led.flush(
        "a1",
        samples=[
            PowerSample(1.0, 2.5, cpu_w=1.5),  # the same start as one written before: after it
            PowerSample(0.5, 1.0, cpu_w=NAN, gpu_w=INF, ram_w=-INF),
        ],
    )
    led.flush("a2", samples=[PowerSample(2.0, 3.0, ram_w=2.0)])
    # a3: no samples


def _texts(samples: list[PowerSample]) -> list[str]:
    return [repr(s) for s in samples]  # NaN equal to NaN


def test_one_read_gives_each_runs_samples_as_read_run_by_run(led: Ledger) -> None:
    _written(led)
    for study in (None, "a", "b"):
        by_run = led._samples_by_run(study)
        runs = led.runs(study=study)
        expected = {run.id: _texts(led.samples(run.id)) for run in runs if led.samples(run.id)}
        assert {run_id: _texts(found) for run_id, found in by_run.items()} == expected, study
    a1 = led._samples_by_run("a")["a1"]
    assert [s.t0 for s in a1] == [0.5, 1.0, 1.0, 5.0] and [s.cpu_w for s in a1][1:] == [1, 1.5, 5]
    assert set(led._samples_by_run("b")) == {"b1"} and "a3" not in led._samples_by_run()


def test_a_study_of_no_samples_and_an_unknown_study_read_none(led: Ledger, tmp_path: Path) -> None:
    led.start_run(make_record("c1", study="c"))
    assert led._samples_by_run("c") == {}
    assert led._samples_by_run("no-such-study") == {}


def test_a_start_that_is_no_number_comes_last_as_order_by_puts_it() -> None:
    """PostgreSQL stores a NaN start and sorts it after every number; SQLite's stored text
    ``'NaN'`` sorts after every number too. Equal starts keep the order written."""
    from greenprint.ledger._rows import samples_by_run

    rows = [
        ("r", NAN, 9.0, 1.0, None, None, None),
        ("r", 2.0, 3.0, 2.0, None, None, None),
        ("s", "NaN", 1.0, "NaN", None, None, None),
        ("r", 1.0, 2.0, 3.0, None, None, None),
        ("s", 0.0, 1.0, 4.0, None, None, None),
        ("r", 1.0, 2.5, 4.0, None, None, None),
    ]
    by_run = samples_by_run(rows)
    assert [s.cpu_w for s in by_run["r"]] == [3.0, 4.0, 2.0, 1.0]
    assert by_run["s"][0].cpu_w == 4.0 and by_run["s"][1].t0 == "NaN"
    assert str(by_run["s"][1].cpu_w) == "nan"  # SQLite's text 'NaN' read as NaN
