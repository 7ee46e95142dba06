"""Named types for the seams between greenprint's layers, in one place (as httpx's ``_types``).

Importing this module loads no other layer (the aliases name the classes as forward references).
The protocols are what one layer asks of another, so a fake or a user's own object fits without
subclassing.

* :data:`LedgerLike`: what ``gp.track(ledger=...)`` takes: a :class:`~greenprint.Ledger`, a path
  or URL, ``None`` (the configured ledger) or ``False`` (no ledger: in memory only).
* :data:`LedgerSource`: what the readers (``build_report``, the CLI) take: no ``False``.
* :data:`IntensityLike`: what ``gp.track(intensity=...)`` takes: g CO2-eq/kWh, or a CSV path.
* :data:`PUELike`: what ``gp.track(pue=...)`` takes: a number or a preset name.
* :class:`IntensityCurve`: what cost accounting needs of a grid intensity.
* :class:`MeterSetLike`: what a run needs of the meter set it is given (``gp.track(meters=...)``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, Union

if TYPE_CHECKING:  # pragma: no cover - never at run time
    from greenprint.ledger._store import Ledger
    from greenprint.meters._base import MeterReading

__all__ = [
    "IntensityCurve",
    "IntensityLike",
    "LedgerLike",
    "LedgerSource",
    "MeterSetLike",
    "PUELike",
]

#: A ledger to write to: an open ledger, a path or URL, ``None`` (the configured one), or
#: ``False`` (no ledger: the run stays in memory).
LedgerLike: TypeAlias = Union["Ledger", str, "os.PathLike[str]", None, Literal[False]]
#: A ledger to read from: an open ledger, a path or URL, or ``None`` (the configured one).
LedgerSource: TypeAlias = Union["Ledger", str, "os.PathLike[str]", None]
#: A grid intensity given by the user: g CO2-eq/kWh (number or numeric string), a path to an
#: hourly CSV (``timestamp,g_per_kwh``), or ``None`` (region, settings, world average).
IntensityLike: TypeAlias = Union[float, str, "os.PathLike[str]", None]
#: A PUE given by the user: a number in [1, 3], a preset name, or ``None`` (settings, 1.0).
PUELike: TypeAlias = Union[float, str, None]


class IntensityCurve(Protocol):
    """What cost accounting needs of a grid intensity (:class:`greenprint.carbon.Intensity`)."""

    def at(self, t: float) -> float:
        """The intensity at ``t`` (s since the Unix epoch), in g CO2-eq/kWh."""

    def emissions_g(self, t0: float, t1: float, energy_kwh: float) -> float:
        """CO2-eq in g of ``energy_kwh`` used evenly over ``[t0, t1]`` (s since the epoch)."""


class MeterSetLike(Protocol):
    """What a run needs of a meter set (:class:`greenprint.meters.MeterSet`, or a fake)."""

    @property
    def provenance(self) -> Mapping[str, str]:
        """Component -> where its figures come from (display strings)."""

    def start(self) -> None:
        """Take the baseline of every meter."""

    def read(self) -> Mapping[str, MeterReading]:
        """Cumulative energy per component since :meth:`start`, in J."""

    def close(self) -> None:
        """Release every meter."""
