"""``greenprint report``: write a study's price-tag report (reads the ledger, never creates one)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from greenprint._format import count_of
from greenprint.cli._common import TEXT, Choice, folder_out, ledger_option
from greenprint.report._formats import FORMATS  # the registry: no plotting library imported

__all__ = ["DEFAULT_OUT", "command"]

#: Where a report goes without ``--out`` (a ledger of several studies: one folder per study).
DEFAULT_OUT = "greenprint-report"

_FORMAT_HELP = (
    ", ".join(FORMATS)
    + " or all (repeat, or separate with commas) [default: all]. "
    + "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
)


@click.command("report")
@ledger_option
@click.option(
    "--study", type=TEXT, default=None, help="Study name [default: the ledger's only study]."
)
@click.option("--format", "formats", multiple=True, metavar="FORMAT", help=_FORMAT_HELP)
@click.option(
    "--out",
    "out_dir",
    default=None,
    callback=folder_out,
    metavar="DIR",
    help=f"Output directory (created if needed) [default: ./{DEFAULT_OUT}; "
    f"./{DEFAULT_OUT}-STUDY when the ledger holds several studies].",
)
@click.option(
    "--metric", type=TEXT, default=None, help="Metric to rank runs by [default: the most logged]."
)
@click.option(
    "--mode",
    type=Choice(["max", "min"]),
    default=None,
    help="Whether a higher (max) or lower (min) metric is better [default: the direction "
    "the runs recorded (an Optuna study's objective, a scikit-learn scorer's), else min for a "
    "metric named like a loss, error, perplexity, rmse... or a rank (the report says so), else "
    "max; neg_... names are max].",
)
@click.option(
    "--final",
    type=TEXT,
    default=None,
    metavar="RUN_ID",
    help="The run behind the result (full id or a unique prefix of 4+ characters) [default: "
    "the run with role final, else the best finished trial by --metric].",
)
@click.option(
    "--reduce",
    type=Choice(["last", "best"]),
    default="last",
    show_default=True,
    help="Score of a run: its last or its best logged value.",
)
@click.option(
    "--training-type",
    type=TEXT,
    default=None,
    metavar="TYPE",
    help="The model card's training_type (pre-training, fine-tuning...) [default: the "
    "training_type parameter the study's runs set, else unknown].",
)
@click.option(
    "--group-by",
    type=TEXT,
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

    The report holds the study's cost by run status and by role (failed and pruned trials
    included), the expected best score against trials and energy, score against energy with
    the Pareto front, the learning curve, power over time, efficiency (score per mWh and per
    GFPO), greener variants when the study measured some, its pruned trials (where and by
    what they were stopped, what they cost, and an estimate of what pruning saved), what its
    energy would have emitted in other regions, every run, a model-card block and a compute
    statement.

    Without --out the report goes to ./greenprint-report, or, when the ledger holds several
    studies, to ./greenprint-report-STUDY, so that one study's report never replaces
    another's; a report of another study found in the folder is replaced with a note.
    """
    from greenprint._run_fallback import waiting
    from greenprint.ledger import get_ledger
    from greenprint.report import build_report, resolve_formats, write_report
    from greenprint.report._formats import check_out_dir

    names = resolve_formats(formats or ("all",))  # bad format: one line, before any work
    default = out_dir is None
    if out_dir is not None:
        check_out_dir(out_dir)  # unwritable output: one line, before any work
    led = get_ledger(ledger, create=False)
    try:
        studies = led.studies()
        if study is None and len(studies) > 1:  # build_report's refusal, in the command's words
            from greenprint.report._build import several_studies

            raise several_studies(led.url, studies, how=" with --study")
        if out_dir is None:
            out_dir = _default_out(studies, study)
            check_out_dir(out_dir)
        report = build_report(
            led,
            study,
            metric=metric,
            mode=None if mode is None else ("max" if mode == "max" else "min"),
            final=final,
            reduce="last" if reduce == "last" else "best",
            training_type=training_type,
            group_by=group_by,
        )
        note = waiting(led)  # runs its ledger could not take, in its fallback file
    finally:
        led.close()
    replaced = _reported_study(Path(out_dir)) if default else None
    written = write_report(report, out_dir, names, plots=not no_plots)
    click.echo(report.price_tag.summary())
    for name, path in written.items():
        click.echo(f"{name:6} {path}")
    running = report.price_tag.by_status.get("running")
    if running is not None:
        # figures as of the runs' last flush: a report made mid-study is not its final word
        click.echo(
            f"note: {count_of(running.runs, 'run')} still running: priced as of "
            f"{'its' if running.runs == 1 else 'their'} last flush to the ledger; report again "
            "when the study has ended",
            err=True,
        )
    if note is not None:
        click.echo(note, err=True)
    if replaced is not None and replaced != report.study:
        click.echo(
            f"note: replaced the report of study {replaced!r} in {out_dir} (give --out DIR to "
            "keep both)",
            err=True,
        )
    if not no_plots and report.figures:
        from greenprint.report._plots import FigureRenderer

        if not FigureRenderer().available:
            from greenprint.report import PLOTS_HINT

            click.echo(f"note: {PLOTS_HINT}", err=True)


def _default_out(studies: list[str], study: str | None) -> str:
    """``greenprint-report``, or ``greenprint-report-STUDY`` in a ledger of several studies.

    The study's name is made safe for a folder name (``cifar sweep/2`` -> ``cifar-sweep-2``;
    with a hash when another study makes the same name: :func:`study_slug`). With several
    studies and none given, ``build_report`` refuses (the folder is not used).
    """
    from greenprint.report._formats import study_slug

    if study is None or len(studies) <= 1:
        return DEFAULT_OUT
    return f"{DEFAULT_OUT}-{study_slug(study, studies)}"


def _reported_study(out: Path) -> str | None:
    """The study of the report already in ``out`` (from its ``report.json``), or ``None``."""
    try:
        data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none there, unreadable or not JSON: nothing to say
        return None
    study = data.get("study") if isinstance(data, dict) else None
    return study if isinstance(study, str) else None
