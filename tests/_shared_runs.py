"""Runs whose shared columns differ from the first run's, one way each: both stores' reads.

The columns a study's runs share (``ledger._rows.SHARED_COLUMNS``) are read as their few
distinct combinations (``_rows.SharedValues``); ``tests/ledger/test_decoded_columns.py`` reads
these runs from SQLite against their stored rows, ``tests/ledger/test_postgres_reads.py`` from
PostgreSQL against SQLite.
"""

from __future__ import annotations

import math
from typing import Any

import greenprint as gp

#: Values of the shared columns other than the first run's: each run differs from the first in
#: one of them (a value where the first has NULL, NULL where it has one, another value, another
#: type); the first run's are RunRecord's defaults and :data:`FIRST_SHARED`.
OTHER_SHARED: list[dict[str, Any]] = [
    {"flush_interval_s": 5.0},
    {"host": "h2"},
    {"command": "python other.py"},
    {"git_commit": "abc123"},
    {"git_dirty": True},
    {"git_dirty": False},
    {"python_version": "3.12.1"},
    {"greenprint_version": "0.0.1"},
    {"torch_version": "2.13.0"},
    {"hardware": {"cpu_model": "Y"}},
    {"env": {"OMP_NUM_THREADS": "1"}},
    {"scope": "machine"},
    {"pue": 1.5},
    {"intensity_g_per_kwh": 345},  # an int given, a float stored: still another value
    {"intensity_g_per_kwh": None},
    {"intensity_source": "table:FR:2023"},
    {"job_id": "job-1"},
    {"node_rank": 0},  # 0, not NULL
    {"local_rank": 1},
    {"node_meter": False},
    {"node_meter": True},
    {"host": "h2", "node_rank": 3, "hardware": {}},  # several at once
]

#: The first run's shared values besides RunRecord's defaults.
FIRST_SHARED: dict[str, Any] = {
    "intensity_g_per_kwh": 400.0,
    "hardware": {"cpu_model": "X"},
    "env": {"A": "1"},
}

#: How many runs :func:`write_shared_runs` writes to each of its two studies.
RUNS_A_STUDY = len(OTHER_SHARED) + 3


def write_shared_runs(led: gp.Ledger) -> None:
    """Studies ``s`` and ``t``, each: the first run, one run per :data:`OTHER_SHARED`, one more
    as the first (``{s,t}023``) and one whose PUE is NaN (``{s,t}024``); ids ``{study}{k:03d}``."""
    for k, other in enumerate([{}, *OTHER_SHARED, {}, {"pue": math.nan}]):
        for study in ("s", "t"):
            led.start_run(
                gp.RunRecord(
                    id=f"{study}{k:03d}",
                    name=f"trial-{k}",
                    study=study,
                    status="finished",
                    started_at=1_700_000_000.0 + k,
                    ended_at=1_700_000_001.0 + k,
                    energy_kwh=0.1 * k,
                    **{**FIRST_SHARED, **other},
                )
            )
