"""Outside check s41: a team's study beyond one machine, a PostgreSQL ledger shared by workers.

The study as a team runs it from the README and docs: a PostgreSQL ledger (a real server, the
``pg_server`` fixture), Optuna workers launched with ``greenprint run`` into it, a Ray Tune sweep
(``tests/integrations/test_ray.py``: the cluster is that module's), a baseline and a retrained
final run, ``greenprint report`` and the exports. What it found wrong is tested here where it
is Optuna's (Ray Tune's beside the other Ray tests, on their cluster).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, export_reads_as_the_report, run_in
from integrations._frameworks import need_installed

#: A search script as a team member writes it from docs/integrations.md (Optuna), its ledger the
#: team's PostgreSQL URL (the first argument), its study in a shared Optuna storage.
SEARCH = """
import sys
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(study_name="team", storage="sqlite:///optuna.db", load_if_exists=True)
cb = GreenprintCallback(ledger=sys.argv[1])
study.optimize(cb.track(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2), n_trials=2,
               callbacks=[cb])
print("searched", len(study.trials))
"""


@pytest.mark.postgres
def test_a_mistyped_postgresql_url_stops_the_search_before_its_first_trial(
    tmp_path_factory: pytest.TempPathFactory, pg_server: object
) -> None:
    """``GreenprintCallback(ledger=".../teem?...")`` for the team's ``.../team``: a database
    that does not exist on the server.

    The callback checked a path but never reached a server: it was accepted, the first trial's
    run raised ``LedgerPathError`` inside ``study.optimize`` (Optuna printed it twice with its
    traceback), left that trial ``FAIL`` in the team's shared Optuna storage, and ended the
    search. Now the callback connects where it is made and raises there: one exception, naming
    the URL (password masked) and what the server said, and no trial in Optuna's storage.
    """
    need_installed("optuna", "optuna")
    home = empty_home(tmp_path_factory, "s41-mistyped-url")
    (home / "search.py").write_text(SEARCH, encoding="utf-8")
    good = pg_server.new_database()  # type: ignore[attr-defined]
    bad = good.replace("/gp_test_", "/no_such_team_db_", 1)  # .../team for .../teem

    done = run_in(home, sys.executable, "search.py", bad)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("greenprint.LedgerPathError: cannot use ledger postgresql+psycopg://")
    assert 'database "no_such_team_db_' in last and '" does not exist' in last
    assert done.stderr.count("LedgerPathError") == 1  # raised once, not once per trial
    assert "Trial 0 failed" not in done.stderr
    with sqlite3.connect(home / "optuna.db") as db:
        assert db.execute("SELECT count(*) FROM trials").fetchone() == (0,)

    # the right URL: the same script searches, every trial in the team's ledger
    done = run_in(home, sys.executable, "search.py", good)
    assert done.returncode == 0, done.stderr
    runs = gp.Ledger(good).runs(study="team")
    assert sorted((r.name, r.status) for r in runs) == [
        ("trial-0", "finished"),
        ("trial-1", "finished"),
    ]


@pytest.mark.postgres
def test_a_mistyped_postgresql_url_is_refused_by_every_integration_setup(
    tmp_path: Path, pg_server: object
) -> None:
    """The same check where any integration is set up (``check_run_options``): Optuna's here;
    a ledger this process already wrote to is left to fall back mid-study, as before."""
    need_installed("optuna", "optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    good = pg_server.new_database()  # type: ignore[attr-defined]
    bad = good.replace("/gp_test_", "/gp_missing_", 1)
    with pytest.raises(gp.LedgerPathError, match="does not exist"):
        GreenprintCallback(ledger=bad)
    GreenprintCallback(ledger=good)  # reached: taken
    GreenprintCallback(ledger=False)  # no ledger: nothing to reach
    GreenprintCallback(ledger=tmp_path / "gp.db")  # a path: checked as before, not created
    assert not (tmp_path / "gp.db").exists()


#: A search worker as the team launches it on each node (``greenprint run -- python
#: worker.py``): folds of a trial as its parts, trial 1 failing; run with ``crash``, it stops as
#: it starts (a worker whose storage or import failed), before any trial.
WORKER = """
import sys
if sys.argv[2:] == ["crash"]:
    sys.exit("could not open the study's storage")
import optuna
import greenprint as gp
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial):
    x = trial.suggest_float("x", -1, 1)
    if trial.number == 1:
        raise ValueError("diverged")
    losses = []
    for k in range(2):
        with gp.track(f"fold{k}", role="part") as fold:
            losses.append((x - 0.5) ** 2 + 0.1 * k)
            fold.log(value=losses[-1])
    return sum(losses) / 2


cb = GreenprintCallback(ledger=sys.argv[1])
study = optuna.create_study(study_name="team", storage="sqlite:///optuna.db", load_if_exists=True)
study.optimize(cb.track(objective), n_trials=3, callbacks=[cb], catch=(ValueError,))
"""


@pytest.mark.postgres
def test_a_search_worker_that_crashed_as_it_started_is_no_trial(
    tmp_path_factory: pytest.TempPathFactory, pg_server: object
) -> None:
    """Two workers of one search launched with ``greenprint run``, one crashing as it started.

    The crashed worker's run (no params, no score, no child, failed) was read as a trial: the
    team's report counted 16 trials, 2 failed, where Optuna ran 15, 1 failed, and drew the
    crash as one more worst score (no params.family) in the expected-best curves. Named as the
    other workers, whose runs hold the trials, it is read as a worker of the search that ran no
    trial (role sweep): its cost is the search's overhead, the failed runs list it with its
    error, and a note says how it was read.
    """
    need_installed("optuna", "optuna")
    home = empty_home(tmp_path_factory, "s41-crashed-worker")
    (home / "worker.py").write_text(WORKER, encoding="utf-8")
    url = pg_server.new_database()  # type: ignore[attr-defined]
    run = (GREENPRINT, "run", "--ledger", url, "--study", "team", "--", sys.executable)
    assert run_in(home, *run, "worker.py", url, "crash").returncode == 1
    done = run_in(home, *run, "worker.py", url)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(home / "optuna.db") as db:
        states = sorted(s for (s,) in db.execute("SELECT state FROM trials"))
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]

    done = run_in(home, GREENPRINT, "report", "--ledger", url, "--study", "team",
                  "--format", "json", "--no-plots", "--out", "rep")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 3  # Optuna's three
    assert {k: v["trials"] for k, v in tag["by_status"].items()} == {"finished": 2, "failed": 1}
    assert tag["roles"]["counts"] == {"trial": 3, "part": 4, "sweep": 2}
    crashed = next(r for r in report["runs"] if r["status"] == "failed" and r["role"] == "sweep")
    assert crashed["name"] == "worker.py" and not crashed["is_trial"]
    assert tag["by_status"]["failed"]["runs"] == 2  # the crash and trial 1, counted once each
    listed = [g["error"] for g in report["failures"]["groups"]]
    assert any("could not open the study's storage" in e for e in listed)
    assert any("ValueError: diverged" in e for e in listed)
    notes = " ".join(report["notes"])
    assert "read as a worker of the search that ran no trial, role sweep" in notes
    assert f"greenprint ledger set-role trial {crashed['id'][:8]}" in notes
    export_reads_as_the_report(home, "team", report, "--ledger", url)


def test_bits_per_byte_and_a_cross_entropy_are_minimised_by_their_names(home: Path) -> None:
    """A language model's search tracked by hand, its score ``val_bpb`` (bits per byte, as
    nanoGPT-style trainings log it), ``greenprint report`` given no ``--mode``: ``bpb`` and
    ``ce`` were no words of a loss, so the report maximised them and named the worst trial the
    final model. Now they are minimised by their names, with the note that says so."""
    from greenprint.report import build_report

    for name, lr, bpb in (("lr-1e-3", 1e-3, 1.12), ("lr-3e-3", 3e-3, 0.98), ("lr-1e-2", 1e-2, 1.4)):
        with gp.track(name, study="lm", ledger="gp.db", params={"lr": lr}) as run:
            run.log(val_bpb=bpb)
    report = build_report("gp.db", "lm")
    assert report.mode == "min"
    assert report.price_tag.final is not None and report.price_tag.final.name == "lr-3e-3"
    assert any("'val_bpb' is minimised: its name says lower is better" in n for n in report.notes)
