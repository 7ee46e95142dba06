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

A discrete card **without** an energy counter (i915 before Linux 6.2, xe before 6.5) is estimated
like an NVIDIA or AMD GPU whose counter cannot be read: its TDP from the shipped table
(``meters/data/gpu_tdp.csv``) at full load (no utilisation is read), labelled
``estimate:gpu-tdp:card1 (card1 Intel Arc A770 225 W table:Intel Arc A770, utilisation unknown:
full load)``. Its name comes from the card's PCI id (``PCI_ID`` in its ``uevent``) looked up in
the system's ``pci.ids`` (``/usr/share/misc/pci.ids`` or ``/usr/share/hwdata/pci.ids``;
``$GREENPRINT_HWDATA_ROOT`` stands for ``/usr/share``): ``DG2 [Arc A770]`` names ``Intel Arc
A770``. A card the table does not know (or with no ``pci.ids``) is not estimated: its energy is
unknown and ``greenprint hardware`` says so. A card at PCI ``0000:00:02.0``, where Intel puts its
integrated GPUs, or one whose slot is not known, is taken as integrated: inside the CPU package.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "HWDATA_ROOT_ENV",
    "INTEL_GPU_DRIVERS",
    "IntelGpuCard",
    "IntelGpuProbe",
    "pci_device_name",
    "probe_intel_gpu",
    "resolve_drm_root",
]

logger = logging.getLogger(__name__)

INTEL_GPU_DRIVERS = ("i915", "xe")
_CARD = re.compile(r"^card(\d+)$")
#: Environment variable standing for ``/usr/share`` (where ``pci.ids`` is); tests: a folder.
HWDATA_ROOT_ENV = "GREENPRINT_HWDATA_ROOT"
_PCI_IDS = ("misc/pci.ids", "hwdata/pci.ids", "pci.ids")
#: Where Intel puts its integrated GPUs (bus 0, device 2).
_INTEGRATED_SLOT = "0000:00:02.0"
_NO_COUNTER_KERNEL = "a discrete one needs Linux >= 6.2 (i915) or >= 6.5 (xe)"


@dataclass(frozen=True)
class IntelGpuCard:
    """One Intel GPU card and the counter chosen for it.

    Attributes:
        card: ``"card0"``.
        driver: ``"i915"`` or ``"xe"``.
        channel: the energy counter read, or ``None`` (no hwmon: an integrated GPU, or a
            discrete one on an older kernel).
        scope: ``"device"`` (i915), ``"card"`` or ``"package"`` (xe), or ``""``.
        pci_id: ``"8086:56A0"`` from its ``uevent``, or ``""``.
        slot: its PCI address (``"0000:03:00.0"``), or ``""``.
        name: its name from ``pci.ids`` (``"Intel Arc A770"``), or ``""``.
    """

    card: str
    driver: str
    channel: HwmonChannel | None
    scope: str
    pci_id: str = ""
    slot: str = ""
    name: str = ""

    @property
    def integrated(self) -> bool:
        """At Intel's integrated-GPU address, or at an unknown one (taken as integrated)."""
        return self.slot in ("", _INTEGRATED_SLOT)


@dataclass(frozen=True)
class IntelGpuProbe:
    """What :func:`probe_intel_gpu` found.

    Attributes:
        root: the DRM directory probed.
        cards: every Intel GPU card found, with or without a counter.
        channels: the readable counters to sum (empty when unusable).
        status: usable or not, why, and the fix.
        origin: the provenance the meter will carry.
        estimated: the discrete cards without a counter that the TDP table knows, as
            :class:`~greenprint.meters._gpu_tdp.EstimatedGpu` (for the estimate when no card
            has a readable counter).
    """

    root: Path
    cards: tuple[IntelGpuCard, ...]
    channels: tuple[HwmonChannel, ...]
    status: MeterStatus
    origin: Provenance
    estimated: tuple[Any, ...] = ()


def _uevent(card_dir: Path, opener: Opener) -> dict[str, str]:
    """The ``KEY=value`` lines of the card's device ``uevent`` (``DRIVER``, ``PCI_ID``...)."""
    try:
        with opener(str(card_dir / "device" / "uevent")) as fh:
            data = fh.read()
    except OSError:
        return {}
    text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def pci_device_name(pci_id: str, hwdata_root: str | os.PathLike[str] | None = None) -> str:
    """The name ``pci.ids`` gives an Intel device, as ``"Intel <name>"``, or ``""``. Never raises.

    The bracketed marketing name when there is one (``DG2 [Arc A770]`` -> ``Intel Arc A770``),
    else the whole device name.

    Args:
        pci_id: ``"8086:56A0"`` (vendor:device, hex, any case).
        hwdata_root: the folder standing for ``/usr/share`` (default ``$GREENPRINT_HWDATA_ROOT``,
            else ``/usr/share``); ``misc/pci.ids``, ``hwdata/pci.ids`` and ``pci.ids`` are tried.
    """
    vendor, _, device = pci_id.lower().partition(":")
    if vendor != "8086" or not device:
        return ""
    root = Path(hwdata_root or os.environ.get(HWDATA_ROOT_ENV) or "/usr/share")
    for relative in _PCI_IDS:
        try:
            with open(root / relative, encoding="utf-8", errors="replace") as fh:
                name = _find_device(fh, vendor, device)
        except OSError:
            continue
        if name:
            inner = re.search(r"\[([^\]]+)\]", name)
            return "Intel " + (inner.group(1) if inner else name).strip()
        return ""  # the database is there and does not know the device
    return ""


def _find_device(lines: Any, vendor: str, device: str) -> str:
    in_vendor = False
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            if in_vendor or line.startswith("C "):
                return ""  # past the vendor's devices (or into the class list)
            in_vendor = line[:4].lower() == vendor
        elif in_vendor and not line.startswith("\t\t"):
            ident, _, name = line.strip().partition(" ")
            if ident.lower() == device:
                return name.strip()
    return ""


def _card_driver(card_dir: Path, opener: Opener) -> str | None:
    return _uevent(card_dir, opener).get("DRIVER")


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
        uevent = _uevent(root / name, opener)
        driver = uevent.get("DRIVER")
        if driver in INTEL_GPU_DRIVERS:
            picked = _pick(name, root / name, driver, opener)
            pci_id = uevent.get("PCI_ID", "")
            if picked.channel is None and pci_id:
                picked = dataclasses.replace(
                    picked,
                    pci_id=pci_id,
                    slot=uevent.get("PCI_SLOT_NAME", ""),
                    name=pci_device_name(pci_id),
                )
            cards.append(picked)
    if not cards:
        if not root.is_dir():
            return IntelGpuProbe(root, (), (), absent_intel_gpu(root), none)
        reason = f"no Intel GPU (no card driven by i915 or xe under {root})"
        return IntelGpuProbe(root, (), (), MeterStatus("intel-gpu", False, reason, None), none)
    with_counter = [c for c in cards if c.channel is not None]
    without = [f"{c.card} ({c.driver}) has no energy counter" for c in cards if c.channel is None]
    if not with_counter:
        return _without_counters(root, tuple(cards), none)
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


def _without_counters(
    root: Path, cards: tuple[IntelGpuCard, ...], none: Provenance
) -> IntelGpuProbe:
    """No card has a counter: integrated ones are the CPU's, discrete ones estimated or unknown."""
    from greenprint.meters._gpu_tdp import EstimatedGpu, match_gpu_tdp

    integrated = [c for c in cards if c.integrated]
    parts = []
    if integrated:
        listed = "; ".join(f"{c.card} ({c.driver}) has no energy counter" for c in integrated)
        parts.append(
            f"{listed}: an integrated GPU is inside the CPU package (metered by RAPL); "
            + _NO_COUNTER_KERNEL
        )
    estimated = []
    unknown = []
    for c in cards:
        if c.integrated:
            continue
        what = f"{c.card} ({c.driver}, {c.name or 'PCI ' + c.pci_id}, {c.slot})"
        match = match_gpu_tdp(c.name) if c.name else None
        if match is None:
            why = "not in the GPU TDP table" if c.name else "no name for it in pci.ids"
            unknown.append(f"{what} has no energy counter and {why}: its energy is unknown")
            continue
        estimated.append(EstimatedGpu(c.card, c.name, match.tdp_w, f"table:{match.model}"))
        parts.append(
            f"{what} has no energy counter: estimated at {match.tdp_w:g} W "
            f"(table:{match.model}), utilisation unknown (full load assumed)"
        )
    parts.extend(unknown)
    fix = None
    if len(integrated) < len(cards):
        fix = "for a measured figure, " + _NO_COUNTER_KERNEL.replace("a discrete one needs", "run")
    status = MeterStatus("intel-gpu", False, "; ".join(parts), fix)
    return IntelGpuProbe(root, cards, (), status, none, tuple(estimated))
