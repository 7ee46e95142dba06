"""The what-if section of a report: the study's recorded energy priced in reference regions.

The study's energy is a fact; where it was drawn decides its CO2-eq. :func:`whatif_section`
prices the study's facility energy (IT energy, counted once as in the price tag, times the
runs' PUE weighted by energy) at the grid intensity of a few reference regions from the shipped
tables (:data:`REPORT_REGIONS`), beside the CO2-eq the runs recorded, with the saving against it
in kg and percent (:data:`SAVING`; negative: more CO2-eq there; see
:func:`greenprint.greener.whatif` and ``greenprint whatif --run ID`` for one run, and for the
best start hour of the day). The ``*_section`` functions render it for HTML,
Markdown and LaTeX; the JSON report holds :meth:`WhatIfSection.to_dict` under ``"whatif"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import count_of, format_emissions, format_energy
from greenprint._records import RunRecord
from greenprint.analysis import PriceTag
from greenprint.analysis._common import RunForest
from greenprint.greener._whatif import DEFAULT_REGIONS, RegionPrice, price_regions, saving_text
from greenprint.report._escape import html_section_table

__all__ = [
    "REPORT_REGIONS",
    "SAVING",
    "WhatIfSection",
    "html_section",
    "latex_section",
    "markdown_section",
    "whatif_section",
]

#: The reference regions a report prices the study in: ``greenprint whatif``'s defaults but with
#: one cloud provider (the world average, two low-carbon grids, a middle one, two coal-heavy
#: ones, a low-carbon and a US cloud region).
REPORT_REGIONS: tuple[str, ...] = tuple(r for r in DEFAULT_REGIONS if not r.startswith("gcp:"))

#: The column of what a region saves against the CO2-eq recorded (negative: more CO2-eq there),
#: named as ``greenprint whatif`` names it ("saving vs recorded"), in every format.
SAVING = "Saving vs recorded"

_EXPLAIN = (
    "The study's energy as recorded (with its PUE) priced at other grids' carbon intensity, from "
    "the tables shipped with greenprint (no network). The saving is against the CO2-eq "
    "recorded; a negative one means more CO2-eq there. For other regions or another PUE: "
    "greenprint whatif --study NAME [--regions CODES] [--pue PUE]; for one run, and for the "
    "best start hour given an hourly intensity file: greenprint whatif --run ID [--hourly CSV]."
)


@dataclass(frozen=True)
class WhatIfSection:
    """The study's energy priced in reference regions.

    Attributes:
        energy_kwh: the study's IT energy, counted once (the price tag's total), kWh.
        pue: the runs' PUE, weighted by their energy.
        facility_energy_kwh: ``energy_kwh * pue``, kWh.
        emissions_kg: the CO2-eq the runs recorded (the price tag's total), kg.
        regions: the energy priced in each reference region.
        energy_unknown: runs whose energy is unknown (no meter: the price tag's
            ``energy_unknown``), not in ``energy_kwh`` and not priced.
    """

    energy_kwh: float
    pue: float
    facility_energy_kwh: float
    emissions_kg: float
    regions: tuple[RegionPrice, ...]
    energy_unknown: int = 0

    def sentence(self) -> str:
        """What was priced, in one sentence."""
        cleanest = min(self.regions, key=lambda r: r.emissions_kg)
        unknown = ""
        if self.energy_unknown:  # runs with no meter: not priced, and said (never a 0 kWh)
            unknown = (
                f" ({count_of(self.energy_unknown, 'run')} with no energy meter "
                f"{'is' if self.energy_unknown == 1 else 'are'} not priced: "
                f"{'its' if self.energy_unknown == 1 else 'their'} energy is unknown)"
            )
        return (
            f"{format_energy(self.energy_kwh)} x PUE {self.pue:.3g} = "
            f"{format_energy(self.facility_energy_kwh)}, recorded as "
            f"{format_emissions(self.emissions_kg)}; in {cleanest.name} it would have been "
            f"{format_emissions(cleanest.emissions_kg)}{unknown}."
        )

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the section's table (text, for every format)."""
        header = ["Region", "g CO2-eq/kWh", "CO2-eq", SAVING, "Source"]
        rows = []
        for r in self.regions:
            rows.append(
                [
                    f"{r.region} ({r.name})",
                    f"{r.g_per_kwh:.1f}",
                    self.amount(r.emissions_kg),
                    saving_text(r.saving_kg, r.saving_pct, emissions=self.amount),
                    r.source,
                ]
            )
        return header, rows

    def amount(self, kg: float) -> str:
        """CO2-eq (kg) as the table writes it: a zero in its neighbours' unit.

        The recorded region's saving is zero: it read ``"0 mg CO2-eq"`` beside ``"4.51 ng
        CO2-eq"``; it now reads ``"0 ng CO2-eq"`` (the unit of the largest saving, else of
        the largest CO2-eq), as ``greenprint whatif`` prints it.
        """
        if kg != 0:
            return format_emissions(kg)
        near = max((abs(r.saving_kg) for r in self.regions), default=0.0) or max(
            (r.emissions_kg for r in self.regions), default=0.0
        )
        return format_emissions(kg, unit_of=near or None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "energy_kwh": self.energy_kwh,
            "energy_unknown": self.energy_unknown,
            "pue": self.pue,
            "facility_energy_kwh": self.facility_energy_kwh,
            "emissions_kg": self.emissions_kg,
            "regions": [r.to_dict() for r in self.regions],
        }


def whatif_section(
    runs: Sequence[RunRecord],
    price_tag: PriceTag,
    *,
    regions: Sequence[str] = REPORT_REGIONS,
    forest: RunForest | None = None,
) -> WhatIfSection | None:
    """The study's energy priced in ``regions`` (``None`` when it measured no energy).

    Args:
        runs: the study's runs.
        price_tag: their price tag (its totals count each run once).
        regions: region codes to price in.
        forest: the runs arranged by nesting, if already built.

    Returns:
        The :class:`WhatIfSection`, or ``None``.
    """
    energy = price_tag.total.energy_kwh
    if not runs or not math.isfinite(energy) or energy <= 0:
        return None
    forest = forest or RunForest.build(runs)
    roots = [forest.runs[p] for p in forest.roots]
    root_energy = math.fsum(r.energy_kwh for r in roots)
    pue = (
        math.fsum(r.energy_kwh * r.pue for r in roots) / root_energy
        if root_energy > 0
        else roots[0].pue
    )
    facility = energy * pue
    emissions = price_tag.total.emissions_kg
    return WhatIfSection(
        energy_kwh=energy,
        pue=pue,
        facility_energy_kwh=facility,
        emissions_kg=emissions,
        regions=price_regions(facility, emissions, regions),
        energy_unknown=price_tag.total.energy_unknown,
    )


def html_section(section: WhatIfSection | None, esc: Callable[[str], str]) -> str:
    """The section as HTML (every string escaped with ``esc``)."""
    if section is None:
        return ""
    header, rows = section.table()
    # the figures (intensity, CO2-eq, saving) as in the report's other tables: right-aligned
    # and never wrapped; the region and the source are text
    table = html_section_table(header, rows, esc, numeric=lambda k: 0 < k < len(header) - 1)
    return (
        '<section id="whatif"><h2>What if it ran elsewhere?</h2>'
        f'<p class="muted">{esc(_EXPLAIN)}</p><p>{esc(section.sentence())}</p>{table}</section>'
    )


def markdown_section(
    section: WhatIfSection | None,
    esc: Callable[[str], str],
    table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]],
) -> list[str]:
    """The section as Markdown lines (``table`` renders a header and rows)."""
    if section is None:
        return []
    header, rows = section.table()
    return [
        "## What if it ran elsewhere?",
        "",
        esc(_EXPLAIN),
        "",
        esc(section.sentence()),
        "",
        *table(header, rows),
        "",
    ]


def latex_section(section: WhatIfSection | None, esc: Callable[[str], str]) -> list[str]:
    """The section as LaTeX lines: a compact ``booktabs`` table that fits one paper column."""
    if section is None:
        return []

    def short(kg: float) -> str:
        return section.amount(kg).replace(" CO2-eq", "")

    first, second = SAVING.rsplit(" ", 1)
    saving = "\\begin{tabular}[b]{@{}r@{}}" + esc(first) + " \\\\ " + esc(second) + "\\end{tabular}"
    out = ["\\section*{What if it ran elsewhere?}", esc(_EXPLAIN), "", esc(section.sentence()), ""]
    out += [
        "\\begin{table}[h]\\centering\\footnotesize\\setlength{\\tabcolsep}{3pt}",
        # a float with a caption: in a two-column paper it may float away from its section
        "\\caption{"
        + esc(
            "What if it ran elsewhere: the study's energy priced at other grids' carbon "
            "intensity (g CO2-eq/kWh, tables shipped with greenprint), the CO2-eq it would "
            "have emitted there and the saving against the CO2-eq recorded (negative: it would "
            "emit more)."
        )
        + "}",
        "\\begin{tabular}{@{}lrrr@{}}",
        "\\toprule",
        # the column's name as in every format, on two lines: one paper column is narrow
        " & ".join([*(esc(h) for h in ("Region", "g CO2-eq/kWh", "CO2-eq")), saving]) + " \\\\",
        "\\midrule",
    ]
    for r in section.regions:
        saved = saving_text(r.saving_kg, r.saving_pct, emissions=short)
        cells = (r.region, f"{r.g_per_kwh:.1f}", short(r.emissions_kg), saved)
        out.append(" & ".join(esc(c) for c in cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return out
