"""The hourly intensity CSV: formats accepted, integration, and every malformed line named."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from greenprint import ConfigError, IntensityCSVError
from greenprint.carbon import load_intensity_csv

H = 3600.0
MIDNIGHT = datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()


def write(tmp_path, text: str, name: str = "hourly.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_iso_timestamps_with_z_offset_and_naive_utc(tmp_path):
    path = write(
        tmp_path,
        "timestamp,g_per_kwh\n"
        "2024-03-01T00:00:00Z,100\n"
        "2024-03-01T02:00:00+01:00,200\n"  # = 01:00Z
        "2024-03-01 02:00,400\n",  # naive: UTC
    )
    s = load_intensity_csv(path)
    assert [t for t, _ in s.series] == [MIDNIGHT, MIDNIGHT + H, MIDNIGHT + 2 * H]
    assert [v for _, v in s.series] == [100.0, 200.0, 400.0]
    assert s.g_per_kwh == pytest.approx(700 / 3)
    assert s.source == f"csv:{path.resolve()}"
    assert s.year == 2024 and s.region is None and not s.is_default and s.is_series


def test_unix_seconds_other_columns_comments_blank_lines_and_bom(tmp_path):
    path = tmp_path / "hourly.csv"
    path.write_bytes(
        (
            "\ufeff# exported from the grid operator\n"
            "zone,g_per_kwh,timestamp\n"
            "\n"
            f"DE,300.5,{MIDNIGHT:.0f}\n"
            f"DE,150,{MIDNIGHT + H:.1f}\n"
        ).encode()
    )
    s = load_intensity_csv(path)
    assert s.series == ((MIDNIGHT, 300.5), (MIDNIGHT + H, 150.0))


@pytest.mark.parametrize(
    "stamp",
    ["2024-03-01T01:00:00+0100", "2024-03-01T01:00+01", "2024-03-01T00:00:00.000Z", "2024-03-01"],
)
def test_offset_spellings(tmp_path, stamp):
    s = load_intensity_csv(write(tmp_path, f"timestamp,g_per_kwh\n{stamp},100\n"))
    assert s.series[0][0] == MIDNIGHT


def test_integration_of_a_csv_across_hour_boundaries(tmp_path):
    path = write(
        tmp_path,
        "timestamp,g_per_kwh\n"
        "2024-03-01T00:00:00Z,100\n"
        "2024-03-01T01:00:00Z,200\n"
        "2024-03-01T02:00:00Z,400\n",
    )
    s = load_intensity_csv(path)
    # 0.5 kWh over 00:45-01:15: 0.25 kWh at 100 + 0.25 kWh at 200.
    assert s.emissions_g(MIDNIGHT + 0.75 * H, MIDNIGHT + 1.25 * H, 0.5) == pytest.approx(75.0)
    # 3 kWh over 00:00-03:00 (the last row lasts one hour, like the ones before).
    assert s.emissions_g(MIDNIGHT, MIDNIGHT + 3 * H, 3.0) == pytest.approx(700.0)
    assert s.span_s == (MIDNIGHT, MIDNIGHT + 3 * H)


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("2024-03-01T00:00:00Z,100\nyesterday,100\n", 3, "bad timestamp 'yesterday'"),
        ("2024-03-01T00:00:00Z,100\n2024-13-01T00:00:00Z,100\n", 3, "bad timestamp"),
        ("2024-03-01T00:00:00Z,abc\n", 2, "g_per_kwh must be a finite number"),
        ("2024-03-01T00:00:00Z,\n", 2, "g_per_kwh must be a finite number"),
        ("2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z,-20\n", 3, "0 < x <= 2000"),
        ("2024-03-01T00:00:00Z,0\n", 2, "0 < x <= 2000"),
        ("2024-03-01T00:00:00Z,nan\n", 2, "0 < x <= 2000"),
        ("2024-03-01T00:00:00Z,5000\n", 2, "0 < x <= 2000"),
        ("2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z\n", 3, "expected 2 columns"),
        (
            "2024-03-01T01:00:00Z,100\n2024-03-01T00:00:00Z,100\n",
            3,
            "unsorted timestamp '2024-03-01T00:00:00Z': must be later than the one on line 2",
        ),
        (
            "2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00+01:00,100\n",
            3,
            "duplicate timestamp",
        ),
        ("1e300,100\n", 2, "bad timestamp"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, line, fragment):
    path = write(tmp_path, "timestamp,g_per_kwh\n" + body)
    with pytest.raises(IntensityCSVError) as info:
        load_intensity_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty file"),
        ("# only a comment\n\n", "empty file"),
        ("timestamp,g_per_kwh\n", "no data rows"),
        ("time,value\n2024-03-01,100\n", "missing timestamp, g_per_kwh"),
        ("timestamp\n2024-03-01\n", "missing g_per_kwh"),
    ],
)
def test_header_and_empty_files(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(IntensityCSVError, match=fragment) as info:
        load_intensity_csv(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory_and_binary(tmp_path):
    with pytest.raises(IntensityCSVError, match="cannot read intensity CSV"):
        load_intensity_csv(tmp_path / "absent.csv")
    with pytest.raises(IntensityCSVError, match="cannot read intensity CSV"):
        load_intensity_csv(tmp_path)
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(IntensityCSVError, match="cannot read intensity CSV"):
        load_intensity_csv(binary)
