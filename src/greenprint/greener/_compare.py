"""``compare``: greener variants of a model, each applied to a copy and measured the same way."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from greenprint._exceptions import ConfigError
from greenprint.greener._result import (
    GREENER_ROLE,
    RESULT_KEY,
    STEP_KEY,
    TECHNIQUE_KEY,
    VARIANT_KEY,
    GreenerResult,
    GreenerRow,
    against,
    finish,
    noise_of,
)
from greenprint.greener._variants import (
    Applied,
    Context,
    Variant,
    VariantSkipped,
    quiet_torch_ao,
    training_costs,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from greenprint._types import LedgerLike

__all__ = ["compare"]

logger = logging.getLogger(__name__)

#: The name of the row of the model as given.
BASELINE = "baseline"
#: How the error of a model that fails on its own ``example_inputs`` begins.
MODEL_FAILS = "the model fails on example_inputs"


def _baseline() -> Variant:
    return Variant(
        BASELINE,
        "baseline",
        "the model as given (float32)",
        lambda model, ctx: Applied(model=model.eval()),
    )


def _as_inputs(example_inputs: Any) -> tuple[Any, ...]:
    import torch

    inputs = (
        tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    )
    if not inputs or not isinstance(inputs[0], torch.Tensor) or inputs[0].dim() == 0:
        raise ConfigError(
            "example_inputs must be a batch: a tensor whose first dimension is the batch, or a "
            f"tuple of positional inputs starting with one; got {type(example_inputs).__name__}"
        )
    if inputs[0].shape[0] == 0:  # nothing to time: every figure per inference divides by 0
        raise ConfigError(
            "example_inputs must be a batch of at least one example: its first input has "
            f"shape {tuple(inputs[0].shape)}"
        )
    return inputs


def _check_number(label: str, value: object, *, minimum: float, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(
            f"{label} must be {'an integer' if integer else 'a number'}, not {value!r}"
        )
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{label} must be >= {minimum:g}, not {value!r}")


def compare(
    model: nn.Module,
    evaluate: Callable[[Any], float] | None,
    example_inputs: Any,
    variants: Sequence[Variant] = (),
    *,
    name: str = "greener",
    study: str | None = None,
    ledger: LedgerLike = None,
    metric: str = "score",
    mode: Literal["max", "min"] = "max",
    calibration: Iterable[Any] | None = None,
    min_time_s: float = 1.0,
    min_batches: int = 5,
    warmup_batches: int = 2,
    region: str | None = None,
    pue: float | str | None = None,
    num_threads: int | None = None,
) -> GreenerResult:
    """Apply each technique to a copy of ``model`` and measure every variant the same way.

    The model as given is the first row (``"baseline"``). For each variant: the technique is
    applied to a deep copy (the model passed in is never changed), the copy is checked on
    ``example_inputs``, then measured: the task score (``evaluate``), latency per batch and
    throughput, energy and CO2-eq per 1,000 inferences (the timed loop is tracked, with
    provenance), dense and executed FPO (greenprint's counter), parameters and nonzero ones,
    size on disk. A technique that does not apply (no layer to quantize, a model FX cannot
    trace, a variant that fails on the inputs) gives a ``skipped`` row with the reason instead.

    Everything is recorded (unless ``ledger=False``): a run ``name`` with role ``greener`` and,
    inside it, one run per variant (its parameters hold the row; its score is logged as
    ``metric``), and the distillation or fine-tuning runs inside their variant's. Their cost is
    part of the study's price tag; ``greenprint report`` shows the table again.

    Args:
        model: the trained model (``torch.nn.Module``), on CPU.
        evaluate: ``evaluate(model) -> float``, the task score of a model (accuracy...);
            ``None``: no score (no Pareto front).
        example_inputs: one batch of inputs (a tensor, or a tuple of positional inputs); its
            first dimension is the batch size used for latency and throughput.
        variants: the techniques (:func:`~greenprint.greener.dynamic_int8`,
            :func:`~greenprint.greener.static_int8`,
            :func:`~greenprint.greener.prune_unstructured`,
            :func:`~greenprint.greener.prune_structured`,
            :func:`~greenprint.greener.half_precision`, :func:`~greenprint.greener.distilled`,
            :func:`~greenprint.greener.smaller`, or your own
            :class:`~greenprint.greener.Variant`).
        name: the name of the comparison's run.
        study: the study to record into (default as :func:`greenprint.track`).
        ledger: where to record (as :func:`greenprint.track`; ``False``: in memory only).
        metric: the name of the score.
        mode: ``"max"`` if a higher score is better, ``"min"`` if lower is.
        calibration: batches of inputs (each a tensor or a tuple of inputs) for static
            quantization; default ``example_inputs`` alone.
        min_time_s: the timed loop of each variant lasts at least this long, s.
        min_batches: and runs at least this many batches.
        warmup_batches: untimed batches before the loop.
        region: grid region for CO2-eq (as :func:`greenprint.track`).
        pue: PUE (as :func:`greenprint.track`).
        num_threads: torch's intra-op threads during each timed loop (``torch.set_num_threads``,
            restored after); ``None`` keeps the current setting. ``1`` steadies the figures of
            small models on a busy machine, where waiting threads stall every batch.

    Returns:
        The :class:`~greenprint.greener.GreenerResult`: rows, Pareto front, break-evens.

    Raises:
        ConfigError: a model that is not an ``nn.Module``, a model or inputs not on the CPU,
            bad inputs or options, a variant
            that is not a :class:`Variant`, two variants with one name, ``evaluate`` returning
            something that is not a number.
        MissingDependencyError: torch is not installed.
    """
    from greenprint._imports import require

    require("torch", extra="torch", purpose="greenprint.greener")
    from torch import nn

    import greenprint as gp
    from greenprint.greener._counted import counted_as
    from greenprint.greener._measure import measure

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if evaluate is not None and not callable(evaluate):
        raise ConfigError(f"evaluate must be a function of the model, not {evaluate!r}")
    inputs = _as_inputs(example_inputs)
    devices = {t.device.type for t in (*model.parameters(), *model.buffers(), *inputs)}
    if "meta" in devices:
        # .cpu() of a meta tensor fails: it has a shape and no values, so nothing to measure
        on_meta = [
            what
            for what, tensors in (
                ("the model", (*model.parameters(), *model.buffers())),
                ("example_inputs", inputs),
            )
            if any(t.device.type == "meta" for t in tensors)
        ]
        verb = "are" if len(on_meta) > 1 else "is"
        raise ConfigError(
            f"compare measures on the CPU, and {' and '.join(on_meta)} {verb} on the meta "
            "device (shapes, no values): nothing to measure; load the trained weights on the "
            "CPU first (model.to_empty(device='cpu') then model.load_state_dict(...))"
        )
    if devices - {"cpu"}:
        raise ConfigError(
            f"compare measures on the CPU (int8 kernels, timing without device "
            f"synchronisation); the model or inputs are on {', '.join(sorted(devices))}: "
            "move them with .cpu()"
        )
    batch_size = int(inputs[0].shape[0])
    if mode not in ("max", "min"):
        raise ConfigError(f"mode must be 'max' or 'min', not {mode!r}")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"metric must be a non-empty name, not {metric!r}")
    _check_number("min_time_s", min_time_s, minimum=0)
    _check_number("min_batches", min_batches, minimum=1, integer=True)
    _check_number("warmup_batches", warmup_batches, minimum=0, integer=True)
    if num_threads is not None:
        _check_number("num_threads", num_threads, minimum=1, integer=True)
    chosen = [_baseline()]
    for v in variants:
        if not isinstance(v, Variant):
            raise ConfigError(
                f"variants must be Variant objects (dynamic_int8(), prune_unstructured()...), "
                f"not {v!r}"
            )
        chosen.append(v)
    names = [v.name for v in chosen]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"variant names must be unique; repeated: {', '.join(dupes)}")
    batches = (
        (inputs,)
        if calibration is None
        else tuple(_as_inputs(b) for b in calibration)  # each a tuple of inputs
    )
    if not batches:
        raise ConfigError("calibration holds no batch")
    options: dict[str, Any] = {"ledger": ledger, "region": region, "pue": pue}
    rows: list[GreenerRow] = []
    spent: list[Any] = []  # FPO of each variant's run (an int, or a count: a lower bound)
    notes: list[str] = []
    if model.training:
        # each copy is put in eval mode: a user who passed a model in train mode learns why the
        # scores differ from a train-mode evaluation (dropout, batch norm's batch statistics)
        notes.append(
            "the model was given in train mode: every variant is measured in eval mode "
            "(model.eval(): dropout off, batch norm's running statistics)"
        )
    with gp.track(
        name,
        study=study,
        role=GREENER_ROLE,
        params={
            STEP_KEY: "compare",
            "greener.metric": metric,
            "greener.mode": mode,
            "greener.baseline": BASELINE,
            "greener.variants": names,
            "greener.batch_size": batch_size,
            "greener.num_threads": num_threads,
        },
        **options,
    ) as container:
        for variant in chosen:
            row, fpo = _one(
                variant,
                model,
                evaluate,
                inputs,
                batches,
                batch_size=batch_size,
                container=container,
                metric=metric,
                options=options,
                timing=(min_time_s, min_batches, warmup_batches, num_threads),
                notes=notes,
                measure=measure,
                reference=rows[0] if rows else None,
            )
            rows.append(row)
            spent.append(fpo)
        result = finish(
            rows,
            metric=metric,
            mode=mode,
            baseline=BASELINE,
            notes=tuple(notes),
            run_id=container.id if ledger is not False else None,
            study=container.study if ledger is not False else None,
        )
        # the front needs every row: on the comparison's run, not in a variant's row
        container.set(params={"greener.notes": notes, FRONT_KEY: list(result.front)})
        # a parent's FPO contain its children's, a lower bound when any of theirs is one
        total = _total(spent)
        container.add_fpo(counted_as(total, spent))
    return result


#: The comparison run's parameter that names the rows on the Pareto front.
FRONT_KEY = "greener.front"


def _timed(
    measure: Any,
    applied: Applied,
    inputs: tuple[Any, ...],
    loop_name: str,
    batch_size: int,
    options: dict[str, Any],
    timing: tuple[float, int, int, int | None],
    checked_batches: int,
) -> tuple[Any, list[str]]:
    """``measure`` of ``applied`` with the comparison's timing and threads (restored after).

    Its loop is tracked as ``loop_name`` in memory, inside the variant's or comparison's run.
    """
    import torch

    import greenprint as gp

    min_time_s, min_batches, warmup, threads = timing
    kept_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return measure(  # type: ignore[no-any-return]
            applied,
            inputs,
            batch_size=batch_size,
            min_time_s=min_time_s,
            min_batches=min_batches,
            warmup_batches=warmup,
            checked_batches=checked_batches,
            track=lambda: gp.track(
                loop_name, ledger=False, region=options["region"], pue=options["pue"]
            ),
        )
    finally:
        torch.set_num_threads(kept_threads)


def _recorded(row: GreenerRow, reference: GreenerRow | None) -> dict[str, Any]:
    """The row as its variant's run records it: its break-even, and no ``on_front``.

    A variant's row was recorded before the break-evens and the front were computed, so every
    run's ``greener.result`` read ``break_even_inferences`` null (the documented "never") and
    ``on_front`` false, where the table said, say, 139,977 inferences and ◆. The break-even
    needs the baseline only (measured first); the front needs every row: it is the
    comparison run's ``greener.front``.
    """
    out = row.to_dict()
    del out["on_front"]
    out.update(against(reference, row))  # as the table's: the baseline's noise was measured
    return out


def _total(counts: Sequence[Any]) -> int:
    """The FPO of ``counts``: ints and count results (``FPOResult``, ``counted_as``'s)."""
    return sum(c if isinstance(c, int) else int(c.total) for c in counts)


def _trained(ctx: Context) -> list[Any]:
    """The FPO a variant's training recorded (:attr:`Context.fpo`): count results and ints.

    A count result is kept whole (what it could not count, what it assumed); any other
    number a technique appended (a numpy integer) is read as an int.
    """
    return [c if hasattr(c, "unknown_ops") else int(c) for c in ctx.fpo]


def _one(
    variant: Variant,
    model: nn.Module,
    evaluate: Callable[[Any], float] | None,
    inputs: tuple[Any, ...],
    batches: tuple[tuple[Any, ...], ...],
    *,
    batch_size: int,
    container: Any,
    metric: str,
    options: dict[str, Any],
    timing: tuple[float, int, int, int | None],
    notes: list[str],
    measure: Any,
    reference: GreenerRow | None = None,
) -> tuple[GreenerRow, Any]:
    """Apply, check, score and measure one variant in its own run: its row and FPO.

    ``reference`` is the baseline's row (measured first): the break-even of the row recorded
    in the variant's run is against it, as the result's.

    The FPO as its run recorded them: an int, or a count result when they are a lower bound
    (ops with no rule or on complex tensors) or assumed something (an FFT library), its own
    counts' or its training's (:attr:`Context.fpo`): see
    :func:`~greenprint.greener._counted.counted_as`.
    """
    import torch

    import greenprint as gp
    from greenprint.fpo import FPOCounter
    from greenprint.greener._counted import counted_as
    from greenprint.greener._measure import unknown_ops_kept

    params = {STEP_KEY: "variant", VARIANT_KEY: variant.name, TECHNIQUE_KEY: variant.technique}

    def nested(run_name: str, step: str) -> AbstractContextManager[Any]:
        return gp.track(
            f"{variant.name}/{run_name}",
            role=GREENER_ROLE,
            params={STEP_KEY: step, VARIANT_KEY: variant.name},
            **options,
        )

    base = GreenerRow(
        name=variant.name,
        technique=variant.technique,
        description=variant.description,
        batch_size=batch_size,
    )
    with gp.track(
        f"{container.name}:{variant.name}", role=GREENER_ROLE, params=params, **options
    ) as run:
        ctx = Context(
            example_inputs=inputs,
            calibration=batches,
            track=nested,
            ledger=options["ledger"],
            study=container.study,
            region=options["region"],
            pue=options["pue"],
        )
        try:
            applied = variant.apply(copy.deepcopy(model), ctx)
            if not isinstance(applied, Applied):
                raise ConfigError(
                    f"variant {variant.name!r}: apply() must return an Applied, not "
                    f"{type(applied).__name__}"
                )
            with quiet_torch_ao(), torch.inference_mode():
                applied.model(*inputs)  # the variant must run on the inputs before it is measured
        except VariantSkipped as e:
            row = replace(base, status="skipped", reason=str(e))
            run.set(params={RESULT_KEY: _recorded(row, None)})
            counts = _trained(ctx)  # its training's, if any
            trained = counted_as(_total(counts), counts)
            run.add_fpo(trained)
            return row, trained
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            if variant.name == BASELINE:  # the model itself fails: bad input, not a skip
                raise ConfigError(
                    f"{MODEL_FAILS}: {type(e).__name__}: "
                    f"{(str(e).strip().splitlines() or [''])[0][:200]}"
                ) from e
            # a technique that the kernels of this machine or model refuse: skipped, said why
            logger.debug("variant %s failed", variant.name, exc_info=True)
            reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
            row = replace(base, status="skipped", reason=reason)
            run.set(params={RESULT_KEY: _recorded(row, None)})
            counts = _trained(ctx)
            trained = counted_as(_total(counts), counts)
            run.add_fpo(trained)
            return row, trained
        score = None
        evaluated_fpo = 0
        evaluated: Any = None  # the evaluation's count, with the ops it could not count
        if evaluate is not None:
            with unknown_ops_kept(), FPOCounter() as counter:  # the run's FPO include it
                value = evaluate(applied.model)
            evaluated_fpo = int(counter.result.total)
            evaluated = counter.result
            # the int8 kernels' float steps are counted by their rules (the counter applies
            # them, as count_variant_fpo's count and a user's gp.count_fpo do); any op without
            # a rule, an int8 one too (quantized.add requantizes in float), is missed FPO
            unknown = sorted(counter.result.unknown_ops)
            if unknown:
                notes.append(
                    f"{variant.name}: the evaluation ran ops with no FPO rule, not counted in "
                    f"its run's FPO: {', '.join(unknown)}"
                )
            int8 = sorted(  # the int8 kernels that multiply: linear and convolution layers
                op
                for op in counter.result.by_op
                if op.startswith(("quantized.linear", "quantized.conv"))
            )
            if int8:
                notes.append(
                    f"{variant.name}: the evaluation's FPO count its int8 model's float steps "
                    f"(quantizing, the int8 kernels' scaling, bias and requantization, "
                    f"dequantizing); the int8 kernels' products are integer work, not FPO: "
                    f"{', '.join(int8)}"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    value = float(value)  # a 0-d tensor or numpy scalar
                except (TypeError, ValueError) as e:
                    raise ConfigError(
                        f"evaluate must return a number, got {type(value).__name__}"
                    ) from e
            score = float(value)
        figures, unknown = _timed(
            measure, applied, inputs, f"{variant.name}/loop", batch_size, options, timing, 1
        )
        noise, second_count = None, None
        if variant.name == BASELINE:
            # the baseline timed twice, the second loop on as many batches (the same work): how
            # far apart the two read is the noise a variant's difference from it must exceed
            same = (0.0, figures.measured_inferences // batch_size, timing[2], timing[3])
            again = f"{variant.name}/loop-again"
            second, _ = _timed(measure, applied, inputs, again, batch_size, options, same, 0)
            noise = noise_of(figures, second)
            second_count = second.run_fpo_count
            figures = replace(figures, run_fpo=figures.run_fpo + second.run_fpo)
        if unknown:
            notes.append(f"{variant.name}: ops with no FPO rule, not counted: {', '.join(unknown)}")
        kwh, kg, ids = training_costs(applied.training)
        row = GreenerRow(
            name=variant.name,
            technique=variant.technique,
            description=variant.description,
            score=score,
            batch_size=batch_size,
            latency_s=figures.latency_s,
            throughput_per_s=figures.throughput_per_s,
            energy_kwh_per_1000=figures.energy_kwh_per_1000,
            emissions_kg_per_1000=figures.emissions_kg_per_1000,
            fpo_dense=figures.fpo_dense,
            fpo_executed=figures.fpo_executed,
            int_ops=figures.int_ops,
            fpo_note=figures.fpo_note,
            param_count=figures.param_count,
            nonzero_param_count=figures.nonzero_param_count,
            size_bytes=figures.size_bytes,
            measured_inferences=figures.measured_inferences,
            loop_duration_s=figures.loop_duration_s,
            energy_provenance=figures.energy_provenance,
            noise_fraction=noise,
            training_energy_kwh=kwh,
            training_emissions_kg=kg,
            training_run_ids=ids,
            notes=applied.notes,
            run_id=run.id,
        )
        run.set(params={RESULT_KEY: _recorded(row, reference)})
        # the evaluation's, the timed loop's and the training's counts: a lower bound, said
        # so, when any ran ops with no rule or on complex tensors, with what they assumed
        counts = _trained(ctx)
        fpo = counted_as(
            evaluated_fpo + figures.run_fpo + _total(counts),
            [evaluated, figures.run_fpo_count, second_count, *counts],
        )
        run.add_fpo(fpo)
        if score is not None and math.isfinite(score):
            run.log({metric: score})  # any name, "step" included
    return row, fpo
