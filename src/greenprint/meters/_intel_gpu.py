"""Intel GPUs (i915 and xe drivers) through their hwmon energy counters in sysfs.

Layout read (kernel ABI: ``Documentation/ABI/testing/sysfs-driver-intel-i915-hwmon`` and
``sysfs-driver-intel-xe-hwmon``)::

    /sys/class/drm/card0/device/uevent                     DRIVER=i915 (or xe)
    /sys/class/drm/card0/device/hwmon/hwmon3/name          i915 | i915_gt0 | xe
    /sys/class/drm/card0/device/hwmon/hwmon3/energy1_input µJ, cumulative

* **i915** (Linux >= 6.2): the device-level hwmon (``name`` = ``i915``) has ``energy1_input``,
  the energy of the whole device; gt-level ones (``i915_gt0``...) are inside it and not added.
* **xe** (Linux >= 6.5): ``energy1_input`` is the card (board, memory included); ``energy2_input``
  (>= 6.8) the package, inside the card. The card is read when it exists, else the package
  (labelled: memory and board then are not counted).

Both drivers register hwmon for discrete GPUs only: an integrated GPU is inside the CPU package
and metered by RAPL; its card is listed with that reason. The drivers extend the 32-bit hardware
counter to 64 bits, so a decrease is a reset (driver reload), undone as in
:func:`~greenprint.meters._hwmon.energy_delta_uj`. Every Intel GPU card of the machine is
metered (the GPU figure is machine-wide; ``process_j`` is ``None``: the per-client busyness in
DRM fdinfo is not turned into an energy share yet).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from greenprint._exceptions import MeterError
from greenprint._provenance import Provenance
from greenprint.meters._hwmon import (
    HwmonChannel,
    Opener,
    chmod_fix,
    read_hwmon_value,
    scan_hwmon_device,
)
from greenprint.meters._status import MeterStatus
from greenprint.meters._where import (
    DEFAULT_DRM_ROOT,
    DRM_ROOT_ENV,
    absent_intel_gpu,
    resolve_drm_root,
)

__all__ = [
    "DEFAULT_DRM_ROOT",
    "DRM_ROOT_ENV",
    "INTEL_GPU_DRIVERS",
    "IntelGpuCard",
    "IntelGpuProbe",
    "probe_intel_gpu",
    "resolve_drm_root",
]

logger = logging.getLogger(__name__)

INTEL_GPU_DRIVERS = ("i915", "xe")
_CARD = re.compile(r"^card(\d+)$")


@dataclass(frozen=True)
class IntelGpuCard:
    """One Intel GPU card and the counter chosen for it.

    Attributes:
        card: ``"card0"``.
        driver: ``"i915"`` or ``"xe"``.
        channel: the energy counter read, or ``None`` (no hwmon: an integrated GPU).
        scope: ``"device"`` (i915), ``"card"`` or ``"package"`` (xe), or ``""``.
    """

    card: str
    driver: str
    channel: HwmonChannel | None
    scope: str


@dataclass(frozen=True)
class IntelGpuProbe:
    """What :func:`probe_intel_gpu` found.

    Attributes:
        root: the DRM directory probed.
        cards: every Intel GPU card found, with or without a counter.
        channels: the readable counters to sum (empty when unusable).
        status: usable or not, why, and the fix.
        origin: the provenance the meter will carry.
    """

    root: Path
    cards: tuple[IntelGpuCard, ...]
    channels: tuple[HwmonChannel, ...]
    status: MeterStatus
    origin: Provenance


def _card_driver(card_dir: Path, opener: Opener) -> str | None:
    try:
        with opener(str(card_dir / "device" / "uevent")) as fh:
            data = fh.read()
    except OSError:
        return None
    text = data.decode() if isinstance(data, bytes) else str(data)
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "DRIVER":
            return value.strip()
    return None


def _pick(card: str, card_dir: Path, driver: str, opener: Opener) -> IntelGpuCard:
    hwmon_dir = card_dir / "device" / "hwmon"
    try:
        entries = sorted(e for e in os.listdir(hwmon_dir) if e.startswith("hwmon"))
    except OSError:
        entries = []
    for entry in entries:
        dev = scan_hwmon_device(hwmon_dir / entry, opener=opener)
        if dev is None or dev.driver != driver:  # i915_gt0...: inside the device, not added
            continue
        by_channel = {c.channel: c for c in dev.energy}
        if driver == "xe":
            if "energy1" in by_channel:
                return IntelGpuCard(card, driver, by_channel["energy1"], "card")
            if "energy2" in by_channel:
                return IntelGpuCard(card, driver, by_channel["energy2"], "package")
        elif "energy1" in by_channel:
            return IntelGpuCard(card, driver, by_channel["energy1"], "device")
    return IntelGpuCard(card, driver, None, "")


def probe_intel_gpu(
    drm_root: str | os.PathLike[str] | None = None, *, opener: Opener = open
) -> IntelGpuProbe:
    """Find Intel GPUs with a hwmon energy counter and check they can be read. Never raises.

    Args:
        drm_root: the DRM class directory (default: :func:`resolve_drm_root`).
        opener: function that opens a file for reading (injectable for tests).
    """
    root = resolve_drm_root(drm_root)
    none = Provenance("other", "hwmon")
    try:
        names = sorted((n for n in os.listdir(root) if _CARD.match(n)), key=lambda n: int(n[4:]))
    except OSError:
        names = []
    cards = []
    for name in names:
        driver = _card_driver(root / name, opener)
        if driver in INTEL_GPU_DRIVERS:
            cards.append(_pick(name, root / name, driver, opener))
    if not cards:
        if not root.is_dir():
            return IntelGpuProbe(root, (), (), absent_intel_gpu(root), none)
        reason = f"no Intel GPU (no card driven by i915 or xe under {root})"
        return IntelGpuProbe(root, (), (), MeterStatus("intel-gpu", False, reason, None), none)
    with_counter = [c for c in cards if c.channel is not None]
    without = [f"{c.card} ({c.driver}) has no energy counter" for c in cards if c.channel is None]
    if not with_counter:
        reason = "; ".join(without) + (
            ": an integrated GPU is inside the CPU package (metered by RAPL); a discrete one "
            "needs Linux >= 6.2 (i915) or >= 6.5 (xe)"
        )
        status = MeterStatus("intel-gpu", False, reason, None)
        return IntelGpuProbe(root, tuple(cards), (), status, none)
    denied = []
    channels = tuple(c.channel for c in with_counter if c.channel is not None)
    for channel in channels:
        try:
            read_hwmon_value(channel.path, opener)
        except MeterError as e:
            if "permission denied" not in str(e):
                status = MeterStatus("intel-gpu", False, str(e), None)
                return IntelGpuProbe(root, tuple(cards), (), status, none)
            denied.append(channel.path)
    if denied:
        reason = f"permission denied reading {', '.join(str(p) for p in denied)}"
        status = MeterStatus("intel-gpu", False, reason, chmod_fix(denied))
        return IntelGpuProbe(root, tuple(cards), (), status, none)
    labels = [c.card if c.scope != "package" else f"{c.card}:package" for c in with_counter]
    notes = [
        f"{c.card} {c.driver} {c.channel.channel if c.channel else ''} ({c.scope})"
        for c in with_counter
    ]
    detail = ""
    if any(c.scope == "package" for c in with_counter):
        detail = "package only: card memory and board not counted"
    origin = Provenance(
        "measured",
        f"hwmon:{'+'.join(sorted({c.driver for c in with_counter}))}:" + "+".join(labels),
        detail,
    )
    status = MeterStatus("intel-gpu", True, "gpu from " + ", ".join(notes + without), None)
    return IntelGpuProbe(root, tuple(cards), channels, status, origin)
