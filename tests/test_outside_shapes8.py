"""Issue 12, a tenth outside check: messy study shapes the earlier checks did not build.

Each study is built the way users build one, in a fresh empty directory with a clean
environment (no ``GREENPRINT_*`` variable, no configuration), then read by ``greenprint
report`` (``--no-plots``: no figure's image is checked here, its data in the JSON is) and
``greenprint ledger export``. The scripts' own runs are measured by a
constant-power meter (``tests/tracking/_meters.ConstantProcessPower``):

* **a final retrain that failed**: a search of three trials, then ``gp.track("retrain",
  role="final")`` that ran out of memory; in a second study it was run again and finished.
* **a search script that prepares its data in a run of its own**: ``gp.track("load-data")``
  (no params, no score) before its trials, run as a script and under ``greenprint run``.
* **trials that log their score under two names**: ``val_acc`` every epoch and
  ``best_val_acc`` (the checkpoint each kept) at the end.
* **a search on two machines**: the sweep and half its trials on machine A, the other half on
  machine B given the sweep's id (``gp.track(parent=...)``), each machine its own ledger,
  merged with ``greenprint ledger merge``.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, evp_curves, in_every_format, report_text, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from greenprint.analysis import expected_max_performance
from greenprint.ledger._study_cost import study_cost

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0


def _script(home: Path, name: str, text: str) -> None:
    """``text`` (with the meter's folder and power filled in) written to ``home/name``."""
    text = text.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / name).write_text(text, encoding="utf-8")


def _note(report: dict, text: str) -> str:
    (found,) = [n for n in report["notes"] if text in n]
    return found


# ------------------------------------------------------------ a final retrain that failed
RETRAIN_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

ACC = {0.01: 0.80, 0.1: 0.86, 1.0: 0.81}


def study(name, retrains):
    meter = ConstantProcessPower(@WATTS@)
    with gp.track("majority", study=name, role="baseline", meters=meter) as run:
        sum(i * i for i in range(20000))
        run.log(accuracy=0.5)
    for lr, acc in ACC.items():
        with gp.track(f"lr={lr}", study=name, params={"lr": lr}, meters=meter) as run:
            sum(i * i for i in range(20000))
            run.log(accuracy=acc)
    for ok in retrains:
        try:
            with gp.track("retrain", study=name, role="final", params={"lr": 0.1},
                          meters=meter) as run:
                sum(i * i for i in range(20000))
                if not ok:
                    raise MemoryError("CUDA out of memory")
                run.log(accuracy=0.87)
        except MemoryError:
            pass


study("retrain-failed", [False])
study("retrain-again", [False, True])
"""


@pytest.fixture(scope="module")
def retrain_home(tmp_path_factory):
    """The retrain script run once in an empty directory."""
    home = _empty(tmp_path_factory, "retrain")
    _script(home, "search.py", RETRAIN_SCRIPT)
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def test_a_final_retrain_that_failed_leaves_the_best_trial_the_final_run(retrain_home):
    """Before: the failed retrain was the final run ("Final run retrain (the run with role
    'final') cost ...", no score; the compute statement: "The final model (run "retrain") alone
    used ..."), though no final model came out of it. Now the best trial is the final run, its
    rule saying what became of the retrain; the retrain's cost stays in the final model's row
    of the price tag by role, and the total holds every run."""
    home = retrain_home
    report = _report(home, "--study", "retrain-failed", "--no-plots")
    tag = report["price_tag"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="retrain-failed")
    by_name = {r.name: r for r in runs}
    best, retrain = by_name["lr=0.1"], by_name["retrain"]
    assert retrain.status == "failed"
    final = tag["final"]
    assert (final["run_id"], final["rule"], final["score"]) == (best.id, "best-trial", 0.86)
    rule = (
        "the finished trial with the highest accuracy, as 'retrain', the run with role 'final', "
        "failed"
    )
    assert final["rule_text"] == rule
    assert final["energy_kwh"] == pytest.approx(best.energy_kwh, rel=1e-9)
    assert tag["by_role"]["final"]["energy_kwh"] == pytest.approx(retrain.energy_kwh, rel=1e-9)
    assert tag["total"]["energy_kwh"] == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (5, 3)
    for fmt in ("md", "html", "latex"):
        page = " ".join(html.unescape(report_text(home, fmt)).split())
        assert "'retrain', the run with role 'final', failed" in page, fmt
    assert "The final model (run “lr=0.1”, accuracy = 0.86)" in report_text(home, "md")
    _export_reads_as_the_report(home, "retrain-failed", report)


def test_a_final_retrain_run_again_is_the_one_that_finished(retrain_home):
    """Read right before and after: two runs with role 'final', the failed one first; the
    final run is the retrain that finished, the rule saying it is the last started of 2, and
    the final model's row counts both attempts."""
    home = retrain_home
    report = _report(home, "--study", "retrain-again", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="retrain-again")
    retrains = sorted((r for r in runs if r.name == "retrain"), key=lambda r: r.started_at)
    assert [r.status for r in retrains] == ["failed", "finished"]
    final = tag["final"]
    assert (final["run_id"], final["rule"], final["score"]) == (retrains[1].id, "role", 0.87)
    assert final["rule_text"] == "the last started of the 2 runs with role 'final'"
    both = sum(r.energy_kwh for r in retrains)
    assert tag["by_role"]["final"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert tag["total"]["trials"] == 3


# ------------------------------------------------------------ a data-preparation run
PREP_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

study = sys.argv[1]
meter = ConstantProcessPower(@WATTS@)
with gp.track("load-data", study=study, meters=meter):
    data = [i * i for i in range(60000)]
for lr, acc in {0.01: 0.80, 0.1: 0.86, 1.0: 0.81}.items():
    with gp.track(f"lr={lr}", study=study, params={"lr": lr}, meters=meter) as run:
        sum(data[:20000])
        run.log(accuracy=acc)
"""


@pytest.fixture(scope="module")
def prep_home(tmp_path_factory):
    """The search script run on its own (study ``prep``) and under ``greenprint run``
    (``prep-run``) in an empty directory."""
    home = _empty(tmp_path_factory, "prep")
    _script(home, "search.py", PREP_SCRIPT)
    done = run_in(home, sys.executable, "search.py", "prep")
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "prep-run", "--",
                  sys.executable, "search.py", "prep-run")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def test_a_data_preparation_run_before_the_trials_is_a_step_not_a_trial(prep_home):
    """Before: 4 trials, the data loading one of them with no score, counted as the worst in
    the expected best score ("1 of 4 trials had no score and count as the worst") and in the
    mean trial's energy. Now 3 trials; 'load-data' is a step of the study (role part), its
    cost in the total and in the price tag's 'part' row, which the EVP-against-energy caption
    says it leaves out; a note names it and how to read it as a trial."""
    home = prep_home
    report = _report(home, "--study", "prep", "--no-plots")
    tag = report["price_tag"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="prep")
    prep = next(r for r in runs if r.name == "load-data")
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (4, 3)
    rows = {r["id"]: r for r in report["runs"]}
    assert (rows[prep.id]["role"], rows[prep.id]["role_inferred"]) == ("part", True)
    assert tag["by_role"]["part"]["energy_kwh"] == pytest.approx(prep.energy_kwh, rel=1e-9)
    assert tag["total"]["energy_kwh"] == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)
    curve = evp_curves(report)["with replacement (Dodge et al.)"]
    expected = expected_max_performance([0.80, 0.86, 0.81], mode="max").mean.tolist()
    assert curve == pytest.approx(expected, abs=1e-12)
    assert not [n for n in report["notes"] if "no score and count" in n]
    note = _note(report, "'load-data'")
    assert "steps of the study" in note and f"set-role trial {prep.id[:8]}" in note
    in_every_format(home, "3 trials", "the steps outside any trial")
    _export_reads_as_the_report(home, "prep", report)

    done = run_in(home, GREENPRINT, "ledger", "set-role", "trial", prep.id[:8])  # as it says
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "prep", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 4


def test_a_data_preparation_run_under_greenprint_run_is_the_sweeps_overhead(prep_home):
    """Under ``greenprint run`` the script's run is the sweep: 'load-data' was its fourth
    trial; now it is a part of the sweep, its cost in the sweep's overhead."""
    home = prep_home
    report = _report(home, "--study", "prep-run", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="prep-run")
    (sweep,) = [r for r in runs if r.parent_id is None]
    rows = {r["id"]: r for r in report["runs"]}
    assert rows[sweep.id]["role"] == "sweep"
    roles = sorted(rows[r.id]["role"] for r in runs if r.parent_id == sweep.id)
    assert roles == ["part", "trial", "trial", "trial"]
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (5, 3)
    trials = sum(r.energy_kwh for r in runs if rows[r.id]["role"] == "trial")
    assert tag["by_role"]["trial"]["energy_kwh"] == pytest.approx(trials, rel=1e-9)
    assert tag["by_role"]["sweep"]["runs"] == 2
    _export_reads_as_the_report(home, "prep-run", report)


# ------------------------------------------------------------ a score under two names
TWO_NAMES_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

CURVES = {0.01: [0.60, 0.70, 0.78, 0.79], 0.1: [0.70, 0.85, 0.80, 0.72],
          1.0: [0.50, 0.60, 0.65, 0.70]}
for lr, accs in CURVES.items():
    with gp.track(f"lr={lr}", study="two-names", params={"lr": lr},
                  meters=ConstantProcessPower(@WATTS@)) as run:
        for epoch, acc in enumerate(accs):
            sum(i * i for i in range(5000))
            run.log(val_acc=acc, step=epoch)
        run.log(best_val_acc=max(accs))
"""


def test_trials_that_log_their_best_score_are_ranked_by_it(tmp_path_factory):
    """Before: ranked by the last epoch's val_acc ("a held-out one before the training metrics
    logged as often", best_val_acc called a training metric), the final run lr=0.01 (0.79 at
    its last epoch) though lr=0.1 kept a model of 0.85. Now ranked by best_val_acc, each
    trial's best val_acc, and the note says why."""
    home = _empty(tmp_path_factory, "two-names")
    _script(home, "search.py", TWO_NAMES_SCRIPT)
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "two-names", "--no-plots", "--format", "json")
    final = report["price_tag"]["final"]
    assert (final["name"], final["metric"], final["score"]) == ("lr=0.1", "best_val_acc", 0.85)
    note = _note(report, "runs ranked by")
    assert "runs ranked by 'best_val_acc'" in note and "each trial's best 'val_acc'" in note
    curve = evp_curves(report)["with replacement (Dodge et al.)"]
    expected = expected_max_performance([0.79, 0.85, 0.70], mode="max").mean.tolist()
    assert curve == pytest.approx(expected, abs=1e-12)
    _export_reads_as_the_report(home, "two-names", report)
    # the other name, asked for, ranks by the last epoch's value as before
    report = _report(home, "--study", "two-names", "--metric", "val_acc", "--no-plots",
                     "--format", "json")  # fmt: skip
    assert report["price_tag"]["final"]["name"] == "lr=0.01"


# ------------------------------------------------------------ two machines' ledgers merged
MACHINE_A = """
import os, subprocess, sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

with gp.track("search", study="merged", ledger="a.db",
              meters=ConstantProcessPower(@WATTS@)) as sweep:
    for lr, acc in {0.01: 0.80, 0.1: 0.86}.items():
        with gp.track(f"lr={lr}", params={"lr": lr}, meters=ConstantProcessPower(@WATTS@)) as run:
            sum(i * i for i in range(20000))
            run.log(accuracy=acc)
    # the other half of the search on machine B, given the sweep's id (as a job script would:
    # ssh, a batch queue), with B's environment, not this process's
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GREENPRINT_") or k.startswith("GREENPRINT_NETWORK_GUARD")}
    env["GREENPRINT_HOST"] = "machine-b"
    subprocess.run([sys.executable, "b.py", sweep.id], env=env, check=True)
"""

MACHINE_B = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

for lr, acc in {1.0: 0.81, 3.0: 0.70}.items():
    with gp.track(f"lr={lr}", study="merged", ledger="b.db", parent=sys.argv[1],
                  params={"lr": lr}, meters=ConstantProcessPower(@WATTS@)) as run:
        sum(i * i for i in range(20000))
        run.log(accuracy=acc)
"""


def test_a_sweep_whose_trials_ran_on_two_machines_counts_the_other_machines_trials(
    tmp_path_factory,
):
    """A search on machine A whose other half ran on machine B under the sweep's id
    (``gp.track(parent=sweep_id)``), each machine its own ledger, merged with ``greenprint
    ledger merge``. Before: B's trials read as measured inside A's sweep (they recorded no
    containment), so the total was the sweep's alone and B's energy was lost. Now a child of
    another host than its parent's adds to it, as the docs say of a parent on another host:
    the total is the sweep's with B's trials, and the export's root rows sum to it."""
    home = _empty(tmp_path_factory, "merged")
    _script(home, "a.py", MACHINE_A)
    _script(home, "b.py", MACHINE_B)
    done = run_in(home, sys.executable, "a.py")
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_in(home, GREENPRINT, "ledger", "merge", "all.db", "a.db", "b.db")
    assert done.returncode == 0, done.stderr
    report = _report(home, "--ledger", "all.db", "--study", "merged", "--no-plots",
                     "--format", "json")  # fmt: skip
    tag = report["price_tag"]
    runs = gp.Ledger(home / "all.db").runs(study="merged")
    (sweep,) = [r for r in runs if r.parent_id is None]
    on_b = [r for r in runs if r.host == "machine-b"]
    assert len(on_b) == 2 and all(r.parent_id == sweep.id for r in on_b)
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (5, 4)
    total = sweep.energy_kwh + sum(r.energy_kwh for r in on_b)
    assert tag["total"]["energy_kwh"] == pytest.approx(total, rel=1e-9)
    on_a = sum(r.energy_kwh for r in runs if r.parent_id == sweep.id and r not in on_b)
    assert tag["by_role"]["sweep"]["energy_kwh"] == pytest.approx(sweep.energy_kwh - on_a, rel=1e-9)
    assert tag["final"]["name"] == "lr=0.1"
    _export_reads_as_the_report(home, "merged", report, "--ledger", "all.db")
    with gp.Ledger(home / "all.db") as ledger:  # a study budget reads the same total
        spent = study_cost(ledger, "merged")
    assert spent.energy_kwh == pytest.approx(total, rel=1e-9)
