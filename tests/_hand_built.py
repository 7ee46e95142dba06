"""Run records built by hand as the integrations record them, each process's energy known.

A test of the price tag's rules builds a study whose every figure is known by first principles:
each run's record holds what its meter read (``spent`` kWh over its span, by its CPU counter),
so the expected totals are sums of those numbers.
"""

from __future__ import annotations

from typing import Any

import greenprint as gp

#: The epoch second the hand-built runs' spans count from.
T0 = 1_700_000_000.0


def measured_run(
    name: str, parent: str | None, spent: float, span: tuple[int, int], **fields: Any
) -> gp.RunRecord:
    """A run's record: ``spent`` kWh over ``span`` (s from :data:`T0`), by its CPU counter.

    Ids are ``id-<name>`` (``parent`` a name). ``fields``: ``pid`` (its process, required),
    ``status`` (default finished), ``study`` (default ``ddp``), ``host`` (default ``gpu-1``)
    and any other RunRecord field.
    """
    start, end = span
    return gp.RunRecord(
        id=f"id-{name}",
        name=name,
        study=fields.pop("study", "ddp"),
        parent_id=None if parent is None else f"id-{parent}",
        status=fields.pop("status", "finished"),
        started_at=T0 + start,
        ended_at=T0 + end,
        heartbeat_at=T0 + end,
        duration_s=float(end - start),
        host=fields.pop("host", "gpu-1"),
        energy_kwh=spent,
        energy_cpu_kwh=spent,
        emissions_kg=spent * 0.4,
        provenance={"cpu": "rapl", "process": f"pid {fields.pop('pid')} started 1.00"},
        **fields,
    )
