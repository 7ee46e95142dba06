"""Issue 12, a seventh outside check: study shapes the first six checks did not use.

Each study is built the way a researcher builds one for a paper, through the public API, an
integration and the CLI, in a fresh empty directory with a clean environment (no
``GREENPRINT_*`` variable, no configuration), then read in all four report formats
(``--no-plots``: no figure's image is checked) and both exports, every number against what the
runs recorded (the first study's runs measured by a constant-power meter: energy is power x
time):

* **a loss ranked lowest-first across model families**: trials of three families tracked
  by hand (``gp.track`` with ``params={"model": ...}``), one failed, one pruned, one whose loss
  blew up, a baseline and a retrain (``role="final"``); the score is a loss named neutrally
  (``objective``), so the report is asked for ``--mode min`` and ``--group-by params.model``:
  each family's EVP against brute force over every draw;
* **one Optuna study resumed over three days**: the same RDB study run by three ``greenprint
  run --role sweep`` invocations, the second one's Python killed by SIGKILL (an OOM kill) in
  the middle of a trial while ``greenprint run`` lives on, and a baseline tracked by hand.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import evp_curves as _evp_curves
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import in_every_format as _in_every_format
from _report_cli import report_text as _text

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

FAMILIES_SCRIPT = """
import sys, time
sys.path.insert(0, @METERS@)
import numpy as np
import greenprint as gp
from _meters import ConstantProcessPower

S, W = "loss-families", @WATTS@
rng = np.random.default_rng(0)
X = rng.normal(size=(120, 4))
y = X @ rng.normal(size=4) + 0.3 * rng.normal(size=120)
Xtr, ytr, Xva, yva = X[:90], y[:90], X[90:], y[90:]


def mse(pred):
    return float(np.mean((pred - yva) ** 2))


def ridge(alpha):
    return mse(Xva @ np.linalg.solve(Xtr.T @ Xtr + alpha * np.eye(4), Xtr.T @ ytr))


def track(name, **kw):
    return gp.track(name, study=S, meters=ConstantProcessPower(W), **kw)


with track("baseline-mean", role="baseline") as r:
    time.sleep(0.05)
    r.log(objective=mse(np.full_like(yva, ytr.mean())))
configs = [("ridge", 0.1), ("ridge", 10.0), ("ridge", 300.0), ("knn", 1), ("knn", 5),
           ("knn", -1), ("mlp", 0.01), ("mlp", 0.1), ("mlp", 5.0)]
for k, (family, hp) in enumerate(configs):
    try:
        with track(f"trial-{k}-{family}", params={"model": family, "hp": hp}) as r:
            time.sleep(0.02)
            if family == "ridge":
                r.log(objective=ridge(hp))
            elif family == "knn":
                if hp < 1:
                    raise ValueError("k must be at least 1")
                near = np.argsort(((Xva[:, None] - Xtr[None]) ** 2).sum(-1), 1)[:, :hp]
                r.log(objective=mse(ytr[near].mean(1)))
            else:  # gradient descent; lr 5 blows the loss up (finite, huge)
                coef = np.zeros(4)
                for epoch in range(4):
                    coef -= 5 * hp * Xtr.T @ (Xtr @ coef - ytr) / len(ytr)
                    r.log(objective=mse(Xva @ coef), step=epoch)
                    if hp == 0.1 and epoch == 1:
                        r.prune()
                        break
    except ValueError:
        pass
with track("retrain", role="final", params={"model": "ridge", "hp": 0.1}) as r:
    time.sleep(0.02)
    r.log(objective=ridge(0.1))
"""

DAYS_SCRIPT = """
import os, signal, sys, time
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
day, kill_at = int(sys.argv[1]), int(sys.argv[2])


def objective(trial):
    x = trial.suggest_float("x", -4, 4)
    model = trial.suggest_categorical("model", ["a", "b"])
    for step in range(3):
        time.sleep(0.01)
        trial.report((x - 1) ** 2 + 1 / (step + 1), step)
        if trial.number == kill_at and step == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, before any flush
        if trial.should_prune():
            raise optuna.TrialPruned()
    return (x - 1) ** 2 + (0.5 if model == "b" else 0.0)


cb = GreenprintCallback()  # the meters greenprint run's sweep reads too: its trials are inside it
study = optuna.create_study(study_name="three-days", storage="sqlite:///optuna.db",
                            load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=day),
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
study.optimize(cb.track(objective), n_trials=3, callbacks=[cb])
"""

BASELINE_SCRIPT = """
import time
import greenprint as gp

with gp.track("baseline-zero", study="three-days", role="baseline") as r:
    time.sleep(0.05)
    r.log(value=1.0)
"""


# ------------------------------------------------------------------------------- helpers
def _script(text: str) -> str:
    return text.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))


def _rows(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["runs"]}


def _with_replacement(scores: list[float], n: int) -> float:
    """Expected lowest of n draws with replacement: the mean over all len(scores)**n draws."""
    draws = list(itertools.product(scores, repeat=n))
    return sum(min(d) for d in draws) / len(draws)


def _without_replacement(scores: list[float], n: int) -> float:
    """Expected lowest of a random n-subset: the mean over every subset."""
    subsets = list(itertools.combinations(scores, n))
    return sum(min(s) for s in subsets) / len(subsets)


def _trial_scores(report: dict) -> dict[str, float | None]:
    """Each trial's score as EVP reads it: finished and pruned score, the others do not."""
    return {
        r["name"]: r["score"] if r["status"] in ("finished", "pruned") else None
        for r in report["runs"]
        if r["role"] == "trial"
    }


def _evp_is_brute_force(report: dict, families: dict[str, str]) -> None:
    """Every EVP curve (all trials with and without replacement, each family with) equals
    enumerating every draw; a trial without a score counts as the study's worst (highest)."""
    scores = _trial_scores(report)
    worst = max(s for s in scores.values() if s is not None)
    filled = {name: worst if s is None else s for name, s in scores.items()}
    curves = _evp_curves(report)
    everything = list(filled.values())
    assert curves["without replacement"] == pytest.approx(
        [_without_replacement(everything, n) for n in range(1, len(everything) + 1)], rel=1e-12
    )
    assert curves["all trials, with replacement (Dodge et al.)"][:4] == pytest.approx(
        [_with_replacement(everything, n) for n in range(1, 5)], rel=1e-12
    )
    for family in dict.fromkeys(families.values()):
        members = [filled[name] for name, f in families.items() if f == family]
        if all(scores[name] is None for name, f in families.items() if f == family):
            # none scored (a lost trial in no family): no curve, drawn at the worst score it
            # would read as a result (session 32); the note names it
            assert not [k for k in curves if k.startswith(f"{family} (")]
            evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
            assert any(
                f"no curve for {family} ({len(members)} trial" in note for note in evp["notes"]
            )
            continue
        (label,) = [k for k in curves if k.startswith(f"{family} (")]
        assert label == f"{family} ({len(members)})"
        assert curves[label] == pytest.approx(
            [_with_replacement(members, n) for n in range(1, len(members) + 1)], rel=1e-12
        ), family


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Nine trials of three families, a baseline and a retrain, reported --mode min."""
    home = _empty(tmp_path_factory, "shapes5-families")
    (home / "study.py").write_text(_script(FAMILIES_SCRIPT), encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr[-3000:]
    # no figure's image is checked: the figures' data are the JSON's, the documents' text the
    # same with or without plots
    return home, _report(home, "--mode", "min", "--group-by", "params.model", "--no-plots")


@pytest.fixture(scope="module")
def three_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], dict]:
    """Day one, day two (its Python killed in trial 4), day three; a baseline by hand."""
    pytest.importorskip("optuna")
    home = _empty(tmp_path_factory, "shapes5-days")
    (home / "search.py").write_text(_script(DAYS_SCRIPT), encoding="utf-8")
    (home / "baseline.py").write_text(_script(BASELINE_SCRIPT), encoding="utf-8")
    done = run_in(home, sys.executable, "baseline.py")
    assert done.returncode == 0, done.stderr[-3000:]
    codes = []
    for day, kill_at in ((1, -1), (2, 4), (3, -1)):
        done = run_in(home, GREENPRINT, "run", "-q", "--study", "three-days", "--role", "sweep",
                      "--name", f"day{day}", "--", sys.executable, "search.py", str(day),
                      str(kill_at))  # fmt: skip
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        codes.append(done.returncode)
    return home, codes, _report(home, "--study", "three-days", "--mode", "min",
                                "--group-by", "params.model", "--no-plots")  # fmt: skip


# ---------------------------------------------------------------------------- the families
def test_loss_families_read_their_statuses_roles_and_cost(families):
    """Nine trials (7 finished, 1 failed, 1 pruned), the retrain chosen by its role, energy
    power x time for every run, and the totals their sums, in every format."""
    home, report = families
    tag = report["price_tag"]
    rows = _rows(report)
    assert report["mode"] == "min" and report["metric"] == "objective"
    assert tag["total"]["runs"] == 11 and tag["total"]["trials"] == 9
    assert {s: c["trials"] for s, c in tag["by_status"].items()} == {
        "finished": 7,
        "failed": 1,
        "pruned": 1,
    }
    for row in rows.values():  # the meter starts and stops within a few ms of the run's clock
        metered_s = row["energy_kwh"] * 3.6e6 / WATTS
        assert metered_s == pytest.approx(row["duration_s"], abs=0.005), row["name"]
    trials = [r for r in rows.values() if r["role"] == "trial"]
    assert tag["by_role"]["trial"]["energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in trials), rel=1e-12
    )
    assert tag["total"]["energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in rows.values()), rel=1e-12
    )
    assert tag["final"]["name"] == "retrain" and tag["final"]["rule"] == "role"
    _in_every_format(home, "retrain (the run with role")
    _export_reads_as_the_report(home, "loss-families", report)


def test_loss_families_evp_equals_every_draw_counted(families):
    """--mode min --group-by params.model: the whole search's curves and each family's are
    the expected lowest loss of n draws, counted over every draw; the API gives the same
    family curves, and without replacement its curves are the brute force over subsets."""
    import greenprint as gp
    from greenprint.analysis import evp_by_budget

    home, report = families
    trials = [r for r in report["runs"] if r["role"] == "trial"]
    family_of = {r["name"]: r["params"]["model"] for r in trials}
    _evp_is_brute_force(report, family_of)
    runs = gp.Ledger(home / "greenprint.db").runs(study="loss-families")
    api = evp_by_budget(runs, "trials", metric="objective", mode="min", group_by="params.model")
    curves = _evp_curves(report)
    assert {f: c.mean.tolist() for f, c in api.items()} == {
        f: curves[f"{f} (3)"] for f in ("ridge", "knn", "mlp")
    }
    exact = evp_by_budget(
        runs, "trials", metric="objective", mode="min", group_by="params.model",
        replacement=False,
    )  # fmt: skip
    scores = _trial_scores(report)
    worst = max(s for s in scores.values() if s is not None)
    for family, curve in exact.items():
        members = [worst if scores[n] is None else scores[n] for n in family_of
                   if family_of[n] == family]  # fmt: skip
        assert curve.mean.tolist() == pytest.approx(
            [_without_replacement(members, n) for n in (1, 2, 3)], rel=1e-12
        )


def test_a_loss_per_kwh_is_no_efficiency(families):
    """Ranked lowest-first, a run's score per kWh and per GFLOP are null in the JSON report
    (they read 'objective per kWh', which ranks the blown-up trial, 4e11, as the most
    efficient); a study ranked highest-first keeps them."""
    from greenprint.report import build_report

    home, report = families
    for row in report["runs"]:
        assert row["score_per_kwh"] is None and row["score_per_gflop"] is None, row["name"]
    as_max = build_report(home / "greenprint.db", "loss-families", mode="max")
    retrain = next(r for r in as_max.runs if r.name == "retrain")
    assert retrain.score_per_kwh == pytest.approx(retrain.score / retrain.energy_kwh)


def test_latex_says_which_way_the_loss_is_ranked(families):
    """The LaTeX report (a paper's appendix, plots aside) says lower is better where it ranks
    the trials; Markdown and HTML say it in their first line (LaTeX read 'The 8 best trials
    by objective out of 9', the failed one unscored, and nowhere which way is best)."""
    home, _ = families
    tex = _text(home, "latex")
    assert "The 8 best trials by objective out of 9 (lower is better);" in tex
    _in_every_format(home, "lower is better")


def test_the_summary_writes_the_final_score_as_the_reports_do(families):
    """``greenprint report`` prints the price tag's summary (a notebook shows the same lines):
    its final run's score has the 4 significant digits of the reports and ``ledger ls`` (it
    read 'objective=0.0836331' above a report of 'objective = 0.08363')."""
    import greenprint as gp
    from greenprint.analysis import price_tag

    home, report = families
    score = report["price_tag"]["final"]["score"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="loss-families")
    tag = price_tag(runs, metric="objective", mode="min")
    assert f"final run retrain (objective={score:.4g}): " in tag.summary()
    assert f"final run retrain (objective={score:.4g}): " in tag._repr_html_()  # a notebook's
    _in_every_format(home, f"objective = {score:.4g}")
    done = run_in(home, GREENPRINT, "ledger", "ls")
    assert f"objective={score:.4g}" in done.stdout


def test_group_by_a_parameter_name_alone_is_one_line_naming_params(families, tmp_path):
    """``--group-by model`` (no run has a field 'model', every trial a parameter): one line,
    exit status 2, naming ``params.model``, and nothing written (it drew one curve of family
    '(no model)' and said 'no trial has a value of model')."""
    home, _ = families
    done = run_in(home, GREENPRINT, "report", "--mode", "min", "--out", str(tmp_path / "r"),
                  "--group-by", "model")  # fmt: skip
    assert done.returncode == 2, done.stdout
    assert done.stderr.strip().splitlines() == [
        "greenprint: error: group_by 'model': a run has no field 'model'; did you mean "
        "'params.model'?"
    ]
    assert not (tmp_path / "r").exists()


def test_the_worst_score_a_trial_without_one_counts_as_is_written_once(families):
    """The failed trial counts as the worst loss: each EVP figure gives that score once, in
    its note (the caption read '... count as the worst score (4.373e+11). 1 of 9 trials had
    no score and count as the worst (4.37338e+11)', two figures of one number)."""
    home, report = families
    worst = max(s for s in _trial_scores(report).values() if s is not None)
    note = f"1 of 9 trials had no score and counts as the worst {report['metric']} ({worst:g})"
    for figure in report["figures"]:
        if figure["id"] in ("evp_trials", "evp_energy"):
            assert note in figure["notes"]
            (scores,) = [p for p in figure["provenance"] if p.startswith("scores:")]
            assert scores.endswith("a diverged loss) counts as the worst score"), scores
    for fmt in ("md", "html", "latex"):
        page = _text(home, fmt)
        assert "count as the worst score (" not in page, fmt
        assert f"{worst:.4g})" not in page.replace(f"{worst:g})", ""), fmt


# ------------------------------------------------------------------------- three days
def test_three_days_of_one_optuna_study_read_as_one_search(three_days):
    """Three ``greenprint run`` sweeps over one RDB study: eight trials numbered on, the one
    killed with its process lost (in no family: it flushed no params), day two's sweep failed
    (killed by SIGKILL, 137 passed through), the baseline beside them."""
    home, codes, report = three_days
    assert codes == [0, 137, 0]
    rows = _rows(report)
    tag = report["price_tag"]
    trials = {n: r for n, r in rows.items() if r["role"] == "trial"}
    assert sorted(trials, key=lambda n: int(n.split("-")[1])) == [f"trial-{k}" for k in range(8)]
    assert trials["trial-4"]["status"] == "lost" and trials["trial-4"]["score"] is None
    assert rows["day2"]["status"] == "failed" and rows["day2"]["error"] == "killed by SIGKILL"
    assert {n: r["role"] for n, r in rows.items() if not n.startswith("trial")} == {
        "baseline-zero": "baseline",
        "day1": "sweep",
        "day2": "sweep",
        "day3": "sweep",
    }
    assert tag["total"]["trials"] == 8 and tag["by_status"]["lost"]["trials"] == 1
    assert sum(c["trials"] for c in tag["by_status"].values()) == 8
    # the lost trial flushed nothing: its energy null (unknown, session 41), inside its
    # sweep's reading (no unknown in the totals)
    assert trials["trial-4"]["energy_kwh"] is None and tag["total"]["energy_unknown"] == 0
    assert tag["by_role"]["trial"]["energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in trials.values() if r["energy_kwh"] is not None), rel=1e-12
    )
    roots = [r for r in rows.values() if r["parent_id"] is None]
    assert tag["total"]["energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in roots), rel=1e-12
    )
    finished = {n: r["score"] for n, r in trials.items() if r["status"] == "finished"}
    best = min(finished, key=finished.__getitem__)
    assert tag["final"]["name"] == best
    _in_every_format(home, f"{best} (the finished trial with the lowest value, as no run has role")
    families = {n: (r["params"] or {}).get("model", "(no params.model)") for n, r in trials.items()}
    assert families["trial-4"] == "(no params.model)"
    _evp_is_brute_force(report, families)
    _export_reads_as_the_report(home, "three-days", report)


def test_final_given_by_its_name_is_one_line_giving_its_id(three_days, tmp_path):
    """``--final trial-N``, the name the ledger and the report show, is refused in one line
    that gives the run's id (it read only "no run with id 'trial-N'"); its id prefix works."""
    home, _, report = three_days
    final = report["price_tag"]["final"]
    out = str(tmp_path / "r")
    done = run_in(home, GREENPRINT, "report", "--study", "three-days", "--out", out,
                  "--final", final["name"])  # fmt: skip
    assert done.returncode == 2, done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith(
        f"; {final['name']!r} is the name of run {final['run_id'][:8]} of study 'three-days': "
        "give its id"
    ), line
    assert not (tmp_path / "r").exists()
    done = run_in(home, GREENPRINT, "report", "--study", "three-days", "--out", out,
                  "--format", "json", "--no-plots", "--final", final["run_id"][:8])  # fmt: skip
    assert done.returncode == 0, done.stderr
