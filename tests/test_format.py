import json
import math

from hypothesis import given
from hypothesis import strategies as st

from greenprint._format import (
    count_of,
    count_out_of,
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
    # an example's share of a run: "0.00116 mWh per example" made the reader count zeros
    assert format_energy(1.16e-9) == "1.16 µWh"
    assert format_energy(8.726e-7) == "873 µWh"
    # a value that rounds up to a thousand reads in the unit above, never "1e+03 Wh"
    assert format_energy(0.9996) == "1 kWh"
    assert format_emissions(0.9996) == "1 kg CO2-eq"
    assert format_fpo(999.7e12) == "1 PFPO"
    assert format_fpo(2e21) == "2,000 EFPO"  # the largest unit counts on in digits


def test_a_part_beside_its_whole_reads_in_the_wholes_unit():
    # the final run's sentence said "830 µWh of 25.8 mWh": the reader had to convert
    assert format_energy(8.3e-7, unit_of=2.58e-5) == "0.83 mWh"
    assert format_emissions(4e-4, unit_of=0.3) == "0.4 g CO2-eq"
    assert format_energy(0.0, unit_of=2.58e-5) == "0 mWh"
    # a part too small to read in the whole's unit keeps its own (no "1e-09 kWh")
    assert format_energy(1e-9, unit_of=1.0) == "1 µWh"
    from greenprint.analysis import FinalRun

    final = FinalRun(
        "r1", "final", "finished", False, "acc", 0.9, 8.3e-7, 1e-7, None, 1.0,
        8.3e-7 / 2.58e-5, 0.1, None, 0.5,
    )  # fmt: skip
    assert final.describe() == (
        "the final model cost 1/31 of the study's energy (0.83 mWh of 25.8 mWh)"
    )


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
    factor = {"MWh": 1e3, "kWh": 1.0, "Wh": 1e-3, "mWh": 1e-6, "µWh": 1e-9, "nWh": 1e-12}[unit]
    value = float(number.replace(",", ""))
    assert "e" not in number or kwh < 1e-15  # below a thousandth of a nWh: an exponent
    assert math.isclose(value * factor, kwh, rel_tol=5e-3, abs_tol=1e-18)
    assert kwh == 0 or 1 <= value < 1000 or unit in ("MWh", "nWh")


def test_json_safe_writes_non_finite_floats_as_strings_throughout():
    value = {"a": math.nan, 2: [math.inf, (-math.inf, 1.5)], "b": {"c": None, "d": "x"}}
    safe = json_safe(value)
    assert safe == {"a": "NaN", "2": ["Infinity", ["-Infinity", 1.5]], "b": {"c": None, "d": "x"}}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe  # strict JSON


def test_counts_read_as_a_sentence_says_them():
    """count_of and count_out_of live together in _format (reports, notes and the CLI)."""
    assert (count_of(1, "part"), count_of(3, "part")) == ("1 part", "3 parts")
    assert count_out_of(1, 3, "trial") == "1 of 3 trials"
    assert count_out_of(1, 1, "trial") == "the one trial"
    assert count_out_of(2, 2, "trial") == "both trials"
    assert count_out_of(5, 5, "trial") == "all 5 trials"
