"""A fake ``powermetrics``: a script that replays plist samples as the real one writes them.

The real command (``powermetrics --samplers cpu_power,gpu_power -i 1000 -f plist``) writes one
XML property list per interval to stdout, each followed by a NUL byte, until it is stopped.
:func:`make_fake_powermetrics` writes a Python script that does the same with given samples
(recorded output, or ones built by :func:`powermetrics_plist`), and can fail as the real one
does: refused without root, silent, or dying mid-run. Point the meter at it with
``GREENPRINT_POWERMETRICS``::

    fake = make_fake_powermetrics(tmp_path, [powermetrics_plist(cpu_mw=2000, gpu_mw=500)])
    monkeypatch.setenv("GREENPRINT_POWERMETRICS", fake)
"""

from __future__ import annotations

import os
import plistlib
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["NOT_ROOT_MESSAGE", "make_fake_powermetrics", "powermetrics_plist"]

#: What the real ``powermetrics`` prints on stderr when not run as root (exit status 1).
NOT_ROOT_MESSAGE = "powermetrics must be invoked as the superuser"

_SCRIPT = """\
import os, signal, sys, time
behaviour, interval_s, die_after = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
gate = sys.argv[4] if len(sys.argv) > 4 else ""
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while gate and not os.path.exists(gate):  # a test's meters start before the first sample
    time.sleep(0.005)
if behaviour == "not-root":
    sys.stderr.write({message!r} + "\\n")
    sys.exit(1)
if behaviour == "silent":
    while True:
        time.sleep(3600)
with open({data!r}, "rb") as fh:
    samples = [s for s in fh.read().split(b"\\0") if s.strip()]
out = sys.stdout.buffer
sent = 0
while True:
    for sample in samples:
        time.sleep(interval_s)
        if behaviour == "die" and sent >= die_after:
            sys.stderr.write("powermetrics: sampling failed\\n")
            sys.stderr.flush()
            os._exit(70)
        out.write(sample + b"\\0")
        out.flush()
        sent += 1
    if behaviour == "once":
        while True:
            time.sleep(3600)
"""


def powermetrics_plist(
    *,
    cpu_mw: float,
    gpu_mw: float = 0.0,
    ane_mw: float = 0.0,
    elapsed_ns: int = 1_000_000_000,
    with_energy: bool = True,
    with_power: bool = True,
    hw_model: str = "Mac14,2",
) -> bytes:
    """One sample as ``powermetrics -f plist`` writes it (without the trailing NUL).

    Args:
        cpu_mw: CPU power, in mW.
        gpu_mw: GPU power, in mW.
        ane_mw: Neural Engine power, in mW.
        elapsed_ns: the interval the sample covers, in ns.
        with_energy: include ``cpu_energy``/``gpu_energy``/``ane_energy`` (mJ over the interval).
        with_power: include ``cpu_power``/``gpu_power``/``ane_power``/``combined_power`` (mW;
            macOS 13 and newer; macOS 12 had the energies only).
        hw_model: the ``hw_model`` field.
    """
    seconds = elapsed_ns / 1e9
    processor: dict[str, object] = {
        "clusters": [
            {"name": "E-Cluster", "freq_hz": 1.2e9, "idle_ratio": 0.6, "cpus": []},
            {"name": "P-Cluster", "freq_hz": 3.0e9, "idle_ratio": 0.2, "cpus": []},
        ]
    }
    if with_energy:
        processor.update(
            cpu_energy=round(cpu_mw * seconds),
            gpu_energy=round(gpu_mw * seconds),
            ane_energy=round(ane_mw * seconds),
        )
    if with_power:
        processor.update(
            cpu_power=float(cpu_mw),
            gpu_power=float(gpu_mw),
            ane_power=float(ane_mw),
            combined_power=float(cpu_mw + gpu_mw + ane_mw),
        )
    sample = {
        "is_delta": True,
        "elapsed_ns": int(elapsed_ns),
        "hw_model": hw_model,
        "kern_osversion": "23C71",
        "kern_bootargs": "",
        "kern_boottime": 1700000000,
        "timestamp": datetime(2024, 1, 15, 9, 30, tzinfo=timezone.utc),
        "processor": processor,
        "gpu": {"freq_hz": 444.0, "idle_ratio": 0.9, "dvfm_states": []},
    }
    return plistlib.dumps(sample, fmt=plistlib.FMT_XML)


def make_fake_powermetrics(
    directory: str | os.PathLike[str],
    samples: Sequence[bytes] | bytes,
    *,
    interval_s: float = 0.05,
    behaviour: str = "loop",
    die_after: int = 2,
    start_when: str | os.PathLike[str] | None = None,
) -> str:
    """Write a fake ``powermetrics`` script into ``directory`` and return the command to run it.

    Args:
        directory: where to write the script and its samples.
        samples: plist samples (bytes each), or recorded output (samples separated by NULs).
        interval_s: seconds between samples (the real one's ``-i`` in s).
        behaviour: ``"loop"`` (replay the samples for ever), ``"once"`` (replay them once, then
            stay silent but alive), ``"not-root"`` (print :data:`NOT_ROOT_MESSAGE` and exit 1,
            as the real one without root), ``"silent"`` (alive, never writes), ``"die"`` (exit
            with status 70 after ``die_after`` samples).
        die_after: samples sent before ``"die"`` exits.
        start_when: a path: the script writes nothing (and does not exit) until it exists, so
            that a test can start its meters before the first sample, however loaded the
            machine (``None``: it starts at once).

    Returns:
        The command line, for ``GREENPRINT_POWERMETRICS``.
    """
    if behaviour not in ("loop", "once", "not-root", "silent", "die"):
        raise ValueError(f"unknown behaviour {behaviour!r}")
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    data = base / "powermetrics-samples.bin"
    blob = samples if isinstance(samples, bytes) else b"".join(s + b"\0" for s in samples)
    data.write_bytes(blob)
    script = base / "fake_powermetrics.py"
    script.write_text(_SCRIPT.format(message=NOT_ROOT_MESSAGE, data=str(data)))
    argv = [sys.executable, str(script), behaviour, repr(float(interval_s)), str(die_after)]
    if start_when is not None:
        argv.append(str(start_when))
    return shlex.join(argv)
