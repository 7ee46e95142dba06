#!/usr/bin/env python3
"""Rebuild greenprint's shipped grid-intensity tables from codecarbon's MIT-licensed data.

Usage (from the repository root)::

    cd /tmp && /path/to/.venv/bin/pip download --no-deps codecarbon==3.3.2
    .venv/bin/pip install pycountry          # build time only; greenprint never imports it
    .venv/bin/python scripts/build_carbon_tables.py /tmp/codecarbon-3.3.2-py3-none-any.whl

The argument is the wheel, or a directory that contains ``codecarbon/data/`` (an unzipped wheel
or a source checkout). The tables are written to ``src/greenprint/carbon/data/`` (``--out`` to
change): ``regions.csv`` (one row per region: code, kind, name, g CO2-eq/kWh, year, source id,
grid), ``aliases.csv`` (other spellings -> code; ``A|B`` marks an ambiguous name) and
``sources.csv`` (source id -> citation). ``SOURCES.md`` next to them documents each source.

The AWS and Azure region -> grid mapping below is ours (region locations as the providers
publish them); codecarbon 3.3.2 ships per-region figures for GCP only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenprint.carbon._regions import normalize_name  # noqa: E402  (same folding as run time)

LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0
PROVIDER_LABEL = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}
CODECARBON = "codecarbon 3.3.2 (MIT)"

# id -> (short label used in provenance strings, full citation, URL). SOURCES.md says more.
SOURCES = {
    "owid": (
        "Our World in Data / Ember",
        "Our World in Data, carbon intensity of electricity generation (Ember; Energy "
        "Institute Statistical Review), as shipped in " + CODECARBON,
        "https://ourworldindata.org/grapher/carbon-intensity-electricity",
    ),
    "egrid2023": (
        "EPA eGRID2023",
        "US EPA eGRID2023, state annual CO2-equivalent total output emission rate (STC2ERTA), "
        "lb/MWh converted to g/kWh, as shipped in " + CODECARBON,
        "https://www.epa.gov/egrid/download-data",
    ),
    "cer2023": (
        "Canada Energy Regulator mix x life-cycle factors",
        "Canada Energy Regulator, Canada's Energy Future data appendices, 2023 provincial "
        "generation mix (as shipped in " + CODECARBON + ") x codecarbon's per-source "
        "life-cycle factors (carbon_intensity_per_source.json)",
        "https://doi.org/10.35002/zjr8-8x75",
    ),
    "mee2023": (
        "China MEE/NBS, CO2 only",
        "China Ministry of Ecology and Environment / National Bureau of Statistics, 2023 "
        "provincial average electricity CO2 emission factors (announcement 2025 No. 47), as "
        "shipped in " + CODECARBON,
        "https://www.mee.gov.cn/xxgk2018/xxgk/xxgk01/202512/t20251231_1139517.html",
    ),
    "entsoe2025": (
        "ENTSO-E zone mix x factors",
        "ENTSO-E Transparency actual generation per bidding zone, full year 2025, x "
        "codecarbon's per-source factors (production-based; a lower bound where coverage is "
        "incomplete), as shipped in " + CODECARBON,
        "https://doi.org/10.5281/zenodo.22285397",
    ),
    "google2023": (
        "Google Cloud region data",
        "Google Cloud region carbon data 2023, grid carbon intensity (location-based), as "
        "shipped in " + CODECARBON,
        "https://github.com/GoogleCloudPlatform/region-carbon-info",
    ),
    "world": (
        "generation-weighted mean of the country table",
        "generation-weighted mean of the country table (Our World in Data / Ember; 92% of the "
        "generation from 2023 rows), computed by scripts/build_carbon_tables.py",
        "https://ourworldindata.org/grapher/carbon-intensity-electricity",
    ),
}

# Canada: generation shares (%) x these factors (g CO2-eq/kWh), from codecarbon's
# carbon_intensity_per_source.json (key there in brackets). Tidal and "other" have no factor.
CANADA_FACTOR_KEYS = {
    "coal": "coal",
    "petroleum": "petroleum",
    "naturalGas": "natural_gas",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "solar": "solar",
    "wind": "wind",
    "biomass": "biomass",
}

# GCP region -> grid it draws from (cross-checked against the country column of impact.csv).
GCP_GRID = {
    "africa-south1": "ZA",
    "asia-east1": "TW",
    "asia-east2": "HK",
    "asia-northeast1": "JP",
    "asia-northeast2": "JP",
    "asia-northeast3": "KR",
    "asia-south1": "IN",
    "asia-south2": "IN",
    "asia-southeast1": "SG",
    "asia-southeast2": "ID",
    "australia-southeast1": "AU",
    "australia-southeast2": "AU",
    "europe-central2": "PL",
    "europe-north1": "FI",
    "europe-southwest1": "ES",
    "europe-west1": "BE",
    "europe-west2": "GB",
    "europe-west3": "DE",
    "europe-west4": "NL",
    "europe-west6": "CH",
    "europe-west8": "IT",
    "europe-west9": "FR",
    "europe-west10": "DE",
    "europe-west12": "IT",
    "me-central1": "QA",
    "me-central2": "SA",
    "me-west1": "IL",
    "northamerica-northeast1": "CA-QC",
    "northamerica-northeast2": "CA-ON",
    "southamerica-east1": "BR",
    "southamerica-west1": "CL",
    "us-central1": "US-IA",
    "us-east1": "US-SC",
    "us-east4": "US-VA",
    "us-east5": "US-OH",
    "us-south1": "US-TX",
    "us-west1": "US-OR",
    "us-west2": "US-CA",
    "us-west3": "US-UT",
    "us-west4": "US-NV",
}
# codecarbon's impact.csv spells me-central1 "me-cenrtal1"; we ship the real name.
GCP_FIXES = {"me-cenrtal1": "me-central1"}
# GCP regions without a Google figure in the source: the grid's figure is used.
GCP_EXTRA = {
    "europe-north2": ("Stockholm", "SE"),
    "northamerica-south1": ("Queretaro", "MX"),
}

AWS = {
    "us-east-1": ("N. Virginia", "US-VA"),
    "us-east-2": ("Ohio", "US-OH"),
    "us-west-1": ("N. California", "US-CA"),
    "us-west-2": ("Oregon", "US-OR"),
    "af-south-1": ("Cape Town", "ZA"),
    "ap-east-1": ("Hong Kong", "HK"),
    "ap-east-2": ("Taipei", "TW"),
    "ap-south-1": ("Mumbai", "IN"),
    "ap-south-2": ("Hyderabad", "IN"),
    "ap-southeast-1": ("Singapore", "SG"),
    "ap-southeast-2": ("Sydney", "AU"),
    "ap-southeast-3": ("Jakarta", "ID"),
    "ap-southeast-4": ("Melbourne", "AU"),
    "ap-southeast-5": ("Malaysia", "MY"),
    "ap-southeast-6": ("New Zealand", "NZ"),
    "ap-southeast-7": ("Thailand", "TH"),
    "ap-northeast-1": ("Tokyo", "JP"),
    "ap-northeast-2": ("Seoul", "KR"),
    "ap-northeast-3": ("Osaka", "JP"),
    "ca-central-1": ("Canada Central, Montreal", "CA-QC"),
    "ca-west-1": ("Calgary", "CA-AB"),
    "cn-north-1": ("Beijing", "CN"),
    "cn-northwest-1": ("Ningxia", "CN"),
    "eu-central-1": ("Frankfurt", "DE"),
    "eu-central-2": ("Zurich", "CH"),
    "eu-north-1": ("Stockholm", "SE"),
    "eu-south-1": ("Milan", "IT"),
    "eu-south-2": ("Spain", "ES"),
    "eu-west-1": ("Ireland", "IE"),
    "eu-west-2": ("London", "GB"),
    "eu-west-3": ("Paris", "FR"),
    "il-central-1": ("Tel Aviv", "IL"),
    "me-central-1": ("UAE", "AE"),
    "me-south-1": ("Bahrain", "BH"),
    "mx-central-1": ("Mexico", "MX"),
    "sa-east-1": ("Sao Paulo", "BR"),
}

AZURE = {
    "eastus": ("East US, Virginia", "US-VA"),
    "eastus2": ("East US 2, Virginia", "US-VA"),
    "centralus": ("Central US, Iowa", "US-IA"),
    "northcentralus": ("North Central US, Illinois", "US-IL"),
    "southcentralus": ("South Central US, Texas", "US-TX"),
    "westcentralus": ("West Central US, Wyoming", "US-WY"),
    "westus": ("West US, California", "US-CA"),
    "westus2": ("West US 2, Washington", "US-WA"),
    "westus3": ("West US 3, Arizona", "US-AZ"),
    "usgovvirginia": ("US Gov Virginia", "US-VA"),
    "usgovarizona": ("US Gov Arizona", "US-AZ"),
    "usgovtexas": ("US Gov Texas", "US-TX"),
    "canadacentral": ("Canada Central, Toronto", "CA-ON"),
    "canadaeast": ("Canada East, Quebec City", "CA-QC"),
    "brazilsouth": ("Brazil South, Sao Paulo", "BR"),
    "brazilsoutheast": ("Brazil Southeast, Rio de Janeiro", "BR"),
    "mexicocentral": ("Mexico Central, Queretaro", "MX"),
    "chilecentral": ("Chile Central, Santiago", "CL"),
    "northeurope": ("North Europe, Ireland", "IE"),
    "westeurope": ("West Europe, Netherlands", "NL"),
    "uksouth": ("UK South, London", "GB"),
    "ukwest": ("UK West, Cardiff", "GB"),
    "francecentral": ("France Central, Paris", "FR"),
    "francesouth": ("France South, Marseille", "FR"),
    "germanywestcentral": ("Germany West Central, Frankfurt", "DE"),
    "germanynorth": ("Germany North, Berlin", "DE"),
    "switzerlandnorth": ("Switzerland North, Zurich", "CH"),
    "switzerlandwest": ("Switzerland West, Geneva", "CH"),
    "norwayeast": ("Norway East, Oslo", "NO"),
    "norwaywest": ("Norway West, Stavanger", "NO"),
    "swedencentral": ("Sweden Central, Gavle", "SE"),
    "polandcentral": ("Poland Central, Warsaw", "PL"),
    "italynorth": ("Italy North, Milan", "IT"),
    "spaincentral": ("Spain Central, Madrid", "ES"),
    "eastasia": ("East Asia, Hong Kong", "HK"),
    "southeastasia": ("Southeast Asia, Singapore", "SG"),
    "australiaeast": ("Australia East, New South Wales", "AU"),
    "australiasoutheast": ("Australia Southeast, Victoria", "AU"),
    "australiacentral": ("Australia Central, Canberra", "AU"),
    "australiacentral2": ("Australia Central 2, Canberra", "AU"),
    "japaneast": ("Japan East, Tokyo", "JP"),
    "japanwest": ("Japan West, Osaka", "JP"),
    "koreacentral": ("Korea Central, Seoul", "KR"),
    "koreasouth": ("Korea South, Busan", "KR"),
    "centralindia": ("Central India, Pune", "IN"),
    "southindia": ("South India, Chennai", "IN"),
    "westindia": ("West India, Mumbai", "IN"),
    "jioindiacentral": ("Jio India Central, Nagpur", "IN"),
    "jioindiawest": ("Jio India West, Jamnagar", "IN"),
    "indonesiacentral": ("Indonesia Central, Jakarta", "ID"),
    "malaysiawest": ("Malaysia West, Kuala Lumpur", "MY"),
    "newzealandnorth": ("New Zealand North, Auckland", "NZ"),
    "uaenorth": ("UAE North, Dubai", "AE"),
    "uaecentral": ("UAE Central, Abu Dhabi", "AE"),
    "qatarcentral": ("Qatar Central, Doha", "QA"),
    "israelcentral": ("Israel Central", "IL"),
    "southafricanorth": ("South Africa North, Johannesburg", "ZA"),
    "southafricawest": ("South Africa West, Cape Town", "ZA"),
    "chinaeast": ("China East, Shanghai", "CN"),
    "chinaeast2": ("China East 2, Shanghai", "CN"),
    "chinanorth": ("China North, Beijing", "CN"),
    "chinanorth2": ("China North 2, Beijing", "CN"),
    "chinanorth3": ("China North 3, Hebei", "CN"),
}

# Common names that neither pycountry nor Our World in Data spells.
EXTRA_COUNTRY_ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "america": "US",
    "united states of america": "US",
    "holland": "NL",
    "czech republic": "CZ",
    "turkey": "TR",
    "ivory coast": "CI",
    "burma": "MM",
    "swaziland": "SZ",
    "macedonia": "MK",
    "cape verde": "CV",
    "east timor": "TL",
}


class Loader:
    """Reads files under ``codecarbon/data/`` from a wheel or a directory."""

    def __init__(self, source: Path) -> None:
        self.source = source
        if source.is_file():
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(source)
        elif (source / "codecarbon" / "data").is_dir():
            self._zip = None
        else:
            raise SystemExit(f"{source}: neither a wheel nor a directory with codecarbon/data/")

    def text(self, relpath: str) -> str:
        """The text of ``codecarbon/data/<relpath>``."""
        name = f"codecarbon/data/{relpath}"
        if self._zip is not None:
            return self._zip.read(name).decode("utf-8-sig")
        return (self.source / name).read_text("utf-8-sig")

    def json(self, relpath: str) -> dict:
        """The parsed JSON of ``codecarbon/data/<relpath>``."""
        return json.loads(self.text(relpath))


def _round(value: float) -> float:
    return round(value, 3)


def build(loader: Loader) -> tuple[list[dict], dict[str, set[str]]]:
    """Convert codecarbon's files into our rows and aliases (alias -> codes)."""
    import pycountry

    rows: list[dict] = []
    aliases: dict[str, set[str]] = {}

    def alias(name: str | None, code: str) -> None:
        if name:
            key = normalize_name(name)
            if key and key != code.lower():
                aliases.setdefault(key, set()).add(code)

    # Countries ------------------------------------------------------------------------------
    mix = loader.json("private_infra/global_energy_mix.json")
    skipped = []
    weighted = total_twh = twh_2023 = 0.0
    for iso3, entry in sorted(mix.items()):
        value = entry.get("carbon_intensity")
        if not value or value <= 0:
            skipped.append(f"{iso3} ({entry.get('country_name')}): no carbon_intensity")
            continue
        country = pycountry.countries.get(alpha_3=iso3)
        if country is None:
            raise SystemExit(f"{iso3}: not an ISO 3166-1 alpha-3 code known to pycountry")
        code = country.alpha_2
        name = getattr(country, "common_name", None) or country.name
        rows.append(
            {
                "code": code,
                "kind": "country",
                "name": name,
                "g_per_kwh": _round(value),
                "year": int(entry["year"]),
                "source": "owid",
                "grid": "",
            }
        )
        alias(iso3, code)
        for attr in ("name", "common_name", "official_name"):
            alias(getattr(country, attr, None), code)
        alias(entry.get("country_name"), code)
        weighted += value * entry["total_TWh"]
        total_twh += entry["total_TWh"]
        if int(entry["year"]) == 2023:
            twh_2023 += entry["total_TWh"]
    for name, code in EXTRA_COUNTRY_ALIASES.items():
        alias(name, code)
    world_value = weighted / total_twh
    print(
        f"world: {world_value:.1f} g/kWh over {total_twh:.0f} TWh "
        f"({100 * twh_2023 / total_twh:.0f}% of it from 2023 rows)",
        file=sys.stderr,
    )
    rows.append(
        {
            "code": "WORLD",
            "kind": "world",
            "name": "World average",
            "g_per_kwh": _round(world_value),
            "year": 2023,
            "source": "world",
            "grid": "",
        }
    )
    alias("global", "WORLD")
    alias("earth", "WORLD")

    def subdivision_name(code: str, fallback: str) -> str:
        sub = pycountry.subdivisions.get(code=code)
        return sub.name if sub is not None else fallback

    # US states (eGRID) ----------------------------------------------------------------------
    usa = loader.json("private_infra/2023/usa_emissions.json")
    for key, entry in sorted(usa.items()):
        if key.startswith("_") or entry["regionCode"].lower() == "usa":
            continue
        code = f"US-{entry['regionCode'].upper()}"
        name = subdivision_name(code, key.title())
        rows.append(
            {
                "code": code,
                "kind": "subdivision",
                "name": name,
                "g_per_kwh": _round(entry["emissions"] * LB_PER_MWH_TO_G_PER_KWH),
                "year": int(usa["_source"]["year"]),
                "source": "egrid2023",
                "grid": "",
            }
        )
        alias(name, code)
        alias(key, code)

    # Canadian provinces (generation mix x factors) ------------------------------------------
    factors = loader.json("private_infra/carbon_intensity_per_source.json")
    canada_names = {
        normalize_name(s.name): s.code for s in pycountry.subdivisions.get(country_code="CA")
    }
    for key, entry in sorted(loader.json("private_infra/2023/canada_energy_mix.json").items()):
        code = canada_names[normalize_name(key)]
        total = entry["total"]
        value = sum(
            entry.get(src, 0.0) * float(factors[fkey]) for src, fkey in CANADA_FACTOR_KEYS.items()
        )
        name = subdivision_name(code, key.title())
        rows.append(
            {
                "code": code,
                "kind": "subdivision",
                "name": name,
                "g_per_kwh": _round(value / total),
                "year": 2023,
                "source": "cer2023",
                "grid": "",
            }
        )
        alias(name, code)
        alias(key, code)

    # Chinese provinces (MEE/NBS, CO2 only) --------------------------------------------------
    china = loader.json("private_infra/2023/china_provincial_emissions.json")
    for code, entry in sorted(china["data"].items()):
        rows.append(
            {
                "code": code,
                "kind": "subdivision",
                "name": entry["description"],
                "g_per_kwh": _round(entry["emission_factor"]),
                "year": int(entry["year"]),
                "source": "mee2023",
                "grid": "",
            }
        )
        alias(entry["description"], code)
        for name in entry.get("names", ()):
            alias(name, code)

    # Nordic bidding zones -------------------------------------------------------------------
    nordic = loader.json("private_infra/nordic_emissions.json")
    for zone, entry in sorted(nordic["data"].items()):
        if len(zone) != 3:  # "FI" is the whole country, already in the country table
            continue
        code = f"{zone[:2]}-{zone}"
        rows.append(
            {
                "code": code,
                "kind": "zone",
                "name": entry["description"],
                "g_per_kwh": _round(entry["emission_factor"]),
                "year": int(entry["year"]),
                "source": "entsoe2025",
                "grid": "",
            }
        )
        alias(zone, code)

    grids = {r["code"]: r for r in rows}

    def cloud_row(provider: str, region: str, label: str, grid: str, **override) -> None:
        if grid not in grids:
            raise SystemExit(f"{provider}:{region}: grid {grid} is not in the tables")
        base = grids[grid]
        row = {
            "code": f"{provider}:{region}",
            "kind": "cloud",
            "name": f"{PROVIDER_LABEL[provider]} {region} ({label})",
            "g_per_kwh": base["g_per_kwh"],
            "year": base["year"],
            "source": base["source"],
            "grid": grid,
        }
        row.update(override)
        rows.append(row)

    # GCP: Google's own figure per region ----------------------------------------------------
    impact = list(csv.DictReader(io.StringIO(loader.text("cloud/impact.csv"))))
    for entry in impact:
        if entry["provider"] != "gcp":
            continue
        region = GCP_FIXES.get(entry["region"], entry["region"])
        grid = GCP_GRID[region]
        iso2 = pycountry.countries.get(alpha_3=entry["countryIsoCode"]).alpha_2
        if not (grid.startswith(iso2) or (region == "asia-east2" and grid == "HK")):
            raise SystemExit(f"gcp:{region}: grid {grid} does not match country {iso2}")
        cloud_row(
            "gcp",
            region,
            entry["city"],
            grid,
            g_per_kwh=_round(float(entry["impact"])),
            year=2023,
            source="google2023",
        )
    for region, (label, grid) in GCP_EXTRA.items():
        cloud_row("gcp", region, label, grid)
    for region, (label, grid) in AWS.items():
        cloud_row("aws", region, label, grid)
    for region, (label, grid) in AZURE.items():
        cloud_row("azure", region, label, grid)

    # A bare cloud region id is an alias when only one provider has it.
    for row in rows:
        if row["kind"] == "cloud":
            alias(row["code"].split(":", 1)[1], row["code"])

    # Aliases that are some region's own code are not aliases.
    codes = {r["code"].lower() for r in rows}
    for key in list(aliases):
        if key in codes:
            del aliases[key]
    if skipped:
        print("skipped: " + "; ".join(skipped), file=sys.stderr)
    return rows, aliases


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write(rows: list[dict], aliases: dict[str, set[str]], out: Path) -> None:
    """Check the rows and write regions.csv, aliases.csv and sources.csv into ``out``."""
    order = {"world": 0, "country": 1, "subdivision": 2, "zone": 3, "cloud": 4}
    rows = sorted(rows, key=lambda r: (order[r["kind"]], r["code"]))
    seen: set[str] = set()
    for row in rows:
        if row["code"] in seen:
            raise SystemExit(f"duplicate region code {row['code']}")
        seen.add(row["code"])
        if not 0 < row["g_per_kwh"] <= 2000:
            raise SystemExit(f"{row['code']}: implausible intensity {row['g_per_kwh']}")
    header = ["code", "kind", "name", "g_per_kwh", "year", "source", "grid"]
    _write_csv(out / "regions.csv", header, [[r[h] for h in header] for r in rows])
    _write_csv(
        out / "aliases.csv",
        ["alias", "code"],
        [[key, "|".join(sorted(codes))] for key, codes in sorted(aliases.items())],
    )
    _write_csv(
        out / "sources.csv",
        ["id", "label", "citation", "url"],
        [[key, *values] for key, values in SOURCES.items()],
    )
    ambiguous = sorted(k for k, v in aliases.items() if len(v) > 1)
    print(
        f"wrote {len(rows)} regions, {len(aliases)} aliases ({len(ambiguous)} ambiguous: "
        f"{', '.join(ambiguous)}) to {out}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="codecarbon wheel or extracted directory")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "greenprint" / "carbon" / "data")
    args = parser.parse_args(argv)
    rows, aliases = build(Loader(args.source))
    args.out.mkdir(parents=True, exist_ok=True)
    write(rows, aliases, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
