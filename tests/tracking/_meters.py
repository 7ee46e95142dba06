"""A deterministic meter set for tracker tests: constant power per component, by the clock.

It stands in for hardware (the real meters are tested in tests/meters with fake sysfs and NVML);
here it lets the tracker's accounting be checked exactly.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

from greenprint.meters._base import MeterReading

#: How far these meters' clock can run behind the run's stamp of a read, in s, at either end of
#: a run. The meter set stamps a read (``read_at``) just before it calls the meters; these
#: meters read the clock inside ``start`` and ``read``. On a loaded machine the gap reaches a
#: fraction of a millisecond (0.37 ms seen in CI at the end of a 55 ms Ray trial: 0.7% of its
#: energy), so a check of energy = power x time on a short run allows watts x this, in J.
READ_LAG_S = 0.002


class ConstantPowerMeters:
    def __init__(self, cpu_w: float = 100.0, ram_w: float = 10.0, process_share: float = 0.5):
        self.watts = {"cpu": cpu_w, "ram": ram_w}
        self.share = process_share
        self.components = tuple(self.watts)
        self.provenance = {"cpu": "test:constant", "ram": "test:constant"}
        self.t0 = 0.0
        self.closed = False

    def start(self) -> None:
        self.t0 = time.time()

    def read(self) -> dict[str, MeterReading]:
        dt = time.time() - self.t0
        return {
            c: MeterReading(machine_j=w * dt, process_j=w * dt * self.share)
            for c, w in self.watts.items()
        }

    def close(self) -> None:
        self.closed = True


class ConstantProcessPower:
    """One component (``cpu``) at a constant ``watts``, read as the whole process's: ``watts``
    x the time since :meth:`start` (J), whichever thread reads it, as a process meter reads all
    of a process (threads of it cannot be told apart).

    ``per_thread``: the start is kept per thread, for one object handed to several runs (the
    Optuna callback passes every trial's run the same one): each run starts and reads its
    meters on a thread of its own.
    """

    components = ("cpu",)
    provenance = {"cpu": "test:constant-power"}

    def __init__(self, watts: float, *, per_thread: bool = False) -> None:
        self.watts = watts
        self._started: Any = threading.local() if per_thread else types.SimpleNamespace(t0=0.0)

    def start(self) -> None:
        self._started.t0 = time.time()

    def read(self) -> dict[str, MeterReading]:
        joules = self.watts * (time.time() - self._started.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self) -> None:
        pass
