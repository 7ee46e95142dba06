"""Session 41: counts that read as a sentence reads them, whatever the count.

* The EVP curves' note on trials without a score, or without a cost, said "1 of 1 trials had no
  score and counts as the worst acc (0.7)" for a model family whose one trial crashed (curves
  per family, each failed trial counted as the worst score of the whole study), and "2 of 2
  trials ...". Now "the one trial", "both trials", "all 3 trials"; "1 of 3 trials" unchanged.
* The LaTeX report's caption of the best trials said "for 8 of the 8 trials, accuracy is the
  mean of their parts'" for a search whose every trial is scored by its folds. Now "for all 3
  trials"; some of them read "for 5 of 6 trials", as the other formats' note does.
* The fallback ledger file's lines said "the 1 run(s) made while it could not are in ...",
  "note: 1 run(s) meant for this ledger wait in ...", and a lost job's note "run(s) 3ab964cc on
  vm ended unrecorded (their process is gone ...)": now in the singular for one, and "runs a
  on vm and b on vm ... (their processes are gone ...)" for two.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, report_text, run_in

#: Trials of four model families, logged as a user's loop logs them: the cnn's one trial and
#: both gbm trials crashed before logging a score, and one of the three svm trials.
FAMILIES = """
import json
import math

import greenprint as gp
from greenprint.analysis import evp_by_budget, expected_max_performance

trials = [("mlp", 0.8), ("mlp", 0.85), ("cnn", None), ("gbm", None), ("gbm", None),
          ("svm", 0.7), ("svm", 0.75), ("svm", None)]
for i, (model, acc) in enumerate(trials):
    with gp.track(f"t{i}", study="s", role="trial", params={"model": model}) as run:
        if acc is not None:
            run.log(acc=acc)
runs = gp.Ledger().runs(study="s")
curves = evp_by_budget(runs, metric="acc", group_by="params.model")
notes = {family: list(curve.notes) for family, curve in curves.items()}
# a chance-level score given for the one trial of a study that crashed
alone = list(expected_max_performance([math.nan], fill_value=0.5, metric="acc").notes)
print(json.dumps({"families": notes, "alone": alone}))
"""


def test_the_evp_note_counts_trials_as_a_sentence_does(tmp_path_factory):
    home = empty_home(tmp_path_factory, "evp-counts")
    (home / "families.py").write_text(FAMILIES)
    done = run_in(home, sys.executable, "families.py")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    worst = "the worst acc (0.7)"
    assert said["families"] == {
        "mlp": [],
        "cnn": [f"the one trial had no score and counts as {worst}"],
        "gbm": [f"both trials had no score and count as {worst}"],
        "svm": [f"1 of 3 trials had no score and counts as {worst}"],
    }
    assert said["alone"] == ["the one trial had no score and counts as the worst acc (0.5)"]
    assert " of 1 trials" not in done.stdout and " of 2 trials" not in done.stdout


#: A cross-validated search: each of three trials logged no score of its own, only its folds.
FOLDS = """
import greenprint as gp

for lr in (0.1, 0.2, 0.3):
    with gp.track(f"lr={lr}", study="cv", role="trial", params={"lr": lr}):
        for fold in range(3):
            with gp.track(f"lr={lr}-fold{fold}", study="cv", role="part") as part:
                part.log(accuracy=0.7 + lr / (fold + 1))
"""


def test_the_latex_caption_says_every_trial_is_scored_by_its_folds(tmp_path_factory):
    home = empty_home(tmp_path_factory, "latex-folds")
    (home / "cv.py").write_text(FOLDS)
    done = run_in(home, sys.executable, "cv.py")
    assert done.returncode == 0, done.stderr
    report = run_in(home, GREENPRINT, "report", "--out", "rep", "--format", "latex", "--no-plots")
    assert report.returncode == 0, report.stderr
    tex = report_text(home, "latex")
    assert "for all 3 trials, accuracy is the mean of their parts'" in tex
    assert "3 of the 3 trials" not in tex


#: A study whose ledger's disk fills after its first run (RLIMIT_FSIZE: the kernel refuses a
#: write past the size, as a full disk does): its second run is saved in the fallback file.
#: With "back", the disk has room again for a third run.
DISK_FULL = """
import os, resource, signal, sys
import greenprint as gp

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails (EFBIG), as a full disk
ledger = "runs/gp.db"
with gp.track("t0", study="s", ledger=ledger) as run:
    for step in range(2000):
        run.log(loss=1 / (step + 1), step=step)
limit = max(os.path.getsize(ledger + x) for x in ("", "-wal") if os.path.exists(ledger + x))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
with gp.track("t1", study="s", ledger=ledger) as run:
    run.log(loss=0.5)
if sys.argv[1] == "back":
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    with gp.track("t2", study="s", ledger=ledger) as run:
        run.log(loss=0.4)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE: Linux")
@pytest.mark.parametrize("how", ["back", "stay"])
def test_one_run_in_the_fallback_file_is_said_in_the_singular(tmp_path_factory, how):
    """'the 1 run(s) made while it could not are in ...: ... puts them in it' as the ledger
    took runs again; 'note: 1 run(s) meant for this ledger wait in ...' from ledger ls."""
    home = empty_home(tmp_path_factory, f"fallback-{how}")
    (home / "runs").mkdir()
    (home / "tmp").mkdir()
    (home / "study.py").write_text(DISK_FULL)
    env = {**clean_env(), "TMPDIR": str(home / "tmp")}
    done = run_in(home, sys.executable, "study.py", how, env=env)
    assert done.returncode == 0, done.stderr
    assert "(s)" not in done.stderr, done.stderr
    (fallback,) = (home / "tmp").glob("greenprint-*/greenprint-unsaved-*.db")
    ledger = home / "runs" / "gp.db"
    command = f"`greenprint ledger merge {ledger} {fallback}`"
    lines = [line for line in done.stderr.splitlines() if line.startswith("greenprint:")]
    assert "cannot take runs" in lines[0], done.stderr
    if how == "back":  # said as the ledger took runs again (and not again at exit)
        assert lines[1:] == [
            f"greenprint: ledger {ledger} takes runs again; the 1 run made while it could not "
            f"is in {fallback}: {command} puts it in the ledger"
        ]
        return
    assert len(lines) == 1, done.stderr  # the one run was said as it fell back: no count at exit
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--ledger", "runs/gp.db", env=env)
    assert listed.returncode == 0, listed.stderr
    (note,) = [line for line in listed.stderr.splitlines() if line.startswith("note:")]
    assert note == (
        f"note: 1 run meant for this ledger waits in {fallback} (its ledger could not take it "
        f"when it ran): {command} puts it in the ledger"
    )


#: One rank of a SLURM job (its variables given by the test, as srun gives them): it logs, says
#: it is ready, and works on until its input ends (its work done), or its node is lost (the
#: test kills it).
RANK = """
import os, sys
import greenprint as gp

with gp.track(f"rank{os.environ['SLURM_PROCID']}", study="j") as run:
    run.log(loss=1.0)
    print("ready", flush=True)
    sys.stdin.read()
"""


def test_the_note_on_a_lost_job_counts_its_lost_runs(tmp_path_factory):
    """'job slurm:7 is lost: run(s) 1a2b3c4d on host ended unrecorded (their process is gone,
    ...); their cost until the last heartbeat is counted' for one lost run; now 'run ... (its
    process is gone, or its heartbeat stopped); its cost ...', and 'runs a and b' for two."""
    home = empty_home(tmp_path_factory, "lost-job")
    (home / "rank.py").write_text(RANK)
    env = {k: v for k, v in clean_env().items() if not k.startswith("SLURM_")}
    procs = {}
    for job in ("7", "8"):  # job 7 loses its rank 1; job 8 both of its ranks
        for rank in range(2):
            slurm = {"SLURM_JOB_ID": job, "SLURM_NTASKS": "2", "SLURM_NODEID": "0",
                     "SLURM_LOCALID": str(rank), "SLURM_PROCID": str(rank)}  # fmt: skip
            procs[job, rank] = subprocess.Popen(
                [sys.executable, "rank.py"], cwd=home, env={**env, **slurm},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    finally:
        for at, proc in procs.items():
            if at == ("7", 0):
                _, err = proc.communicate(timeout=60)  # its work done
                assert proc.returncode == 0, err
            else:
                proc.kill()  # its node lost
                proc.communicate(timeout=60)
    report = run_in(home, GREENPRINT, "report", "--out", "rep", "--format", "json", "--no-plots")
    assert report.returncode == 0, report.stderr
    notes = json.loads((home / "rep" / "report.json").read_text())["price_tag"]["notes"]
    lost = sorted(n for n in notes if re.match(r"job slurm:\d is lost: ", n))
    assert len(lost) == 2, notes
    assert re.fullmatch(
        r"job slurm:7 is lost: run \w{8} on \S+ ended unrecorded \(its process is gone, or its "
        r"heartbeat stopped\); its cost until the last heartbeat is counted",
        lost[0],
    ), lost[0]
    assert re.fullmatch(
        r"job slurm:8 is lost: runs \w{8} on \S+ and \w{8} on \S+ ended unrecorded \(their "
        r"processes are gone, or their heartbeats stopped\); their cost until the last "
        r"heartbeat is counted",
        lost[1],
    ), lost[1]
