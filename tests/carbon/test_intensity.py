"""Intensity: validation, the step function of a series, and integration across boundaries."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from greenprint import ConfigError, InvalidIntensityError
from greenprint.carbon import MAX_G_PER_KWH, Intensity

H = 3600.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def hourly(*values: float, start: float = T0) -> Intensity:
    return Intensity(
        g_per_kwh=sum(values) / len(values),
        source="test",
        series=tuple((start + i * H, v) for i, v in enumerate(values)),
    )


@pytest.mark.parametrize("bad", [0, -1, -0.0, math.nan, math.inf, -math.inf, 2000.01, 1e9])
def test_constant_intensity_out_of_range_is_refused(bad):
    with pytest.raises(InvalidIntensityError, match=r"0 < x <= 2000") as info:
        Intensity(bad, "argument")
    assert repr(bad) in str(info.value)


def test_limits_are_inclusive_at_2000():
    assert Intensity(MAX_G_PER_KWH, "argument").g_per_kwh == 2000.0
    assert Intensity(1e-6, "argument").g_per_kwh == 1e-6


def test_series_values_are_validated_and_times_must_increase():
    with pytest.raises(InvalidIntensityError):
        Intensity(100, "t", series=((T0, 100.0), (T0 + H, -5.0)))
    with pytest.raises(InvalidIntensityError, match="strictly increasing"):
        Intensity(100, "t", series=((T0, 100.0), (T0, 200.0)))
    with pytest.raises(InvalidIntensityError, match="no samples"):
        Intensity(100, "t", series=())


def test_constant_at_and_emissions():
    c = Intensity(400.0, "argument")
    assert c.at(0) == c.at(T0) == 400.0
    assert c.emissions_g(T0, T0 + 10 * H, 2.5) == pytest.approx(1000.0)
    assert c.emissions_g(T0, T0, 1.0) == 400.0
    assert not c.is_series and c.span_s is None and c.covers(0, 1e12)


def test_series_at_is_a_step_function_with_nearest_edge_outside():
    s = hourly(100.0, 200.0, 400.0)
    assert s.at(T0) == 100.0
    assert s.at(T0 + H - 1e-6) == 100.0
    assert s.at(T0 + H) == 200.0  # the boundary belongs to the interval it starts
    assert s.at(T0 + 2.5 * H) == 400.0
    assert s.at(T0 - 10 * H) == 100.0  # before: first value
    assert s.at(T0 + 100 * H) == 400.0  # after: last value
    assert s.span_s == (T0, T0 + 3 * H)
    assert s.covers(T0, T0 + 3 * H) and not s.covers(T0 - 1, T0 + H)


def test_integration_across_hour_boundaries_equals_hand_computed_sum():
    s = hourly(100.0, 200.0, 400.0)
    # 1 kWh per hour from 00:30 to 02:15: 0.5 h x 100 + 1 h x 200 + 0.25 h x 400 = 350 g.
    got = s.emissions_g(T0 + 0.5 * H, T0 + 2.25 * H, energy_kwh=1.75)
    assert got == pytest.approx(350.0, rel=1e-12)
    # Not the average: the mean intensity would give 1.75 x 233.3 = 408.3 g.
    assert got != pytest.approx(1.75 * s.g_per_kwh, rel=1e-3)


def test_integration_inside_one_hour_and_on_exact_boundaries():
    s = hourly(100.0, 200.0, 400.0)
    assert s.emissions_g(T0 + 0.1 * H, T0 + 0.2 * H, 3.0) == pytest.approx(300.0)
    assert s.emissions_g(T0 + H, T0 + 2 * H, 1.0) == pytest.approx(200.0)
    assert s.emissions_g(T0, T0 + 3 * H, 3.0) == pytest.approx(700.0)
    assert s.emissions_g(T0 + H, T0 + H, 2.0) == pytest.approx(400.0)  # instant: at(t0)


def test_uneven_intervals_are_integrated_piece_by_piece():
    s = Intensity(100, "t", series=((0.0, 100.0), (600.0, 300.0), (3600.0, 50.0)))
    # [300, 4200], 1 kWh spread over 3900 s: 300 s x 100 + 3000 s x 300 + 600 s x 50.
    expected = (300 * 100 + 3000 * 300 + 600 * 50) / 3900
    assert s.emissions_g(300.0, 4200.0, 1.0) == pytest.approx(expected, rel=1e-12)


def test_outside_the_series_edges_hold_and_a_warning_is_logged_once(caplog):
    s = hourly(100.0, 200.0)
    with caplog.at_level(logging.WARNING, logger="greenprint.carbon._intensity"):
        before = s.emissions_g(T0 - 2 * H, T0 - H, 1.0)
        after = s.emissions_g(T0 + 5 * H, T0 + 6 * H, 1.0)
        straddle = s.emissions_g(T0 - H, T0 + H, 2.0)
    assert before == pytest.approx(100.0)
    assert after == pytest.approx(200.0)
    assert straddle == pytest.approx(200.0)  # 1 h x 100 before + 1 h x 100 in the first hour
    assert len([r for r in caplog.records if "outside the intensity series" in r.message]) == 1


@pytest.mark.parametrize(
    ("t0", "t1", "energy"),
    [
        (10.0, 5.0, 1.0),
        (math.nan, 5.0, 1.0),
        (0.0, math.inf, 1.0),
        (0.0, 1.0, -1.0),
        (0.0, 1.0, math.nan),
    ],
)
def test_emissions_refuses_bad_interval_or_energy(t0, t1, energy):
    for intensity in (Intensity(300.0, "argument"), hourly(100.0, 200.0)):
        with pytest.raises(ConfigError):
            intensity.emissions_g(t0, t1, energy)


def test_equality_ignores_nothing_the_user_sees():
    assert Intensity(300.0, "a") == Intensity(300.0, "a")
    assert Intensity(300.0, "a") != Intensity(300.0, "b")
    assert hash(hourly(1.0, 2.0)) == hash(hourly(1.0, 2.0))


# --- properties -----------------------------------------------------------------------------

values_st = st.floats(min_value=0.5, max_value=2000.0, allow_nan=False)


@st.composite
def series_st(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    gaps = draw(st.lists(st.floats(min_value=1.0, max_value=7200.0), min_size=n, max_size=n))
    times, t = [], T0
    for gap in gaps:
        t += gap
        times.append(t)
    values = draw(st.lists(values_st, min_size=n, max_size=n))
    return Intensity(sum(values) / n, "prop", series=tuple(zip(times, values, strict=True)))


interval_st = st.tuples(
    st.floats(min_value=T0 - 4 * H, max_value=T0 + 60 * H),
    st.floats(min_value=0.0, max_value=40 * H),
    st.floats(min_value=0.0, max_value=1.0),
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e3)),  # kWh
)


@settings(max_examples=200, deadline=None)
@given(series_st(), interval_st)
def test_splitting_an_interval_anywhere_keeps_the_total(s, interval):
    t0, length, fraction, energy = interval
    t1 = t0 + length
    length = t1 - t0  # what the floats really hold
    m = t0 + fraction * length
    assume(t0 <= m <= t1 and length > 0)
    whole = s.emissions_g(t0, t1, energy)
    left = s.emissions_g(t0, m, energy * (m - t0) / length)
    right = s.emissions_g(m, t1, energy * (t1 - m) / length)
    assert left + right == pytest.approx(whole, rel=1e-9, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(series_st(), interval_st)
def test_emissions_lie_between_min_and_max_intensity(s, interval):
    t0, length, _, energy = interval
    values = [v for _, v in s.series]
    got = s.emissions_g(t0, t0 + length, energy)
    assert min(values) * energy * (1 - 1e-12) <= got <= max(values) * energy * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=48), values_st, interval_st)
def test_constant_series_equals_constant_intensity(n, value, interval):
    t0, length, _, energy = interval
    series = hourly(*([value] * n))
    constant = Intensity(value, "argument")
    assert series.emissions_g(t0, t0 + length, energy) == pytest.approx(
        constant.emissions_g(t0, t0 + length, energy), rel=1e-12, abs=1e-12
    )
