"""``greenprint ledger export --format csv`` built a column at a time, as it was written by row.

The CSV export made a dictionary per run, escaped every cell on its own and wrote the whole
text as one string: 100,000 runs took 8-10 s and 630 MB of memory. It now builds a list per
column, escapes only the columns that hold text and writes a thousand runs a piece. The text
must be what it was: the export as it was written (kept here, row by row, as the reference),
for runs with every kind of value (formula-like text, parameters and metrics that some runs
have and others do not, nested and shared dictionaries, lists, NaN and infinities, numbers
beyond 64 bits, runs with no meter), through the CLI to a file and to standard output, in
pieces of two runs (every boundary crossed), for every study and for one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from _clean_env import BIN, clean_env
from _export_runs import export_run
from greenprint import MetricPoint, RunRecord
from greenprint._format import known_duration
from greenprint.cli import _ledger_export as export
from greenprint.cli import cli
from greenprint.cli._cells import unmetered
from greenprint.cli._ledger_roles import roles_as_read
from greenprint.ledger import Ledger

NAN, INF = float("nan"), float("inf")


def _reference(records: list[RunRecord], metric: str | None) -> str:
    """The CSV export as it was written before (a dictionary per run, every cell escaped)."""
    base = [
        f.name
        for f in dataclasses.fields(RunRecord)
        if f.name not in ("metrics", *export._JSON_FIELDS)
    ]
    base.insert(base.index("role") + 1, "role_inferred")
    base.insert(base.index("parent_id") + 1, "parent_inferred")
    resolved = roles_as_read(records, metric)
    rows: list[dict[str, Any]] = []
    extra: dict[str, list[str]] = {name: [] for name in (*export._JSON_FIELDS, "metric")}
    for record in records:
        row: dict[str, Any] = {
            name: getattr(record, name) for name in base if name in export._FIELDS
        }
        row["duration_s"] = known_duration(record.duration_s)
        row.update(unmetered(record))
        row["intensity_g_per_kwh"], row["intensity_source"] = export._priced_at(record)
        (
            row["role"],
            row["role_inferred"],
            row["parent_id"],
            row["parent_inferred"],
            row["contained"],
            _,
        ) = resolved[record.id]
        for name in export._JSON_FIELDS:
            flat: dict[str, Any] = {}
            export._flatten(name, getattr(record, name), flat)
            row.update(flat)
            extra[name].extend(k for k in flat if k not in extra[name])
        for name in record.metric_names:
            key = f"metric.{name}"
            row[key] = record.metric(name)
            if key not in extra["metric"]:
                extra["metric"].append(key)
        rows.append(row)
    columns = base + [c for group in extra.values() for c in sorted(group)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: export._csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


SHARED_HARDWARE = {"cpu_model": "=cpu()", "gpus": [{"name": "fake", "memory_gb": 80.0}]}


def _run(run_id: str, study: str, **fields: Any) -> RunRecord:
    """The export tests' run, its hardware a dictionary the runs share (formula-like text)."""
    return export_run(run_id, study, **{"hardware": SHARED_HARDWARE, **fields})


def _records() -> list[RunRecord]:
    return [
        _run("sweep-1", "a", metrics=(), command='=HYPERLINK("x")'),
        *(
            _run(
                f"trial-{k}",
                "a",
                parent_id="sweep-1",
                fpo=3 * 10**21 + k,
                params={"lr": 10.0**-k, f"only-{k % 2}": "-3.5" if k else "@sum(A1)", "b": k > 2},
                metrics=(MetricPoint(f"m{k % 3}", INF if k == 4 else 0.1 * k, 1, 1001.0),),
                env={"OMP": "1"} if k % 2 else {},
            )
            for k in range(5)
        ),
        _run("nometer", "a", energy_kwh=0.0, emissions_kg=0.0, duration_s=0.0),
        _run("fold", "a", parent_id="trial-1", role="part", error="+boom\r\nline 2"),
        _run("other", "b", status="failed", error="KeyError: 'x'", params={"lr": NAN}),
        # a long training: the export reads the points a report reads (the last of each metric
        # among them), not the 60 logged
        _run(
            "long",
            "b",
            metrics=tuple(
                MetricPoint(name, value, step, 1000.0 + step)
                for step in range(30)
                for name, value in (
                    ("loss", 1.0 / (step + 1)),
                    ("acc", NAN if step == 29 else 0.01 * step),
                )
            ),
        ),
    ]


def _ledger(path: Path) -> Path:
    with Ledger(path) as led:
        for record in _records():
            led.start_run(record)
    return path


@pytest.mark.parametrize("study", [None, "a", "b"])
def test_the_csv_export_is_the_text_written_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, study: str | None
) -> None:
    ledger = _ledger(tmp_path / "ledger.db")
    monkeypatch.setattr(export, "_CSV_CHUNK_RUNS", 2)
    with Ledger(ledger, create=False) as led:
        expected = _reference(led.runs(study=study), None)
    if study != "b":  # the escaped formulas, and a number's text left as it is
        assert "'=HYPERLINK" in expected and "'@sum(A1)" in expected and ",-3.5," in expected
    out = tmp_path / "runs.csv"
    args = ["ledger", "export", "--ledger", str(ledger), "--out", str(out)]
    done = CliRunner().invoke(cli, args + (["--study", study] if study else []))
    assert done.exit_code == 0, done.output
    assert out.read_bytes().decode("utf-8") == expected
    to_stdout = CliRunner().invoke(cli, args[:-2] + (["--study", study] if study else []))
    assert to_stdout.stdout_bytes.decode("utf-8") == expected  # (.stdout reads \r\n as \n)


def test_an_empty_ledger_exports_its_header_alone(tmp_path: Path) -> None:
    ledger = tmp_path / "empty.db"
    Ledger(ledger).close()
    done = CliRunner().invoke(cli, ["ledger", "export", "--ledger", str(ledger)])
    assert done.exit_code == 0, done.output
    assert done.stdout_bytes.decode("utf-8") == _reference([], None)
    assert done.stdout_bytes.count(b"\r\n") == 1 and done.stdout.startswith("id,name,")


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet="=+-@\t\r\n,\"'a1.é ", max_size=6),
)
_params = st.dictionaries(
    st.sampled_from(["lr", "=k", "a", "b.c"]),
    st.one_of(_values, st.lists(_values, max_size=2), st.dictionaries(st.just("x"), _values)),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(_params, st.lists(st.sampled_from(["acc", "=m", "loss"]), max_size=2), _values),
        min_size=1,
        max_size=7,
    ),
    st.integers(1, 4),
)
def test_any_runs_export_as_written_before(
    runs: list[tuple[dict[str, Any], list[str], Any]], chunk: int
) -> None:
    """Random parameters (formula-like text, lists, nested dictionaries, NaN, numbers beyond 64
    bits), metrics some runs log, a name of any text: in pieces of any size."""
    records = [
        _run(
            f"r{k}",
            "s",
            name=name if isinstance(name, str) and name else f"r{k}",
            params=params,
            metrics=tuple(MetricPoint(m, 0.25 * k, 0, 1000.0) for m in metrics),
            energy_kwh=0.0 if k == 2 else 0.002,
        )
        for k, (params, metrics, name) in enumerate(runs)
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export, "_CSV_CHUNK_RUNS", chunk)
        assert "".join(export._csv_pieces(records, None)) == _reference(records, None)


def test_a_new_user_exports_a_study_as_csv_from_an_empty_directory(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "ledger.db")
    home = tmp_path / "empty"
    home.mkdir()
    done = subprocess.run(
        [str(BIN / "greenprint"), "ledger", "export", "--ledger", str(ledger), "--study", "a",
         "--out", "runs.csv"],
        cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "wrote 8 runs to runs.csv"
    with (home / "runs.csv").open(encoding="utf-8", newline="") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(r.id for r in _records() if r.study == "a")
    assert (
        rows["trial-0"]["params.only-0"] == "'@sum(A1)"
        and rows["trial-1"]["params.only-1"] == "-3.5"
    )
    assert rows["nometer"]["energy_kwh"] == "" and rows["trial-3"]["fpo"] == str(3 * 10**21 + 3)
    assert rows["fold"]["role"] == "part" and rows["fold"]["error"] == "'+boom\r\nline 2"
    assert sorted(p.name for p in home.iterdir()) == ["runs.csv"]
