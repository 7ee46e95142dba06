"""PUE: presets with sources, validation, and resolution order."""

from __future__ import annotations

import math
import re

import pytest

from greenprint import ConfigError, InvalidPUEError
from greenprint._config import load_config
from greenprint.carbon import MAX_PUE, MIN_PUE, PUE, PUE_PRESETS, resolve_pue


def test_presets_are_valid_and_cite_a_source_with_a_year():
    assert {"google", "aws", "azure", "hyperscale", "on-premise", "uptime-survey-2023"} <= set(
        PUE_PRESETS
    )
    for name, (value, source) in PUE_PRESETS.items():
        assert MIN_PUE <= value <= MAX_PUE, name
        assert source, name
        if name != "none":
            assert re.search(r"\b20\d\d\b", source), (name, source)
    assert PUE_PRESETS["google"][0] == 1.10
    assert PUE_PRESETS["uptime-survey-2023"][0] == 1.58


def test_presets_are_read_only():
    with pytest.raises(TypeError):
        PUE_PRESETS["mine"] = (1.2, "x")  # type: ignore[index]


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("google", "google"),
        ("Google", "google"),
        ("GCP", "google"),
        ("on_premise", "on-premise"),
        ("Uptime Survey 2023", "uptime-survey-2023"),
        ("microsoft", "azure"),
    ],
)
def test_preset_names(given, name):
    pue = resolve_pue(given)
    assert (pue.value, pue.name, pue.is_default) == (PUE_PRESETS[name][0], name, False)
    assert pue.source.startswith(f"preset:{name} (")


def test_numbers_and_numeric_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_pue(1.2) == PUE(1.2, "argument")
    assert resolve_pue("1.35").value == 1.35
    assert resolve_pue(1).value == 1.0
    assert resolve_pue(3).value == 3.0


def test_default_is_one_and_flagged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pue = resolve_pue()
    assert (pue.value, pue.is_default, pue.name) == (1.0, True, None)
    assert pue.source.startswith("default:1.0")


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.greenprint]\npue = 1.4\n")
    assert resolve_pue() == PUE(1.4, f"file:{tmp_path / 'pyproject.toml'}")
    (tmp_path / "greenprint.toml").write_text('pue = "aws"\n')
    got = resolve_pue()
    assert got.name == "aws" and got.source.startswith(f"file:{tmp_path / 'greenprint.toml'} ->")
    monkeypatch.setenv("GREENPRINT_PUE", "1.25")
    assert resolve_pue() == PUE(1.25, "env:GREENPRINT_PUE")
    assert resolve_pue(2.0) == PUE(2.0, "argument")
    assert resolve_pue(config=load_config(environ={})).name == "aws"


@pytest.mark.parametrize("bad", [0, 0.99, -1.2, 3.01, 10, math.nan, math.inf, "0.5", "nan", True])
def test_out_of_range_pue_is_refused_with_the_range(bad):
    with pytest.raises(InvalidPUEError) as info:
        resolve_pue(bad)
    message = str(info.value)
    assert "1 <= x <= 3" in message and repr(bad) in message
    assert isinstance(info.value, ConfigError)


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(InvalidPUEError, match="did you mean google") as info:
        resolve_pue("gogle")
    assert "aws" in str(info.value)  # the presets are listed


def test_bad_pue_in_environment_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREENPRINT_PUE", "0.8")
    with pytest.raises(InvalidPUEError, match="env:GREENPRINT_PUE"):
        resolve_pue()


def test_pue_dataclass_validates_itself():
    with pytest.raises(InvalidPUEError):
        PUE(0.5, "argument")
