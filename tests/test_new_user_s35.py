"""What a new user met following the day's pages (session 35): pruned trials, the fallback ledger.

Each test runs greenprint as a stranger does: a script of theirs and the CLI in an empty
directory with a clean environment (``_report_cli.run_in``), reading what the command prints.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from _report_cli import GREENPRINT, empty_home, run_in

PRUNED_SCRIPT = """\
import greenprint as gp

with gp.track("patience", study="s35") as run:  # early stopping of the user's own
    for epoch in range(8):
        run.log(val_loss=1.0 / (epoch + 1), step=epoch)
    run.prune(step=7, by="patience 3 on val_loss")
with gp.track("logged", study="s35") as run:  # pruned without a step: its last logged one
    run.log(val_loss=0.5, step=4)
    run.prune()
with gp.track("bare", study="s35") as run:  # nothing to say where
    run.prune()
"""


def _ids(home) -> dict[str, str]:
    done = run_in(home, GREENPRINT, "ledger", "ls", "--json")
    assert done.returncode == 0, done.stderr
    return {r["name"]: r["id"] for r in json.loads(done.stdout)}


def _status_line(home, run_id: str) -> str:
    done = run_in(home, GREENPRINT, "ledger", "show", run_id[:8])
    assert done.returncode == 0, done.stderr
    return next(line.strip() for line in done.stdout.splitlines() if "status" in line)


def test_ledger_show_says_where_and_by_what_a_run_was_pruned(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``greenprint ledger show`` of a pruned run read ``status pruned``, its step and stopper
    only as raw provenance keys far below (``pruned_at_step 7``, ``pruned_by ...``, after the
    meters). Its status line now says it: ``pruned (at step 7, by patience 3 on val_loss)``,
    a step read from the logged metrics says so, a run that says nothing is ``pruned``."""
    home = empty_home(tmp_path_factory, "s35-show")
    (home / "train.py").write_text(PRUNED_SCRIPT)
    done = run_in(home, sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    ids = _ids(home)
    assert _status_line(home, ids["patience"]).split(None, 1)[1] == (
        "pruned (at step 7, by patience 3 on val_loss)"
    )
    assert _status_line(home, ids["logged"]).split(None, 1)[1] == (
        "pruned (at step 4, its last logged step)"
    )
    assert _status_line(home, ids["bare"]).split(None, 1)[1] == "pruned"


HALVING_SCRIPT = """\
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV
from sklearn.neighbors import KNeighborsClassifier

from greenprint.integrations.sklearn import track_search

X, y = load_digits(return_X_y=True)
search = HalvingGridSearchCV(
    KNeighborsClassifier(), {"n_neighbors": [1, 3, 5, 7]}, factor=2, min_resources=200, cv=2
)
track_search(search, X, y, study="halving")
"""


def test_ledger_show_names_a_halving_searchs_resources(tmp_path_factory: pytest.TempPathFactory):
    """A candidate a halving search dropped is shown with its unit and the full amount:
    ``pruned (at 200 resources of 800, by HalvingGridSearchCV)``."""
    pytest.importorskip("sklearn")
    home = empty_home(tmp_path_factory, "s35-halving")
    (home / "search.py").write_text(HALVING_SCRIPT)
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--json", "--status", "pruned")
    pruned = json.loads(listed.stdout)
    assert pruned, listed.stdout
    for r in pruned:  # the unit as the search records it ("resources", its step_unit)
        status = _status_line(home, r["id"]).split(None, 1)[1]
        shape = r"pruned \(at [\d,]+ [\w ]*resources of [\d,]+, by HalvingGridSearchCV\)"
        assert re.fullmatch(shape, status), status


def test_run_prune_misused_says_so_in_one_line(tmp_path):
    """``run.prune()`` after the run ended changed nothing in the ledger but the run object's
    provenance (a finished run kept ``finished`` with a ``pruned_at_step`` in memory only), and a
    second call with another step or stopper silently replaced the first's. Both raise now,
    naming what was recorded; a repeat that says nothing new is harmless; bad values raise
    ``ConfigError`` at the call."""
    import greenprint as gp

    db = tmp_path / "gp.db"
    with gp.track("patience", study="s35", ledger=db) as run:
        with pytest.raises(gp.ConfigError, match=r"^step must be a finite number >= 0, not -1$"):
            run.prune(step=-1)
        with pytest.raises(gp.ConfigError, match=r"^by must be a non-empty string, not 3$"):
            run.prune(by=3)  # type: ignore[arg-type]
        run.prune(step=3, by="patience 3 on val_loss")
        run.prune(step=3)  # the same again: nothing new, nothing lost
        with pytest.raises(gp.GreenprintError) as twice:
            run.prune(step=4, by="patience 3 on val_loss")
        assert str(twice.value) == (
            "run.prune(step=4): run 'patience' was pruned at step 3 already; a run is pruned once"
        )
    assert run.status == "pruned" and run.provenance["pruned_at_step"] == "3"
    with gp.track("finished", study="s35", ledger=db) as done:
        pass
    with pytest.raises(gp.GreenprintError) as late:
        done.prune(step=5)
    assert str(late.value) == (
        "run.prune() after run 'finished' ended (finished): its status is final; call it "
        "before the run ends (inside its with block)"
    )
    assert done.status == "finished" and "pruned_at_step" not in done.provenance
    with gp.Ledger(db) as led:
        statuses = {r.name: (r.status, r.provenance.get("pruned_at_step")) for r in led.runs()}
    assert statuses == {"patience": ("pruned", "3"), "finished": ("finished", None)}


STUDY_SCRIPT = """\
import greenprint as gp

for name, stop_at in (("t0", None), ("t1", None), ("t2", 3)):
    with gp.track(name, study="patience") as run:
        for epoch in range(10):
            run.log(val_accuracy=0.1 * epoch, step=epoch)
            if epoch == stop_at:
                run.prune(step=epoch, by="patience 3")
                break
"""


def test_the_pruned_section_reads_as_sentences_with_units(tmp_path_factory):
    """A study that counted no FPO read ``They spent 208 µWh (26.2% of the study's energy),
    99.8 µg CO2-eq.`` (a list cut short), and the table's ``stopped at`` column gave bare
    numbers beside ``run to the end (estimate)``, which holds an energy. Now: ``... energy) and
    99.8 µg CO2-eq.``, ``stopped at (step)``, ``energy run to the end (estimate)``, in Markdown
    and HTML alike."""
    import html

    home = empty_home(tmp_path_factory, "s35-section")
    (home / "train.py").write_text(STUDY_SCRIPT)
    done = run_in(home, sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    done = run_in(home, GREENPRINT, "report", "--format", "md,html", "--no-plots", "--out", "rep")
    assert done.returncode == 0, done.stderr
    md = (home / "rep" / "report.md").read_text(encoding="utf-8")
    page = html.unescape((home / "rep" / "report.html").read_text(encoding="utf-8"))
    # a share as the rest of the report writes it (format_share): "26.2%", under a tenth "1/12"
    share = r"(?:[\d.]+%|1/[\d,]+)"
    spent = rf"They spent [\d.]+ \S*Wh \({share} of the study's energy\) and [\d.]+ \S+ CO2-eq\."
    assert re.search(spent, md) and re.search(spent, page), md
    header = ["trial", "stopped at (step)", "by", "energy", "FPO"]
    header.append("energy run to the end (estimate)")
    assert "| " + " | ".join(header) + " |" in md
    assert "".join(f"<th>{h}</th>" for h in header) in page
    assert "| t2 | 3 | patience 3 |" in md
