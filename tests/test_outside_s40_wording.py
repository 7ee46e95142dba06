"""Session 40, an outside check of wording: what was not counted never reads 0, and a count agrees
with its noun (issue 12: "Unknown FPO is 'unknown' with the count of runs, never 0; every number
in a sentence has its unit label").

Two faults found, run as a stranger runs greenprint (an empty directory, a clean environment):

* ``greenprint fpo`` without ``--backward`` (an inference count, ``count_fpo(...,
  backward=False)``) printed ``backward   0 FPO``, a backward column of ``0 FPO`` in both
  tables and ``"backward_total": 0`` in ``--json``, though no backward was counted; and its
  ``--by op`` table an optimizer column of ``0 FPO`` where no optimizer step ran. Now the
  columns are left out, the summary reads ``backward   not counted``, and the JSON has
  ``"backward_counted": false`` and ``null``. A backward that was counted and is 0 (a live
  ``FPOCounter`` around an inference) still reads 0.
* The report's note on roles counted them as a tally: "roles inferred for every run (2 trial,
  1 sweep)". Now "(2 trials, 1 sweep)", "1 learning-curve run".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, cli_report, empty_home, report_text, run_in

SCHEMA = Path("docs") / "report-schema.json"

MODELS = """
import torch


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
"""

#: An inference counted live: the counter counts any backward that runs, and none does.
LIVE = """
import torch
import greenprint as gp
from models import mlp

model = mlp().eval()
with gp.FPOCounter(model) as c, torch.no_grad():
    model(torch.randn(2, 4))
print(c.result.table())
print(json.dumps(c.result.to_dict()))
""".replace("import torch\n", "import json\nimport torch\n", 1)

#: A search with no role given: a sweep around two trials, and a run on a subsample beside it.
STUDY = """
import greenprint as gp

with gp.track("search", study="s"):
    for lr in (0.1, 0.2):
        with gp.track(f"lr={lr}", study="s") as run:
            run.set(params={"lr": lr})
            run.log(loss=lr)
"""


def _summary_line(table: str, key: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(key + " "))


def test_a_forward_only_count_says_its_backward_was_not_counted(
    tmp_path_factory, capsys, monkeypatch
):
    pytest.importorskip("torch")
    from greenprint.cli import main

    home = empty_home(tmp_path_factory, "fpo-forward")
    (home / "models.py").write_text(MODELS)

    # as a stranger runs it first: the command, in an empty directory, a clean environment
    done = run_in(home, GREENPRINT, "fpo", "models:mlp", "--input-shape", "2,4")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[2].split() == ["module", "forward", "total", "share"]
    assert _summary_line(out, "backward") == "backward   not counted (a forward-only count)"
    assert "0 FPO  " not in out.split("\n\n")[1]  # no column of zeros in the table

    # its other forms in this process (each command in a process of its own would import torch
    # again: 1.5 s each), from the same directory
    monkeypatch.chdir(home)
    monkeypatch.syspath_prepend(str(home))

    def fpo(*args: str) -> str:
        capsys.readouterr()
        assert main(["fpo", "models:mlp", "--input-shape", "2,4", *args]) == 0
        return capsys.readouterr().out

    rows = fpo("--by", "op").splitlines()
    assert rows[2].split() == ["op", "calls", "forward", "total", "share"]
    assert rows[3].split() == ["aten.addmm", "2", "82", "FPO", "82", "FPO", "93.2%"]

    data = json.loads(fpo("--json"))
    assert data["backward_counted"] is False
    assert data["backward_total"] is None and data["recompute_total"] is None
    assert data["forward_total"] == data["total"] == 88  # 2 x (2*4*3 + 3) + 6 + 2 x (2*3*2 + 2)
    assert data["by_op_phase"]["aten.addmm"] == {"forward": 82, "backward": None, "optimizer": 0}
    assert data["by_module_phase"]["0"] == {"forward": 54, "backward": None, "recompute": None}

    # counted: the backward's numbers, in every place the forward-only count said "not counted"
    out = fpo("--backward")
    header = out.splitlines()[2].split()
    assert header == ["module", "forward", "backward", "total", "share"]
    assert _summary_line(out, "backward") == "backward   112 FPO"
    data = json.loads(fpo("--backward", "--json"))
    assert data["backward_counted"] is True and data["backward_total"] == 112


def test_a_counted_backward_of_no_fpo_still_reads_0(tmp_path_factory):
    pytest.importorskip("torch")
    home = empty_home(tmp_path_factory, "fpo-live")
    (home / "models.py").write_text(MODELS)
    (home / "live.py").write_text(LIVE)
    done = run_in(home, sys.executable, "live.py")
    assert done.returncode == 0, done.stderr
    table, line = done.stdout.rsplit("\n", 2)[:2]
    assert table.splitlines()[0].split() == ["module", "forward", "backward", "total", "share"]
    assert _summary_line(table, "backward") == "backward   0 FPO"
    data = json.loads(line)
    assert data["backward_counted"] is True and data["backward_total"] == 0


def test_the_note_on_inferred_roles_counts_runs_with_their_nouns(tmp_path_factory):
    home = empty_home(tmp_path_factory, "roles-note")
    (home / "study.py").write_text(STUDY)
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    report = cli_report(home, "--study", "s", "--metric", "loss")
    (note,) = [n for n in report["notes"] if n.startswith("roles inferred")]
    assert note.startswith("roles inferred for every run (2 trials, 1 sweep), as no role")
    for fmt in ("md", "html", "latex"):
        assert "(2 trials, 1 sweep)" in report_text(home, fmt), fmt


#: One run (role final), merged into a new ledger; a metric misspelt; an unscored trial left out.
ONE_OF_EACH = """
import json
import math

import greenprint as gp
from greenprint.analysis import expected_max_performance, price_tag

with gp.track("lr=0.1", study="one", ledger="node.db", params={"lr": 0.1}, role="final") as run:
    run.log(accuracy=0.9)
runs = gp.Ledger("node.db").runs(study="one")
try:
    price_tag(runs, metric="accuracyy")
except gp.AnalysisError as e:
    refused = str(e)
omitted = expected_max_performance([0.5, math.nan, 0.7], nan_policy="omit").notes
print(json.dumps({"refused": refused, "omitted": list(omitted)}))
"""


def test_counts_of_one_read_singular(tmp_path_factory):
    """'merged 1 ledger(s) ...: 1 run(s) added, ... (1 metric points, ...)', 'none of the 1
    run(s) logged metric', '1 trials without a score were left out': each count now with its
    noun (count_of), singular for one."""
    home = empty_home(tmp_path_factory, "one-of-each")
    (home / "one.py").write_text(ONE_OF_EACH)
    done = run_in(home, sys.executable, "one.py")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["refused"].startswith("the one run logged no metric 'accuracyy'; did you mean")
    assert said["omitted"] == ["1 trial without a score was left out"]

    merged = run_in(home, GREENPRINT, "ledger", "merge", "team.db", "node.db")
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.startswith("merged 1 ledger into ")
    assert ": 1 run added, 0 updated, 0 already there (1 metric point, " in merged.stdout
    assert "(s)" not in merged.stdout


#: Early stopping by hand: a trial run to the end, two pruned by patience, one of which counted
#: no FPO (its loop had no count).
PRUNED = """
import greenprint as gp

for name, stop, counted in (("full", None, True), ("b", 2, True), ("c", 3, False)):
    with gp.track(name, study="p", role="trial") as run:
        for epoch in range(1, 9):
            if counted:
                run.add_fpo(1_000)
            run.log(step=epoch, val_loss=1.0 / epoch)
            if stop == epoch:
                run.prune(step=epoch, by="patience")
                break
"""


def test_what_pruned_trials_spent_says_whose_fpo_is_unknown(tmp_path_factory):
    """'They spent ... and 2 kFPO (20% of its FPO)' where one of the two pruned trials counted
    no FPO: the sum read as theirs, its share of the study's as known. Now '2 kFPO + unknown
    for 1 run' and no share, in every format; the JSON's fpo_share is null and fpo_unknown 1."""
    import jsonschema

    home = empty_home(tmp_path_factory, "pruned-fpo")
    (home / "study.py").write_text(PRUNED)
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    report = cli_report(home, "--study", "p", "--metric", "val_loss")
    schema = json.loads((Path(__file__).resolve().parents[1] / SCHEMA).read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(report)
    pruning = report["pruning"]
    assert (pruning["fpo"], pruning["fpo_unknown"], pruning["fpo_share"]) == (2_000, 1, None)
    for fmt in ("md", "html", "latex"):
        text = report_text(home, fmt)
        assert "CO2-eq and 2 kFPO + unknown for 1 run." in text, fmt
        assert "of its FPO" not in text, fmt


#: Three trials: one scored by its cross-validation folds (its parts), two by their own loss.
FOLDS = """
import greenprint as gp

with gp.track("a", study="f", role="trial", params={"lr": 0.1}):
    for fold in range(2):
        with gp.track(f"a-fold{fold}", study="f", role="part") as part:
            part.log(loss=0.2 + fold)
for name, lr in (("b", 0.2), ("c", 0.3)):
    with gp.track(name, study="f", role="trial", params={"lr": lr}) as run:
        run.log(loss=lr)
"""


def test_the_note_on_trials_scored_by_their_parts_agrees_with_one(tmp_path_factory):
    """'1 of 3 trials logged no 'loss' of their own: their score is the mean of their parts';
    ...; 1 scored by their own': now 'its' for one."""
    home = empty_home(tmp_path_factory, "folds-note")
    (home / "study.py").write_text(FOLDS)
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    report = cli_report(home, "--study", "f", "--metric", "loss", "--format", "json")
    (note,) = [n for n in report["notes"] if "of its own" in n or "of their own" in n]
    assert note.startswith(
        "1 of 3 trials logged no 'loss' of its own: its score is the mean of its parts' "
        "(e.g. cross-validation folds); 2 scored by their own"
    ), note


#: A baseline given its role inside a trial (a helper that tracks itself): read as its part.
INSIDE = """
import greenprint as gp

with gp.track("a", study="i", role="trial", params={"lr": 0.1}) as run:
    with gp.track("a-check", study="i", role="baseline"):
        pass
    run.log(loss=0.1)
with gp.track("b", study="i", role="trial", params={"lr": 0.2}) as run:
    run.log(loss=0.2)
"""


def test_the_note_on_one_role_given_inside_a_trial_reads_singular(tmp_path_factory):
    """'1 of 3 runs were given a role but ran inside a trial (...): they are read as its
    parts, their cost inside its own': now 'was' and 'it is read as that run's part'."""
    home = empty_home(tmp_path_factory, "inside-note")
    (home / "study.py").write_text(INSIDE)
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    report = cli_report(home, "--study", "i", "--metric", "loss", "--format", "json")
    (note,) = [n for n in report["notes"] if "given a role but ran inside" in n]
    assert note.startswith(
        "1 of 3 runs was given a role but ran inside a trial (or a part, baseline, final or "
        "learning-curve run): it is read as that run's part, its cost inside that run's own"
    ), note
