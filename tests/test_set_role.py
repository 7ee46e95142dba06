"""``greenprint ledger set-role``: roles given afterwards to a study already run, from the CLI.

A new user's study, run as four invocations of one script in an empty directory (no role given
anywhere): a majority baseline, a configuration that crashed, the same configuration run again,
and another configuration. The report reads 4 trials (the baseline by its name, and a failed
trial that counts as the worst score); its notes name the baseline. Two commands fix it without
running anything again: one trial per configuration, the baseline a reference line, the cost
the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty

SCRIPT = """
import sys
import greenprint as gp

what = sys.argv[1]
if what == "baseline":
    with gp.track("majority-baseline", study="search", params={"model": "majority"}) as run:
        run.log(val_acc=0.1)
else:
    with gp.track(f"lr={what}", study="search", params={"lr": float(what)}) as run:
        run.log(val_acc=0.5, step=0)
        if sys.argv[2:] == ["crash"]:
            raise RuntimeError("CUDA out of memory")
        run.log(val_acc=0.9 if what == "0.1" else 0.8, step=1)
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The four invocations in an empty directory; their run ids by what they ran."""
    home = _empty(tmp_path_factory, "set-role")
    (home / "train.py").write_text(SCRIPT, encoding="utf-8")
    ids = {}
    for what in ("baseline", "0.1 crash", "0.1", "0.01"):
        done = run_in(home, sys.executable, "train.py", *what.split())
        assert done.returncode == (1 if "crash" in what else 0), done.stderr
        with gp.Ledger(home / "greenprint.db", create=False) as led:
            ids[what] = max(led.runs(study="search"), key=lambda r: r.started_at).id
    with gp.Ledger(home / "greenprint.db") as led, gp.track("x", study="other", ledger=led) as run:
        pass  # a run of another study
    ids["other"] = run.id
    ids["home"] = str(home)
    return ids


def _roles(home: str) -> dict[str, tuple[str | None, str | None, bool | None]]:
    with gp.Ledger(f"{home}/greenprint.db", create=False) as led:
        return {r.id: (r.role, r.parent_id, r.contained) for r in led.runs()}


def test_roles_given_afterwards_make_the_report_read_the_study_right(study):
    home = Path(study["home"])
    # the reports' JSON is what is read (their figures' data in it): no figure drawn
    before = _report(home, "--study", "search", "--no-plots")
    assert before["price_tag"]["total"]["trials"] == 4
    assert any("majority-baseline" in note for note in before["notes"])
    failed, rerun = study["0.1 crash"], study["0.1"]
    # the crashed configuration and its rerun: named, with the command that links them
    command = f"greenprint ledger set-role part {failed[:8]} --part-of {rerun[:8]}"
    assert any(
        "1 trial that did not finish had a later run of the same name and params" in note
        and command in note
        for note in before["notes"]
    ), before["notes"]

    done = run_in(home, GREENPRINT, "ledger", "set-role", "baseline", study["baseline"][:8])
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"run {study['baseline'][:8]} majority-baseline (study search): role (none given, "
        "read as trial) -> baseline\n"
    )
    done = run_in(
        home, GREENPRINT, "ledger", "set-role", "part", failed[:8], "--part-of", rerun[:8]
    )
    assert done.returncode == 0, done.stderr
    assert f"role (none given, read as trial) -> part, part of run {rerun[:8]}" in done.stdout

    # ledger show says so (it showed no role at all)
    shown = run_in(home, GREENPRINT, "ledger", "show", failed[:8]).stdout
    assert "  role                    part\n" in shown
    assert f"  parent                  {rerun} (measured apart: its cost adds)\n" in shown
    shown = run_in(home, GREENPRINT, "ledger", "show", study["0.01"][:8]).stdout
    assert "  role                    - (none given: a report infers it" in shown

    after = _report(home, "--study", "search", "--no-plots")
    tag = after["price_tag"]
    assert tag["total"]["trials"] == 2  # one per configuration
    assert tag["by_role"]["baseline"]["runs"] == 1
    # nothing was run again: the same cost, the failed attempt's counted once, in its trial's
    assert tag["total"]["energy_kwh"] == pytest.approx(before["price_tag"]["total"]["energy_kwh"])
    assert tag["total"]["runs"] == 4
    rows = {row["id"]: row for row in after["runs"]}
    assert (rows[failed]["role"], rows[failed]["parent_id"]) == ("part", rerun)
    assert rows[failed]["is_trial"] is False and rows[rerun]["is_trial"] is True
    assert after["price_tag"]["final"]["run_id"] == rerun  # 0.9, a trial
    assert not any("majority-baseline" in note or "later run" in note for note in after["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["basline", "{baseline}"],
            "unknown run role 'basline'; did you mean 'baseline'? Roles: trial, part, baseline",
        ),
        (["part", "{0.01}"], "has no parent: a part belongs to a run"),
        (["trial", "{0.01}", "--part-of", "{0.1}"], "--part-of gives role 'part', not 'trial'"),
        (["part", "{0.1}", "--part-of", "{0.1}"], "a run cannot be a part of itself"),
        (["part", "{0.01}", "--part-of", "{other}"], "a part belongs to a run of its own study"),
        (["baseline", "{0.01}", "{0.01}"], "a run is given twice"),
        (["baseline", "{0.01}", "zzzz9999"], "no run with id 'zzzz9999'"),
        # the role forgotten: the run id where the role goes (not click's "Missing argument")
        (
            ["{0.01}"],
            "missing the run role before run '{0.01}': greenprint ledger set-role ROLE {0.01}; "
            "roles: trial, part, baseline, final, learning-curve, sweep, greener",
        ),
        ([], "missing the run role and the runs: greenprint ledger set-role ROLE RUN_ID...; roles"),
        (["baseline"], "no run given role 'baseline': greenprint ledger set-role baseline RUN_ID"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(study, args, message):
    home = study["home"]
    before = _roles(home)
    args = [study[a[1:-1]] if a.startswith("{") else a for a in args]
    message = message.replace("{0.01}", study["0.01"])
    done = run_in(Path(home), GREENPRINT, "ledger", "set-role", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _roles(home) == before


def test_a_run_still_running_is_refused_and_one_that_ended_is_given_its_role(tmp_path):
    """The API, as the CLI calls it: a running run's tracker writes its role (refused, with how
    to give it); once ended, set; a run measured inside its parent cannot move to another."""
    led = gp.Ledger(tmp_path / "gp.db")
    run = gp.track("fold-0", study="cv", ledger=led).start()
    with pytest.raises(gp.ConfigError, match=r"still running: .* run.set\(role=...\)"):
        led.set_role("part", run.id, part_of=run.id)
    run.stop()
    with gp.track("trial-a", study="cv", ledger=led) as a:
        with gp.track("fold-1", study="cv", ledger=led) as inner:
            pass
    with gp.track("trial-b", study="cv", ledger=led) as b:
        pass
    (fold,) = led.set_role("part", run.id, part_of=a.id)
    assert (fold.role, fold.parent_id, fold.contained) == ("part", a.id, False)
    with pytest.raises(gp.ConfigError, match="measured inside its parent run"):
        led.set_role("part", inner.id, part_of=b.id)
    (same,) = led.set_role("part", inner.id, part_of=a.id)  # its parent already: kept as is
    assert (same.parent_id, same.contained) == (a.id, inner.record.contained)
    with pytest.raises(gp.ConfigError, match="at least one run id"):
        led.set_role("trial")
    led.close()


def test_the_rerun_note_names_only_an_unfinished_trial_and_a_later_one_of_its_configuration():
    """The note pairs a trial that failed, was interrupted or lost with the first trial started
    after it of the same name and params; another name, other params, an earlier run, a
    finished first run or a role given: no pair."""
    from greenprint.analysis import resolve_roles

    def trial(rid: str, name: str, started: float, status: str = "finished", **params):
        return gp.RunRecord(
            id=rid, name=name, study="s", status=status, started_at=started, params=params
        )

    runs = [
        trial("a1", "lr=0.1", 1, "failed", lr=0.1),
        trial("a0", "lr=0.1", 0, lr=0.1),  # before it: not its rerun
        trial("a2", "lr=0.1", 2, lr=0.1),  # the first after it
        trial("a3", "lr=0.1", 3, lr=0.1),
        trial("b1", "lr=0.2", 1, "lost", lr=0.2),
        trial("b2", "lr=0.2", 2, lr=0.2, seed=1),  # other params
        trial("c1", "c", 1, "interrupted", lr=0.3),
        trial("c2", "other", 2, lr=0.3),  # another name
        trial("d1", "d", 1, lr=0.4),  # finished first
        trial("d2", "d", 2, lr=0.4),
    ]
    assert resolve_roles(runs).reruns == (("a1", "a2"),)
    roled = gp.RunRecord(
        id="a1", name="lr=0.1", study="s", status="failed", started_at=1, params={"lr": 0.1},
        role="trial",
    )  # fmt: skip
    assert resolve_roles([roled, runs[2]]).reruns == ()


def test_the_rerun_note_is_not_quadratic_in_trials_of_one_name():
    """30,000 trials all named "run" (a generic name), one in ten failed and run again: each
    failed one is paired with its own rerun (comparing each failed trial with every trial of
    its name took 11 s of CPU under load, 100,000 runs minutes; benchmarks/bench_analysis.py
    times it now)."""
    from greenprint.analysis import resolve_roles

    runs = [
        gp.RunRecord(
            id=f"{i:08d}",
            name="run",
            study="s",
            status="failed" if i % 20 == 0 else "finished",
            started_at=float(i),
            params={"lr": i // 2, "seed": 0} if i % 2 else {"seed": 0, "lr": i // 2},
        )
        for i in range(30_000)
    ]
    roles = resolve_roles(runs)
    roles.trials  # noqa: B018 - computed apart from the note
    reruns = roles.reruns  # its CPU time: benchmarks/bench_analysis.py (< 2 s)
    # each configuration ran twice (its params in another order the second time): the failed
    # first run's rerun is the second
    assert reruns == tuple((f"{i:08d}", f"{i + 1:08d}") for i in range(0, 30_000, 20))


def test_a_run_holding_trials_is_not_made_a_part_until_it_is_given_role_trial(tmp_path, capsys):
    """A search run again after its driver crashed: making the crashed search's sweep a part of
    the new one took its 2 finished trials out of the trials (5 -> 3), nothing said, and no
    command gives a parent back. Refused (one line, exit 2, nothing written), naming them and
    the command that says they are its parts; after that command, allowed."""
    from greenprint.analysis import resolve_roles
    from greenprint.cli import main

    db = str(tmp_path / "gp.db")
    ids = {}
    with gp.Ledger(db) as led:
        for attempt, count in (("crashed", 2), ("again", 3)):
            with gp.track("search", study="s", ledger=led) as sweep:
                for i in range(count):
                    with gp.track(f"t{i}", study="s", ledger=led, params={"lr": i}) as t:
                        t.log(acc=0.5 + i / 10)
            ids[attempt] = sweep.id
        assert len(resolve_roles(led.runs(study="s")).trials) == 5
        stored = {r.id: (r.role, r.parent_id) for r in led.runs()}

    crashed, again = ids["crashed"][:8], ids["again"][:8]
    assert main(["ledger", "set-role", "part", crashed, "--part-of", again, "--ledger", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"greenprint: error: run {crashed} (search) holds 2 runs read as trials")
    assert f"give it role trial first (greenprint ledger set-role trial {crashed})" in err
    assert len(err.strip().splitlines()) == 1
    with gp.Ledger(db) as led:
        assert {r.id: (r.role, r.parent_id) for r in led.runs()} == stored
        assert len(resolve_roles(led.runs(study="s")).trials) == 5

    # said to be one trial (its runs its parts), it can become a part of the new search
    assert main(["ledger", "set-role", "trial", crashed, "--ledger", db]) == 0
    assert main(["ledger", "set-role", "part", crashed, "--part-of", again, "--ledger", db]) == 0
    with gp.Ledger(db) as led:
        assert (led.run(crashed).role, led.run(crashed).parent_id) == ("part", ids["again"])


def test_the_rerun_note_names_no_trial_measured_inside_its_parent():
    """A script whose sweep runs its trials in its own process, crashed in a trial and run
    again: the failed trial is inside the crashed sweep (its cost in the sweep's), and
    set-role refuses to make it a part of another run; the note named it with that command
    (exit 2 when followed). A trial measured apart from its parent is still named."""
    from greenprint.analysis import resolve_roles

    def run(rid: str, started: float, status: str = "finished", **fields):
        return gp.RunRecord(
            id=rid, name=fields.pop("name", "lr=1"), study="s", status=status,
            started_at=started, params=fields.pop("params", {"lr": 1}), **fields,
        )  # fmt: skip

    runs = [
        run("sweep-1", 0, "failed", name="search", params={}),
        run("trial-1", 1, "failed", parent_id="sweep-1", contained=True),
        run("sweep-2", 2, name="search", params={}),
        run("trial-2", 3, parent_id="sweep-2", contained=True),
    ]
    assert resolve_roles(runs).reruns == ()
    apart = [*runs[:1], run("trial-1", 1, "failed", parent_id="sweep-1", contained=False)]
    assert resolve_roles([*apart, *runs[2:]]).reruns == (("trial-1", "trial-2"),)
