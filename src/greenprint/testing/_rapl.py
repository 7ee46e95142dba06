"""A fake powercap (RAPL) tree on disk, laid out like ``/sys/class/powercap``.

Unreadable counters, three ways (root can read any file, so ``chmod`` alone cannot simulate
Linux >= 5.10's root-only ``energy_uj`` when the tests run as root):

* ``"permission"``: the file is ``chmod 000`` *and* :meth:`FakeRapl.opener` raises
  :class:`PermissionError` for it; pass ``fake.opener`` as the meter's ``opener``/``rapl_opener``.
  This is the path that produces the real "permission denied" reason and ``chmod`` fix.
* ``"missing"``: ``energy_uj`` becomes a dangling symlink (``FileNotFoundError`` for anyone,
  also in a subprocess that only sees ``GREENPRINT_RAPL_ROOT``).
* ``"directory"``: ``energy_uj`` becomes a directory (``IsADirectoryError`` for anyone).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from greenprint.testing._sysfs import make_unreadable, open_unless_denied, write_atomically

__all__ = ["DEFAULT_MAX_ENERGY_RANGE_UJ", "FakeRapl", "make_fake_rapl"]

#: A common real value (Intel server parts): about 262 kJ.
DEFAULT_MAX_ENERGY_RANGE_UJ = 262_143_328_850
#: How far apart the counters of a package's dies start (die-scope counters, ``dies > 1``): 7 J.
_DIE_APART_UJ = 7_000_000


class FakeRapl:
    """Handle on a fake powercap tree made by :func:`make_fake_rapl`.

    Domains are named like greenprint names them: ``"package-0"``, ``"dram-1"``, ``"core-0"``,
    ``"psys"``, and ``"mmio:package-0"`` for the MMIO mirror; on a package of several dies
    (``dies=2``) ``"package-0-die-1"``, ``"dram-0-die-1"``.

    Attributes:
        root: the tree's root (pass it as ``rapl_root`` or ``GREENPRINT_RAPL_ROOT``).
        zones: domain name -> zone directory.
        max_energy_range_uj: where every counter wraps, in µJ.
    """

    def __init__(self, root: Path, max_energy_range_uj: int) -> None:
        self.root = root
        self.max_energy_range_uj = max_energy_range_uj
        self.zones: dict[str, Path] = {}
        self.denied: set[str] = set()
        self._uj: dict[str, int] = {}
        self.dies = 1
        #: domain -> the other domains that read the same counter (dies of a package-scope one)
        self.mirrors: dict[str, tuple[str, ...]] = {}

    # -- counters -------------------------------------------------------------------------
    def get_uj(self, domain: str) -> int:
        """The counter of ``domain``, in µJ."""
        return self._uj[domain]

    def set_uj(self, domain: str, value_uj: int) -> None:
        """Set the counter of ``domain`` (and of its mirrors), wrapping at the range."""
        value = int(value_uj) % self.max_energy_range_uj
        for name in (domain, f"mmio:{domain}", *self.mirrors.get(domain, ())):
            if name in self.zones:
                self._uj[name] = value
                path = self.zones[name] / "energy_uj"
                if path.is_file() and not path.is_symlink():
                    write_atomically(path, f"{value}\n")  # readers never see half a value
                    if name in self.denied:
                        os.chmod(path, 0)

    def add_j(self, domain: str, joules: float) -> None:
        """Add ``joules`` to the counter of ``domain`` (wrapping as the hardware does)."""
        self.set_uj(domain, self._uj[domain] + round(joules * 1e6))

    def advance(
        self,
        *,
        package_j: float | Sequence[float] = 0.0,
        dram_j: float | Sequence[float] = 0.0,
        platform_extra_j: float = 0.0,
    ) -> None:
        """Add energy to every socket's package and DRAM; psys gets their sum plus the extra.

        A socket of several dies with counters of their own shares its energy equally among
        them; dies that read one package counter all show the socket's.

        Args:
            package_j: J per package (one number for all sockets, or one per socket).
            dram_j: J per DRAM domain (one number, or one per socket).
            platform_extra_j: J that psys sees beyond packages and DRAM (chipset, ...).
        """
        sockets = sorted({int(n.split("-")[1]) for n in self.zones if n.startswith("package-")})
        total = platform_extra_j
        for s in sockets:
            pj = package_j[s] if isinstance(package_j, Sequence) else package_j
            dj = dram_j[s] if isinstance(dram_j, Sequence) else dram_j
            total += pj
            for die in self._counters(s):
                self.add_j(f"package-{s}{die}", pj / len(self._counters(s)))
                if f"core-{s}{die}" in self.zones:
                    self.add_j(f"core-{s}{die}", 0.6 * pj / len(self._counters(s)))
                if f"dram-{s}{die}" in self.zones:
                    self.add_j(f"dram-{s}{die}", dj / len(self._counters(s)))
            if f"dram-{s}{self._counters(s)[0]}" in self.zones:
                total += dj
        if "psys" in self.zones:
            self.add_j("psys", total)

    def _counters(self, socket: int) -> list[str]:
        """Name suffixes of the distinct package counters of ``socket`` (``""`` or ``"-die-N"``)."""
        if self.dies == 1:
            return [""]
        dies = [f"-die-{d}" for d in range(self.dies)]
        return dies[:1] if f"package-{socket}-die-0" in self.mirrors else dies

    # -- failures -------------------------------------------------------------------------
    def make_unreadable(self, domain: str, how: str = "permission") -> None:
        """Make ``domain``'s ``energy_uj`` unreadable.

        Args:
            domain: e.g. ``"package-0"``.
            how: ``"permission"``, ``"missing"`` or ``"directory"`` (see the module docstring).
        """
        if make_unreadable(self.zones[domain] / "energy_uj", how):
            self.denied.add(domain)

    def opener(self, path: str, *args: Any, **kwargs: Any) -> IO[Any]:
        """``open`` that raises :class:`PermissionError` for counters made unreadable."""
        denied = (self.zones[domain] / "energy_uj" for domain in self.denied)
        return open_unless_denied(path, denied, *args, **kwargs)


def _zone(fake: FakeRapl, dirname: str, name: str, domain: str, start_uj: int) -> None:
    zone = fake.root / dirname
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(f"{name}\n")
    (zone / "max_energy_range_uj").write_text(f"{fake.max_energy_range_uj}\n")
    (zone / "enabled").write_text("1\n")
    (zone / "energy_uj").write_text(f"{start_uj % fake.max_energy_range_uj}\n")
    fake.zones[domain] = zone
    fake._uj[domain] = start_uj % fake.max_energy_range_uj


def make_fake_rapl(
    root: str | os.PathLike[str],
    *,
    packages: int = 1,
    dram: bool = True,
    psys: bool = False,
    core: bool = False,
    mmio_mirror: bool = False,
    max_energy_range_uj: int = DEFAULT_MAX_ENERGY_RANGE_UJ,
    start_uj: int = 0,
    unreadable: Iterable[str] = (),
    prefix: str = "intel-rapl",
    dies: int = 1,
    die_scope: str = "die",
) -> FakeRapl:
    """Build a fake powercap tree under ``root`` and return its handle.

    Args:
        root: directory to create the zones in (e.g. ``tmp_path / "powercap"``).
        packages: sockets; each gets ``<prefix>:N`` named ``package-N`` (``N`` in hexadecimal
            in the zone's directory, as the kernel writes it: ``intel-rapl:a`` is package 10).
        dram: add a ``dram`` subzone per package (``<prefix>:N:2``).
        psys: add a top-level ``psys`` zone (``<prefix>:<packages>``), which counts packages
            and DRAM again: it must never be added to them.
        core: add a ``core`` subzone per package (``<prefix>:N:0``), inside the package.
        mmio_mirror: add ``intel-rapl-mmio:0`` named ``package-0``: the same counter again.
        max_energy_range_uj: wrap-around point of every counter, in µJ.
        start_uj: initial value of every counter, in µJ (near the range to test wrap-around);
            die ``D`` of a package whose dies count on their own starts ``D`` x 7 J above it.
        unreadable: domains to make unreadable at once with ``how="permission"``.
        prefix: control type, ``"intel-rapl"`` or ``"amd-rapl"``.
        dies: dies per package. Above 1 the kernel makes a zone per die, named
            ``package-N-die-D`` (``<prefix>:<N * dies + D>``), each with its own subzones.
        die_scope: ``"die"``: each die has its own counter (Intel Cascade Lake-AP); ``"package"``:
            every die's zone reads the one package counter (AMD on Linux 6.10, whose RAPL made a
            zone per CCD until it was fixed to make one per package).

    Returns:
        The :class:`FakeRapl` handle (advance counters with :meth:`FakeRapl.advance`).
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    (base / prefix).mkdir(exist_ok=True)  # the control type directory itself
    fake = FakeRapl(base, max_energy_range_uj)
    if die_scope not in ("die", "package"):
        raise ValueError(f"die_scope must be 'die' or 'package', not {die_scope!r}")
    fake.dies = max(int(dies), 1)
    # zone ids are hexadecimal, as powercap writes them ("%s:%x"): the 11th zone is <prefix>:a
    for s in range(packages):
        for d in range(fake.dies):
            z = s * fake.dies + d
            die = f"-die-{d}" if fake.dies > 1 else ""
            # counters of their own have counted different amounts since boot
            at = start_uj + (d * _DIE_APART_UJ if die_scope == "die" else 0)
            _zone(fake, f"{prefix}:{z:x}", f"package-{s}{die}", f"package-{s}{die}", at)
            if core:
                _zone(fake, f"{prefix}:{z:x}:0", "core", f"core-{s}{die}", at)
            if dram:
                _zone(fake, f"{prefix}:{z:x}:2", "dram", f"dram-{s}{die}", at)
        if fake.dies > 1 and die_scope == "package":
            for kind in ("package", "core", "dram"):
                others = tuple(f"{kind}-{s}-die-{d}" for d in range(1, fake.dies))
                fake.mirrors[f"{kind}-{s}-die-0"] = tuple(o for o in others if o in fake.zones)
    if psys:
        _zone(fake, f"{prefix}:{packages * fake.dies:x}", "psys", "psys", start_uj)
    if mmio_mirror:
        _zone(fake, "intel-rapl-mmio:0", "package-0", "mmio:package-0", start_uj)
    for domain in unreadable:
        fake.make_unreadable(domain)
    return fake
