"""Sentences of the price tag and the report that said something untrue (session 9).

1. The energy line's share counts the runs the total sums (top-level runs), but it listed the
   meters of every run, the parts inside them too: a study of trials measured by a counter,
   each running an estimated search, read "100% measured by hardware counters (cpu: estimate
   ...)". The sources beside the share are now those runs'; the others are listed apart.
2. The note on concurrent children said "each measuring the whole process (threads) or machine
   over its span" also of children in separate processes, each of which metered its own: it
   now says which they read, and for separate processes what the rule makes of their sum.
3. "FPO unknown for 29 runs" in a 45-run study where no run counted any: the count is of the
   innermost runs; such a set now reads "FPO unknown (none of the 45 runs counted FPO)".
4. ``greenprint ledger export --help`` said the root rows sum to the price tag's total; top-level
   runs in threads of one process, each stretch of their time counted once, are an exception.
5. The GPU "not attributed" note is left out of runs of machine scope, which count every GPU
   whole: attribution does not apply to them.
6. greener.compare recorded its variants' and its own FPO as plain ints, also when the count
   ran ops with no rule: they now say they are a lower bound, as run.add_fpo(result) does.

Studies are built through the real API (Optuna, scikit-learn, gp.track) and the CLI; CLI
commands run as a new user meets them, in an empty folder with a clean environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from _set_energy import Joules  # tests/_set_energy.py
from greenprint.analysis import price_tag
from greenprint.report import build_report
from greenprint.report._text import energy_provenance
from tracking._meters import ConstantProcessPower

#: A process meter that reads a set energy whatever the clock (tests/_set_energy.py); the
#: worker script below imports it from here
FixedEnergy = Joules


#: a worker process: one part, metered by FixedEnergy(JOULES), in its run 0.5 s beside the other
#: (each waits for both to be in their runs first)
WORKER = textwrap.dedent(
    """
    import pathlib, sys, time
    sys.path.insert(0, {tests!r})
    import greenprint as gp
    from test_wording_s9 import FixedEnergy
    with gp.track("worker-" + sys.argv[1], role="part", meters=FixedEnergy(float(sys.argv[2]))):
        # both workers inside their runs at once, however slowly each started (a loaded machine)
        pathlib.Path("ready-" + sys.argv[1]).touch()
        deadline = time.monotonic() + 60
        while len(list(pathlib.Path().glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
    """
)
#: the job: two workers at once
JOB = textwrap.dedent(
    """
    import subprocess, sys
    workers = [subprocess.Popen([sys.executable, "worker.py", str(k), "100"]) for k in range(2)]
    sys.exit(max(w.wait() for w in workers))
    """
)


# ------------------------------------------------------------------ 1. the energy line
@pytest.fixture(scope="module")
def trials_with_searches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Optuna trials measured by a counter, each running GridSearchCV(n_jobs=2) inside."""
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from greenprint.integrations.optuna import GreenprintCallback
    from greenprint.integrations.sklearn import track_search

    db = tmp_path_factory.mktemp("searches") / "g.db"
    X, y = load_iris(return_X_y=True)
    callback = GreenprintCallback(
        ledger=db, study="s", meters=ConstantProcessPower(50.0, per_thread=True)
    )

    def objective(trial: optuna.Trial) -> float:
        c = trial.suggest_float("C", 0.1, 1.0)
        search = GridSearchCV(
            LogisticRegression(C=c, max_iter=200), {"tol": [1e-3, 1e-4]}, cv=2, n_jobs=2
        )
        track_search(search, X, y, ledger=db, study="s")
        return 0.9

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(callback.track(objective), n_trials=2, callbacks=[callback])
    return db


def test_energy_line_lists_the_meters_of_the_runs_its_share_counts(
    trials_with_searches: Path,
) -> None:
    with gp.Ledger(trials_with_searches, create=False) as led:
        runs = led.runs(study="s")
    top = [r for r in runs if r.parent_id is None]
    assert len(top) == 2 and {r.provenance["cpu"] for r in top} == {"test:constant-power"}
    inner = {r.provenance["cpu"] for r in runs if r.parent_id is not None}
    assert inner and all(s.startswith("estimate:") for s in inner)

    summary = price_tag(runs, metric="value").provenance
    # the share: the trials' own counter, their searches' cost inside it
    assert summary.measured_share == pytest.approx(1.0)
    assert summary.counted_sources == {"cpu": ("test:constant-power",)}
    assert set(summary.sources["cpu"]) == {"test:constant-power", *inner}  # every run's, as before
    line = energy_provenance(summary)[0]
    head, _, rest = line.partition("; the runs inside them")
    # the sources beside "100% measured" are the measured runs'; no estimate among them
    assert head == (
        "energy: 100% measured by hardware counters (the runs summed in the total: cpu: "
        "test:constant-power"
    )
    assert rest.startswith(" (their energy is in those runs' figures) also recorded cpu: estimate:")
    assert "ram: estimate:ram" in rest and "test:constant-power" not in rest
    assert summary.to_dict()["counted_sources"] == {"cpu": ["test:constant-power"]}


def test_energy_line_of_top_level_runs_only_is_as_before(tmp_path: Path) -> None:
    """Runs with no run inside them: one list, no "summed in the total" clause."""
    db = tmp_path / "g.db"
    for k in range(2):
        with gp.track(f"t{k}", study="s", ledger=db, meters=ConstantProcessPower(20.0)) as run:
            run.log(acc=0.5)
    with gp.Ledger(db, create=False) as led:
        summary = price_tag(led.runs(study="s"), metric="acc").provenance
    assert summary.counted_sources is None
    assert energy_provenance(summary)[0] == (
        "energy: 100% measured by hardware counters (cpu: test:constant-power)"
    )


def test_json_report_with_inner_runs_keeps_its_schema(trials_with_searches: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from greenprint.report._json import render_json

    schema = json.loads(
        (Path(__file__).parents[1] / "docs" / "report-schema.json").read_text(encoding="utf-8")
    )
    report = build_report(trials_with_searches, "s", metric="value")
    data = json.loads(render_json(report))
    jsonschema.Draft202012Validator(schema).validate(data)
    provenance = data["price_tag"]["provenance"]
    assert provenance["counted_sources"] == {"cpu": ["test:constant-power"]}
    assert set(provenance) <= set(schema["$defs"]["provenance"]["properties"])


# ------------------------------------------------------- 2. children in separate processes
def _write_scripts(folder: Path) -> None:
    tests = str(Path(__file__).parent)
    (folder / "worker.py").write_text(WORKER.format(tests=tests), encoding="utf-8")
    (folder / "job.py").write_text(JOB, encoding="utf-8")


def _shared_notes(notes: tuple[str, ...]) -> list[str]:
    return [n for n in notes if "ran at the same time" in n]


def test_workers_of_a_greenprint_run_job_are_not_said_to_read_the_whole_process(
    tmp_path: Path,
) -> None:
    """greenprint run -- python job.py, two worker processes each metering their own."""
    _write_scripts(tmp_path)
    env = clean_env()
    done = subprocess.run(
        [str(BIN / "greenprint"), "run", "--name", "job", "--study", "s", "--", "python", "job.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with gp.Ledger(tmp_path / "greenprint.db", create=False) as led:
        runs = led.runs(study="s")
    workers = [r for r in runs if r.name.startswith("worker-")]
    assert len(workers) == 2 and all(r.parent_id for r in workers)
    assert len({r.provenance["process"] for r in workers}) == 2  # two processes, each its own
    job = next(r for r in runs if r.name == "job")
    assert job.energy_kwh < 100 / 3.6e6  # the job's estimate: less than either worker read
    [note] = _shared_notes(price_tag(runs).notes)
    assert "whole process" not in note and "machine" not in note
    assert note.startswith(
        "the 2 parts of run 'job' ran at the same time, each measuring its own process over "
        "its span; run 'job' measured less than the largest run of each group ("
    )
    # the rule: the group counts its largest run's 100 J, a lower bound of their 200 J
    assert "their measured energies, 55.6 mWh in all, are scaled to 27.8 mWh (x0.5)" in note
    assert "a lower bound, as runs in separate processes do not read each other's energy" in note


def test_separate_processes_scaled_to_their_parent_say_its_reading_is_the_truth(
    tmp_path: Path,
) -> None:
    """Two worker processes of 100 J each, their parent 150 J: scaled to the parent's."""
    _write_scripts(tmp_path)
    db = tmp_path / "g.db"
    with gp.track("job", study="s", ledger=db, meters=FixedEnergy(150.0)) as run:
        env = run.child_env()
        workers = [
            subprocess.Popen([sys.executable, "worker.py", str(k), "100"], cwd=tmp_path, env=env)
            for k in range(2)
        ]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
    with gp.Ledger(db, create=False) as led:
        runs = led.runs(study="s")
    assert len(runs) == 3
    tag = price_tag(runs)
    [note] = _shared_notes(tag.notes)
    assert note == (
        "the 2 parts of run 'job' ran at the same time, each measuring its own process over its "
        "span: their measured energies, 55.6 mWh in all, add to more than their parent "
        "measured over the same time; their parent's reading is taken as the truth: they are "
        "scaled to its 41.7 mWh (x0.75)" + note[note.index("; their CO2-eq") :]
    )
    assert tag.total.energy_kwh == pytest.approx(150.0 / 3.6e6)


# --------------------------------------------------- 3. FPO unknown: of which runs
def test_a_study_where_no_run_counted_fpo_says_so_of_all_its_runs(
    trials_with_searches: Path, tmp_path: Path
) -> None:
    """18 runs (2 trials, their searches, candidates, folds, refits), none counted FPO."""
    from greenprint.report import write_report

    with gp.Ledger(trials_with_searches, create=False) as led:
        runs = led.runs(study="s")
    assert len(runs) == 18 and all(r.fpo is None for r in runs)
    tag = price_tag(runs, metric="value")
    assert tag.total.fpo_unknown == 10  # the innermost (8 folds, 2 refits): the count's meaning
    summary = tag.summary()
    assert "FPO unknown (none of the 18 runs counted FPO)" in summary
    assert "unknown for 10 runs" not in summary
    assert "none of the 18 runs counted FPO" in tag._repr_html_()

    report = build_report(trials_with_searches, "s", metric="value")
    md = write_report(report, tmp_path / "out", formats=["md"])["md"].read_text(encoding="utf-8")
    assert "- **FPO**: unknown (none of the 18 runs counted FPO)\n" in md
    assert "10 runs" not in md
    assert "floating-point operations (FPO) are unknown (none of the 18 counted any)" in md


def test_a_count_of_runs_with_unknown_fpo_stays_where_some_counted(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with gp.track("counted", study="s", ledger=db, meters=ConstantProcessPower(1.0)) as run:
        run.set(fpo=2_000_000_000)
        run.log(acc=0.5)
    for k in range(2):
        with gp.track(
            f"uncounted-{k}", study="s", ledger=db, meters=ConstantProcessPower(1.0)
        ) as run:
            run.log(acc=0.4)
    with gp.Ledger(db, create=False) as led:
        tag = price_tag(led.runs(study="s"), metric="acc")
    assert "2 GFPO + unknown for 2 runs" in tag.summary()
    assert "none of" not in tag.summary()


# ------------------------------------------- 4. ledger export: when root rows do not sum
def test_export_help_names_the_top_level_runs_in_threads_whose_rows_sum_to_more(
    tmp_path: Path,
) -> None:
    """Two top-level runs in threads of one process, overlapping: their export rows add up to
    more than the price tag's total, which counts each stretch of their time once."""
    import csv
    import threading
    import time

    db = tmp_path / "g.db"
    go = threading.Barrier(2)

    def trial(k: int) -> None:
        go.wait()
        time.sleep(0.3 * k)  # t0 over [0, 0.6], t1 over [0.3, 0.9]: 0.3 s together
        with gp.track(f"t{k}", study="s", ledger=db, meters=ConstantProcessPower(100.0)) as run:
            time.sleep(0.6)
            run.log(acc=0.5 + k / 10)

    threads = [threading.Thread(target=trial, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with gp.Ledger(db, create=False) as led:
        tag = price_tag(led.runs(study="s"), metric="acc")
    [note] = [n for n in tag.notes if "top-level" in n]
    assert "ran at the same time in one process (threads or asyncio tasks)" in note

    env = clean_env()
    cli = [str(BIN / "greenprint"), "ledger", "export", "--ledger", str(db), "--study", "s"]
    done = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    roots = sum(float(r["energy_kwh"]) for r in rows if not r["parent_id"])
    assert roots > tag.total.energy_kwh * 1.2  # ~0.3 s x 100 W counted once, not twice
    helped = subprocess.run(
        [*cli[:3], "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    text = " ".join(helped.stdout.split())
    assert "gives the price tag's energy and CO2-eq" in text
    assert (
        "except for top-level runs that ran at the same time in threads of one process, each "
        "measuring all of it" in text
    )
    assert "their rows add up to more than its total" in text


# ----------------------------------------- 5. the GPU "not attributed" note, machine scope
class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("lose", ["never", "mid-run"])
def test_a_machine_scope_run_says_nothing_of_a_gpu_share_it_never_takes(
    tmp_path: Path, lose: str
) -> None:
    """Machine scope counts every GPU whole: "GPU-0 not attributed ..." does not apply there;
    the same GPU under process scope keeps the note (tests/test_honest_s9.py)."""
    from greenprint.meters import detect_meters
    from greenprint.meters._gpu_meter import HELD_LISTINGS
    from greenprint.testing import FakeGPU, FakeGpuProcess, FakeNVML
    from greenprint.testing._nvml import NVML_ERROR_UNKNOWN

    provenance = {}
    for scope in ("machine", "process"):
        listed = [FakeGpuProcess(os.getpid(), 2**30), FakeGpuProcess(os.getppid(), 3 * 2**30)]
        gpu = FakeGPU(power_w=200.0, processes=None if lose == "never" else listed)
        nvml, clock = FakeNVML([gpu]), Clock()
        meters = detect_meters(nvml=nvml, environ={}, clock=clock)
        db = tmp_path / f"{scope}.db"
        slow = {"sample_interval_s": 600.0, "flush_interval_s": 600.0}
        with gp.track("r", ledger=db, meters=meters, scope=scope, **slow) as run:
            for second in range(HELD_LISTINGS + 3):
                if second == 1 and lose == "mid-run":
                    gpu.fail("nvmlDeviceGetComputeRunningProcesses", NVML_ERROR_UNKNOWN)
                clock.t += 1.0
                nvml.advance(1.0)
                run._sample()
        with gp.Ledger(db, create=False) as led:
            provenance[scope] = led.run(run.id).provenance["gpu"]
        whole_j = 200.0 * (HELD_LISTINGS + 3)
        if scope == "machine":  # every GPU whole, whatever the process list said
            assert run.energy_by_component["gpu"] == pytest.approx(whole_j / 3.6e6)
    assert provenance["machine"] == "nvml:counter:GPU-0"
    assert "GPU-0 not attributed" in provenance["process"]


# ------------------------------------------------- 6. greener.compare's FPO: a lower bound
def test_compare_records_the_timed_loops_fpo_as_a_lower_bound(tmp_path: Path) -> None:
    """A model with an op that has no FPO rule: each variant's run and the comparison's run
    say their FPO are a lower bound (they were recorded as exact ints)."""
    torch = pytest.importorskip("torch")
    from greenprint import greener

    class Bessel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.bessel_j0(x)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), Bessel()).eval()
    db = tmp_path / "g.db"
    result = greener.compare(
        model,
        None,  # no evaluation: the timed loop's count alone
        torch.randn(2, 4),
        ledger=db,
        study="s",
        min_time_s=0.0,
        min_batches=2,
        warmup_batches=1,
    )
    bound = "counted; lower bound: 1 op without a rule: aten.special_bessel_j0"
    with gp.Ledger(db, create=False) as led:
        runs = {r.id: r for r in led.runs(study="s")}
    variant = runs[result.rows[0].run_id]
    container = runs[result.run_id]
    assert variant.fpo and variant.fpo == container.fpo  # the one variant: the baseline
    assert variant.provenance["fpo"] == bound
    assert container.provenance["fpo"] == bound
    tag = price_tag(list(runs.values()))
    assert tag.total.fpo_lower_bound and "at least" in tag.summary()


def test_an_int8_variant_is_no_lower_bound_for_its_int8_kernels(tmp_path: Path) -> None:
    """The int8 kernels (quantized.linear_dynamic) have no FPO rule on purpose: their products
    are integer operations the comparison counts apart. The dynamic-int8 variant's FPO read
    'at least 1.91 MFPO' (and the demo's runs table outgrew a 1280 px page)."""
    torch = pytest.importorskip("torch")
    from greenprint import greener

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    db = tmp_path / "g.db"
    x = torch.randn(8, 16)
    result = greener.compare(
        model.eval(),
        lambda m: float((m(x).argmax(dim=1) == 0).float().mean()),  # evaluated: counted too
        x,
        [greener.dynamic_int8(), greener.static_int8()],
        ledger=db,
        study="s",
        min_time_s=0.0,
        min_batches=2,
        warmup_batches=1,
    )
    with gp.Ledger(db, create=False) as led:
        runs = {r.id: r for r in led.runs(study="s")}
    int8 = [row for row in result.rows if row.name in ("dynamic-int8", "static-int8")]
    assert len(int8) == 2  # static int8 ran aten.quantize_per_tensor and aten.dequantize too
    for row in int8:
        assert runs[row.run_id].fpo and "fpo" not in runs[row.run_id].provenance, row.name
    assert "fpo" not in runs[result.run_id].provenance
    assert not price_tag(list(runs.values())).total.fpo_lower_bound
