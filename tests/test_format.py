import json
import math

from hypothesis import given
from hypothesis import strategies as st

from greenprint._format import (
    format_duration,
    format_emissions,
    format_energy,
    format_fpo,
    json_safe,
)


def test_energy_picks_readable_units():
    assert format_energy(0.0123) == "12.3 Wh"
    assert format_energy(2.5) == "2.5 kWh"
    assert format_energy(3.561e-06) == "3.56 mWh"
    assert format_energy(1500.0) == "1.5 MWh"
    assert format_energy(0.0) == "0 mWh"
    assert format_energy(math.nan) == "n/a"


def test_emissions_fpo_duration():
    assert format_emissions(0.0042) == "4.2 g CO2-eq"
    assert format_fpo(3.1e15) == "3.1 PFPO"
    assert format_fpo(12) == "12 FPO"
    assert format_duration(3.14) == "3.1 s"
    assert format_duration(0.0084) == "0.0084 s"  # milliseconds never read as "0.0 s"
    assert format_duration(0.051) == "0.051 s"  # nor 51 ms as "0.1 s"
    assert format_duration(0.16) == "0.16 s"
    assert format_duration(0.0) == "0.0 s"
    assert format_duration(3725) == "1h 2m 5s"
    assert format_duration(125) == "2m 5s"


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_energy_round_trips_to_three_significant_digits(kwh):
    text = format_energy(kwh)
    number, unit = text.split()
    factor = {"MWh": 1e3, "kWh": 1.0, "Wh": 1e-3, "mWh": 1e-6}[unit]
    assert math.isclose(float(number) * factor, kwh, rel_tol=5e-3, abs_tol=1e-12)


def test_json_safe_writes_non_finite_floats_as_strings_throughout():
    value = {"a": math.nan, 2: [math.inf, (-math.inf, 1.5)], "b": {"c": None, "d": "x"}}
    safe = json_safe(value)
    assert safe == {"a": "NaN", "2": ["Infinity", ["-Infinity", 1.5]], "b": {"c": None, "d": "x"}}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe  # strict JSON
