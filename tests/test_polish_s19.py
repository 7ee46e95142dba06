"""Loose ends a user met (session 19), each checked as the user meets it.

Every test runs in an empty working directory with no greenprint configuration above it and no
``GREENPRINT_*`` variable (:func:`_clean_env.clean_env` for the subprocesses).

1. ``greenprint ledger set-role ROLE A B C`` writes the roles in one transaction: when the
   ledger refuses the write of B (a database trigger here), A is not left changed; one line on
   stderr, exit 2. SQLite and PostgreSQL.
2. Ctrl-C during a scikit-learn search's refit: every candidate had been scored (scikit-learn
   sets ``cv_results_`` only after the refit); the trials keep their scores, the refit reads
   ``interrupted``. Before, each trial read "stopped before this candidate was scored".
3. ``greenprint run`` stopped by SIGTERM: "SIGTERM, which killed the command" when the signal
   greenprint forwarded killed it (it said "SIGTERM, then killed by SIGTERM"); both facts when
   they differ ("SIGTERM, then exit status 1").
4. The final model's share of the study's energy is said in one form by the price tag and the
   compute statement, in every format: "1/129,134" (the statement said "0.00077%" beside the
   price tag's "1/129134"), "40.2%" from a tenth on.
"""

from __future__ import annotations

import html
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, in_every_format, report_text, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from greenprint._records import MetricPoint, RunRecord

# ---------------------------------------------------------------------------- 1. set-role


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


# ---------------------------------------------------------------------------- 2. refit Ctrl-C
REFIT_CTRL_C_SCRIPT = """
import sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from greenprint.integrations.sklearn import track_search

WHEN = sys.argv[1]  # "refit": Ctrl-C in the refit; "fit7": in the third candidate's first fold
FITS = [0]


class Model(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        FITS[0] += 1
        if (WHEN == "refit" and len(X) == len(y_all)) or (WHEN == "fit7" and FITS[0] == 7):
            raise KeyboardInterrupt  # the user presses Ctrl-C
        return super().fit(X, y, sample_weight)


X, y_all = load_iris(return_X_y=True)
search = GridSearchCV(Model(max_iter=300), {"C": [0.01, 0.1, 1.0]}, cv=3)
WHEN, armed = "", WHEN
search.fit(X, y_all)  # fitted once before, as in a notebook: its results are not this fit's
print(" ".join(str(float(v)) for v in search.cv_results_["mean_test_score"]), flush=True)
WHEN, FITS[0] = armed, 0
track_search(search, X, y_all, study="stopped")
"""


def _refit_stopped(tmp_path_factory: pytest.TempPathFactory, when: str) -> tuple[Path, Any]:
    home = _empty(tmp_path_factory, f"refit-{when}")
    (home / "search.py").write_text(REFIT_CTRL_C_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py", when)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr, done.stderr
    return home, done


def test_a_ctrl_c_in_a_search_refit_keeps_every_candidate_score(tmp_path_factory):
    pytest.importorskip("sklearn")
    home, done = _refit_stopped(tmp_path_factory, "refit")
    scores = [float(v) for v in done.stdout.split()]
    report = _report(home, "--no-plots")  # every format's text; no plot is checked
    trials = sorted((r for r in report["runs"] if r["role"] == "trial"), key=lambda r: r["name"])
    assert [(t["status"], t["error"]) for t in trials] == [("finished", None)] * 3
    assert [t["score"] for t in trials] == pytest.approx(scores)  # cv_results_'s, this fit's
    (refit,) = [r for r in report["runs"] if r["name"].endswith("-refit")]
    assert (refit["role"], refit["status"], refit["error"]) == (
        "final", "interrupted", "KeyboardInterrupt")  # fmt: skip
    folds = [r for r in report["runs"] if r["role"] == "part"]
    assert len(folds) == 9 and all(f["score"] is not None for f in folds)
    # the best trial stands for the model the refit did not finish
    best = max(trials, key=lambda t: t["score"])
    assert report["price_tag"]["final"]["run_id"] == best["id"]
    in_every_format(home, "3 trials (3 finished)")
    for fmt in ("md", "html", "latex"):
        assert "before this candidate was scored" not in report_text(home, fmt)


def test_a_ctrl_c_among_the_candidates_of_a_search_fitted_before_keeps_no_old_score(
    tmp_path_factory,
):
    """The search's results of its earlier fit are not taken for this fit's."""
    pytest.importorskip("sklearn")
    home, _ = _refit_stopped(tmp_path_factory, "fit7")
    report = _report(home, "--format", "json", "--no-plots")
    trials = [r for r in report["runs"] if r["role"] == "trial"]
    assert len(trials) == 3
    for trial in trials:
        assert (trial["status"], trial["score"]) == ("interrupted", None)
        assert trial["error"] == (
            "KeyboardInterrupt (the search stopped before this candidate was scored)"
        )


# ---------------------------------------------------------------------------- 3. SIGTERM text
#: A command that prints a line, then waits; with "exit1" it answers SIGTERM with exit status 1.
WAITER = """
import signal, sys, time
if sys.argv[1:] == ["exit1"]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
print("up", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("how", "said", "status"),
    [
        ("dies", "SIGTERM, which killed the command", 128 + signal.SIGTERM),
        ("exit1", "SIGTERM, then exit status 1", 1),
    ],
)
def test_a_sigterm_greenprint_forwarded_is_said_once(tmp_path_factory, how, said, status):
    home = _empty(tmp_path_factory, "sigterm")
    (home / "wait.py").write_text(WAITER, encoding="utf-8")
    proc = subprocess.Popen(
        [GREENPRINT, "run", "--name", "trainer", "--", sys.executable, "wait.py", how],
        cwd=home, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        proc.send_signal(signal.SIGTERM)  # kill <greenprint pid>, as docker stop does
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert f"interrupted ({said}) in " in err and "then killed by" not in err
    with gp.Ledger(home / "greenprint.db", create=False) as led:
        (run,) = led.runs()
    assert (run.status, run.error) == ("interrupted", said)


# ---------------------------------------------------------------------------- 4. final's share
def _study_with_final(home: Path, final_kwh: float, trials_kwh: float) -> None:
    """Two trials and a final run (role given) in ``home/greenprint.db``: energy in kWh."""
    now = 1_764_000_000.0
    with gp.Ledger(home / "greenprint.db") as led:
        for i, (name, role, kwh, score) in enumerate(
            [("lr=0.1", None, trials_kwh / 2, 0.8), ("lr=0.01", None, trials_kwh / 2, 0.9),
             ("final", "final", final_kwh, 0.91)]
        ):  # fmt: skip
            led.start_run(
                RunRecord(
                    id=f"{i:04d}" + "a" * 28, name=name, study="s", status="finished", role=role,
                    started_at=now + 100 * i, ended_at=now + 100 * i + 60, duration_s=60.0,
                    energy_kwh=kwh, emissions_kg=kwh * 0.4,
                    metrics=(MetricPoint("accuracy", score, None, now + 100 * i + 60),),
                )
            )  # fmt: skip


@pytest.mark.parametrize(
    ("final_kwh", "trials_kwh", "said", "multiple"),
    # 40.2%: the study is 100/40.2 = 2.4876x its final model, said with the percent's three
    # figures (it read "2x" until session 23's format_multiple)
    [(0.001, 129.133, "1/129,134", "129,134x"), (40.2, 59.8, "40.2%", "2.49x")],
)
def test_the_final_model_share_is_said_in_one_form(
    tmp_path_factory, final_kwh, trials_kwh, said, multiple
):
    home = _empty(tmp_path_factory, "final-share")
    _study_with_final(home, final_kwh, trials_kwh)
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--out", "rep", "--no-plots")
    assert done.returncode == 0, done.stderr
    for fmt in ("md", "html", "latex"):
        page = report_text(home, fmt).replace("\\%", "%")  # LaTeX writes \% for %
        page = html.unescape(page) if fmt == "html" else page  # &#x27; for '
        assert f": {said} of the whole study's energy (" in page, fmt  # the price tag
        assert f"of run time, {said} of the study's energy." in page, fmt  # compute statement
        if fmt != "latex":  # the headline's ratio (the LaTeX report has no headline list)
            assert f"{multiple} the energy" in page, fmt
        assert "0.00077" not in page and "1/129134" not in page
    statement = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    assert f", {said} of the study's energy." in json.dumps(statement, ensure_ascii=False)


# ------------------------------------------------------------- 5. a study with no hardware
def test_a_study_that_recorded_no_hardware_says_so_in_its_compute_statement(tmp_path_factory):
    """Runs written without the machine's description (a ledger merged from an older
    greenprint, records built by a script): the statement read "..., every one counted in the
    totals that follow, on unknown (the runs recorded no hardware)."."""
    home = _empty(tmp_path_factory, "no-hardware")
    _study_with_final(home, 0.001, 0.002)
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--out", "rep", "--no-plots")
    assert done.returncode == 0, done.stderr
    said = "every one counted in the totals that follow, on hardware the runs did not record."
    in_every_format(home, said)
    assert "on unknown" not in report_text(home, "md")


# ------------------------------------------------- 6. the JSON price tag's roles note, counted
REPEATS = """
import greenprint as gp

for lr in (0.01, 0.1, 0.3):
    with gp.track(f"lr={lr}", study="s", params={"lr": lr}) as trial:
        for seed in (0, 1):
            with gp.track(f"lr={lr}-seed{seed}", study="s", params={"lr": lr, "seed": seed}) as r:
                r.log(acc=0.7 + lr / 10 + seed / 100)
        if lr != 0.3:
            trial.log(acc=0.8 + lr / 10)
"""


def test_the_json_price_tags_roles_note_counts_the_trials_as_the_report_does(tmp_path_factory):
    """The report's notes counted the trials that hold their repeats by where their score came
    from; the JSON price tag's ``roles.note`` (what a script reads) kept the general wording,
    'the trial scored by their mean'."""
    home = _empty(tmp_path_factory, "roles-note")
    done = run_in(home, sys.executable, "-c", REPEATS)
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "s", "--no-plots")
    note = report["price_tag"]["roles"]["note"]
    said = next(n for n in report["notes"] if "differ only by a seed or fold" in n)
    assert note in said or said in note, (note, said)
    assert "1 of them is scored by its parts' mean, 2 of them are scored by their own" in note


# ----------------------------------------- 7. a refit stopped under method="apportion"
APPORTION_REFIT_SCRIPT = """
import time
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import GridSearchCV
from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)


class Model(DummyClassifier):
    def fit(self, X, y, sample_weight=None):
        if len(X) == 150:  # the refit, on the whole data: a second, then the user's Ctrl-C
            time.sleep(1.0)
            raise KeyboardInterrupt
        return super().fit(X, y, sample_weight)


search = GridSearchCV(Model(), {"strategy": ["prior", "uniform", "stratified"]}, cv=3)
# sampled every 0.05 s: the search's reading (which the runs share) ends at the stop
track_search(search, X, y, study="s", method="apportion", sample_interval_s=0.05)
"""


def test_a_refit_stopped_under_apportion_keeps_its_share_of_the_search(tmp_path_factory):
    """``method="apportion"`` shares the search's measured cost by fit and score times, the
    refit's from scikit-learn's ``refit_time_``, which a Ctrl-C in the refit never sets: the
    refit read a share of 0 and the candidates took its second of energy. It is now timed from
    the candidates' end to the stop."""
    home = _empty(tmp_path_factory, "apportion-refit")
    (home / "search.py").write_text(APPORTION_REFIT_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr, done.stderr
    with gp.Ledger(home / "greenprint.db", create=False) as led:
        runs = led.runs(study="s")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    (refit,) = [r for r in runs if r.role == "final"]
    trials = [r for r in runs if r.role == "trial"]
    assert refit.status == "interrupted" and len(trials) == 3
    share = float(refit.provenance["trial"].split()[1])  # "apportioned: 0.8 of the search's..."
    # nine fits of a dummy classifier take a millisecond or so each; the refit ran a second:
    # most of the search's time (it read 0 before)
    assert 0.5 < share < 1.0
    # the shares are of one reading of the search, taken as the stop reached greenprint: the
    # refit's and the trials' energies add up to it, a little under the sweep's final figure
    shared = refit.energy_kwh + sum(t.energy_kwh for t in trials)
    assert refit.energy_kwh == pytest.approx(share * shared, rel=1e-3)
    # (equal at most: the shares' sum may round a last digit above, 8.0833084632558480e-08
    # against ...847e-08 once)
    assert 0 < shared <= sweep.energy_kwh * (1 + 1e-12)
