"""Provenance as data: the fields code reads, and the display string the ledger keeps.

``str(Provenance.parse(text)) == text`` for every string, so ledgers written before (and after)
the fields existed read back unchanged, and code that classifies reads ``kind``/``source``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint._provenance import Provenance
from greenprint.hardware import HardwareInfo
from greenprint.meters import GpuEstimateMeter, RamEstimateMeter
from greenprint.meters._discovery import cpu_estimate_for

# display strings greenprint writes today (and wrote before Provenance existed)
STORED = [
    ("rapl:package-0+package-1", "measured", "rapl:package-0+package-1", ""),
    ("nvml:counter:GPU-0+GPU-1", "measured", "nvml:counter:GPU-0+GPU-1", ""),
    ("estimate:tdp:AMD EPYC 7763 (2 x 280 W)", "estimate", "tdp:AMD EPYC 7763", "2 x 280 W"),
    ("estimate:default-per-core (4 W/core x 2)", "estimate", "default-per-core", "4 W/core x 2"),
    ("estimate:ram:0.3725W/GB x 16.0 GB", "estimate", "ram:0.3725W/GB x 16.0 GB", ""),
    (
        "estimate:configured-tdp (85 W, env:GREENPRINT_CPU_TDP_W)",
        "estimate",
        "configured-tdp",
        "85 W, env:GREENPRINT_CPU_TDP_W",
    ),
    (
        "estimate:tdp:X (240 W) (rapl failed: permission denied)",
        "estimate",
        "tdp:X",
        "240 W) (rapl failed: permission denied",
    ),
    ("table:DE:2023 (Our World in Data 2024)", "table", "DE:2023", "Our World in Data 2024"),
    ("default:world:2023 (Ember; set a region)", "default", "world:2023", "Ember; set a region"),
    ("csv:/data/hourly.csv", "csv", "/data/hourly.csv", ""),
    ("argument", "argument", "", ""),
    ("table:AMD EPYC 7763", "table", "AMD EPYC 7763", ""),
    ("test:constant", "other", "test:constant", ""),
    ("process", "other", "process", ""),
    ("", "other", "", ""),
]


@pytest.mark.parametrize(("text", "kind", "source", "detail"), STORED)
def test_stored_strings_parse_into_fields_and_back(text, kind, source, detail):
    parsed = Provenance.parse(text)
    assert (parsed.kind, parsed.source, parsed.detail) == (kind, source, detail)
    assert str(parsed) == text
    assert parsed.is_estimate == (kind == "estimate")
    assert parsed.is_measured == (kind == "measured")


@given(st.text())
def test_every_string_round_trips(text):
    assert str(Provenance.parse(text)) == text


@given(st.text(alphabet="estimab:le()- xtd", max_size=30))
def test_strings_made_of_provenance_syntax_round_trip(text):
    assert str(Provenance.parse(text)) == text


def test_a_chain_of_settings_has_the_table_row_at_its_root():
    chained = Provenance.parse("env:GREENPRINT_REGION -> table:DE:2023 (OWID 2024)")
    assert chained.kind == "env"
    assert chained.root == Provenance("table", "DE:2023", "OWID 2024")
    assert Provenance.parse("rapl:dram-0").root == Provenance.parse("rapl:dram-0")
    assert Provenance.parse(None) == Provenance("other")
    assert Provenance.parse(chained) is chained


def test_a_note_is_added_in_parentheses():
    p = Provenance("estimate", "tdp:X", "240 W").with_note("rapl failed: no access")
    assert str(p) == "estimate:tdp:X (240 W) (rapl failed: no access)"
    assert str(Provenance("estimate", "ram:1W/GB x 1.0 GB").with_note("n")) == (
        "estimate:ram:1W/GB x 1.0 GB (n)"
    )


def _hardware(**kw) -> HardwareInfo:
    base = {
        "cpu_model": "AMD EPYC 7763 64-Core Processor",
        "sockets": 2,
        "physical_cores": 128,
        "logical_cores": 256,
        "ram_gb": 16.0,
        "gpus": (),
        "meters": (),
        "cpu_tdp_w": 280.0,
        "cpu_tdp_source": "table:AMD EPYC 7763",
    }
    return HardwareInfo(**{**base, **kw})


def test_meters_expose_the_fields_their_string_displays():
    cpu = cpu_estimate_for(_hardware())
    assert cpu.origin == Provenance("estimate", "tdp:AMD EPYC 7763", "2 x 280 W")
    configured = cpu_estimate_for(_hardware(), configured=(85.0, "argument"))
    assert configured.origin.source == "configured-tdp"
    for meter in (cpu, configured, RamEstimateMeter(ram_gb=8.0), GpuEstimateMeter(power_w=250.0)):
        assert str(meter.origin) == meter.provenance
        assert meter.is_estimate and meter.origin.is_estimate
        assert Provenance.parse(meter.provenance) == meter.origin


def test_hardware_names_its_tdp_table_row():
    assert _hardware().cpu_tdp_origin == Provenance("table", "AMD EPYC 7763")
    unmatched = _hardware(cpu_tdp_w=None, cpu_tdp_source="default-per-core")
    assert unmatched.cpu_tdp_origin.kind == "default"
