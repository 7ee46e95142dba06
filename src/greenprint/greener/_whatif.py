"""Where and when: a run's measured energy priced in other regions and at other start hours.

The energy a run measured is a fact; its CO2-eq depends on where and when that energy was drawn.
:func:`whatif` answers two questions from the shipped tables and a user's file, never the
network:

* **Where.** The same facility energy (IT energy x the run's PUE) at each region's grid
  intensity: ``emissions_kg = energy_kwh * pue * g_per_kwh / 1000``, beside what the run
  recorded, with the saving in kg and percent (positive: the region is cleaner).
* **When.** Given an hourly intensity CSV (``timestamp,g_per_kwh``, see
  :func:`~greenprint.carbon.load_intensity_csv`), a 24-hour profile is made (the mean intensity
  of each UTC hour of the day over the days the file covers), and for each start hour the
  run's facility energy, spent at a uniform rate over its duration, is integrated against the
  profile (a run longer than a day wraps around). The best start hour is the one with the least
  CO2-eq; the saving is measured against starting at the run's actual UTC start time under the
  same profile, so that both figures come from the same file.
* **In your time zone.** Start hours are whole hours of UTC by default; with ``timezone`` (an
  IANA name such as ``"Europe/Berlin"``, read from the machine's time-zone data by
  :mod:`zoneinfo`, never the network) they are whole hours of that zone's clock, at the UTC
  offset the zone had when the run started (a half-hour zone's hours fall on the half hour of
  UTC). The profile stays one of UTC hours: grid intensity is a function of time, not of clocks.

Example:
    >>> from greenprint._records import RunRecord
    >>> from greenprint.greener import whatif
    >>> run = RunRecord(id="r1", name="train", energy_kwh=10.0, pue=1.2,
    ...                 intensity_g_per_kwh=380.0, emissions_kg=4.56, duration_s=3600.0)
    >>> fr = whatif(run, regions=["FR"]).regions[0]
    >>> fr.region, round(fr.emissions_kg, 4)  # 10 kWh x 1.2 x 56.039 g/kWh
    ('FR', 0.6725)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import AnalysisError, ConfigError
from greenprint._format import format_emissions
from greenprint.greener._whatif_hours import (
    _DAY_S,
    _HOUR_S,
    _clock,
    _load_hourly,
    _offset_s,
    hourly_profile,
    profile_emissions_kg,
    resolve_timezone,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint._types import LedgerSource
    from greenprint.carbon import Intensity

__all__ = [
    "DEFAULT_REGIONS",
    "HourOption",
    "RegionPrice",
    "WhatIf",
    "hourly_profile",
    "price_regions",
    "profile_emissions_kg",
    "resolve_timezone",
    "saving_text",
    "whatif",
]

#: Regions priced when none are given: the world average, clean and coal-heavy grids, and
#: cloud regions on either side of the Atlantic.
DEFAULT_REGIONS: tuple[str, ...] = (
    "WORLD",
    "SE",
    "FR",
    "DE",
    "US",
    "PL",
    "IN",
    "aws:eu-north-1",
    "gcp:europe-west1",
    "aws:us-east-1",
)


@dataclass(frozen=True)
class RegionPrice:
    """The run's facility energy priced in one region.

    Attributes:
        region: the region's canonical code (``"FR"``, ``"aws:eu-north-1"``).
        name: its English name.
        kind: ``"world"``, ``"country"``, ``"subdivision"``, ``"zone"`` or ``"cloud"``.
        g_per_kwh: its grid intensity, g CO2-eq/kWh.
        year: the year the intensity describes.
        source: provenance of the intensity (``"table:FR:2023 (...)"``).
        emissions_kg: the energy's CO2-eq there, kg.
        saving_kg: recorded emissions minus ``emissions_kg`` (positive: cleaner there), kg.
        saving_pct: ``saving_kg`` as a percentage of the recorded emissions (``None`` when
            those are 0).
    """

    region: str
    name: str
    kind: str
    g_per_kwh: float
    year: int
    source: str
    emissions_kg: float
    saving_kg: float
    saving_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "region": self.region,
            "name": self.name,
            "kind": self.kind,
            "g_per_kwh": self.g_per_kwh,
            "year": self.year,
            "source": self.source,
            "emissions_kg": self.emissions_kg,
            "saving_kg": self.saving_kg,
            "saving_pct": self.saving_pct,
        }


@dataclass(frozen=True)
class HourOption:
    """The run started at one hour of the day, under the hourly profile.

    Attributes:
        start_hour: hour of the day the run would start (0-23), on the hour, on the clock of
            :attr:`WhatIf.timezone` (UTC by default).
        mean_g_per_kwh: the profile's mean intensity over the run's span from that start.
        emissions_kg: the run's facility energy at that intensity, kg CO2-eq.
    """

    start_hour: int
    mean_g_per_kwh: float
    emissions_kg: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "start_hour": self.start_hour,
            "mean_g_per_kwh": self.mean_g_per_kwh,
            "emissions_kg": self.emissions_kg,
        }


@dataclass(frozen=True)
class WhatIf:
    """A run's energy priced elsewhere and at other start hours.

    Attributes:
        run_id: the run's id.
        run_name: its name.
        energy_kwh: IT energy measured, kWh (before PUE).
        pue: the PUE priced: the run's, or the one given to :func:`whatif`.
        facility_energy_kwh: ``energy_kwh * pue``, the energy priced everywhere, kWh.
        duration_s: the run's duration, s.
        started_at: its start, Unix seconds (UTC).
        emissions_kg: the CO2-eq the run recorded, kg.
        intensity_g_per_kwh: the intensity its CO2-eq was computed at, g CO2-eq/kWh, or
            ``None``; for a run priced by an hourly series, the series' energy-weighted mean
            over the run (``emissions_kg * 1000 / facility_energy_kwh``), not the file's mean
            that the run records.
        intensity_source: where that intensity came from (``"mean over the run; csv:..."``
            for an hourly series).
        regions: the run priced in each region asked for, in that order.
        hourly_source: the provenance of the hourly profile, or ``None`` without one.
        hours: the run started at each hour 0-23 of ``timezone``'s clock under the profile
            (empty without one).
        actual_start_emissions_kg: the run at its actual start time under the profile, kg;
            ``None`` when the run recorded no start time (``started_at`` 0, the default of a
            :class:`~greenprint.RunRecord` built by hand).
        best: the hour with the least CO2-eq (the earliest on ties), or ``None``.
        hour_saving_kg: ``actual_start_emissions_kg - best.emissions_kg``, kg (``None``
            without an actual start).
        hour_saving_pct: that saving in percent of ``actual_start_emissions_kg``.
        notes: caveats (a profile built from a partial day, a PUE kept for cloud regions...).
        timezone: the zone whose clock the hours are on: ``"UTC"`` or an IANA name.
        utc_offset_s: that zone's offset from UTC when the run started, s (east positive;
            3600 for ``"Europe/Berlin"`` in winter).
        recorded_pue: the PUE the run recorded its CO2-eq at (``None``: ``pue``).
    """

    run_id: str
    run_name: str
    energy_kwh: float
    pue: float
    facility_energy_kwh: float
    duration_s: float
    started_at: float
    emissions_kg: float
    intensity_g_per_kwh: float | None
    intensity_source: str
    regions: tuple[RegionPrice, ...]
    hourly_source: str | None = None
    hours: tuple[HourOption, ...] = ()
    actual_start_emissions_kg: float | None = None
    best: HourOption | None = None
    hour_saving_kg: float | None = None
    hour_saving_pct: float | None = None
    notes: tuple[str, ...] = ()
    timezone: str = "UTC"
    utc_offset_s: float = 0.0
    recorded_pue: float | None = None

    @property
    def actual_start_hour(self) -> float | None:
        """The run's actual start on ``timezone``'s clock, hours since midnight (13.5: 13:30).

        ``None`` when the run recorded no start time (not midnight of 1 January 1970).
        """
        if not start_known(self.started_at):
            return None
        return ((self.started_at + self.utc_offset_s) % _DAY_S) / _HOUR_S

    @property
    def actual_start_hour_utc(self) -> float | None:
        """The run's actual start in UTC, hours since midnight (``None``: no start recorded)."""
        if not start_known(self.started_at):
            return None
        return (self.started_at % _DAY_S) / _HOUR_S

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``greenprint whatif --json`` prints)."""
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "energy_kwh": self.energy_kwh,
            "pue": self.pue,
            "recorded_pue": self.pue if self.recorded_pue is None else self.recorded_pue,
            "facility_energy_kwh": self.facility_energy_kwh,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "emissions_kg": self.emissions_kg,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "intensity_source": self.intensity_source,
            "regions": [r.to_dict() for r in self.regions],
            "hourly": None
            if self.hourly_source is None
            else {
                "source": self.hourly_source,
                "timezone": self.timezone,
                "utc_offset_s": self.utc_offset_s,
                "actual_start_hour": self.actual_start_hour,
                "actual_start_hour_utc": self.actual_start_hour_utc,
                "actual_start_emissions_kg": self.actual_start_emissions_kg,
                "best": None if self.best is None else self.best.to_dict(),
                "saving_kg": self.hour_saving_kg,
                "saving_pct": self.hour_saving_pct,
                "hours": [h.to_dict() for h in self.hours],
            },
            "notes": list(self.notes),
        }


def _pct(part: float, whole: float) -> float | None:
    # an unknown (NaN) recorded CO2-eq gives no percentage: None, never "nan %"
    if not (math.isfinite(part) and math.isfinite(whole)) or whole <= 0:
        return None
    return 100.0 * part / whole


def start_known(started_at: float) -> bool:
    """Whether a run's ``started_at`` is a start time: 0 (a record built by hand) is none."""
    return math.isfinite(started_at) and started_at > 0


def saving_text(
    kg: float, pct: float | None, *, emissions: Callable[[float], str] = format_emissions
) -> str:
    """A saving as text, e.g. ``"1.2 g CO2-eq (45 %)"``, as reports and the CLI show it.

    Args:
        kg: the saving, kg CO2-eq (negative: more CO2-eq there, shown with a minus); NaN
            (the recorded CO2-eq unknown) is ``"unknown"``.
        pct: the saving in percent, or ``None`` (not shown): whole numbers from 10 %, one
            decimal below (``"0.1 %"``, never ``"0 %"``).
        emissions: how an amount in kg is written (default: ``format_emissions``).
    """
    if not math.isfinite(kg):
        return "unknown"
    sign = "-" if kg < 0 else ""
    shown = f"{sign}{emissions(abs(kg))}"
    if pct is None:
        return shown
    return f"{shown} ({percent_text(pct)})"


def percent_text(pct: float) -> str:
    """A percentage as savings are written: whole from 10 %, one decimal below (``"0.1 %"``)."""
    return f"{pct:.0f} %" if abs(pct) >= 10 else f"{pct:.1f} %"


#: Relative difference under which a region's CO2-eq is the recorded one (float rounding of a
#: sum over runs and intervals: 1e-16 relative, far below a real grid difference).
_SAME_REL = 1e-9


def price_regions(
    facility_energy_kwh: float, emissions_kg: float, regions: Sequence[str]
) -> tuple[RegionPrice, ...]:
    """Price an amount of facility energy in each region of the shipped tables.

    Args:
        facility_energy_kwh: energy drawn from the grid (IT energy x PUE), kWh.
        emissions_kg: the emissions it is compared with (what was recorded), kg CO2-eq.
        regions: region codes, aliases or names (``"FR"``, ``"france"``, ``"aws:us-east-1"``);
            a region given twice is priced once.

    Returns:
        One :class:`RegionPrice` per distinct region, in the order given.

    Raises:
        UnknownRegionError: a code no shipped table knows (the message suggests the nearest).
        ConfigError: no region, or a negative or non-finite energy.
    """
    from greenprint.carbon._regions import lookup

    if not math.isfinite(facility_energy_kwh) or facility_energy_kwh < 0:
        raise ConfigError(f"energy must be a finite number of kWh >= 0, not {facility_energy_kwh}")
    if isinstance(regions, str) or not regions:
        raise ConfigError(f"regions must be a non-empty list of region codes, not {regions!r}")
    out: dict[str, RegionPrice] = {}
    for code in regions:
        region = lookup(code)
        if region.code in out:
            continue
        kg = facility_energy_kwh * region.g_per_kwh / 1000.0
        saving = emissions_kg - kg
        if abs(saving) <= _SAME_REL * max(abs(emissions_kg), kg):
            # the grid the runs were priced at, summed run by run: a rounding residue
            # ("-1.06e-16 mg CO2-eq (-0.0 %)") is no difference
            saving = 0.0
        out[region.code] = RegionPrice(
            region=region.code,
            name=region.name,
            kind=region.kind,
            g_per_kwh=region.g_per_kwh,
            year=region.year,
            source=region.provenance,
            emissions_kg=kg,
            saving_kg=saving,
            saving_pct=_pct(saving, emissions_kg),
        )
    return tuple(out.values())


def whatif(
    run: RunRecord | str,
    *,
    regions: Sequence[str] | None = None,
    hourly: str | os.PathLike[str] | Intensity | None = None,
    ledger: LedgerSource = None,
    timezone: str | _dt.tzinfo | None = None,
    pue: float | str | None = None,
) -> WhatIf:
    """Price a run's measured energy in other regions and, with an hourly CSV, at other hours.

    Never uses the network: region intensities come from the shipped tables, hourly ones from
    the file given.

    Args:
        run: a :class:`~greenprint.RunRecord`, or a run id (or unique id prefix) in ``ledger``.
        regions: region codes to price the run in (default :data:`DEFAULT_REGIONS`).
        hourly: an hourly intensity CSV (``timestamp,g_per_kwh``) or a series
            :class:`~greenprint.carbon.Intensity`: adds the best start hour of the day.
        ledger: where to find ``run`` when it is an id (a path, URL or
            :class:`~greenprint.Ledger`; ``None``: the configured ledger). Only read.
        timezone: the clock the start hours are on: ``None`` (UTC), an IANA name
            (``"Europe/Berlin"``) or a :class:`datetime.tzinfo` (see
            :func:`resolve_timezone`); its UTC offset when the run started applies.
        pue: the PUE to price the run's IT energy at (a number in [1, 3] or a preset name,
            as for :func:`greenprint.track`): what it would have emitted in another facility,
            every region and hour at that PUE; ``None``: the PUE the run recorded.

    Returns:
        The :class:`WhatIf`.

    Raises:
        UnknownRunError: no run with that id.
        LedgerPathError: the ledger does not exist (it is not created).
        UnknownRegionError: a region no shipped table knows.
        IntensityCSVError: a malformed CSV, or one that does not cover every hour of the day.
        ConfigError: a run that is neither a record nor an id, an empty region list, an
            unknown time zone or one this machine has no data for.
        InvalidPUEError: a ``pue`` out of [1, 3], or an unknown preset.
        AnalysisError: a run with no energy to price (its energy or PUE is missing, NaN,
            infinite or negative), or, with ``hourly``, no duration to spread it over (NaN,
            infinite or negative); the message names the run and its status.
    """
    from greenprint._records import RunRecord

    zone, zone_name = resolve_timezone(timezone)
    priced_pue = None
    if pue is not None:  # refused before the ledger is read
        from greenprint.carbon import resolve_pue

        priced_pue = resolve_pue(pue).value
    record = run if isinstance(run, RunRecord) else _read_run(run, ledger)
    _check_priceable(record)
    if hourly is not None:
        _check_duration(record)
    started = start_known(record.started_at)
    # no start recorded: the zone's offset now (that of 1970 is no better a guess)
    offset_s, changes = _offset_s(zone, record.started_at if started else time.time())
    factor = record.pue if priced_pue is None else priced_pue
    facility = record.energy_kwh * factor
    codes = DEFAULT_REGIONS if regions is None else regions
    if isinstance(codes, str):
        codes = [c.strip() for c in codes.split(",") if c.strip()]
    priced = price_regions(facility, record.emissions_kg, codes)
    notes: list[str] = []
    if record.status == "running":
        notes.append(f"run {record.name!r} is still running: its energy so far is priced")
    elif record.status == "lost":
        notes.append(
            f"run {record.name!r} was lost (its process died unrecorded): the energy of its last "
            "flush is priced"
        )
    if priced_pue is not None and priced_pue != record.pue:
        notes.append(
            f"priced at PUE {priced_pue:g}, where the run recorded PUE {record.pue:g}: the "
            "savings against what it recorded include the facility's"
        )
    if factor != 1.0 and any(r.kind == "cloud" for r in priced):
        whose = "the run's PUE" if priced_pue is None else "the PUE given"
        notes.append(
            f"cloud regions are priced with {whose} ({factor:g}); the provider's own PUE may differ"
        )
    # an hourly series records its file's mean as the run's intensity: give what applied
    from greenprint.carbon._intensity import applied_intensity

    g_per_kwh, intensity_source = applied_intensity(
        energy_kwh=record.energy_kwh,
        pue=record.pue,
        emissions_kg=record.emissions_kg,
        recorded_g_per_kwh=record.intensity_g_per_kwh,
        source=record.provenance.get("intensity") or record.intensity_source,
    )
    result = WhatIf(
        run_id=record.id,
        run_name=record.name,
        energy_kwh=record.energy_kwh,
        pue=factor,
        facility_energy_kwh=facility,
        duration_s=record.duration_s,
        started_at=record.started_at,
        emissions_kg=record.emissions_kg,
        intensity_g_per_kwh=g_per_kwh,
        intensity_source=intensity_source,
        regions=priced,
        timezone=zone_name,
        utc_offset_s=offset_s,
        recorded_pue=record.pue,
    )
    if hourly is None:
        return dataclasses.replace(result, notes=tuple(notes))
    series = _load_hourly(hourly)
    profile, profile_notes = hourly_profile(series)
    notes.extend(profile_notes)
    if changes:
        when = "when the run started" if started else "now (the run recorded no start time)"
        notes.append(
            f"hours are on the {zone_name} clock at its offset {when} "
            f"({_clock(offset_s)}); the offset changes during the year"
        )
    hours = []
    for h in range(24):  # h:00 on the zone's clock is h:00 - offset in UTC
        start_utc_s = h * _HOUR_S - offset_s
        kg, mean = profile_emissions_kg(profile, start_utc_s, record.duration_s, facility)
        hours.append(HourOption(start_hour=h, mean_g_per_kwh=mean, emissions_kg=kg))
    best = min(hours, key=lambda o: (o.emissions_kg, o.start_hour))
    if not started:  # no actual start to compare with: not "00:00 UTC, saving 0"
        notes.append(
            f"run {record.name!r} recorded no start time: the best start hour is shown, with "
            "no saving against when it ran"
        )
        return dataclasses.replace(
            result,
            hourly_source=series.source,
            hours=tuple(hours),
            best=best,
            notes=tuple(notes),
        )
    actual_kg, _ = profile_emissions_kg(profile, record.started_at, record.duration_s, facility)
    saving = actual_kg - best.emissions_kg
    return dataclasses.replace(
        result,
        hourly_source=series.source,
        hours=tuple(hours),
        actual_start_emissions_kg=actual_kg,
        best=best,
        hour_saving_kg=saving,
        hour_saving_pct=_pct(saving, actual_kg),
        notes=tuple(notes),
    )


def _check_duration(record: RunRecord) -> None:
    """Refuse to place in the day a run whose duration is no figure (NaN, infinite, < 0).

    Its energy is spread over its duration under the hourly profile; a NaN duration raised
    ``ValueError: cannot convert float NaN to integer`` from the profile's arithmetic.

    Raises:
        AnalysisError: the duration is missing, NaN, infinite or negative.
    """
    value = record.duration_s
    if value is not None and math.isfinite(value) and value >= 0:
        return
    if value is None:
        what = "was not recorded"
    elif math.isnan(value):
        what = "is NaN (not recorded)"
    else:
        what = f"is {value:g} s"
    raise AnalysisError(
        f"run {record.id[:12]} ({record.name!r}, {record.status}) has no duration to place in "
        f"the day: its duration {what}; the best start hour spreads its energy over how long "
        f"it ran (greenprint ledger show {record.id[:12]} shows its record)"
    )


def _check_priceable(record: RunRecord) -> None:
    """Refuse a run whose energy (or PUE) is no figure to price, saying what is wrong with it.

    A run's energy can be NaN in a ledger (a record written with no reading) or missing from a
    record built in Python; pricing it gave ``energy must be a finite number of kWh >= 0, not
    nan``, which read as a mistake in the command.

    Raises:
        AnalysisError: the energy or PUE is missing, NaN, infinite or negative, or the run
            had no energy meter.
    """
    problems = []
    if not record.energy_recorded:  # 0.0 kWh and no component: unknown, no 0 to price
        problems.append("it had no energy meter (tracked with meters=[]): its energy is unknown")
    for what, value, unit in (("energy", record.energy_kwh, " kWh"), ("PUE", record.pue, "")):
        if value is None:
            problems.append(f"its {what} was not recorded")
        elif isinstance(value, float) and math.isnan(value):
            problems.append(f"its {what} is NaN (no reading was recorded)")
        elif not math.isfinite(value) or value < 0:
            problems.append(f"its {what} is {value:g}{unit} (not a reading)")
    if problems:
        raise AnalysisError(
            f"run {record.id[:12]} ({record.name!r}, {record.status}) has no energy to price: "
            f"{' and '.join(problems)}; whatif prices the energy a run recorded (greenprint "
            f"ledger show {record.id[:12]} shows its record)"
        )


def _read_run(run_id: object, ledger: LedgerSource) -> RunRecord:
    from greenprint.ledger import Ledger, get_ledger

    if not isinstance(run_id, str) or not run_id.strip():
        raise ConfigError(f"run must be a RunRecord or a run id, not {run_id!r}")
    opened = not isinstance(ledger, Ledger)
    led = get_ledger(ledger, create=False)
    try:
        return led.run(led.resolve_id(run_id.strip()))
    finally:
        if opened:
            led.close()
