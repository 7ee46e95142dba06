"""``greenprint report``: write a study's price-tag report (reads the ledger, never creates one)."""

from __future__ import annotations

import click

from greenprint.cli._common import ledger_option
from greenprint.report._formats import FORMATS  # the registry: no plotting library imported

__all__ = ["command"]

_FORMAT_HELP = (
    ", ".join(FORMATS)
    + " or all (repeat, or separate with commas) [default: all]. "
    + "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
)


@click.command("report")
@ledger_option
@click.option("--study", default=None, help="Study name [default: the ledger's only study].")
@click.option("--format", "formats", multiple=True, metavar="FORMAT", help=_FORMAT_HELP)
@click.option(
    "--out",
    "out_dir",
    default="greenprint-report",
    show_default=True,
    metavar="DIR",
    help="Output directory (created if needed).",
)
@click.option("--metric", default=None, help="Metric to rank runs by [default: the most logged].")
@click.option(
    "--mode",
    type=click.Choice(["max", "min"]),
    default=None,
    help="Whether a higher (max) or lower (min) metric is better [default: min for a metric "
    "named like a loss, error, perplexity, rmse... (the report says so), else max].",
)
@click.option("--final", default=None, metavar="RUN_ID", help="The run behind the result.")
@click.option(
    "--reduce",
    type=click.Choice(["last", "best"]),
    default="last",
    show_default=True,
    help="Score of a run: its last or its best logged value.",
)
@click.option(
    "--training-type",
    default=None,
    metavar="TYPE",
    help="The model card's training_type (pre-training, fine-tuning...) [default: the "
    "training_type parameter the study's runs set, else unknown].",
)
@click.option(
    "--group-by",
    default=None,
    metavar="PATH",
    help="Draw one EVP curve per family of trials, e.g. params.model [default: one curve].",
)
@click.option("--no-plots", is_flag=True, help="Skip the plots (no matplotlib needed).")
def command(
    ledger: str | None,
    study: str | None,
    formats: tuple[str, ...],
    out_dir: str,
    metric: str | None,
    mode: str | None,
    final: str | None,
    reduce: str,
    training_type: str | None,
    group_by: str | None,
    no_plots: bool,
) -> None:
    """Write the price-tag report of a study: HTML, Markdown, LaTeX and JSON.

    The report holds the study's cost by run status (failed and pruned trials included), the
    expected best score against trials and energy, score against energy with the Pareto front,
    the learning curve, power over time, a model-card block and a compute statement.
    """
    from greenprint.report import build_report, resolve_formats, write_report
    from greenprint.report._formats import check_out_dir

    names = resolve_formats(formats or ("all",))  # bad format: one line, before any work
    check_out_dir(out_dir)  # unwritable output: one line, before any work
    report = build_report(
        ledger,
        study,
        metric=metric,
        mode=None if mode is None else ("max" if mode == "max" else "min"),
        final=final,
        reduce="last" if reduce == "last" else "best",
        training_type=training_type,
        group_by=group_by,
    )
    written = write_report(report, out_dir, names, plots=not no_plots)
    click.echo(report.price_tag.summary())
    for name, path in written.items():
        click.echo(f"{name:6} {path}")
    if not no_plots and report.figures:
        from greenprint.report._plots import FigureRenderer

        if not FigureRenderer().available:
            from greenprint.report import PLOTS_HINT

            click.echo(f"note: {PLOTS_HINT}", err=True)
