"""A run as the export tests write them: every kind of value an export must write as it was.

``tests/test_export_stream_s46.py`` (JSON) and ``tests/test_export_csv_s47.py`` (CSV).
"""

from __future__ import annotations

from typing import Any

from greenprint import MetricPoint, RunRecord

NAN = float("nan")


def export_run(run_id: str, study: str, **fields: Any) -> RunRecord:
    """A finished run of ``study`` with markup and a newline in its name, parameters holding a
    list, a nested NaN and a non-ASCII key, a GPU in its hardware, two metrics (one NaN);
    ``fields`` replace any of those."""
    values: dict[str, Any] = {
        "id": run_id,
        "name": f'name <{run_id}> "q"\n',
        "study": study,
        "status": "finished",
        "started_at": 1000.0 + len(run_id),
        "ended_at": 1010.0,
        "duration_s": 10.0,
        "energy_kwh": 0.002,
        "emissions_kg": 0.0007,
        "params": {"lr": 0.1, "layers": [1, 2, {"x": NAN}], "é": None},
        "hardware": {"gpus": [{"name": "fake", "memory_gb": 80.0}]},
        "metrics": (MetricPoint("acc", 0.5, 1, 1001.0), MetricPoint("loss", NAN, 1, 1001.0)),
    }
    values.update(fields)
    return RunRecord(**values)
