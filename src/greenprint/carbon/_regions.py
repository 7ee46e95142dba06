"""The shipped grid-intensity tables: countries, subdivisions, bidding zones and cloud regions.

The tables live in ``greenprint/carbon/data/`` as small CSV files written by
``scripts/build_carbon_tables.py`` (see ``data/SOURCES.md`` for their origin, year and licence).
They are parsed on the first lookup and cached; ``import greenprint.carbon`` reads nothing.

Region codes (case-insensitive on input):

* countries: ISO 3166-1 alpha-2 (``"DE"``, canonical) or alpha-3 (``"DEU"``), or the English name
  where it is unambiguous (``"germany"``);
* subdivisions: ISO 3166-2 (``"US-CA"``, ``"CA-QC"``, ``"CN-BJ"``; ``"USA-CA"`` and ``"US_CA"``
  are accepted too) or the name where unambiguous (``"california"``, ``"quebec"``);
* electricity bidding zones: ``"SE-SE3"``, ``"NO-NO1"`` (alias ``"SE3"``);
* cloud regions: ``"aws:us-east-1"``, ``"gcp:europe-west1"``, ``"azure:westeurope"``; the provider
  may be written ``amazon``/``google``/``microsoft`` and separated by ``:`` or ``/``; Azure's
  display names (``"azure:West Europe"``) work; a bare region id (``"us-east-1"``) works when only
  one provider has it;
* ``"world"``: the generation-weighted world average used as the default.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from greenprint._exceptions import UnknownRegionError
from greenprint._validate import number_or_name
from greenprint.carbon._intensity import MAX_G_PER_KWH

__all__ = ["Region", "RegionKind", "lookup", "normalize_name", "regions", "suggest", "world"]

logger = logging.getLogger(__name__)

RegionKind = Literal["world", "country", "subdivision", "zone", "cloud"]
_KIND_ORDER = {"world": 0, "country": 1, "subdivision": 2, "zone": 3, "cloud": 4}

_PROVIDERS = {
    "aws": "aws",
    "amazon": "aws",
    "ec2": "aws",
    "gcp": "gcp",
    "google": "gcp",
    "gce": "gcp",
    "gcloud": "gcp",
    "azure": "azure",
    "microsoft": "azure",
    "az": "azure",
}
_CLOUD_RE = re.compile(r"^([a-z0-9]+)\s*[:/]\s*(.+)$")
_SUBDIVISION_RE = re.compile(r"^([a-z]{2,3})[-_ ]([a-z0-9]{1,4})$")


@dataclass(frozen=True)
class Region:
    """One row of the shipped tables.

    Attributes:
        code: canonical code: ``"DE"``, ``"US-CA"``, ``"SE-SE3"``, ``"aws:us-east-1"``,
            ``"WORLD"``.
        kind: ``"world"``, ``"country"``, ``"subdivision"``, ``"zone"`` or ``"cloud"``.
        name: English name, e.g. ``"Germany"`` or ``"AWS us-east-1 (N. Virginia)"``.
        g_per_kwh: grid carbon intensity in g CO2-eq/kWh (CO2 only where the source says so,
            see ``SOURCES.md``).
        year: the year the figure describes.
        source: short citation of the table the figure comes from.
        grid: for a cloud region, the code of the grid it draws from (``"US-VA"``); else ``None``.
        aliases: other accepted spellings (alpha-3 code, names, bare cloud region id).
        citation: the full citation of the source (see ``data/SOURCES.md``).
        url: where the source data is published.
    """

    code: str
    kind: RegionKind
    name: str
    g_per_kwh: float
    year: int
    source: str
    grid: str | None = None
    aliases: tuple[str, ...] = ()
    citation: str = ""
    url: str = ""

    @property
    def provenance(self) -> str:
        """Provenance string, e.g. ``"table:DE:2023 (Our World in Data ...)"``."""
        via = f"grid {self.grid}; " if self.grid else ""
        return f"table:{self.code}:{self.year} ({via}{self.source})"


@dataclass(frozen=True)
class _Tables:
    by_code: dict[str, Region]  # normalised code -> region
    aliases: dict[str, tuple[str, ...]]  # normalised alias -> canonical code(s); >1 = ambiguous
    ordered: tuple[Region, ...]


def normalize_name(text: str) -> str:
    """Fold a region code or name for matching: no accents, lower case, single spaces.

    Args:
        text: what the user typed.

    Returns:
        The folded key (``"Québec "`` -> ``"quebec"``).
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.lower().replace("_", "-").split())


def _read_csv(name: str, *, mentioning: str | None = None) -> list[dict[str, str]]:
    """The rows of a shipped table; with ``mentioning``, only lines holding that word (any case)."""
    # a plain path next to this module, as meters/_tdp.py: importlib.resources and zipfile cost
    # ~2.5 ms of CPU to import, a tenth of a tracked run's first start+stop
    text = (Path(__file__).with_name("data") / name).read_text("utf-8")
    if mentioning is not None:
        header, _, body = text.partition("\n")
        lines = [line for line in body.splitlines() if mentioning in line.lower()]
        text = "\n".join([header, *lines])
    return list(csv.DictReader(io.StringIO(text)))


def _region(
    row: dict[str, str], sources: dict[str, dict[str, str]], aliases_of: dict[str, list[str]]
) -> Region:
    kind = row["kind"]
    if kind not in _KIND_ORDER:  # pragma: no cover - guarded by the build script
        raise ValueError(f"regions.csv: unknown kind {kind!r} for {row['code']}")
    return Region(
        code=row["code"],
        kind=kind,  # type: ignore[arg-type]
        name=row["name"],
        g_per_kwh=float(row["g_per_kwh"]),
        year=int(row["year"]),
        source=sources[row["source"]]["label"],
        grid=row["grid"] or None,
        aliases=tuple(aliases_of.get(row["code"], ())),
        citation=sources[row["source"]]["citation"],
        url=sources[row["source"]]["url"],
    )


def _aliases_of(alias_rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """Canonical code -> its unambiguous aliases, in table order."""
    aliases_of: dict[str, list[str]] = {}
    for row in alias_rows:
        codes = row["code"].split("|")
        if len(codes) == 1:
            aliases_of.setdefault(codes[0], []).append(row["alias"])
    return aliases_of


@functools.lru_cache(maxsize=1)
def _tables() -> _Tables:
    sources = {row["id"]: row for row in _read_csv("sources.csv")}
    alias_rows = _read_csv("aliases.csv")
    aliases = {row["alias"]: tuple(row["code"].split("|")) for row in alias_rows}
    aliases_of = _aliases_of(alias_rows)
    regions_ = [_region(row, sources, aliases_of) for row in _read_csv("regions.csv")]
    regions_.sort(key=lambda r: (_KIND_ORDER[r.kind], r.code))
    by_code = {r.code.lower(): r for r in regions_}
    logger.debug("loaded %d carbon-intensity regions", len(by_code))
    return _Tables(by_code=by_code, aliases=aliases, ordered=tuple(regions_))


@functools.lru_cache(maxsize=1)
def _world_only() -> Region:
    """The world row alone: what a run with no region needs, without building every region.

    Only the lines that mention "world" are parsed in the alias and region tables (each record
    of the shipped tables is one line; a test checks it).
    """
    sources = {row["id"]: row for row in _read_csv("sources.csv")}
    aliases_of = _aliases_of(_read_csv("aliases.csv", mentioning="world"))
    for row in _read_csv("regions.csv", mentioning="world"):
        if row["code"].lower() == "world":
            return _region(row, sources, aliases_of)
    raise LookupError("regions.csv has no world row")  # pragma: no cover - build script


def regions() -> list[Region]:
    """Every region the shipped tables know.

    The world average comes first, then countries, subdivisions, zones and cloud regions, each
    sorted by code.

    Returns:
        A new list of :class:`Region` rows.
    """
    return list(_tables().ordered)


def world() -> Region:
    """The world-average row used when nothing is configured."""
    if _tables.cache_info().currsize:  # the full tables are loaded already
        return _tables().by_code["world"]
    return _world_only()


def _candidates(key: str) -> list[str]:
    """Normalised keys to try for one input, most specific first."""
    keys = [key]
    match = _CLOUD_RE.match(key)
    if match and match.group(1) in _PROVIDERS:
        provider = _PROVIDERS[match.group(1)]
        rest = match.group(2).strip()
        if provider == "azure":
            rest = re.sub(r"[^a-z0-9]", "", rest)
        else:
            rest = rest.replace(" ", "-")
        keys.insert(0, f"{provider}:{rest}")
    sub = _SUBDIVISION_RE.match(key)
    if sub and len(sub.group(1)) == 3:  # "usa-ca" -> "us-ca"
        tables = _tables()
        country = tables.aliases.get(sub.group(1))
        if country and len(country) == 1:
            keys.append(f"{country[0].lower()}-{sub.group(2)}")
    elif sub:
        keys.append(f"{sub.group(1)}-{sub.group(2)}")
    keys.append(key.replace(" ", ""))  # Azure display names typed bare: "West Europe"
    return keys


def lookup(code: str) -> Region:
    """Find a region by code, alias or name (case-insensitive).

    Args:
        code: e.g. ``"DE"``, ``"deu"``, ``"Germany"``, ``"US-CA"``, ``"aws:us-east-1"``.

    Returns:
        The matching :class:`Region`.

    Raises:
        UnknownRegionError: nothing matches, or a name matches several regions; the message
            lists the nearest known codes.
    """
    if not isinstance(code, str) or not code.strip():
        raise UnknownRegionError(
            f"region must be a non-empty code such as 'DE' or 'aws:us-east-1', got {code!r}",
            region=str(code),
        )
    tables = _tables()
    key = normalize_name(code)
    for candidate in _candidates(key):
        region = tables.by_code.get(candidate)
        if region is not None:
            return region
        codes = tables.aliases.get(candidate)
        if codes is not None and len(codes) == 1:
            return tables.by_code[codes[0].lower()]
        if codes is not None:
            options = ", ".join(f"{c} ({tables.by_code[c.lower()].name})" for c in codes)
            raise UnknownRegionError(
                f"region {code!r} is ambiguous: use one of {options}",
                region=code,
                suggestions=codes,
            )
    suggestions = suggest(key)
    if suggestions:
        hint = ", ".join(f"{c} ({tables.by_code[c.lower()].name})" for c in suggestions)
        message = f"unknown region {code!r}; did you mean {hint}?"
    elif isinstance(number := number_or_name(code), float):  # `intensity 350`, REGION=350
        message = (
            f"unknown region {code!r}: a region is a code or a name (DE, US-CA, aws:us-east-1); "
            + (
                f"a grid intensity in g CO2-eq/kWh is given as GREENPRINT_INTENSITY={code} or "
                f"`greenprint run --intensity {code}`"
                if 0 < number <= MAX_G_PER_KWH  # NaN too: not a grid's
                else "a grid intensity is given as GREENPRINT_INTENSITY or `greenprint run "
                f"--intensity` in g CO2-eq/kWh, 0 < x <= {MAX_G_PER_KWH:.0f}"
            )
        )
    else:
        message = f"unknown region {code!r}"
    raise UnknownRegionError(
        message + " (all regions: greenprint intensity --list)",
        region=code,
        suggestions=suggestions,
    )


def suggest(key: str, *, n: int = 5) -> tuple[str, ...]:
    """The canonical codes whose code or alias is nearest to ``key`` (difflib), best first.

    Args:
        key: the folded input (see :func:`normalize_name`).
        n: at most this many codes.

    Returns:
        Canonical region codes, without duplicates.
    """
    import difflib

    tables = _tables()
    pool: dict[str, tuple[str, ...]] = {c: (r.code,) for c, r in tables.by_code.items()}
    for alias, codes in tables.aliases.items():
        pool.setdefault(alias, codes)
    found: list[str] = []
    for match in difflib.get_close_matches(key, list(pool), n=3 * n, cutoff=0.6):
        for code in pool[match]:
            if code not in found:
                found.append(code)
    return tuple(found[:n])
