"""Session 40, an outside check of the documentation's sentences against what greenprint does.

docs/report.md says energies and CO2-eq "are written in the unit that fits each (from MWh down
to nWh, from t down to ng)". The price tag's notes on runs that ran at the same time wrote raw
kilowatt-hours and kilograms instead: an Optuna search run with ``n_jobs=2`` reported "their
measured energies, 4.29e-07 kWh in all, count 2.16e-07 kWh; their CO2-eq likewise, 2.06e-07 to
1.04e-07 kg" beside a price tag of "216 µWh". They now read as every other figure does ("429
µWh in all, count 216 µWh; their CO2-eq likewise, 206 µg to 104 µg").

Also the prose of docs/report.md and docs/integrations.md that the product contradicted
(more than 8 model families, the notes on learning curves, Optuna's retry callback as Optuna
4.9 names it), each test below saying which.

Run as a stranger runs it: in an empty directory with a clean environment.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from integrations._frameworks import need_installed

need_installed("optuna", "optuna")

#: Four trials of 0.3 s in two threads: pairs of them run at the same time in one process.
STUDY = """
import time

import optuna

from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
cb = GreenprintCallback(ledger="greenprint.db")


def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    time.sleep(0.3)
    return x


study = optuna.create_study(study_name="threads", direction="maximize")
study.optimize(cb.track(objective), n_trials=4, n_jobs=2, callbacks=[cb])
"""

#: A number in scientific notation before kWh or kg: what no figure of a report reads.
RAW = re.compile(r"\d(?:\.\d+)?e[-+]?\d+ (?:kWh|kg)\b")
ENERGY = r"[\d.]+ (?:MWh|kWh|Wh|mWh|µWh|nWh)"
MASS = r"[\d.]+ (?:t|kg|g|mg|µg|ng)"


@pytest.fixture(scope="module")
def threads_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, str]:
    """An Optuna search in two threads, and its report (Markdown, JSON) and summary."""
    home = empty_home(tmp_path_factory, "threads")
    (home / "study.py").write_text(STUDY)
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    done = run_in(
        home, GREENPRINT, "report", "--format", "md,json", "--no-plots", "--out", "report"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "report" / "report.json").read_text())
    return (home / "report" / "report.md").read_text(), report, done.stdout + done.stderr


def test_the_note_on_trials_in_threads_reads_in_the_unit_that_fits(
    threads_report: tuple[str, dict, str],
) -> None:
    md, report, printed = threads_report
    (note,) = [n for n in report["price_tag"]["notes"] if "ran at the same time" in n]
    assert note.startswith("the 4 top-level trials ('trial-")  # in the ledger's order
    assert re.search(
        rf"their measured energies, {ENERGY} in all, count {ENERGY}; "
        rf"their CO2-eq likewise, {MASS} to {MASS} ",
        note,
    ), note
    # the count in the unit of what they measured, as the report writes a part of its whole
    in_all, count = re.findall(rf"({ENERGY}) in all, count ({ENERGY})", note)[0]
    assert in_all.split()[1] == count.split()[1], note
    for text in (note, md, printed):
        assert not RAW.search(text), RAW.search(text)
    assert note.replace("_", "\\_") in md  # the report's notes, as written


#: 18 trials of 9 model families (two each), scored.
FAMILIES = """
import greenprint as gp

for k in range(18):
    with gp.track(f"t{k}", study="families", params={"model": f"m{k % 9}"}) as run:
        run.log(accuracy=0.5 + k / 100)
"""


def test_more_families_than_a_figure_draws_get_one_curve_and_a_note_as_documented(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """docs/report.md said "With group_by each family gets its own curve"; a figure draws 8 at
    most, and 9 families get the whole search's curve alone, with a note (the doc now says so)."""
    home = empty_home(tmp_path_factory, "families")
    (home / "study.py").write_text(FAMILIES)
    assert run_in(home, sys.executable, "study.py").returncode == 0
    done = run_in(
        home, GREENPRINT, "report", "--group-by", "params.model", "--format", "json",
        "--no-plots", "--out", "report",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "report" / "report.json").read_text())
    (evp,) = [f for f in report["figures"] if f["id"] == "evp_trials"]
    roles = [s["role"] for s in evp["panels"][0]["series"]]
    assert "mean" in roles and not [r for r in roles if r.startswith("family")], roles
    assert (
        "no curve per params.model: the trials fall into 9 families, more than the 8 a figure "
        "draws one by one" in evp["notes"]
    )


#: The README's API quickstart (one run of 50,000 examples), and a study of one baseline.
ONE_SIZE = """
import greenprint as gp

with gp.track("resnet-lr0.1", study="cifar-sweep", region="DE", pue=1.2) as run:
    run.set(params={"lr": 0.1}, dataset_size=50_000)
    run.log(accuracy=0.93)
with gp.track("majority", study="baselines", role="baseline", dataset_size=1000) as run:
    run.log(accuracy=0.1)
"""


def test_the_note_on_no_learning_curve_counts_and_names_the_runs_it_read(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The README's quickstart read "among 1 trials with a dataset_size", and a lone baseline
    was called a trial ("among 1 trials"): docs/report.md says the last resort reads "every run
    that has a dataset_size and is neither a part nor a sweep"."""
    home = empty_home(tmp_path_factory, "one-size")
    (home / "study.py").write_text(ONE_SIZE)
    assert run_in(home, sys.executable, "study.py").returncode == 0
    notes = {}
    for study in ("cifar-sweep", "baselines"):
        done = run_in(
            home, GREENPRINT, "report", "--study", study, "--format", "json", "--no-plots",
            "--out", study,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = json.loads((home / study / "report.json").read_text())
        (notes[study],) = [n for n in report["notes"] if n.startswith("no learning curve")]
    assert notes["cifar-sweep"] == (
        "no learning curve: fewer than two training-set sizes among 1 trial with a dataset_size "
        "(50,000 examples)"
    )
    assert notes["baselines"] == (
        "no learning curve: fewer than two training-set sizes among 1 run with a dataset_size "
        "(1,000 examples)"
    )


#: docs/integrations.md's retried trial with the retry callback Optuna 4.9 names (the older
#: ``failed_trial_callback=RetryFailedTrialCallback(...)`` is deprecated there): the first
#: process dies inside its trial (``os._exit``, as ``kill -9`` leaves it), the second retries it.
RETRIED = """
import os
import sys
import time

import optuna
from optuna.storages import RDBStorage

from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
if retry is None:  # before Optuna 4.9
    retry = optuna.storages.RetryFailedTrialCallback
    storage = RDBStorage("sqlite:///optuna.db", heartbeat_interval=1, grace_period=2,
                         failed_trial_callback=retry(max_retry=1))
else:
    storage = RDBStorage("sqlite:///optuna.db", heartbeat_interval=1, grace_period=2,
                         heartbeat_stale_trial_callback=retry(max_retry=1))
cb = GreenprintCallback(ledger="greenprint.db", flush_interval_s=1, sample_interval_s=0.5)
study = optuna.create_study(study_name="retried", storage=storage, load_if_exists=True,
                            direction="maximize")


def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    if sys.argv[1] == "die":
        time.sleep(1.5)  # a first flush
        os._exit(9)  # no end recorded, as a kill -9 leaves it
    return x


study.optimize(cb.track(objective), n_trials=1, callbacks=[cb])
print(",".join(t.state.name for t in study.trials))
"""


def test_a_trial_killed_and_retried_by_optunas_current_callback_is_one_trial(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """docs/integrations.md showed only ``failed_trial_callback=RetryFailedTrialCallback``,
    which Optuna 4.9 deprecates (two FutureWarnings for a user who follows it); the doc now
    gives ``heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback``, read the same."""
    home = empty_home(tmp_path_factory, "retried")
    (home / "study.py").write_text(RETRIED)
    assert run_in(home, sys.executable, "study.py", "die").returncode == 9
    time.sleep(3)  # the heartbeat's grace period (2 s) runs out
    done = run_in(home, sys.executable, "-W", "error::FutureWarning", "study.py", "again")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["FAIL,COMPLETE"]  # Optuna: two trials
    done = run_in(home, GREENPRINT, "ledger", "ls", "--tree", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["trial-0"]["role"] == "part" and rows["trial-0"]["status"] == "interrupted"
    assert rows["trial-0"]["parent_id"] == rows["trial-1"]["id"]
    assert rows["trial-1"]["role"] == "trial" and rows["trial-1"]["status"] == "finished"
