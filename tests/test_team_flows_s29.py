"""A team's PostgreSQL ledger URL as users mistype it (session 29, H6).

A user pointing ``--ledger`` at a shared PostgreSQL database met, for a typo in the port, a
traceback (exit 1) instead of the one-line error of every other bad URL; for a password holding
``/``, ``?``, ``#`` or an unencoded ``@``, that password (or its tail) printed in the error
message; and for a host that accepts the connection and never answers, a command that hung for
ever. No server is needed: the URLs are refused before connecting, or point at a loopback socket.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import socket
import threading
import time

import pytest

from conftest import require  # tests/conftest.py
from greenprint import _exceptions as gp_errors
from greenprint._exceptions import LedgerPathError
from greenprint.cli import main
from greenprint.ledger import Ledger
from greenprint.ledger import _sql as sql_module

SECRET = "Zq7xSecret"


def _psycopg() -> None:
    require(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # a port typo: was a ValueError traceback out of SQLAlchemy, exit 1
        (f"postgresql+psycopg://alice:{SECRET}@localhost:54x2/team", "port"),
        (f"postgresql+psycopg://alice:{SECRET}@localhost:/team", "port"),
        # an '@' of the password not written %40: the error named host 'cret@localhost'
        ("postgresql+psycopg://alice:Zq7x@Secret@localhost/team", "%40"),
        # '/', '#', '?' in a password (SQLAlchemy's password ends at the first '@'): the error
        # message printed the URL with the password whole (connection refused on port 1)
        (f"postgresql+psycopg://alice:Zq7x/{SECRET}@127.0.0.1:1/team", "refused"),
        (f"postgresql+psycopg://alice:Zq7x#{SECRET}@127.0.0.1:1/team", "refused"),
        (f"postgres://alice:Zq7x?{SECRET}@127.0.0.1:1/team", "refused"),
    ],
    ids=["port-letters", "port-empty", "password-at", "password-slash", "password-hash", "query"],
)
def test_a_mistyped_url_is_one_line_exit_2_and_never_its_password(url, says, capsys):
    _psycopg()
    assert main(["ledger", "ls", "--ledger", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenprint: error: ") and err.count("\n") == 1, err
    assert says in err.lower() and "Traceback" not in err
    assert "Secret" not in err, err  # neither the password nor its tail
    assert "alice:***@" in err


def test_a_host_that_never_answers_fails_in_seconds_not_for_ever(monkeypatch):
    """libpq waits for ever by default: a ledger on a stuck server hung ``gp.track`` and the CLI."""
    _psycopg()
    monkeypatch.setattr(sql_module, "CONNECT_TIMEOUT_S", 2)  # psycopg's least (10 s by default)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the TCP connection (the kernel does), never says a word
    port = silent.getsockname()[1]
    url = f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:{port}/team?sslmode=disable"
    outcome: list[BaseException | None] = []

    def open_it() -> None:
        try:
            Ledger(url, create=False)
            outcome.append(None)
        except BaseException as e:  # handed to the test's thread
            outcome.append(e)

    started = time.monotonic()
    worker = threading.Thread(target=open_it, daemon=True)
    worker.start()
    worker.join(30)
    silent.close()
    assert outcome, "opening a ledger on a server that never answers still waits after 30 s"
    assert isinstance(outcome[0], LedgerPathError), outcome[0]
    message = str(outcome[0])
    assert "timeout" in message and "connect_timeout" in message and SECRET not in message
    assert time.monotonic() - started < 15


def test_a_password_on_the_scripts_command_line_is_not_recorded(tmp_path):
    """``python train.py --ledger postgresql://alice:pw@...`` (a script given its ledger) stored
    the password in the run's ``command``: ``ledger show``, exports and reports printed it."""
    import greenprint as gp

    command = f"train.py --ledger 'postgresql+psycopg://alice:{SECRET}@db/team' --lr 0.1"
    with gp.track("argv", ledger=tmp_path / "l.db", command=command) as run:
        pass
    stored = Ledger(tmp_path / "l.db").run(run.id).command
    assert stored == "train.py --ledger 'postgresql+psycopg://alice:***@db/team' --lr 0.1"


def _node_run(path, run_id, *, status="finished", energy_kwh=0.5, host="node-a"):
    """One ended run in a node's own SQLite ledger (as gp.track leaves it)."""
    from greenprint import RunRecord

    with Ledger(path) as led:
        led.start_run(RunRecord(id=run_id, name=run_id, study="s", host=host, started_at=1e9))
        led.flush(run_id, fields={"status": status, "energy_kwh": energy_kwh, "ended_at": 1e9 + 60})


def test_a_role_given_in_the_merged_ledger_survives_merging_the_node_files_again(tmp_path, capsys):
    """merge, ``ledger set-role`` on the merged ledger (a failed attempt made a part of its
    rerun), then the node files merged again with a new run: each role given was a conflict
    ('role, parent_id, contained differ') and nothing was written, new runs included."""
    a, b, merged = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "all.db"
    _node_run(a, "rerun", energy_kwh=0.5)
    _node_run(b, "attempt", status="failed", energy_kwh=0.25, host="node-b")
    with Ledger(merged) as led:
        assert led.merge(a, b).added == 2
        led.set_role("part", "attempt", part_of="rerun")
    _node_run(a, "next", energy_kwh=1.0)  # the nodes go on
    with Ledger(merged) as led:
        summary = led.merge(a, b)
        assert (summary.added, summary.unchanged, summary.roles_kept) == (1, 2, 1)
        attempt = led.run("attempt")
        assert (attempt.role, attempt.parent_id, attempt.contained) == ("part", "rerun", False)
        assert sum(r.energy_kwh for r in led.runs()) == 1.75  # nothing counted twice or lost
    from greenprint.cli import main

    assert main(["ledger", "merge", str(merged), str(a), str(b)]) == 0  # the command says so
    assert "3 already there, 1 of them with the role given here kept" in capsys.readouterr().out
    _node_run(b, "attempt2", status="failed", host="node-b")
    with Ledger(b) as led:  # another final cost is still a conflict, roles or not
        led.flush("attempt2", fields={"energy_kwh": 9.0})
    with Ledger(merged) as led:
        led.merge(b)
        led.set_role("baseline", "attempt2")
    with Ledger(b) as led:
        led.flush("attempt2", fields={"energy_kwh": 8.0})
    with Ledger(merged) as led, pytest.raises(gp_errors.MergeConflictError, match="energy_kwh"):
        led.merge(b)


def test_trials_run_one_after_another_under_an_exported_job_id_are_trials():
    """``export GREENPRINT_JOB_ID=exp7`` in a batch script, then ``python trial.py`` three times
    (lr 0.1, 0.2, then 0.3 failing): each process metered the node (a job's run with no rank),
    one after another. The report read '1 trial (1 finished)', the failed trial a part of it."""
    from greenprint import MetricPoint, RunRecord
    from greenprint.analysis import price_tag

    runs = [
        RunRecord(
            id=f"t{k}",
            name=f"lr=0.{k}",
            host="vm",
            job_id="exp7",
            node_meter=True,
            scope="machine",
            role="trial",
            status="failed" if k == 3 else "finished",
            started_at=10.0 * k,
            ended_at=10.0 * k + 1.0,
            energy_kwh=float(k),
            params={"lr": k / 10},
            metrics=(MetricPoint("loss", 1.0 + k),),
        )
        for k in (1, 2, 3)
    ]
    tag = price_tag(runs)
    assert tag.total.trials == 3 and tag.total.energy_kwh == 6.0
    assert (tag.by_status["finished"].trials, tag.by_status["finished"].energy_kwh) == (2, 3.0)
    assert (tag.by_status["failed"].trials, tag.by_status["failed"].energy_kwh) == (1, 3.0)
    # two of them at the same time: one's machine reading holds the other's run, as before
    runs[1] = dataclasses.replace(runs[1], started_at=10.5, ended_at=11.5)
    assert price_tag(runs).total.trials == 1


def test_a_run_saved_apart_merged_twice_changes_nothing(tmp_path):
    """A PostgreSQL server stopped mid-run: the run was saved apart and the warning gave
    ``greenprint ledger merge LEDGER_URL greenprint-unsaved-<id>.db``. Run once, it stored the
    run (its samples end to end); run again, it failed: '1 run(s) differ: samples differ'."""
    from greenprint import MetricPoint, PowerSample, RunRecord

    team, apart = tmp_path / "team.db", tmp_path / "greenprint-unsaved-r1.db"
    record = RunRecord(id="r1", name="long", study="down", host="vm", started_at=1e9)
    first = MetricPoint("loss", 1.0, time=1e9 + 1)
    with Ledger(team) as led:  # the run's first flush, then the server went away
        led.start_run(record)
        fields = {"heartbeat_at": 1e9 + 1, "energy_kwh": 1e-4}
        led.flush("r1", fields=fields, metrics=[first], samples=[PowerSample(1e9, 1e9 + 1, 10.0)])
    with Ledger(apart) as led:  # what the tracker saved apart at its end
        led.start_run(record)
        led.flush(
            "r1",
            fields={"status": "finished", "ended_at": 1e9 + 4, "energy_kwh": 4e-4},
            metrics=[first, MetricPoint("loss", 0.5, time=1e9 + 4)],
            samples=[PowerSample(1e9 + 1, 1e9 + 2, 10.0), PowerSample(1e9 + 2, 1e9 + 4, 10.0)],
        )
    with Ledger(team) as led:
        assert led.merge(apart).updated == 1
        again = led.merge(apart)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
        assert [s.t0 - 1e9 for s in led.samples("r1")] == [0.0, 1.0, 2.0]
        assert led.run("r1").status == "finished"
