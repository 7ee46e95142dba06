"""``greenprint ledger ls --tree``: a study's runs nested as its report reads them, with roles.

Built the way users produce such a study: ``greenprint run`` around a script whose trial has a
cross-validation run with three folds inside it, a baseline given its role on the command line,
and, in another study, a search whose trials are child runs of a sweep (``gp.track`` in a loop).
Run as a new user runs it: in an empty directory, with no GREENPRINT_* settings and no config.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _clean_env import clean_env
from greenprint.cli._ledger_tree import depth_first

TRIAL = """
import sys
import greenprint as gp
lr = float(sys.argv[1])
with gp.track("cv", params={"lr": lr}) as cv:
    scores = []
    for fold in range(3):
        with gp.track(f"fold{fold}") as f:
            f.log("accuracy", 0.7 + lr + fold / 100)
            scores.append(0.7 + lr + fold / 100)
    cv.log("accuracy", sum(scores) / 3)
"""

SWEEP = """
import greenprint as gp
with gp.track("search", study="sweep"):
    for k in range(2):
        with gp.track(f"trial{k}", params={"k": k}) as t:
            t.log("loss", 1.0 / (k + 1))
"""

FOLDS = """
import greenprint as gp
for lr in (0.1, 0.3):
    with gp.track(f"lr={lr}", study="folds", params={"lr": lr}):  # the trial logs no score
        for fold in range(3):
            with gp.track(f"fold{fold}") as f:
                f.log("accuracy", lr + fold / 10)
"""


def _greenprint(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "greenprint", *args],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tree")
    (home / "trial.py").write_text(TRIAL)
    (home / "sweep.py").write_text(SWEEP)
    (home / "baseline.py").write_text("print('majority class')\n")
    for lr in ("0.01", "0.1"):
        # the configuration given to the run: it is the trial (a run with none above a run
        # that scored would read as a sweep of one trial)
        _greenprint(
            home,
            "run",
            "--study",
            "cv",
            "--param",
            f"lr={lr}",
            "--",
            sys.executable,
            "trial.py",
            lr,
        )
    _greenprint(
        home, "run", "--study", "cv", "--role", "baseline", "--", sys.executable, "baseline.py"
    )
    _greenprint(home, "run", "--", sys.executable, "sweep.py")
    (home / "folds.py").write_text(FOLDS)
    _greenprint(home, "run", "--", sys.executable, "folds.py")
    # the final retrain, scored on a held-out split by the script's own run inside it
    (home / "final.py").write_text(
        "import greenprint as gp\n"
        "with gp.track('test-eval') as run:\n    run.log(test_accuracy=0.875)\n"
    )
    _greenprint(
        home, "run", "--study", "folds", "--role", "final", "--", sys.executable, "final.py"
    )
    # a configuration whose first attempt failed, run again and linked afterwards (set-role
    # --part-of): the failed attempt ran outside the second's measurement, its cost adds to it
    (home / "attempt.py").write_text(
        "import sys\nimport greenprint as gp\n"
        "with gp.track('fit') as run:\n    run.log(accuracy=0.9)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    for code in ("3", "0"):
        subprocess.run(
            [sys.executable, "-m", "greenprint", "run", "--study", "retry", "--param", "lr=0.1",
             "--", sys.executable, "attempt.py", code],
            cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    first, second = (
        item["id"]
        for item in json.loads(
            _greenprint(home, "ledger", "ls", "--study", "retry", "--json").stdout
        )
        if item["name"] == "attempt.py"
    )
    _greenprint(home, "ledger", "set-role", "part", first, "--part-of", second)
    return home


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_tree_nests_folds_under_their_trial_with_the_roles_the_report_reads(study: Path) -> None:
    done = _greenprint(study, "ledger", "ls", "--study", "cv", "--tree")
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == ["ID", "STUDY", "NAME", "ROLE", "STATUS"]
    # each trial (the script's run) with its cv run and the cv run's folds under it, depth first
    body = _rows(done.stdout)[1:-1]
    assert [row[2] for row in body] == [
        "trial.py", "cv", "fold0", "fold1", "fold2",
        "trial.py", "cv", "fold0", "fold1", "fold2",
        "baseline.py",
    ]  # fmt: skip
    assert [row[3] for row in body] == [
        "trial*", "part*", "part*", "part*", "part*",
        "trial*", "part*", "part*", "part*", "part*",
        "baseline",
    ]  # fmt: skip
    # indented two spaces a level: the folds deeper than their cv run, deeper than its trial
    column = lines[0].index("NAME")
    indent = {}
    for line in lines[1:-1]:
        cell = line[column:]
        indent.setdefault(cell.split()[0], len(cell) - len(cell.lstrip()))
    assert indent["cv"] == indent["trial.py"] + 2
    assert indent["fold0"] == indent["cv"] + 2
    assert lines[-1].startswith("* inferred (no role given)")
    # the same runs as without --tree, each once
    flat = _rows(_greenprint(study, "ledger", "ls", "--study", "cv").stdout)[1:]
    assert sorted(row[0] for row in flat) == sorted(row[0] for row in body)


def test_tree_reads_a_sweep_above_its_trials(study: Path) -> None:
    body = _rows(_greenprint(study, "ledger", "ls", "--study", "sweep", "--tree").stdout)[1:-1]
    assert [(row[2], row[3]) for row in body] == [
        ("search", "sweep*"),  # its parent, the script's run, is in study "default"
        ("trial0", "trial*"),
        ("trial1", "trial*"),
    ]


def test_tree_json_gives_depth_and_roles_in_tree_order(study: Path) -> None:
    items = json.loads(
        _greenprint(study, "ledger", "ls", "--study", "cv", "--tree", "--json").stdout
    )
    assert [(i["name"], i["depth"], i["role"], i["role_inferred"]) for i in items[:5]] == [
        ("trial.py", 0, "trial", True),
        ("cv", 1, "part", True),
        ("fold0", 2, "part", True),
        ("fold1", 2, "part", True),
        ("fold2", 2, "part", True),
    ]
    assert items[-1]["role"] == "baseline" and items[-1]["role_inferred"] is False
    by_id = {i["id"]: i for i in items}
    for item in items:  # each under the run listed before it at the level above
        if item["depth"]:
            assert by_id[item["parent_id"]]["depth"] == item["depth"] - 1


def test_tree_under_a_status_filter_keeps_the_roles_of_the_whole_study(study: Path) -> None:
    """A fold is a part because of the trial above it, listed or not."""
    done = _greenprint(study, "ledger", "ls", "--study", "cv", "--tree", "--status", "finished")
    assert [row[3] for row in _rows(done.stdout)[1:4]] == ["trial*", "part*", "part*"]


def test_without_tree_the_table_is_unchanged(study: Path) -> None:
    header = _greenprint(study, "ledger", "ls").stdout.splitlines()[0].split()
    assert header[:4] == ["ID", "STUDY", "NAME", "STATUS"]
    assert "ROLE" not in header


@given(st.lists(st.integers(min_value=-1, max_value=30), max_size=30))
def test_depth_first_lists_every_run_once_each_under_its_parent(parents: list[int]) -> None:
    ids = [f"r{k}" for k in range(len(parents))]
    parent_of = {f"r{k}": (f"r{p}" if p >= 0 else None) for k, p in enumerate(parents)}
    listed = depth_first(ids, ids, parent_of)
    assert sorted(item for _, item in listed) == sorted(ids)  # each once, cycles included
    where = {item: k for k, (_, item) in enumerate(listed)}
    depth = dict((item, d) for d, item in listed)
    for k, (d, item) in enumerate(listed):
        parent = parent_of[item]
        if d == 0:
            continue
        # the run above it at one level less, listed before it with nothing shallower between
        above = next(i for _, i in reversed(listed[:k]) if depth[i] == d - 1)
        assert parent == above and where[above] < k
    roots = [item for d, item in listed if d == 0]
    plain = [i for i in ids if parent_of[i] is None or parent_of[i] not in where]
    assert [r for r in roots if r in plain] == plain  # the roots in the order given


def test_tree_marks_a_run_whose_cost_adds_to_the_run_above_it(study: Path) -> None:
    """The failed attempt's energy is not inside its later attempt's row: marked "+"."""
    done = _greenprint(study, "ledger", "ls", "--study", "retry", "--tree")
    rows = _rows(done.stdout)[1:]
    named = [(row[2], row[3], row[4]) for row in rows[:4]]
    assert named == [
        ("attempt.py", "trial*", "finished"),
        ("attempt.py", "part", "failed"),  # given by set-role: not inferred
        ("fit", "part*", "finished"),  # inside the failed attempt's measurement
        ("fit", "part*", "finished"),
    ]
    energy = done.stdout.splitlines()[0].index("ENERGY")
    cells = [line[energy:].split()[0] for line in done.stdout.splitlines()[1:5]]
    assert [cell.startswith("+") for cell in cells] == [False, True, False, False]
    assert done.stdout.splitlines()[-1].startswith("+ adds to the run above it")
    items = json.loads(
        _greenprint(study, "ledger", "ls", "--study", "retry", "--tree", "--json").stdout
    )
    assert [item["contained"] is False for item in items] == [False, True, False, False]
    # without --tree nothing is marked
    assert "+" not in _greenprint(study, "ledger", "ls", "--study", "retry").stdout


def test_tree_gives_a_trial_scored_by_its_folds_their_mean_as_the_report_does(
    study: Path,
) -> None:
    """A trial that logged no score of its own reads its folds' mean, said so, not "-"."""
    done = _greenprint(study, "ledger", "ls", "--study", "folds", "--tree")
    metric = done.stdout.splitlines()[0].index("METRIC")
    cells = {line.split()[2]: line[metric:].strip() for line in done.stdout.splitlines()[1:9]}
    # the folds of lr=0.3 logged 0.3, 0.4, 0.5: their mean, 0.4
    assert cells["lr=0.3"] == "accuracy=0.4 (mean of 3 parts)"
    assert cells["lr=0.1"] == "accuracy=0.2 (mean of 3 parts)"
    items = json.loads(
        _greenprint(study, "ledger", "ls", "--study", "folds", "--tree", "--json").stdout
    )
    trial = next(i for i in items if i["name"] == "lr=0.3")
    assert trial["main_metric"] == {
        "name": "accuracy", "value": pytest.approx(0.4), "source": "parts", "parts": 3,
    }  # fmt: skip
    fold = next(i for i in items if i["name"] == "fold2" and i["parent_id"] == trial["id"])
    assert fold["main_metric"] == {"name": "accuracy", "value": pytest.approx(0.5)}
    # the report reads the same score
    out = study / "folds-report"
    _greenprint(study, "report", "--study", "folds", "--format", "json", "--out", str(out))
    report = json.loads(next(out.glob("*.json")).read_text())
    row = next(r for r in report["runs"] if r["id"] == trial["id"])
    assert (row["score"], row["score_source"]) == (trial["main_metric"]["value"], "parts")
    # the final run logged nothing: its part's held-out score, as the report states it
    final = next(i for i in items if i["role"] == "final")
    assert final["main_metric"] == {
        "name": "test_accuracy", "value": 0.875, "source": "parts", "parts": 1,
    }  # fmt: skip
    assert "test_accuracy=0.875 (mean of 1 part)" in done.stdout
    # without --tree a run shows only what it logged
    flat = _greenprint(study, "ledger", "ls", "--study", "folds").stdout
    assert "mean of" not in flat
