"""``run_demo``: a whole small Green AI study on scikit-learn's digits, tracked and reported."""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprint._exceptions import ConfigError
from greenprint._format import (
    count_of,
    format_duration,
    format_emissions,
    format_energy,
    format_fpo,
    format_multiple,
)
from greenprint._imports import ensure
from greenprint.demo._display import Display, make_display

__all__ = ["DEFAULT_OUT", "DEFAULT_STUDY", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

DEFAULT_OUT = "greenprint-report"
DEFAULT_STUDY = "digits-demo"
METRIC = "val_accuracy"
TEST_METRIC = "test_accuracy"  # the final model's score on the held-out test split


@dataclass(frozen=True)
class DemoResult:
    """What the demo did and where it put it.

    Attributes:
        out_dir: the report's directory.
        files: format -> report file written.
        ledger: path of the ledger the study was recorded in.
        study: the study's name.
        report: the report (price tag, runs, figures).
        elapsed_s: wall-clock time of the whole demo, s.
        summary: the closing note printed on the terminal.
        pruners: the pruner comparison (``demo._pruning.PrunerComparison``), or ``None``
            when it was not run.
        greener: the greener variants of the best CNN (:class:`greenprint.greener.GreenerResult`),
            or ``None`` when no CNN trial finished.
    """

    out_dir: Path
    files: Mapping[str, Path]
    ledger: Path
    study: str
    report: Any
    elapsed_s: float
    summary: str
    pruners: Any = None
    greener: Any = None


def _fresh_ledger_path(out_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"demo-ledger-{stamp}.db"
    k = 2
    while path.exists():
        path = out_dir / f"demo-ledger-{stamp}-{k}.db"
        k += 1
    return path


def _sample(rng: Any, kind: str, max_epochs: int) -> dict[str, Any]:
    """One random-search configuration (log-uniform learning rates)."""
    params: dict[str, Any] = {
        "model": kind,
        "lr": float(10 ** rng.uniform(-4.0, -1.5)),
        "batch": int(rng.choice([32, 64, 128])),
        "wd": float(10 ** rng.uniform(-6.0, -3.0)),
        "epochs": max_epochs,
    }
    if kind == "mlp":
        params.update(
            hidden=int(rng.choice([32, 64, 128, 256])),
            layers=int(rng.choice([1, 2])),
            dropout=float(rng.choice([0.0, 0.2])),
        )
    else:
        params.update(channels=int(rng.choice([8, 16, 32])))
    return params


def _load_digits(seed: int) -> Any:
    import numpy as np
    import torch

    # scikit-learn's digits and its stratified split, without importing scikit-learn (scipy.stats
    # and pandas with it: about 1.3 s of CPU)
    from greenprint.demo._digits import load_digits, train_test_split
    from greenprint.demo._models import Data

    pixels, target = load_digits()
    x = (pixels / 16.0).astype(np.float32)
    # the test split is put aside first: only the final model is ever scored on it
    x_rest, x_test, y_rest, y_test = train_test_split(x, target, test_size=0.2, seed=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.25, seed=seed)
    return Data(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train.astype(np.int64)),
        torch.from_numpy(x_val),
        torch.from_numpy(y_val.astype(np.int64)),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test.astype(np.int64)),
    )


def _line(run: Any, name: str, outcome: str = "") -> str:
    score = run.record.metric(METRIC)
    shown = "-" if score is None or not math.isfinite(score) else f"{score:.3f}"
    fpo = "-" if run.fpo is None else format_fpo(run.fpo)
    return (
        f"{name:<22} {run.status:<9} {METRIC}={shown}  {format_energy(run.energy_kwh):>10}  "
        f"{fpo:>10}  {format_duration(run.duration_s):>7}{outcome}"
    )


def run_demo(
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    *,
    ledger: str | os.PathLike[str] | None = None,
    study: str = DEFAULT_STUDY,
    quiet: bool = False,
    trials: int = 24,
    max_epochs: int = 15,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    seed: int = 0,
    threads: int = 1,
    display: Display | None = None,
    compare_pruners: bool = True,
) -> DemoResult:
    """Run a small Green AI study end to end and write its report.

    On scikit-learn's bundled digits (no download), every run is tracked into a fresh ledger
    under one study, each with its role: two baselines (majority class; logistic regression;
    role ``baseline``), a random search over an MLP and a small CNN (PyTorch, CPU; role
    ``trial``) whose bad trials are stopped by a median rule and recorded as ``pruned`` with
    their cost, FPO per trial from the FPO counter, a learning curve of the best configuration
    over subsample fractions (role ``learning-curve``), and the final model: the best
    configuration retrained on training + validation data and scored on a held-out test split
    that the search never saw (role ``final``). Then the report in every format, with one EVP
    curve per model family and the baselines as reference lines.

    Args:
        out_dir: where the report goes (created if needed).
        ledger: the ledger to record into; default a new file ``demo-ledger-<time>.db`` in
            ``out_dir``. An existing ledger is used only if it has no study named ``study``.
        study: the study's name.
        quiet: plain log lines instead of the rich progress display.
        trials: random-search trials (the full demo runs 24).
        max_epochs: epochs of a trial that is not pruned.
        fractions: training-set fractions of the learning curve.
        seed: seed of the split, the search and the training.
        threads: torch CPU threads (1: the models are tiny, and one thread keeps its speed
            on a busy machine).
        display: a ready display (tests); default from ``quiet``.
        compare_pruners: also train the search's configurations again, stopped by
            greenprint's cost-aware pruner (at equal FPO) as the study ``<study>-cost-pruner``,
            against the search itself (stopped per epoch by the rule of Optuna's
            ``MedianPruner``); both price tags and best scores go to the summary and the
            report's notes (needs Optuna).

    Returns:
        The :class:`DemoResult`.

    Raises:
        MissingDependencyError: torch or scikit-learn is missing (extras ``torch``, ``demo``).
        ConfigError: bad options, or the ledger already holds ``study``.
        ReportError: the output directory cannot be written.
    """
    started = time.monotonic()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a positive integer, not {trials!r}")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise ConfigError(f"max_epochs must be a positive integer, not {max_epochs!r}")
    ensure("torch", extra="torch", purpose="greenprint demo")
    ensure("sklearn", extra="demo", purpose="greenprint demo", package="scikit-learn")
    from greenprint.ledger import Ledger
    from greenprint.report import build_report, write_report
    from greenprint.report._formats import check_out_dir, prepare_out_dir

    check_out_dir(out_dir)  # creates nothing: a refused demo leaves no empty folder
    if ledger is not None:
        ledger_path = Path(ledger)
        led = Ledger(ledger_path)
        if study in led.studies():
            led.close()
            raise ConfigError(
                f"ledger {ledger_path} already holds a study {study!r}; give a new --ledger "
                "or --study"
            )
        out = prepare_out_dir(out_dir)
    else:
        out = prepare_out_dir(out_dir)
        ledger_path = _fresh_ledger_path(out)
        led = Ledger(ledger_path)
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    show = display or make_display(quiet=quiet)
    try:
        data = _load_digits(seed)
        show.message(
            f"greenprint demo: study {study!r} on scikit-learn's digits "
            f"({data.n_train} training, {int(data.x_val.shape[0])} validation, "
            f"{0 if data.x_test is None else int(data.x_test.shape[0])} held-out test images), "
            f"ledger {ledger_path}"
        )
        test_score, best_cnn = _study(
            led,
            study,
            data,
            show,
            trials=trials,
            max_epochs=max_epochs,
            seed=seed,
            fractions=fractions,
        )
        from greenprint.demo._greener import run_greener

        greener = run_greener(led, study, data, show, best_cnn, metric=METRIC, seed=seed)
        pruners = None
        if compare_pruners:
            from greenprint.demo._pruning import run_comparison

            pruners = run_comparison(led, study, data, show, seed=seed)
        show.phase("report", 1)
        show.status("building the report")
        report = build_report(
            led,
            study,
            metric=METRIC,
            mode="max",
            group_by="params.model",
            training_type="pre-training",  # trained from scratch (Hugging Face's term)
        )
        if pruners is not None:
            from greenprint.demo._pruning import with_comparison

            report = with_comparison(report, pruners)
        files = write_report(report, out)
        show.done(f"report written to {out}")
    finally:
        show.close()
        torch.set_num_threads(previous_threads)
        led.close()
    elapsed = time.monotonic() - started
    summary = _summary(report, files, ledger_path, study, elapsed, test_score)
    from greenprint.demo._greener import add_to_summary as add_greener

    summary = add_greener(summary, greener)
    if pruners is not None:
        from greenprint.demo._pruning import add_to_summary

        summary = add_to_summary(summary, pruners)
    return DemoResult(
        out_dir=out,
        files=files,
        ledger=ledger_path,
        study=study,
        report=report,
        elapsed_s=elapsed,
        summary=summary,
        pruners=pruners,
        greener=greener,
    )


def _study(
    led: Any,
    study: str,
    data: Any,
    show: Display,
    *,
    trials: int,
    max_epochs: int,
    seed: int,
    fractions: Sequence[float],
) -> tuple[float | None, Any]:
    """The study's runs: the final model's test accuracy and the best finished CNN trial.

    Returns ``(held-out test accuracy, or None without a final model; (score, trained model,
    params) of the best finished CNN trial, or None)``: the CNN is where the greener variants
    start.
    """
    import greenprint as gp
    from greenprint.demo._models import build_model, train

    _baselines(led, study, data, show, max_epochs=max_epochs, seed=seed)

    best, best_cnn = random_search(
        led, study, data, show, trials=trials, max_epochs=max_epochs, seed=seed
    )
    if best is None:
        return None, best_cnn
    config = dict(best[1])
    if fractions:
        _learning_curve(led, study, data, show, config, fractions=fractions, seed=seed)
    show.phase("final model", 1)
    final_data = data.for_final()
    with gp.track("final-retrain", study=study, ledger=led, params=config, role="final") as run:
        model = build_model(config)
        run.set(
            dataset_size=final_data.n_train,
            param_count=sum(p.numel() for p in model.parameters()),
        )
        # scored once, after training: the test split is never watched along the way
        train(
            model, config, final_data, run, seed=seed, score_name=TEST_METRIC,
            score_each_epoch=False,
        )  # fmt: skip
    score = run.record.metric(TEST_METRIC)
    show.done(
        f"{'final-retrain':<22} {run.status:<9} {TEST_METRIC}={score:.3f}  "
        f"{format_energy(run.energy_kwh):>10}  {final_data.n_train} examples, scored on "
        f"{int(final_data.x_val.shape[0])} held-out test images"
    )
    return score, best_cnn


def random_search(
    led: Any,
    study: str,
    data: Any,
    show: Display,
    *,
    trials: int,
    max_epochs: int,
    seed: int,
) -> tuple[tuple[float, dict[str, Any]] | None, tuple[float, Any, dict[str, Any]] | None]:
    """The study's random search (role ``trial``), stopped per epoch by the median rule.

    Trial ``k`` (from 0) is an MLP for even ``k``, a CNN for odd, its hyper-parameters drawn
    from ``numpy.random.default_rng(seed)``; its initial weights and its training are seeded with
    ``seed + k``, so a configuration trains the same whatever the trials before it did (the
    pruner comparison trains these configurations again under another pruner). The pruner is
    the rule of Optuna's ``MedianPruner``: ``min(5, max(1, trials // 4))`` startup trials, no
    trial stopped before epoch 3 (``demo._pruning.compare_pruners`` gives its cost-aware search
    the same warm-up).

    Returns:
        ``(best score, params)`` of the best finished trial, and ``(score, trained model,
        params)`` of the best finished CNN trial (where the greener variants start); ``None``
        where no trial (no CNN trial) finished.
    """
    import numpy as np
    import torch

    import greenprint as gp
    from greenprint.demo._models import (
        WARMUP_EPOCHS,
        MedianPruner,
        build_model,
        startup_trials,
        train,
    )

    rng = np.random.default_rng(seed)
    pruner = MedianPruner(startup_trials=startup_trials(trials), warmup_epochs=WARMUP_EPOCHS)
    best: tuple[float, dict[str, Any]] | None = None
    best_cnn: tuple[float, Any, dict[str, Any]] | None = None  # for the greener variants
    show.phase("random search", trials)
    for k in range(trials):
        kind = "mlp" if k % 2 == 0 else "cnn"
        params = _sample(rng, kind, max_epochs)
        name = f"trial-{k + 1:02d}-{kind}"
        with gp.track(name, study=study, ledger=led, params=params, role="trial") as run:
            torch.manual_seed(seed + k)  # its initial weights, whatever the trials before it did
            model = build_model(params)
            run.set(
                dataset_size=data.n_train, param_count=sum(p.numel() for p in model.parameters())
            )
            outcome = train(
                model,
                params,
                data,
                run,
                seed=seed + k,
                pruner=pruner,
                on_epoch=functools.partial(_epoch_status, show, name),
            )
        if not outcome.pruned:
            pruner.record(outcome.scores)
            if best is None or outcome.scores[-1] > best[0]:
                best = (outcome.scores[-1], params)
            if kind == "cnn" and (best_cnn is None or outcome.scores[-1] > best_cnn[0]):
                best_cnn = (outcome.scores[-1], model, params)
        note = f"  (stopped after epoch {outcome.epochs})" if outcome.pruned else ""
        show.done(_line(run, name, note))
    return best, best_cnn


def _baselines(
    led: Any, study: str, data: Any, show: Display, *, max_epochs: int, seed: int
) -> None:
    """The majority class and a logistic regression (role ``baseline``), before the search."""
    import numpy as np
    import torch

    import greenprint as gp
    from greenprint.demo._models import build_model, fpo_per_epoch, train

    show.phase("baselines", 2)
    with gp.track("baseline-majority", study=study, ledger=led, role="baseline") as run:
        majority = int(np.bincount(data.y_train.numpy()).argmax())
        accuracy = float((data.y_val == majority).float().mean())
        run.set(params={"model": "majority"}, dataset_size=data.n_train, fpo=0, param_count=0)
        run.log(step=1, val_accuracy=accuracy)
    show.done(_line(run, "baseline-majority"))
    logreg = {"model": "logreg", "lr": 0.01, "batch": 64, "wd": 0.0, "epochs": max_epochs}
    torch.manual_seed(seed)  # its initial weights: the same on every run of a seed
    model = build_model(logreg)
    # Counted before its run opens (train() finds the count): the demo's first count imports
    # sympy (meta shape checks). The first torch.optim optimizer, made in train(), imports
    # torch._dynamo (~1.1 s of CPU), which no count does any more: imported here, outside every
    # run, or this baseline's run pays it (0.48 s and 0.6 mWh for 5 epochs that take 0.024 s).
    import torch._dynamo

    fpo_per_epoch(model, logreg, data)
    with gp.track(
        "baseline-logreg", study=study, ledger=led, params=logreg, role="baseline"
    ) as run:
        run.set(dataset_size=data.n_train, param_count=sum(p.numel() for p in model.parameters()))
        train(model, logreg, data, run, seed=seed)
    show.done(_line(run, "baseline-logreg"))


def _learning_curve(
    led: Any,
    study: str,
    data: Any,
    show: Display,
    config: dict[str, Any],
    *,
    fractions: Sequence[float],
    seed: int,
) -> None:
    from greenprint.analysis import run_learning_curve
    from greenprint.demo._models import build_model, train
    from greenprint.tracking import active_runs

    show.phase("learning curve", len(fractions))

    def fit(fraction: float, seed: int) -> tuple[float, int]:
        run = list(active_runs())[-1]
        subset = data.subsample(fraction, seed=seed)
        model = build_model(config)
        run.set(params=config, param_count=sum(p.numel() for p in model.parameters()))
        show.status(f"{len(subset.y_train)} examples")
        outcome = train(model, config, subset, run, seed=seed)
        return outcome.scores[-1], subset.n_train

    for fraction in fractions:  # one call per fraction, so that the display advances
        curve = run_learning_curve(
            fit,
            [fraction],
            study=study,
            ledger=led,
            name="learning-curve",
            seed=seed,
            metric=METRIC,
        )
        run_record = led.runs(study=study)[-1]
        show.done(
            f"{'learning-curve-' + format(fraction, 'g'):<22} {run_record.status:<9} "
            f"{METRIC}={curve.score_mean[0]:.3f}  {format_energy(run_record.energy_kwh):>10}  "
            f"{int(curve.dataset_size[0])} examples"
        )


def _epoch_status(show: Display, name: str, epoch: int, score: float) -> None:
    show.status(f"{name} epoch {epoch}: {METRIC}={score:.3f}")


def _summary(
    report: Any,
    files: Mapping[str, Path],
    ledger: Path,
    study: str,
    elapsed_s: float,
    test_score: float | None = None,
) -> str:
    tag = report.price_tag
    total = tag.total
    final = tag.final
    statuses = ", ".join(f"{v.trials} {k}" for k, v in tag.by_status.items() if v.trials)
    lines = ["", "greenprint demo: done", ""]
    if test_score is not None and final is not None:
        lines.append(
            f"  final score    {TEST_METRIC} = {test_score:.4f} ({final.name}, on the held-out "
            "test split the search never saw)"
        )
    elif final is not None and final.score is not None:
        lines.append(f"  best score     {final.metric} = {final.score:.4f} ({final.name})")
    # every run's cost, not only the trials': say how many runs, and what the search alone cost
    trials = f"{count_of(total.trials, 'trial')} ({statuses})"
    if total.runs != total.trials:
        them = "one of them a trial" if total.trials == 1 else f"{total.trials} of them trials"
        trials = f"{total.runs} runs, {them} ({statuses})"
    search = tag.by_role.get("trial")
    share = (
        f"; the search {format_energy(search.energy_kwh)} "
        f"({search.energy_kwh / total.energy_kwh:.0%})"
        if search is not None and len(tag.by_role) > 1 and total.energy_kwh > 0
        else ""
    )
    lines.append(
        f"  whole study    {trials}: {format_energy(total.energy_kwh)}, "
        f"{format_emissions(total.emissions_kg)}, {format_fpo(total.fpo)}, "
        f"{format_duration(total.duration_s)} of runs{share}"
    )
    if final is not None:
        ratio = final.study_multiple
        lines.append(
            f"  final model    {format_energy(final.energy_kwh)}, "
            f"{format_emissions(final.emissions_kg)}, "
            f"{'unknown FPO' if final.fpo is None else format_fpo(final.fpo)}, "
            f"{format_duration(final.duration_s)}"
            + (f": the whole study cost {format_multiple(ratio)} its energy" if ratio else "")
        )
    summary = tag.provenance
    energy = "measured" if (summary.measured_share or 0) >= 0.995 else "estimated"
    if 0 < (summary.measured_share or 0) < 0.995:
        energy = f"{summary.measured_share:.0%} measured, the rest estimated"
    intensity = ", ".join(s.split(" (", 1)[0] for s in summary.intensity_sources) or "unrecorded"
    pue = ", ".join(f"{v:g}" for v in summary.pue_values)
    lines.append(f"  provenance     energy {energy}; grid intensity {intensity}; PUE {pue}")
    main = files.get("html") or next(iter(files.values()))
    others = ", ".join(p.name for k, p in files.items() if p != main)
    lines.append(f"  report         {main}" + (f" (also {others})" if others else ""))
    lines.append(f"  ledger         {ledger} (study {study!r})")
    lines.append(f"  took           {format_duration(elapsed_s)}")
    return "\n".join(lines)
