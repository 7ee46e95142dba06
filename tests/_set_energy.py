"""A meter that reads a set energy, for tests whose Pareto fronts and ties must not be raced.

A meter that measures by the clock (watts x seconds) makes a run's energy depend on how long
the machine took; on a loaded machine two runs 20 ms apart can swap places, and a front or a
tie a test asserts moves. ``Joules(j)`` makes the run measure ``j`` J whatever its duration.
"""

from __future__ import annotations

from greenprint.meters._base import MeterReading


class Joules:
    """``joules`` measured by the run (all of it the process's) however long it takes."""

    components = ("cpu",)
    provenance = {"cpu": "test:constant"}

    def __init__(self, joules: float) -> None:
        self.joules = joules

    def start(self) -> None:
        pass

    def read(self) -> dict[str, MeterReading]:
        return {"cpu": MeterReading(machine_j=self.joules, process_j=self.joules)}

    def close(self) -> None:
        pass
