"""Which intensity applies: argument > env > greenprint.toml > pyproject [tool.greenprint] >
world average (flagged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprint import ConfigError, IntensityCSVError, InvalidIntensityError, UnknownRegionError
from greenprint._config import load_config
from greenprint.carbon import lookup_region, resolve_intensity

CSV = "timestamp,g_per_kwh\n2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z,300\n"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project directory that is the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def test_nothing_configured_gives_the_flagged_world_average(project):
    got = resolve_intensity()
    world = lookup_region("world")
    assert got.is_default
    assert got.g_per_kwh == world.g_per_kwh
    assert got.source.startswith("default:world:2023")
    assert got.region is None


def test_resolution_order_step_by_step(project, monkeypatch):
    (project / "pyproject.toml").write_text('[tool.greenprint]\nregion = "FR"\n')
    got = resolve_intensity()
    assert got.region == "FR" and not got.is_default
    assert got.source.startswith(f"file:{project / 'pyproject.toml'} -> table:FR:")

    (project / "greenprint.toml").write_text('region = "DE"\n')
    got = resolve_intensity()
    assert got.region == "DE"
    assert got.source.startswith(f"file:{project / 'greenprint.toml'} -> table:DE:")

    monkeypatch.setenv("GREENPRINT_REGION", "SE")
    got = resolve_intensity()
    assert got.region == "SE"
    assert got.source.startswith("env:GREENPRINT_REGION -> table:SE:")

    monkeypatch.setenv("GREENPRINT_INTENSITY", "123.5")
    got = resolve_intensity()
    assert (got.g_per_kwh, got.source, got.region) == (123.5, "env:GREENPRINT_INTENSITY", None)

    got = resolve_intensity(region="US-CA")
    assert got.region == "US-CA" and got.source.startswith("table:US-CA:2023")

    got = resolve_intensity(intensity=42)
    assert (got.g_per_kwh, got.source) == (42.0, "argument")
    with pytest.raises(ConfigError, match="not both"):  # the region would be ignored (s31)
        resolve_intensity(intensity=42, region="US-CA")


def test_config_none_reads_the_working_directory_like_load_config(project, monkeypatch):
    (project / "greenprint.toml").write_text("intensity = 250\n")
    assert resolve_intensity() == resolve_intensity(config=load_config())
    assert resolve_intensity().source == f"file:{project / 'greenprint.toml'}"


def test_config_file_found_from_a_subdirectory(project, monkeypatch):
    (project / "pyproject.toml").write_text('[tool.greenprint]\nregion = "aws:eu-west-1"\n')
    sub = project / "src" / "pkg"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert resolve_intensity().region == "aws:eu-west-1"


def test_env_region_beats_a_file_intensity(project, monkeypatch):
    (project / "greenprint.toml").write_text("intensity = 250\n")
    monkeypatch.setenv("GREENPRINT_REGION", "NO")
    assert resolve_intensity().region == "NO"


def test_file_intensity_beats_file_region(project):
    (project / "greenprint.toml").write_text('intensity = 250\nregion = "DE"\n')
    assert resolve_intensity().g_per_kwh == 250.0


def test_explicit_config_object_is_used_instead_of_the_environment(project, monkeypatch):
    monkeypatch.setenv("GREENPRINT_REGION", "SE")
    config = load_config(environ={"GREENPRINT_REGION": "PL"})
    assert resolve_intensity(config=config).region == "PL"


def test_numeric_string_and_csv_path_arguments(project):
    (project / "hourly.csv").write_text(CSV)
    assert resolve_intensity(intensity="  77.5 ").g_per_kwh == 77.5
    by_str = resolve_intensity(intensity="hourly.csv")
    by_path = resolve_intensity(intensity=project / "hourly.csv")
    assert by_str.is_series and by_path.is_series
    assert by_str.series == by_path.series
    assert by_str.source == by_path.source == f"csv:{(project / 'hourly.csv').resolve()}"
    assert by_str.g_per_kwh == 200.0


def test_csv_path_in_a_config_file_is_relative_to_that_file(project, monkeypatch):
    (project / "data").mkdir()
    (project / "data" / "grid.csv").write_text(CSV)
    (project / "greenprint.toml").write_text('intensity = "data/grid.csv"\n')
    sub = project / "runs"
    sub.mkdir()
    monkeypatch.chdir(sub)
    got = resolve_intensity()
    assert got.is_series
    assert got.source == (
        f"file:{project / 'greenprint.toml'} -> csv:{(project / 'data' / 'grid.csv').resolve()}"
    )


def test_csv_path_in_the_environment(project, monkeypatch):
    (project / "grid.csv").write_text(CSV)
    monkeypatch.setenv("GREENPRINT_INTENSITY", str(project / "grid.csv"))
    got = resolve_intensity()
    assert got.is_series and got.source.startswith("env:GREENPRINT_INTENSITY -> csv:")


@pytest.mark.parametrize("bad", [0, -3, float("nan"), float("inf"), 2500, "0", "-1", "nan", True])
def test_bad_explicit_intensity(project, bad):
    with pytest.raises(InvalidIntensityError) as info:
        resolve_intensity(intensity=bad)
    assert "\n" not in str(info.value)


def test_text_that_is_neither_number_nor_file(project):
    with pytest.raises(InvalidIntensityError, match="neither a number .* nor an existing CSV"):
        resolve_intensity(intensity="lots")


def test_bad_values_in_config_say_where_they_came_from(project, monkeypatch):
    monkeypatch.setenv("GREENPRINT_INTENSITY", "-5")
    with pytest.raises(InvalidIntensityError, match="env:GREENPRINT_INTENSITY"):
        resolve_intensity()
    monkeypatch.delenv("GREENPRINT_INTENSITY")
    monkeypatch.setenv("GREENPRINT_REGION", "Germny")
    with pytest.raises(UnknownRegionError, match="env:GREENPRINT_REGION: unknown region") as info:
        resolve_intensity()
    assert "DE" in info.value.suggestions
    monkeypatch.delenv("GREENPRINT_REGION")
    (project / "greenprint.toml").write_text('intensity = "missing.csv"\n')
    with pytest.raises(InvalidIntensityError, match="greenprint.toml"):
        resolve_intensity()
    (project / "bad.csv").write_text("timestamp,g_per_kwh\n2024-03-01,oops\n")
    (project / "greenprint.toml").write_text('intensity = "bad.csv"\n')
    with pytest.raises(IntensityCSVError, match=r"bad\.csv:2: "):
        resolve_intensity()


def test_unknown_explicit_region(project):
    with pytest.raises(UnknownRegionError, match="did you mean"):
        resolve_intensity(region="aws:us-east-7")
