"""``greenprint demo``: run a small Green AI study end to end and write its report."""

from __future__ import annotations

import click

from greenprint.cli._common import IntRange, folder_out

__all__ = ["command"]


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    default="greenprint-report",
    callback=folder_out,
    show_default=True,
    metavar="DIR",
    help="Where the report goes (created if needed).",
)
@click.option(
    "--ledger",
    default=None,
    metavar="PATH",
    help="Ledger to record into [default: a new DIR/demo-ledger-<time>.db].",
)
@click.option("--quiet", is_flag=True, help="Plain log lines instead of the progress display.")
@click.option(
    "--study",
    default="digits-demo",
    show_default=True,
    help="Study to record into (a new one in a ledger given with --ledger).",
)
@click.option(
    "--trials",
    type=IntRange(min=1),
    default=24,
    show_default=True,
    help="Trials of the random search (fewer: a shorter demo).",
)
@click.option(
    "--epochs",
    type=IntRange(min=1),
    default=15,
    show_default=True,
    help="Epochs of a trial that is not pruned.",
)
@click.option(
    "--fractions",
    default="0.1,0.25,0.5,1",
    show_default=True,
    help="Training-set fractions of the learning curve, separated by commas.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the search and the splits."
)
def command(
    out_dir: str,
    ledger: str | None,
    quiet: bool,
    study: str,
    trials: int,
    epochs: int,
    fractions: str,
    seed: int,
) -> None:
    """Run a small Green AI study on scikit-learn's digits and report its price tag.

    Baselines (majority class, logistic regression), a random search of 24 trials over an MLP
    and a small CNN with pruning of bad trials, a learning curve and the final model retrained
    and scored on a held-out test split, each run tracked into a fresh ledger; greener variants
    of the best CNN (int8, pruning, bf16, distillation) and a pruner comparison (the search's
    trials, stopped per epoch by Optuna's median rule, trained again under greenprint's
    cost-aware pruner); then the report in HTML, Markdown, LaTeX and JSON. 30-80 s on a 2-vCPU
    machine (28-61 s of CPU on one training thread, by the VM; more when it is busy), no
    download.
    """
    from greenprint._exceptions import ConfigError
    from greenprint.demo import run_demo

    try:
        shares = tuple(float(f) for f in fractions.split(",") if f.strip())
    except ValueError as e:
        raise ConfigError(f"--fractions must be numbers separated by commas: {fractions!r}") from e
    if not shares or not all(0 < f <= 1 for f in shares):  # refused before the search, not after
        raise ConfigError(f"--fractions must each be in (0, 1]: {fractions!r}")
    result = run_demo(
        out_dir,
        ledger=ledger,
        study=study,
        quiet=quiet,
        trials=trials,
        max_epochs=epochs,
        fractions=shares,
        seed=seed,
    )
    click.echo(result.summary)
