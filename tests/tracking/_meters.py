"""A deterministic meter set for tracker tests: constant power per component, by the clock.

It stands in for hardware (the real meters are tested in tests/meters with fake sysfs and NVML);
here it lets the tracker's accounting be checked exactly.
"""

from __future__ import annotations

import time

from greenprint.meters._base import MeterReading


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
