"""Session 24: the CLI reads a study the way the report does, quickly.

Each study is built as a user builds it (``gp.track``, ``greenprint run``, the CLI) in an empty
directory with a new user's environment where a process's behaviour is the point; the role
rules are checked on records too. Each test marked so failed before its fix:

* ``greenprint run -- python train.py`` around a script whose one ``gp.track`` run was killed
  (SIGKILL; the wrapper survives) read as a sweep holding one lost trial that cost nothing, the
  whole cost the sweep's overhead (failed before); now one trial, the wrapper's, whose cost it
  measured, the lost run its part, and the report says what happened; a script of several runs
  is still a sweep;
* ``greenprint ledger ls`` imported numpy and the analyses (0.2-0.4 s) to choose the metric it
  shows when a study logged several (failed before), and read every run of the study with every
  metric point for ``--status X`` (failed before); now the report's own choice, pure Python, over
  the runs it shows, a study read whole again only when a run shown must choose.
"""

from __future__ import annotations

import html
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import (
    GREENPRINT,
    cli_report,
    empty_home,
    export_reads_as_the_report,
    report_text,
    run_in,
)
from greenprint.analysis import resolve_roles
from greenprint.cli import main
from greenprint.ledger import Ledger


def _every_format(home: Path, text: str, *, note: bool = True) -> None:
    """``text`` stands in the Markdown, HTML (unescaped) and LaTeX reports (and, with ``note``,
    in a note of the JSON's)."""
    for fmt in ("md", "html", "latex"):
        page = report_text(home, fmt)
        assert text in (html.unescape(page) if fmt == "html" else page), (fmt, text)
    if note:
        notes = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))["notes"]
        assert any(text in n for n in notes), notes


# ------------------------------------------------------- a script killed under greenprint run
_KILLED_SCRIPT = """
    import os, signal
    import greenprint as gp

    {before}
    run = gp.track("train", params={{"lr": 0.1}})
    run.__enter__()
    sum(i * i for i in range(200_000))
    os.kill(os.getpid(), signal.SIGKILL)  # killed before its first flush (10 s)
"""


def _killed_study(tmp_path_factory, name: str, before: str = "") -> tuple[Path, dict]:
    """``greenprint run --study k -- python train.py`` whose script's last run is killed."""
    home = empty_home(tmp_path_factory, name)
    script = textwrap.dedent(_KILLED_SCRIPT.format(before=before))
    (home / "train.py").write_text(script, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "--study", "k", "--", sys.executable, "train.py")
    assert done.returncode == 137, done.stderr  # 128 + SIGKILL: the script's end, passed on
    assert "failed (killed by SIGKILL)" in done.stderr  # the wrapper survived and said so
    assert "Traceback" not in done.stderr
    return home, cli_report(home, "--study", "k", "--no-plots")


def test_a_script_killed_under_greenprint_run_is_one_trial_the_wrapper_measured(
    tmp_path_factory,
):
    """Failed before: the wrapper read as a sweep (1 trial, lost, 0 Wh; sweep overhead 100%)."""
    home, report = _killed_study(tmp_path_factory, "s24-killed")
    rows = {r["name"]: r for r in report["runs"]}
    wrapper, lost = rows["train.py"], rows["train"]
    assert lost["status"] == "lost" and lost["parent_id"] == wrapper["id"]
    assert (wrapper["status"], wrapper["error"]) == ("failed", "killed by SIGKILL")
    assert (wrapper["role"], wrapper["is_trial"], wrapper["role_inferred"]) == ("trial", True, True)
    assert (lost["role"], lost["is_trial"]) == ("part", False)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1 and tag["total"]["runs"] == 2
    assert tag["roles"]["counts"] == {"trial": 1, "part": 1}
    assert set(tag["by_role"]) == {"trial"}  # no sweep overhead
    # the one trial is the failed run, and it costs what the wrapper measured: all of it
    assert {s: v["trials"] for s, v in tag["by_status"].items()} == {"failed": 1, "lost": 0}
    assert wrapper["energy_kwh"] > 0
    assert tag["by_role"]["trial"]["energy_kwh"] == pytest.approx(tag["total"]["energy_kwh"])
    assert tag["total"]["energy_kwh"] == pytest.approx(wrapper["energy_kwh"])
    w, t = wrapper["id"][:8], lost["id"][:8]
    _every_format(home, "comprised 1 trial (1 failed) in 2 runs", note=False)
    _every_format(
        home,
        f"is read as one trial, not a sweep around one: the one run inside it, {t} ('train'), "
        "was lost (it stopped without recording its end: its process was killed) while "
        f"{w}, which measured it, went on; the trial costs what {w} measured, and the lost run "
        "is its part",
    )
    _every_format(home, f"run {w} ('train.py', failed: killed by SIGKILL) is read as one trial")
    export_reads_as_the_report(home, "k", report)


def test_a_killed_run_beside_another_keeps_the_sweep(tmp_path_factory):
    """A script that made a run before the one killed: a sweep of two trials, one lost."""
    before = 'with gp.track("warm", params={"lr": 0.01}) as w:\n        w.log(acc=0.5)'
    home, report = _killed_study(tmp_path_factory, "s24-killed-two", textwrap.dedent(before))
    rows = {r["name"]: r for r in report["runs"]}
    assert rows["train.py"]["role"] == "sweep"
    assert {rows["warm"]["role"], rows["train"]["role"]} == {"trial"}
    assert report["price_tag"]["total"]["trials"] == 2
    assert not any("read as one trial" in n for n in report["notes"])
    export_reads_as_the_report(home, "k", report)


def _run(run_id: str, **fields) -> gp.RunRecord:
    now = 1_700_000_000.0
    values = {"id": run_id, "name": run_id, "study": "s", "status": "finished",
              "started_at": now, "ended_at": now + 10, "duration_s": 10.0}  # fmt: skip
    values.update(fields)
    return gp.RunRecord(**values)


def test_the_wrapper_rule_holds_only_for_a_lost_run_measured_inside_a_run_that_went_on():
    """The rule's edges on records: a lost child that a wrapper measured makes it a trial;
    not a finished child, a child given a role, a child measured apart (``contained`` false),
    a wrapper lost too, two children, or a lost child that is a search of its own."""
    lost = {"status": "lost", "ended_at": None}
    cases = {
        "lost inside": ([_run("w", status="failed"), _run("c", parent_id="w", **lost)], "trial"),
        "finished": ([_run("w"), _run("c", parent_id="w")], "sweep"),
        "given": ([_run("w"), _run("c", parent_id="w", role="trial", **lost)], "sweep"),
        "apart": ([_run("w"), _run("c", parent_id="w", contained=False, **lost)], "sweep"),
        "wrapper lost": ([_run("w", **lost), _run("c", parent_id="w", **lost)], "sweep"),
        "two": ([_run("w"), _run("a", parent_id="w"), _run("c", parent_id="w", **lost)], "sweep"),
        "a search": (
            [_run("w"), _run("c", parent_id="w", **lost)]
            + [_run(f"t{k}", parent_id="c", params={"lr": k}) for k in (1, 2)],
            "sweep",
        ),
    }
    for case, (runs, expected) in cases.items():
        read = resolve_roles(runs)
        assert read.role_of("w") == expected, case
        assert (read.role_of("c") == "part") == (expected == "trial"), case
        assert ("is read as one trial" in (read.note or "")) == (expected == "trial"), case
    read = resolve_roles(cases["a search"][0])
    assert [read.role_of(t) for t in ("c", "t1", "t2")] == ["sweep", "trial", "trial"]


# ------------------------------------------------------------------------ ledger ls, quickly
def _ledger(path: Path, *, extra_study: bool = True) -> None:
    """Study ``cv``: trials scored by the mean of their folds' (which log ``train_loss``, then
    ``val_acc``), two failed trials logging ``train_loss`` and ``epoch`` only; study ``other``:
    runs logging one metric each."""
    now = time.time() - 3600

    def point(name: str, value: float) -> gp.MetricPoint:
        return gp.MetricPoint(name, value, 1, now)

    def at(start: float, study: str = "cv", *, length: float = 0.1, **fields) -> gp.RunRecord:
        return _run(fields.pop("run_id"), study=study, started_at=now + start,
                    ended_at=now + start + length, duration_s=length, **fields)  # fmt: skip

    runs = []
    for k in range(3):
        trial = f"trial{k:02d}" + "0" * 25
        runs.append(at(k, run_id=trial, length=0.9, params={"lr": 0.1 * (k + 1)}))
        for f in range(3):
            scores = (point("train_loss", 0.5), point("val_acc", 0.7 + f / 100))
            runs.append(at(k + 0.2 * (f + 1), run_id=f"fold{k}{f}" + "0" * 26, parent_id=trial,
                           params={"fold": f}, metrics=scores))  # fmt: skip
    for k in range(2):
        runs.append(at(10 + k, run_id=f"failed{k}" + "0" * 25, status="failed",
                       metrics=(point("train_loss", 2.0), point("epoch", 1.0))))  # fmt: skip
    if extra_study:
        for k in range(3):
            runs.append(at(20 + k, "other", run_id=f"other{k}" + "0" * 26,
                           metrics=(point("acc", 0.5),)))  # fmt: skip
    with Ledger(path) as led:
        for run in runs:
            led.start_run(run)


def test_ledger_ls_shows_the_reports_metric_for_the_runs_of_a_status(tmp_path, capsys):
    """``ls --status failed``: the failed trials logged ``train_loss`` first, but the report
    ranks ``cv`` by ``val_acc`` (its trials' folds'): the rows show ``train_loss`` only where
    the run logged no ``val_acc``, and a fold shows ``val_acc``, the report's metric."""
    db = tmp_path / "l.db"
    _ledger(db)
    from greenprint.report import build_report

    assert build_report(db, "cv").metric == "val_acc"
    assert main(["ledger", "ls", "--ledger", str(db), "--status", "finished", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    shown = {r["id"][:6]: (r["main_metric"] or {}).get("name") for r in listed}
    assert shown["fold00"] == "val_acc"  # it logged train_loss first: the report's metric wins
    assert shown["trial0"] is None and shown["other0"] == "acc"
    assert main(["ledger", "ls", "--ledger", str(db), "--study", "cv", "--status", "failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("train_loss=2" in line for line in lines[1:])


def test_ledger_ls_reads_only_the_runs_it_shows(tmp_path, capsys, monkeypatch):
    """Failed before: ``ls --status finished`` read every run of every study with every
    metric point. Now one read of the runs shown (their score points), and the study's other
    runs read only where a run shown logged two metrics or more: ``cv``, never ``other``."""
    db = tmp_path / "l.db"
    _ledger(db)
    reads: list[dict] = []
    real = Ledger._read

    def spy(self, **kwargs):  # the real read, its arguments noted
        reads.append(kwargs)
        return real(self, **kwargs)

    monkeypatch.setattr(Ledger, "_read", spy)
    assert main(["ledger", "ls", "--ledger", str(db), "--status", "finished", "--json"]) == 0
    capsys.readouterr()
    assert reads[0] == {"study": None, "status": ("finished",), "points": "score"}
    # then cv's runs of the other statuses only, each run read once (s25; was all of cv)
    others = ["failed", "interrupted", "lost", "pruned", "running"]
    assert reads[1:] == [{"study": "cv", "status": others, "points": "score"}]
    reads.clear()
    assert (
        main(["ledger", "ls", "--ledger", str(db), "--study", "other", "--status", "finished"]) == 0
    )
    assert reads == [{"study": "other", "status": ("finished",), "points": "score"}]
    reads.clear()
    assert main(["ledger", "ls", "--ledger", str(db)]) == 0  # every run shown: read once
    assert reads == [{"study": None, "status": None, "points": "score"}]


@pytest.mark.parametrize("status", [(), ("--status", "finished")])
def test_ledger_ls_imports_no_numpy(tmp_path_factory, status):
    """Failed before: a study that logged several metrics made ``ls`` import the report and
    the analyses, numpy with them (0.2-0.4 s on a small ledger); now none of them."""
    home = empty_home(tmp_path_factory, "s24-ls-imports")
    _ledger(home / "greenprint.db", extra_study=False)
    done = run_in(home, sys.executable, "-X", "importtime", "-m", "greenprint", "ledger", "ls",
                  *status)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fold00" in done.stdout and "val_acc=0.7" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    heavy = [m for m in imported if m.split(".")[0] == "numpy" or m.startswith(
        ("greenprint.analysis", "greenprint.report"))]  # fmt: skip
    assert heavy == [], heavy
    assert "greenprint._metric_choice" in imported  # the study's metric was chosen
