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
#: a run. The meter set stamps a read (``read_at``) just before it calls the meters, on its
#: reading thread; these meters read the clock inside ``start`` and ``read``. A thread preempted
#: between the two on a loaded machine opens a gap: 0.37 ms seen in CI with 2 xdist workers
#: (0.7% of a 55 ms Ray trial's energy), 19.5 ms with 3 workers on 2 cores (1.6% of a 1.2 s
#: trial). A check of energy = power x time allows watts x this, in J: a sample interval counted
#: twice or lost (>= 100 ms) still fails it.
READ_LAG_S = 0.05


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
