"""The shipped tables: every kind of region, codes and aliases, suggestions, lazy loading."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from greenprint import UnknownRegionError
from greenprint.carbon import Intensity, Region, lookup_region, regions

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "greenprint" / "carbon" / "data"


def _by_kind(kind: str) -> list[Region]:
    return [r for r in regions() if r.kind == kind]


@pytest.mark.parametrize(
    ("code", "canonical", "kind"),
    [
        ("DE", "DE", "country"),
        ("de", "DE", "country"),
        ("DEU", "DE", "country"),
        ("Germany", "DE", "country"),
        ("  france ", "FR", "country"),
        ("UK", "GB", "country"),
        ("United States", "US", "country"),
        ("usa", "US", "country"),
        ("Côte d'Ivoire", "CI", "country"),
        ("US-CA", "US-CA", "subdivision"),
        ("us_ca", "US-CA", "subdivision"),
        ("USA-CA", "US-CA", "subdivision"),
        ("California", "US-CA", "subdivision"),
        ("US-DC", "US-DC", "subdivision"),
        ("CA-QC", "CA-QC", "subdivision"),
        ("Québec", "CA-QC", "subdivision"),
        ("quebec", "CA-QC", "subdivision"),
        ("CAN-AB", "CA-AB", "subdivision"),
        ("CN-BJ", "CN-BJ", "subdivision"),
        ("SE-SE3", "SE-SE3", "zone"),
        ("se3", "SE-SE3", "zone"),
        ("aws:us-east-1", "aws:us-east-1", "cloud"),
        ("AWS:US-EAST-1", "aws:us-east-1", "cloud"),
        ("amazon/eu-west-1", "aws:eu-west-1", "cloud"),
        ("us-east-1", "aws:us-east-1", "cloud"),
        ("gcp:europe-west1", "gcp:europe-west1", "cloud"),
        ("google:us-central1", "gcp:us-central1", "cloud"),
        ("europe-west4", "gcp:europe-west4", "cloud"),
        ("gcp:me-central1", "gcp:me-central1", "cloud"),
        ("azure:westeurope", "azure:westeurope", "cloud"),
        ("azure:West Europe", "azure:westeurope", "cloud"),
        ("microsoft/north-europe", "azure:northeurope", "cloud"),
        ("westeurope", "azure:westeurope", "cloud"),
        ("West Europe", "azure:westeurope", "cloud"),
        ("world", "WORLD", "world"),
    ],
)
def test_lookup_every_kind_and_spelling(code, canonical, kind):
    found = lookup_region(code)
    assert isinstance(found, Intensity)
    assert found.region == canonical
    assert not found.is_default
    assert found.source.startswith(f"table:{canonical}:{found.year} (")
    row = next(r for r in regions() if r.code == canonical)
    assert row.kind == kind
    assert found.g_per_kwh == row.g_per_kwh


def test_alpha2_and_alpha3_give_equal_intensity_for_every_country():
    import csv

    alpha3 = {
        row["code"]: row["alias"]
        for row in csv.DictReader((DATA / "aliases.csv").open())
        if re.fullmatch(r"[a-z]{3}", row["alias"]) and "|" not in row["code"]
    }
    countries = _by_kind("country")
    assert len(countries) >= 200
    for row in countries:
        assert row.code in alpha3, f"{row.code} has no alpha-3 alias"
        assert lookup_region(row.code) == lookup_region(alpha3[row.code].upper())
        assert lookup_region(row.code.lower()) == lookup_region(row.code)


def test_well_known_values_and_years():
    de = lookup_region("DE")
    assert (de.g_per_kwh, de.year) == (380.95, 2023)
    assert "Our World in Data" in de.source
    # eGRID2023 California: 394.769 lb/MWh = 179.06 g/kWh.
    ca = lookup_region("US-CA")
    assert ca.g_per_kwh == pytest.approx(394.769 * 0.45359237, abs=1e-3)
    assert "eGRID2023" in ca.source
    # Quebec is hydro: tens of g/kWh; Alberta is gas: hundreds.
    assert lookup_region("CA-QC").g_per_kwh < 50 < 500 < lookup_region("CA-AB").g_per_kwh
    assert lookup_region("gcp:europe-west1").g_per_kwh == 122.0  # Google's own 2023 figure


def test_coverage_of_the_tables():
    codes = {r.code for r in regions()}
    states = {c for c in codes if c.startswith("US-")}
    provinces = {c for c in codes if c.startswith("CA-")}
    assert len(states) == 51  # 50 states and DC
    assert len(provinces) == 13  # 10 provinces and 3 territories
    for provider, at_least in (("aws", 30), ("gcp", 40), ("azure", 50)):
        assert len([c for c in codes if c.startswith(f"{provider}:")]) >= at_least


def test_every_row_has_value_year_source_and_cloud_rows_name_their_grid():
    rows = regions()
    assert rows[0].code == "WORLD"
    assert len({r.code for r in rows}) == len(rows)
    for r in rows:
        assert 0 < r.g_per_kwh <= 2000, r
        assert 2000 <= r.year <= 2030 or r.code == "EH", r  # Western Sahara: 2009
        assert r.source and r.citation and r.url.startswith("https://"), r
        if r.kind == "cloud":
            grid = lookup_region(r.grid)
            assert grid.region == r.grid
            assert f"grid {r.grid}" in r.provenance
            if not r.code.startswith("gcp:") or "Google" not in r.source:
                # AWS, Azure (and GCP rows without a Google figure) use the grid's own figure.
                assert (r.g_per_kwh, r.year) == (grid.g_per_kwh, grid.year), r
        else:
            assert r.grid is None


def test_cloud_rows_match_the_build_script_mapping():
    spec = importlib.util.spec_from_file_location(
        "build_carbon_tables", ROOT / "scripts" / "build_carbon_tables.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for provider, mapping in (("aws", script.AWS), ("azure", script.AZURE)):
        for region, (_label, grid) in mapping.items():
            row = next(r for r in regions() if r.code == f"{provider}:{region}")
            assert row.grid == grid
    for region, grid in script.GCP_GRID.items():
        assert next(r for r in regions() if r.code == f"gcp:{region}").grid == grid


def test_world_average_is_the_generation_weighted_country_mean():
    world = lookup_region("world")
    values = [r.g_per_kwh for r in _by_kind("country")]
    assert min(values) < world.g_per_kwh < max(values)
    assert 400 < world.g_per_kwh < 550


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("Germny", "DE"),
        ("DEUU", "DE"),
        ("aws:us-east-9", "aws:us-east-1"),
        ("gcp:europe-west-1", "gcp:europe-west1"),
        ("azure:westeurop", "azure:westeurope"),
        ("californa", "US-CA"),
    ],
)
def test_unknown_region_suggests_the_nearest(typo, expected):
    with pytest.raises(UnknownRegionError) as info:
        lookup_region(typo)
    err = info.value
    assert err.region == typo
    assert expected in err.suggestions
    message = str(err)
    assert "\n" not in message
    assert repr(typo) in message and expected in message and "did you mean" in message


def test_unknown_region_without_any_near_name_still_explains():
    with pytest.raises(UnknownRegionError, match="unknown region 'zzqqxx'.*--list") as info:
        lookup_region("zzqqxx")
    assert info.value.suggestions == ()


def test_ambiguous_name_is_refused_with_both_codes():
    with pytest.raises(UnknownRegionError, match="ambiguous") as info:
        lookup_region("Georgia")
    assert set(info.value.suggestions) == {"GE", "US-GA"}
    assert lookup_region("GE").region == "GE"
    assert lookup_region("US-GA").region == "US-GA"


@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_empty_or_non_string_region_is_refused(bad):
    with pytest.raises(UnknownRegionError):
        lookup_region(bad)


def test_import_does_not_parse_the_tables():
    code = (
        "import greenprint.carbon as c, greenprint.carbon._regions as r\n"
        "assert r._tables.cache_info().currsize == 0\n"
        "c.lookup_region('DE')\n"
        "c.lookup_region('FR')\n"
        "info = r._tables.cache_info()\n"
        "assert (info.currsize, info.misses) == (1, 1), info\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
