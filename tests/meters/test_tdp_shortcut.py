"""The TDP table is not loaded for a model that cannot match; every row can still match."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint.meters import _tdp
from greenprint.meters._tdp import load_tdp_table, match_cpu_tdp, normalise_cpu_model


def _keys() -> list[str]:
    table = _tdp._load()
    return list(table.normalised)


def test_every_key_of_the_table_passes_the_shortcut():
    keys = _keys()
    assert len(keys) > 4000
    assert [k for k in keys if not _tdp._may_match_exactly(k)] == []


@given(st.sampled_from([name for name, _ in load_tdp_table()]))
def test_every_model_name_as_the_os_writes_it_still_matches(name):
    raw = f"{name.upper()}  (TM) CPU @ 2.40GHz"
    query = normalise_cpu_model(raw)
    if query in _tdp._load().normalised:
        assert _tdp._may_match_exactly(query)


@pytest.mark.parametrize(
    "model", ["AMD EPYC", "Intel(R) Xeon(R) CPU @ 2.20GHz", "Intel Xeon Processor (Icelake)"]
)
def test_a_family_name_is_answered_without_loading_the_table(model):
    _tdp._load.cache_clear()
    match_cpu_tdp.cache_clear()
    try:
        assert match_cpu_tdp(model) is None
        assert _tdp._load.cache_info().currsize == 0
    finally:
        match_cpu_tdp.cache_clear()


def test_a_table_model_is_still_matched_exactly_after_the_shortcut():
    match_cpu_tdp.cache_clear()
    match = match_cpu_tdp("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz")
    assert match is not None and match.rule == "exact" and match.tdp_w == 150.0
    quoted = match_cpu_tdp("Intel EP80579 Integrated, 1066 MHz")  # a quoted CSV name
    assert quoted is not None
