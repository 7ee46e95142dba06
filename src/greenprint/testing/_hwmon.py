"""Fake hwmon sensors on disk: Arm server CPU counters, the ACPI power meter, Intel GPUs.

Laid out as the kernel lays them out::

    <hwmon root>/hwmon0/name               xgene_hwmon
    <hwmon root>/hwmon0/energy1_input      µJ, cumulative
    <hwmon root>/hwmon0/energy1_label      CPU energy
    <hwmon root>/hwmon1/power1_average     µW (the ACPI power meter)

    <drm root>/card0/device/uevent                       DRIVER=i915
    <drm root>/card0/device/hwmon/hwmon2/name            i915
    <drm root>/card0/device/hwmon/hwmon2/energy1_input   µJ
    <drm root>/card0/device/hwmon/hwmon3/name            i915_gt0 (inside the device)
    <drm root>/card0-DP-1/                               a connector, not a card

Unreadable files, as for the fake RAPL tree: ``"permission"`` (``chmod 000`` and
:meth:`FakeSensors.opener` raises :class:`PermissionError`; pass it as the meter's opener),
``"missing"`` (a dangling symlink) or ``"directory"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from greenprint.testing._sysfs import make_unreadable, open_unless_denied, write_atomically

__all__ = ["FakeSensors", "make_fake_hwmon", "make_fake_intel_gpu", "make_fake_pci_ids"]


class FakeSensors:
    """Handle on fake hwmon files made by :func:`make_fake_hwmon` or :func:`make_fake_intel_gpu`.

    Sensors are named ``"<device>:<channel>"``: ``"hwmon0:energy1"``, ``"card0:energy1"``.

    Attributes:
        root: the tree's root (pass it as ``hwmon_root``/``drm_root``, or through
            ``GREENPRINT_HWMON_ROOT``/``GREENPRINT_DRM_ROOT``).
        files: sensor name -> the file holding its value.
        counter_bits: sensor name -> where its counter wraps (``64`` or ``32`` bits).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        self.counter_bits: dict[str, int] = {}
        self.denied: set[str] = set()
        self._values: dict[str, int] = {}

    def _add(self, name: str, path: Path, value: int, bits: int = 64) -> None:
        self.files[name] = path
        self.counter_bits[name] = bits
        self._write(name, value)

    def _write(self, name: str, value: int) -> None:
        self._values[name] = value
        path = self.files[name]
        if path.is_symlink() or path.is_dir():
            return
        write_atomically(path, f"{value}\n")  # a reader never sees a half-written file
        if name in self.denied:
            os.chmod(path, 0)

    def get(self, sensor: str) -> int:
        """The raw value of ``sensor`` (µJ or µW)."""
        return self._values[sensor]

    def set_uj(self, sensor: str, value_uj: int) -> None:
        """Set an energy counter, in µJ, wrapping at its width (as the hardware does)."""
        self._write(sensor, int(value_uj) % 2 ** self.counter_bits[sensor])

    def add_j(self, sensor: str, joules: float) -> None:
        """Add ``joules`` to an energy counter (wrapping at its width)."""
        self.set_uj(sensor, self._values[sensor] + round(joules * 1e6))

    def set_power_w(self, sensor: str, watts: float) -> None:
        """Set a power sensor, in W (written in µW)."""
        self._write(sensor, round(watts * 1e6))

    def reset(self, sensor: str, value_uj: int = 0) -> None:
        """The driver reloaded: the counter starts again from ``value_uj``."""
        self._write(sensor, value_uj)

    def make_unreadable(self, sensor: str, how: str = "permission") -> None:
        """Make ``sensor``'s file unreadable: ``"permission"``, ``"missing"`` or ``"directory"``."""
        if make_unreadable(self.files[sensor], how):
            self.denied.add(sensor)

    def opener(self, path: str, *args: Any, **kwargs: Any) -> IO[Any]:
        """``open`` that raises :class:`PermissionError` for sensors made unreadable."""
        denied = (self.files[sensor] for sensor in self.denied)
        return open_unless_denied(path, denied, *args, **kwargs)


def _device(
    fake: FakeSensors,
    directory: Path,
    key: str,
    driver: str,
    *,
    energy: Mapping[int, str] | None = None,
    power: Mapping[int, str] | None = None,
    power_attr: str = "average",
    label_attr: str = "label",
    start_uj: int = 0,
    bits: int = 64,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "name").write_text(f"{driver}\n")
    for n, label in (energy or {}).items():
        if label:
            (directory / f"energy{n}_label").write_text(f"{label}\n")
        fake._add(f"{key}:energy{n}", directory / f"energy{n}_input", start_uj, bits)
    for n, label in (power or {}).items():
        if label:
            (directory / f"power{n}_{label_attr}").write_text(f"{label}\n")
        if power_attr == "average":
            (directory / f"power{n}_average_interval").write_text("1000\n")
        fake._add(f"{key}:power{n}", directory / f"power{n}_{power_attr}", 0)


def make_fake_hwmon(
    root: str | os.PathLike[str],
    *,
    devices: Mapping[str, Mapping[str, Any]],
    start_uj: int = 0,
) -> FakeSensors:
    """Build a fake ``/sys/class/hwmon`` under ``root``.

    Args:
        root: directory to create (e.g. ``tmp_path / "hwmon"``).
        devices: ``"hwmonN"`` -> options: ``driver`` (the ``name``), ``energy`` (channel number
            -> label, ``""`` for none), ``power`` (likewise), ``power_attr`` (``"average"`` or
            ``"input"``), ``label_attr`` for power labels (``"label"`` or ``"oem_info"``, as
            NVIDIA Grace's ACPI power meter), ``bits`` (counter width, 64 or 32).
        start_uj: initial value of every energy counter, in µJ.

    Returns:
        The :class:`FakeSensors` handle; sensors are ``"hwmonN:energyM"``/``"hwmonN:powerM"``.

    Example:
        ``make_fake_hwmon(p, devices={"hwmon0": {"driver": "xgene_hwmon", "energy": {1: "CPU
        energy"}}})``
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    fake = FakeSensors(base)
    for name, spec in devices.items():
        _device(
            fake,
            base / name,
            name,
            str(spec.get("driver", "unknown")),
            energy=spec.get("energy"),
            power=spec.get("power"),
            power_attr=str(spec.get("power_attr", "average")),
            label_attr=str(spec.get("label_attr", "label")),
            start_uj=start_uj,
            bits=int(spec.get("bits", 64)),
        )
    return fake


def make_fake_intel_gpu(
    root: str | os.PathLike[str],
    *,
    cards: Mapping[str, str],
    start_uj: int = 0,
    xe_channels: tuple[int, ...] = (1, 2),
    gt_hwmon: bool = True,
    no_hwmon: tuple[str, ...] = (),
    pci: Mapping[str, tuple[str, str]] | None = None,
) -> FakeSensors:
    """Build a fake ``/sys/class/drm`` under ``root`` with Intel GPU cards.

    Args:
        root: directory to create (e.g. ``tmp_path / "drm"``).
        cards: ``"cardN"`` -> driver (``"i915"``, ``"xe"``, or another, e.g. ``"amdgpu"``).
        start_uj: initial value of every counter, in µJ.
        xe_channels: the energy channels an ``xe`` card has: ``(1, 2)`` (card and package,
            Linux >= 6.8), ``(1,)`` (6.5) or ``(2,)``.
        gt_hwmon: give i915 cards a gt-level hwmon (``i915_gt0``) as well: inside the device.
        no_hwmon: cards with no hwmon at all (an integrated GPU, or a discrete one on a
            kernel before 6.2 for i915, 6.5 for xe).
        pci: ``"cardN"`` -> ``(PCI_ID, PCI_SLOT_NAME)``, e.g. ``("8086:56A0", "0000:03:00.0")``,
            written into the card's ``uevent`` as the kernel writes them (with ``PCI_SUBSYS_ID``
            and ``MODALIAS``); a card not named has ``DRIVER`` and ``PCI_CLASS`` only.

    Returns:
        The :class:`FakeSensors` handle; sensors are ``"cardN:energyM"``.
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    fake = FakeSensors(base)
    index = 0
    for card, driver in cards.items():
        device = base / card / "device"
        device.mkdir(parents=True, exist_ok=True)
        uevent = f"DRIVER={driver}\nPCI_CLASS=30000\n"
        if pci and card in pci:
            pci_id, slot = pci[card]
            vendor, _, dev = pci_id.upper().partition(":")
            uevent += (
                f"PCI_ID={vendor}:{dev}\nPCI_SUBSYS_ID={vendor}:1020\nPCI_SLOT_NAME={slot}\n"
                f"MODALIAS=pci:v0000{vendor}d0000{dev}sv0000{vendor}sd00001020bc03sc00i00\n"
            )
        (device / "uevent").write_text(uevent)
        (base / f"{card}-DP-1").mkdir(exist_ok=True)  # a connector: not a card
        if card in no_hwmon or driver not in ("i915", "xe"):
            continue
        hwmon = device / "hwmon"
        if driver == "xe":
            labels = {n: ("card" if n == 1 else "pkg") for n in xe_channels}
            _device(fake, hwmon / f"hwmon{index}", card, "xe", energy=labels, start_uj=start_uj)
        else:
            _device(fake, hwmon / f"hwmon{index}", card, "i915", energy={1: ""}, start_uj=start_uj)
            if gt_hwmon:
                index += 1
                _device(
                    fake,
                    hwmon / f"hwmon{index}",
                    f"{card}-gt0",
                    "i915_gt0",
                    energy={1: ""},
                    start_uj=start_uj,
                )
        index += 1
    return fake


def make_fake_pci_ids(
    root: str | os.PathLike[str], devices: Mapping[str, str], *, where: str = "misc"
) -> Path:
    """Write a ``pci.ids`` under ``root`` (standing for ``/usr/share``) in the real file's format.

    The file has the header comments, a vendor before Intel's (with a device and a subsystem
    line), Intel's block with ``devices``, a vendor after it, and the device-class list that ends
    the real file: what a parser must read past.

    Args:
        root: the folder standing for ``/usr/share`` (``GREENPRINT_HWDATA_ROOT``).
        devices: Intel device id (4 hex digits) -> name, e.g. ``{"56a0": "DG2 [Arc A770]"}``.
        where: ``"misc"`` (Debian, Ubuntu) or ``"hwdata"`` (Fedora, Arch).

    Returns:
        The file written.
    """
    lines = [
        "#",
        "#\tList of PCI ID's",
        "#",
        "1002  Advanced Micro Devices, Inc. [AMD/ATI]",
        "\t740f  Aldebaran/MI200 [Instinct MI210]",
        "\t\t1002 0c34  Instinct MI210",
        "8086  Intel Corporation",
        "\t0100  2nd Generation Core Processor Family DRAM Controller",
        *(f"\t{ident.lower()}  {name}" for ident, name in devices.items()),
        "\t\t8086 1020  Limited Edition",
        "80ee  InnoTek Systemberatung GmbH",
        "\tbeef  VirtualBox Graphics Adapter",
        "",
        "# List of known device classes, subclasses and programming interfaces",
        "C 03  Display controller",
        "\t00  VGA compatible controller",
    ]
    path = Path(root) / where / "pci.ids"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
