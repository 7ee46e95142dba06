"""``greenprint greener MODULE:FACTORY --data MODULE:LOADER``: greener variants, measured.

The factory (no arguments) returns the trained model; the loader (no arguments) returns batches
of ``(inputs, targets)`` (a DataLoader or a list). The first batch is the example input of the
latency and energy loop, the first eight calibrate static int8, and every batch is scored: by
default accuracy (``argmax`` of the outputs against the targets), else ``FN(model, batches)``
given with ``--evaluate``. Anything the user's code raises, and every bad option, is one line on
stderr with exit status 2.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import click

from greenprint._exceptions import ConfigError, GreenprintError
from greenprint._imports import require
from greenprint.cli._common import Choice, IntRange, folder_out, ledger_option, pue_option
from greenprint.cli._fpo import load_factory

__all__ = ["DEFAULT_VARIANTS", "KNOWN_VARIANTS", "command", "parse_variants"]

logger = logging.getLogger(__name__)

#: What ``--variants`` runs when it is not given.
DEFAULT_VARIANTS = "dynamic-int8,static-int8,prune-50,prune-ch-30,bf16,fp16"
_CALIBRATION_BATCHES = 8


#: The variant names ``--variants`` knows (``N``: a percentage, 1-99), as errors list them.
KNOWN_VARIANTS = "dynamic-int8, static-int8, prune-N, prune-ch-N (N in 1-99), bf16, fp16"
_FIXED_NAMES = ("dynamic-int8", "static-int8", "bf16", "fp16")


def _did_you_mean(item: str) -> str:
    """``"; did you mean 'prune-ch-30'?"`` for a near miss of a known name, else ``""``."""
    import difflib

    from greenprint._suggest import suggestion

    digits = re.findall(r"\d+", item)
    percent = digits[-1] if digits else None
    names = [*_FIXED_NAMES]
    names += [f"prune-{percent or 50}", f"prune-ch-{percent or 30}"]
    close = difflib.get_close_matches(item, names, n=2, cutoff=0.5)
    return suggestion(close)


def parse_variants(spec: str) -> list[Any]:
    """The variants named by ``--variants`` (comma-separated, case-insensitive).

    Names: ``dynamic-int8``, ``static-int8``, ``prune-N`` (N% of single weights), ``prune-ch-N``
    (N% of output channels), ``bf16``, ``fp16``. Empty items between commas are skipped.

    Raises:
        ConfigError: no name at all (an empty or blank list), an unknown name (with the nearest
            known one), a percentage outside 1-99, or a name given twice (``prune-050`` is
            ``prune-50``); every message lists the known names.
    """
    from greenprint import greener

    items = [raw.strip().lower() for raw in spec.split(",")]
    if not any(items):
        raise ConfigError(
            f"--variants needs at least one variant name, not {spec!r}; known: {KNOWN_VARIANTS}"
        )
    out = []
    seen: set[str] = set()
    for item in items:
        if not item:
            continue
        match = re.fullmatch(r"prune(-ch)?-(\d+)", item)
        if match is None and item not in _FIXED_NAMES:
            raise ConfigError(
                f"unknown variant {item!r} in --variants{_did_you_mean(item)} "
                f"(known: {KNOWN_VARIANTS})"
            )
        name = item
        if match is not None:
            percent = int(match.group(2))
            if not 1 <= percent <= 99:
                raise ConfigError(
                    f"--variants {item}: the percentage must be 1-99; known: {KNOWN_VARIANTS}"
                )
            name = f"prune{match.group(1) or ''}-{percent}"
        if name in seen:
            raise ConfigError(f"--variants names {name!r} twice; known: {KNOWN_VARIANTS}")
        seen.add(name)
        if match is not None:
            make = greener.prune_structured if match.group(1) else greener.prune_unstructured
            out.append(make(percent / 100, name=name))
        elif name == "dynamic-int8":
            out.append(greener.dynamic_int8())
        elif name == "static-int8":
            out.append(greener.static_int8(calibration_batches=_CALIBRATION_BATCHES))
        else:
            out.append(greener.half_precision(name))
    return out


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""


def _call(target: str, what: str, *args: Any) -> Any:
    fn = load_factory(target)
    try:
        return fn(*args)
    except GreenprintError:
        raise
    except Exception as e:  # user code: reported as bad input, in one line
        logger.debug("%s %s failed", what, target, exc_info=True)
        raise ConfigError(f"{what} {target} failed: {type(e).__name__}: {_first_line(e)}") from e


def _batches(
    data: Any, target: str, option: str = "--data"
) -> tuple[list[tuple[tuple[Any, ...], Any]], list[Any]]:
    """The batches as (positional inputs, targets), and as the loader gave them."""
    import torch

    try:
        items = list(data)
    except TypeError as e:
        raise ConfigError(
            f"{option} {target} returned {type(data).__name__}: "
            "expected batches of (inputs, targets)"
        ) from e
    out = []
    for k, batch in enumerate(items):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ConfigError(f"{option} {target}: batch {k} is not an (inputs, targets) pair")
        inputs, targets = batch
        inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
            raise ConfigError(f"{option} {target}: batch {k} inputs are not tensors")
        if inputs[0].dim() == 0 or inputs[0].shape[0] == 0:
            raise ConfigError(
                f"{option} {target}: batch {k} has no example (its first input has shape "
                f"{tuple(inputs[0].shape)}; the first dimension is the batch)"
            )
        out.append((inputs, targets))
    if not out:
        raise ConfigError(f"{option} {target} returned no batch")
    return out, items


def _accuracy(model: Any, batches: list[tuple[tuple[Any, ...], Any]]) -> float:
    import torch

    right = total = 0
    with torch.inference_mode():
        for inputs, targets in batches:
            if not isinstance(targets, torch.Tensor):
                raise ConfigError("default accuracy needs tensor targets; give --evaluate")
            predicted = model(*inputs).argmax(dim=-1)
            right += int((predicted == targets).sum())
            total += int(targets.numel())
    return right / total


#: What the distilled row says when the student was distilled on the batches it is scored on.
SCORED_ON_ITS_TRAINING = (
    "distilled on the --data batches it is scored on: its score is on its own training data, "
    "not held out as the model's may be (give --student-data MODULE:LOADER to distil on "
    "other batches)"
)


def _noted(variant: Any, note: str) -> Any:
    """``variant`` whose row carries ``note`` beside its own notes."""
    from dataclasses import replace

    made = variant.apply

    def apply(model: Any, ctx: Any) -> Any:
        applied = made(model, ctx)
        return replace(applied, notes=(*applied.notes, note))

    return replace(variant, apply=apply)


def _check_student_options(student_target: str | None, student_data: str | None) -> None:
    """Refuse ``--epochs`` or ``--student-data`` without ``--student``: no student to train.

    ``--epochs`` alone ran every variant and trained nothing, saying nothing, so a user who
    meant a fine-tuning or a distillation read a table without one.
    """
    from click.core import ParameterSource

    if student_target is not None:
        return
    ctx = click.get_current_context()
    if ctx.get_parameter_source("epochs") not in (None, ParameterSource.DEFAULT):
        raise click.UsageError(
            "--epochs applies only with --student MODULE:FACTORY (the distillation's epochs)",
            ctx=ctx,
        )
    if student_data is not None:
        raise click.UsageError(
            "--student-data applies only with --student MODULE:FACTORY (the batches to distil "
            "it on)",
            ctx=ctx,
        )


def _check_score_options(evaluate_target: str | None, metric: str, mode: str) -> None:
    """Refuse ``--metric`` or ``--mode`` that misname the default score (without ``--evaluate``).

    Without ``--evaluate`` the score is accuracy, higher better: ``--metric loss --mode min``
    labelled the accuracies a loss and put the least accurate variant alone on the front.
    """
    if evaluate_target is not None:
        return
    ctx = click.get_current_context()
    if metric.strip().lower() != "accuracy":
        raise click.UsageError(
            f"--metric {metric} needs --evaluate MODULE:FN: without it the score is the default "
            "accuracy (argmax of the outputs against the targets)",
            ctx=ctx,
        )
    if mode != "max":
        raise click.UsageError(
            f"--mode {mode} needs --evaluate MODULE:FN: without it the score is the default "
            "accuracy, which is better higher (--mode max)",
            ctx=ctx,
        )


@click.command("greener")
@click.argument("target", metavar="MODULE:FACTORY")
@click.option(
    "--data",
    "data_target",
    required=True,
    metavar="MODULE:LOADER",
    help="Function returning batches of (inputs, targets) to score and time the variants on.",
)
@click.option(
    "--evaluate",
    "evaluate_target",
    default=None,
    metavar="MODULE:FN",
    help="FN(model, batches) -> score, batches as the loader gives them; default: accuracy "
    "of argmax(outputs) against targets.",
)
@click.option(
    "--variants",
    default=DEFAULT_VARIANTS,
    show_default=True,
    help="Comma-separated: dynamic-int8, static-int8, prune-N, prune-ch-N, bf16, fp16.",
)
@click.option(
    "--student",
    "student_target",
    default=None,
    metavar="MODULE:FACTORY",
    help="A smaller untrained model to distil from the model (adds a 'distilled' variant).",
)
@click.option(
    "--student-data",
    "student_data_target",
    default=None,
    metavar="MODULE:LOADER",
    help="Batches of (inputs, targets) to distil --student on (needs it); default: --data's, "
    "and the distilled row then says it was scored on its own training batches.",
)
@click.option(
    "--epochs",
    type=IntRange(min=1),
    default=1,
    show_default=True,
    help="Epochs of the distillation of --student (needs it).",
)
@click.option(
    "--metric",
    default="accuracy",
    show_default=True,
    help="Name of the score of --evaluate (without it, the score is accuracy).",
)
@click.option(
    "--mode",
    type=Choice(["max", "min"]),
    default="max",
    show_default=True,
    help="Whether a higher (max) or lower (min) score of --evaluate is better (without it, max).",
)
@ledger_option
@click.option(
    "--study",
    default=None,
    help="Study to record into [default: GREENPRINT_STUDY, config, 'default'].",
)
@click.option("--name", default="greener", show_default=True, help="Name of the comparison run.")
@click.option(
    "--region",
    default=None,
    help="Grid region for CO2-eq, e.g. DE, US-CA, aws:eu-west-1 [default: the parent run's, "
    "else as configured (GREENPRINT_INTENSITY or GREENPRINT_REGION, config), else the world "
    "average].",
)
@pue_option
@click.option(
    "--min-time",
    "min_time_s",
    type=float,
    default=1.0,
    metavar="S",
    show_default=True,
    help="Seconds each variant's timed loop lasts at least.",
)
@click.option(
    "--threads",
    "num_threads",
    type=IntRange(min=1),
    default=None,
    help="torch threads during each timed loop (default: torch's setting).",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    callback=folder_out,
    metavar="DIR",
    help="Write greener.json and greener.md there (created if needed).",
)
def command(
    target: str,
    data_target: str,
    evaluate_target: str | None,
    variants: str,
    student_target: str | None,
    student_data_target: str | None,
    epochs: int,
    metric: str,
    mode: str,
    ledger: str | None,
    study: str | None,
    name: str,
    region: str | None,
    pue: str | None,
    min_time_s: float,
    num_threads: int | None,
    out_dir: str | None,
) -> None:
    """Measure greener variants of the model FACTORY returns, side by side.

    Each variant (int8 quantization, pruning, bf16/fp16, a distilled student) is made from a
    copy of the model and measured the same way: score, latency, throughput, energy and CO2-eq
    per 1,000 inferences, FPO, parameters and size on disk; with its Pareto front and
    break-even. Recorded in the ledger (role greener); greenprint report shows it again.

    Example: greenprint greener models.py:trained --data models.py:batches --out greener
    """
    from greenprint import greener
    from greenprint._validate import finite_number
    from greenprint.report._escape import markdown_text
    from greenprint.report._greener import markdown_section

    # named as the user typed them, before any model is built
    for option, given, what in (("--name", name, "run"), ("--study", study, "study")):
        if given is not None and not given.strip():  # as greenprint run's
            raise ConfigError(f"{option} needs a {what} name, not {given!r}")
    min_time_s = finite_number("--min-time", min_time_s, low=0.0, unit="s")
    _check_student_options(student_target, student_data_target)
    _check_score_options(evaluate_target, metric, mode)
    if pue is not None:  # a bad PUE: one line before any model is built, as run's --pue
        from greenprint.carbon._pue import resolve_pue

        resolve_pue(pue)
    chosen = parse_variants(variants)
    if out_dir is not None:  # before anything is measured or recorded, as the report does
        from greenprint.report._formats import check_out_dir

        check_out_dir(out_dir)  # creates nothing
        _try_writing(out_dir)
    # torch only now: bad input is refused without its import (about 2 s of CPU)
    torch = require("torch", extra="torch", purpose="greenprint greener")
    model = _call(target, "the factory")
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"{target} returned {type(model).__name__}, not a torch.nn.Module")
    data = _call(data_target, "the loader")
    batches, raw = _batches(data, data_target)
    if evaluate_target is not None:
        fn = load_factory(evaluate_target)

        def evaluate(m: Any) -> float:
            try:
                return float(fn(m, raw))
            except GreenprintError:
                raise
            except Exception as e:  # user code: one line
                raise ConfigError(
                    f"--evaluate {evaluate_target} failed: {type(e).__name__}: {_first_line(e)}"
                ) from e
    else:

        def evaluate(m: Any) -> float:
            try:
                return _accuracy(m, batches)
            except GreenprintError:
                raise
            except Exception as e:  # the model or targets do not fit an accuracy
                raise ConfigError(
                    f"default accuracy failed ({type(e).__name__}: {_first_line(e)}); "
                    "give --evaluate MODULE:FN"
                ) from e

    if student_target is not None:
        student = _call(student_target, "the student factory")
        if not isinstance(student, torch.nn.Module):
            raise ConfigError(f"{student_target} returned {type(student).__name__}, not a model")
        if student_data_target is not None:
            train = _call(student_data_target, "the student's loader")
            train_batches, _ = _batches(train, student_data_target, "--student-data")
            chosen.append(greener.distilled(student, train_batches, epochs=epochs))
        else:  # its score would read as held out, as the model's
            chosen.append(
                _noted(greener.distilled(student, batches, epochs=epochs), SCORED_ON_ITS_TRAINING)
            )
    try:
        result = greener.compare(
            model,
            evaluate,
            batches[0][0],
            chosen,
            name=name,
            study=study,
            ledger=ledger,
            metric=metric,
            mode="min" if mode == "min" else "max",
            calibration=[inputs for inputs, _ in batches[:_CALIBRATION_BATCHES]],
            min_time_s=min_time_s,
            region=region,
            pue=pue,
            num_threads=num_threads,
        )
    except ConfigError as e:
        from greenprint.greener._compare import MODEL_FAILS

        said = str(e)
        if not said.startswith(MODEL_FAILS):
            raise
        # named as the user gave them: the CLI has no example_inputs
        raise ConfigError(
            f"{target} fails on the first batch of --data {data_target}" + said[len(MODEL_FAILS) :]
        ) from e
    except GreenprintError:
        raise
    except Exception as e:  # the model failed on its own data: bad input, one line
        logger.debug("greener compare failed", exc_info=True)
        raise ConfigError(
            f"{target} failed on its data: {type(e).__name__}: {_first_line(e)}"
        ) from e
    click.echo(result.table())
    if result.run_id:
        click.echo(f"\nrecorded: run {result.run_id[:8]} in study {result.study!r}")
    if out_dir is not None:
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "greener.json").write_text(
                json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
            )
            lines = markdown_section([result], markdown_text, _md_table)
            (out / "greener.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write to {out_dir!r}: {e.strerror or e}") from e
        click.echo(f"wrote {out / 'greener.md'} and {out / 'greener.json'}")


def _try_writing(out_dir: str) -> None:
    """Refuse ``out_dir`` where a folder cannot be made, before anything is measured.

    ``check_out_dir`` asks the permissions (``os.access``), which say yes to root everywhere
    and to anyone under ``/proc``; a folder made and removed at once in its nearest existing
    parent is the real answer, and leaves nothing behind.

    Raises:
        ConfigError: no folder can be made there.
    """
    import tempfile

    existing = Path(out_dir)
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        Path(tempfile.mkdtemp(prefix=".greenprint-", dir=existing)).rmdir()
    except OSError as e:
        raise ConfigError(f"cannot write to {out_dir!r}: {e.strerror or e}") from e


def _md_table(header: Any, rows: Any) -> list[str]:
    from greenprint.report._escape import markdown_text as esc

    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
    return lines
