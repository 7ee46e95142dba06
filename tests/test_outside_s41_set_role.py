"""Session 41: a part given to a trial around its folds leaves it a trial.

``greenprint ledger set-role part X --part-of Y``, Y a trial of another configuration around
its cross-validation folds (no role given: read as a trial, its folds its parts), read Y as a
sweep afterwards: X's params differ from Y's, so Y's children "varied a configuration", Y's
three folds became trials of the study (its trial count 2 -> 4), the final run one of them, and
Y's score "the mean of 1 part" (X's). A part is no configuration (issue 12: a trial's children
are its parts; a sweep's children are trials): a child given role ``part`` no longer makes its
parent a sweep, and the command says how the parent reads now where that changed (its mean of
its parts' takes X's score). Nothing is lost: the same runs, the same totals.
"""

from __future__ import annotations

import json
import sys

from _report_cli import GREENPRINT, empty_home, rows_by_name, run_in

#: Three configurations, each a run around its three folds, as a cross-validation loop writes
#: them, no role given; with "rerun", lr=0.2 first crashes on its last fold and is run again.
STUDY = """
import sys
import greenprint as gp

def trial(lr, crash_at=None):
    with gp.track(f"lr={lr}", study="cv", params={"lr": lr}):
        for fold in range(3):
            with gp.track(f"lr={lr}-fold{fold}", study="cv", params={"lr": lr, "fold": fold}) as f:
                if fold == crash_at:
                    raise RuntimeError("CUDA out of memory")
                f.log(accuracy=0.7 + lr / (fold + 1))

if sys.argv[1:] == ["rerun"]:
    try:
        trial(0.2, crash_at=2)
    except RuntimeError:
        pass
for lr in (0.1, 0.2, 0.3):
    trial(lr)
"""


def _report(home) -> dict:
    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--format", "json", "--no-plots")
    assert done.returncode == 0, done.stderr
    return json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))


def _study(tmp_path_factory, name: str, *args: str):
    home = empty_home(tmp_path_factory, name)
    (home / "study.py").write_text(STUDY)
    done = run_in(home, sys.executable, "study.py", *args)
    assert done.returncode == 0, done.stderr
    return home, _report(home)


def test_a_trial_given_another_configuration_as_its_part_stays_a_trial(tmp_path_factory):
    home, before = _study(tmp_path_factory, "part-of-a-trial")
    ids = {row["name"]: row["id"] for row in before["runs"]}
    x, y = ids["lr=0.1"], ids["lr=0.2"]
    done = run_in(home, GREENPRINT, "ledger", "set-role", "part", x[:8], "--part-of", y[:8])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"run {x[:8]} lr=0.1 (study cv): role (none given, read as trial) -> part, part of run "
        f"{y[:8]}",
        f"run {y[:8]} lr=0.2 (study cv): still read as trial; its accuracy, the mean of its "
        "parts', 0.8222 (3 parts) -> 0.8069 (4 parts)",
    ]

    after = _report(home)
    rows = rows_by_name(after)
    assert (rows["lr=0.2"]["role"], rows["lr=0.2"]["is_trial"]) == ("trial", True)
    for fold in range(3):  # before: trials of the study, its final run one of them
        assert rows[f"lr=0.2-fold{fold}"]["role"] == "part"
        assert rows[f"lr=0.2-fold{fold}"]["parent_id"] == y
    assert (rows["lr=0.1"]["role"], rows["lr=0.1"]["parent_id"]) == ("part", y)
    assert rows["lr=0.1"]["contained"] is False  # measured apart: its cost added to lr=0.2's
    assert after["price_tag"]["total"]["trials"] == 2  # lr=0.2 (with lr=0.1) and lr=0.3
    assert not any(row["role"] == "sweep" for row in after["runs"])
    assert rows["lr=0.2"]["score"] == rows["lr=0.2"]["score"]  # a score (not NaN)
    # nothing lost: every run, and the study's cost, as before
    assert sorted(rows) == sorted(rows_by_name(before))
    for key in ("runs", "energy_kwh", "emissions_kg"):
        assert after["price_tag"]["total"][key] == before["price_tag"]["total"][key], key

    listed = run_in(home, GREENPRINT, "ledger", "ls", "--tree")
    assert listed.returncode == 0, listed.stderr
    roles = {line.split()[0]: line.split()[3] for line in listed.stdout.splitlines()[1:13]}
    assert roles[y[:8]] == "trial*" and roles[x[:8]] == "part"


def test_an_earlier_attempt_made_a_part_as_the_report_advises_says_nothing_more(
    tmp_path_factory,
):
    """The report's note on a crashed trial run again gives the command; its parent, whose
    score the failed attempt does not change, gets no second line."""
    home, before = _study(tmp_path_factory, "part-of-a-rerun", "rerun")
    (note,) = [n for n in before["notes"] if "set-role part" in n]
    command = note.split("greenprint ledger set-role part ", 1)[1].split(";", 1)[0].split()
    first, later = command[0], command[2]
    done = run_in(home, GREENPRINT, "ledger", "set-role", "part", first, "--part-of", later)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"run {first} lr=0.2 (study cv): role (none given, read as trial) -> part, part of run "
        f"{later}"
    ]
    was = {row["id"][:8]: row for row in before["runs"]}
    rows = {row["id"][:8]: row for row in _report(home)["runs"]}
    assert (rows[later]["role"], rows[later]["score"]) == ("trial", was[later]["score"])
    assert rows[first]["role"] == "part" and rows[first]["parent_id"].startswith(later)
    assert not any(row["role"] == "sweep" for row in rows.values())
