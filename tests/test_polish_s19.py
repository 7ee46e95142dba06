"""Loose ends a user met (session 19), each checked as the user meets it.

Every test runs in an empty working directory with no greenprint configuration above it and no
``GREENPRINT_*`` variable (:func:`_clean_env.clean_env` for the subprocesses).

1. ``greenprint ledger set-role ROLE A B C`` writes the roles in one transaction: when the
   ledger refuses the write of B (a database trigger here), A is not left changed; one line on
   stderr, exit 2. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from _report_cli import empty_home as _empty

# ---------------------------------------------------------------------------- 1. set-role


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for this module (``tests/_pg.py``)."""
    from _pg import postgres_server

    with postgres_server() as server:
        yield server


def _three_runs(url: str) -> list[str]:
    """Three ended runs of study ``search`` (no role given), as three tracked scripts leave."""
    ids = []
    with gp.Ledger(url) as led:
        for lr in (0.1, 0.01, 0.001):
            with gp.track(f"lr={lr}", study="search", ledger=led, params={"lr": lr}) as run:
                run.log(val_acc=0.8)
            ids.append(run.id)
    return ids


def _refuse_updates_of(url: str, run_id: str) -> None:
    """A trigger that refuses any change to run ``run_id``, as a guarded database may have."""
    if url.startswith("postgresql"):
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'run % is kept as it is', OLD.id; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE UPDATE ON runs FOR EACH ROW "
                    f"WHEN (OLD.id = '{run_id}') EXECUTE FUNCTION refuse()"
                )
            )
        engine.dispose()
        return
    import sqlite3

    conn = sqlite3.connect(url)
    with conn:
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE UPDATE ON runs WHEN OLD.id = '{run_id}' "
            "BEGIN SELECT RAISE(ABORT, 'this run is kept as it is'); END"
        )
    conn.close()


def _roles_of(url: str) -> dict[str, str | None]:
    with gp.Ledger(url, create=False) as led:
        return {r.id: r.role for r in led.runs(study="search")}


_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", _BACKENDS)
def test_set_role_refused_half_way_changes_no_run(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    home = _empty(tmp_path_factory, "set-role-atomic")
    if backend == "sqlite":
        url = str(home / "greenprint.db")
    else:
        url = request.getfixturevalue("pg_server").new_database()
    first, second, third = _three_runs(url)
    _refuse_updates_of(url, second)
    before = _roles_of(url)
    assert set(before.values()) == {None}

    done = run_in(
        home, GREENPRINT, "ledger", "set-role", "baseline", first[:8], second[:8], third[:8],
        "--ledger", url,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "kept as it is" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""  # no run said to be changed
    assert _roles_of(url) == before  # the first run's write was rolled back with the second's

    # the same runs without the refused one: given, and said so as before
    done = run_in(
        home, GREENPRINT, "ledger", "set-role", "baseline", first[:8], third[:8], "--ledger", url
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"run {run_id[:8]} lr={lr} (study search): role (none given, read as trial) -> baseline"
        for run_id, lr in ((first, 0.1), (third, 0.001))
    ]
    assert _roles_of(url) == {first: "baseline", second: None, third: "baseline"}


def test_set_role_api_returns_the_runs_as_stored(tmp_path: Path) -> None:
    url = str(tmp_path / "greenprint.db")
    first, second, third = _three_runs(url)
    with gp.Ledger(url) as led:
        given = led.set_role("part", second, third, part_of=first)
        assert given == [led.run(second), led.run(third)]
        assert [(r.role, r.parent_id, r.contained) for r in given] == [("part", first, False)] * 2
