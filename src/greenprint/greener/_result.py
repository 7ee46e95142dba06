"""The result of :func:`~greenprint.greener.compare`: one row per variant, a front, break-evens.

Plain data, no torch: the report reads the same rows back from the ledger
(:meth:`GreenerResult.from_records`) and renders them in every format.

Break-even (energy): a variant that costs ``extra_training_kwh`` to make (distillation,
fine-tuning, training a smaller model) and saves ``base_kwh_per_inference -
variant_kwh_per_inference`` on every inference pays for itself after

    extra_training_kwh / (base_kwh_per_inference - variant_kwh_per_inference)

inferences; with no extra training it pays at once (0), and a variant that costs as much or
more per inference never does (``None``). A variant whose energy per inference is within the
comparison's noise of the baseline's (twice as far as the baseline's own two timed loops read
apart) has none: neither a saving nor a loss is told apart (``within_noise``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from greenprint._exceptions import ConfigError
from greenprint._format import format_fpo
from greenprint.analysis._common import json_float
from greenprint.greener._counted import counted_as as counted_as  # re-exported: tests

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord

__all__ = [
    "GREENER_ROLE",
    "GreenerResult",
    "GreenerRow",
    "RowStatus",
    "break_even_inferences",
    "counted_as",
]

#: The run role of everything greenprint.greener records (see ``greenprint.RUN_ROLES``).
GREENER_ROLE = "greener"
#: Parameter keys of the runs: what each run is (``compare``, ``variant``, ``distill``,
#: ``fine-tune``), the variant's name and its measured row.
STEP_KEY = "greener.step"
VARIANT_KEY = "greener.variant"
TECHNIQUE_KEY = "greener.technique"
RESULT_KEY = "greener.result"
#: A variant's energy per inference is told apart from the baseline's when it differs by more
#: than this many times the baseline's own two readings differ (one repeat is a rough gauge
#: of the noise: two readings of the same model land closer than the noise's spread about
#: half the time, so a factor of 1 would call noise a saving or a loss too often).
NOISE_FACTOR = 2.0

RowStatus = Literal["measured", "skipped"]


def break_even_inferences(
    extra_training_kwh: float,
    base_kwh_per_inference: float,
    variant_kwh_per_inference: float,
) -> float | None:
    """After how many inferences a variant's extra training energy pays for itself.

    Args:
        extra_training_kwh: energy spent to make the variant (distillation, fine-tuning), kWh.
        base_kwh_per_inference: the reference model's energy per inference, kWh.
        variant_kwh_per_inference: the variant's energy per inference, kWh.

    Returns:
        ``extra_training_kwh / (base - variant)`` inferences; ``0.0`` when there is no extra
        training and the variant saves energy per inference (it is ahead from the first);
        ``None`` when the variant saves nothing per inference, trained or not: it never pays
        back (without training it costs as much or more from the first inference on).

    Raises:
        ConfigError: a negative or non-finite energy.

    Example:
        >>> round(break_even_inferences(0.002, 3e-6, 1e-6))  # 2 Wh / (3 - 1) mWh
        1000
        >>> break_even_inferences(0.002, 1e-6, 1e-6) is None  # saves nothing: never
        True
        >>> break_even_inferences(0.0, 1e-6, 3e-6) is None  # no training, costs more: never
        True
    """
    for label, value in (
        ("extra_training_kwh", extra_training_kwh),
        ("base_kwh_per_inference", base_kwh_per_inference),
        ("variant_kwh_per_inference", variant_kwh_per_inference),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label} must be a number of kWh, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{label} must be a finite number >= 0 kWh, not {value!r}")
    saving = float(base_kwh_per_inference) - float(variant_kwh_per_inference)
    if saving <= 0:
        return None
    if extra_training_kwh == 0:
        return 0.0
    return float(extra_training_kwh) / saving


@dataclass(frozen=True)
class GreenerRow:
    """One variant, measured (or skipped, with the reason).

    FPO are per inference (one example): ``fpo_dense`` is what the dense float model of the
    same architecture computes; ``fpo_executed`` the floating-point work left once the variant's
    technique is taken into account (weights pruned to zero skipped, as a sparse kernel would;
    an int8 variant counted on its int8 model as it runs, quantize and dequantize steps and its
    kernels' float scaling included, its matrix products counted as integer operations in
    ``int_ops``). ``fpo_note`` says which applies.

    Attributes:
        name: the variant's name (``"baseline"`` for the model as given).
        technique: ``baseline``, ``dynamic-int8``, ``static-int8``, ``prune-unstructured``,
            ``prune-structured``, ``bf16``, ``fp16``, ``distilled`` or ``smaller``.
        description: what was done, in words.
        status: ``"measured"`` or ``"skipped"`` (``reason`` says why).
        reason: why it was skipped, else ``None``.
        score: the user's ``evaluate`` of the variant (``None`` without one).
        batch_size: examples per measured batch.
        latency_s: median time of one batch, s.
        throughput_per_s: inferences per second over the measurement loop.
        energy_kwh_per_1000: energy of 1,000 inferences, kWh (the loop's, tracked).
        emissions_kg_per_1000: CO2-eq of 1,000 inferences, kg.
        fpo_dense: dense FPO of one inference.
        fpo_executed: FPO one inference executes with this technique.
        int_ops: integer operations of one inference in int8 kernels (0 when none).
        fpo_note: what ``fpo_executed`` counts.
        param_count: parameters.
        nonzero_param_count: parameters that are not zero.
        size_bytes: size of the saved ``state_dict`` (``torch.save``), bytes.
        measured_inferences: inferences in the measurement loop.
        loop_duration_s: duration of the measurement loop, s.
        energy_provenance: where the loop's energy and CO2-eq came from.
        noise_fraction: the baseline only: how far apart its two timed loops (as many
            batches, one right after the other) read, relative to the first: the larger of
            their energies' and their durations' differences (a meter that reads in steps, as
            an estimate from CPU-time ticks on a short loop, can read one energy twice). The
            comparison's noise (:attr:`GreenerResult.noise_fraction`); ``None`` for variants,
            and for a baseline recorded before 2026-12-06.
        training_energy_kwh: extra energy spent to make the variant (distillation,
            fine-tuning), kWh.
        training_emissions_kg: its CO2-eq, kg.
        training_run_ids: the runs that spent it.
        break_even_inferences: inferences after which the training pays for itself against
            the baseline (``0`` without training when it saves per inference; ``None``: it
            never pays back, as it saves nothing per inference, it was not measured, or its
            energy per inference is within noise of the baseline's).
        within_noise: its energy per inference differs from the baseline's by no more than
            twice as much as the baseline's own two readings differ
            (:attr:`GreenerResult.noise_fraction`): neither a saving nor a loss is told
            apart, so no break-even.
        on_front: whether it is on the Pareto front (score against energy per inference;
            energies within the comparison's noise are a tie, as for ``within_noise``).
        run_id: the run that measured it (``None`` if not recorded).
        notes: caveats (precision, storage, kernels).
    """

    name: str
    technique: str
    description: str = ""
    status: RowStatus = "measured"
    reason: str | None = None
    score: float | None = None
    batch_size: int = 0
    latency_s: float | None = None
    throughput_per_s: float | None = None
    energy_kwh_per_1000: float | None = None
    emissions_kg_per_1000: float | None = None
    fpo_dense: float | None = None
    fpo_executed: float | None = None
    int_ops: float | None = None
    fpo_note: str = ""
    param_count: int | None = None
    nonzero_param_count: int | None = None
    size_bytes: int | None = None
    measured_inferences: int = 0
    loop_duration_s: float | None = None
    energy_provenance: str = ""
    noise_fraction: float | None = None
    training_energy_kwh: float = 0.0
    training_emissions_kg: float = 0.0
    training_run_ids: tuple[str, ...] = ()
    break_even_inferences: float | None = None
    within_noise: bool = False
    on_front: bool = False
    run_id: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        """Whether it was measured (not skipped)."""
        return self.status == "measured"

    @property
    def energy_kwh_per_inference(self) -> float | None:
        """Energy of one inference, kWh."""
        e = self.energy_kwh_per_1000
        return None if e is None else e / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float):
                value = json_float(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GreenerRow:
        """The row :meth:`to_dict` wrote (unknown keys are ignored, missing ones default)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("training_run_ids", "notes"):
            if key in values:
                values[key] = tuple(values[key] or ())
        return cls(**values)


@dataclass(frozen=True)
class GreenerResult:
    """Greener variants of one model, measured side by side.

    Attributes:
        rows: one per variant, the baseline first.
        metric: the name of the score.
        mode: ``"max"`` if a higher score is better, ``"min"`` if lower is.
        baseline: the name of the reference row (the model as given).
        front: names of the rows on the Pareto front (score against energy per inference):
            no other row has a score as good and an energy lower by more than the noise
            (:data:`NOISE_FACTOR` times :attr:`noise_fraction` of the baseline's energy), or a
            better score and an energy within it.
        provenance: where the figures came from, one line each.
        notes: caveats.
        run_id: the run that recorded the comparison (``None`` if not recorded).
        study: the study it was recorded in (``None`` if not recorded).
        noise_fraction: how far apart the baseline's two timed loops read (its row's
            :attr:`GreenerRow.noise_fraction`): a variant's energy per inference within
            :data:`NOISE_FACTOR` times that of the baseline's is not told apart
            (:attr:`GreenerRow.within_noise`); ``None``: the baseline was timed once (before
            2026-12-06).
    """

    rows: tuple[GreenerRow, ...]
    metric: str = "score"
    mode: Literal["max", "min"] = "max"
    baseline: str = "baseline"
    front: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    run_id: str | None = None
    study: str | None = None
    noise_fraction: float | None = None

    def row(self, name: str) -> GreenerRow:
        """The row of the variant ``name``.

        Raises:
            KeyError: no such variant.
        """
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no variant {name!r}; variants: {', '.join(r.name for r in self.rows)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the rows, the front, the provenance and the caveats.

        ``caveats``: what the table's lines under it say (the energy is IT energy before PUE,
        the CO2-eq includes it; pruning's and quantization's counts), which a reader of the
        JSON alone was not told.
        """
        caveats = [PUE_CAVEAT] if any(r.measured for r in self.rows) else []
        caveats += [c for c in (noise_caveat(self),) if c]
        return {
            "metric": self.metric,
            "mode": self.mode,
            "baseline": self.baseline,
            "front": list(self.front),
            "provenance": list(self.provenance),
            "caveats": caveats + list(row_caveats(self)),
            "notes": list(self.notes),
            "run_id": self.run_id,
            "study": self.study,
            "noise_fraction": json_float(self.noise_fraction),
            "rows": [r.to_dict() for r in self.rows],
        }

    def table(self) -> str:
        """The rows as a plain-text table (what ``print(result)`` shows)."""
        header, body = table_cells(self)
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
        if any(r.measured for r in self.rows):
            lines.append(f"- {PUE_CAVEAT}")
        lines += [f"- {c}" for c in (noise_caveat(self),) if c]
        lines += [f"- {n}" for n in row_caveats(self)]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.table()

    @classmethod
    def from_records(cls, runs: Iterable[RunRecord]) -> list[GreenerResult]:
        """The comparisons recorded among ``runs`` (a study's), oldest first.

        Each :func:`~greenprint.greener.compare` records a run with role ``greener`` holding
        one child run per variant; the rows are read back from the children's parameters and
        the front and break-evens recomputed.
        """
        runs = list(runs)
        containers = {
            r.id: r for r in runs if r.role == GREENER_ROLE and r.params.get(STEP_KEY) == "compare"
        }
        rows: dict[str, list[tuple[float, GreenerRow]]] = {cid: [] for cid in containers}
        for r in runs:
            data = r.params.get(RESULT_KEY)
            if (
                r.parent_id in rows
                and isinstance(data, Mapping)
                and isinstance(data.get("name"), str)
                and isinstance(data.get("technique"), str)
            ):
                row = GreenerRow.from_dict(data)
                rows[r.parent_id].append((r.started_at, replace(row, run_id=r.id)))
        out = []
        for cid, container in sorted(containers.items(), key=lambda kv: kv[1].started_at):
            if not rows[cid]:
                continue
            params = container.params
            mode: Literal["max", "min"] = "min" if params.get("greener.mode") == "min" else "max"
            notes = params.get("greener.notes")
            kept = tuple(notes) if isinstance(notes, list) else ()
            measured = [row for _, row in sorted(rows[cid], key=lambda t: t[0])]
            stopped = _stopped_note(container, measured, runs)
            out.append(
                finish(
                    measured,
                    metric=str(params.get("greener.metric", "score")),
                    mode=mode,
                    baseline=str(params.get("greener.baseline", "baseline")),
                    notes=(stopped, *kept) if stopped else kept,
                    run_id=container.id,
                    study=container.study,
                )
            )
        return out


def _stopped_note(
    container: RunRecord, measured: Sequence[GreenerRow], runs: Sequence[RunRecord]
) -> str | None:
    """What a comparison whose run did not finish left out, or ``None`` when it finished.

    A comparison stopped by an error (a variant whose training raised, Ctrl-C, a killed
    process) keeps the rows measured before; the note says how it ended, which variant's run
    ended with it, and which variants were never measured (from ``greener.variants``).
    """
    if container.status == "finished":
        return None
    done = {row.name for row in measured}
    cut = {  # the variants whose run began but left no row (the one the error ended)
        name: r.status
        for r in sorted(runs, key=lambda r: r.started_at)
        if r.parent_id == container.id
        and isinstance(name := r.params.get(VARIANT_KEY), str)
        and name not in done
    }
    planned = container.params.get("greener.variants")
    never = [
        n
        for n in (planned if isinstance(planned, list) else [])
        if isinstance(n, str) and n not in done and n not in cut
    ]
    error = (container.error or "").strip().splitlines()
    how = "is still running" if container.status == "running" else f"ended {container.status}"
    note = f"the comparison {how}" + (f" ({error[0][:200]})" if error else "")
    note += ": the rows are the variants measured before"
    if cut:
        note += "; without a row: " + ", ".join(f"{n} ({status})" for n, status in cut.items())
    if never:
        note += f"; never measured: {', '.join(never)}"
    return note


def noise_of(first: Any, again: Any) -> float | None:
    """How far apart two timed loops of the same model read, relative to the first.

    The larger of their energies' and their durations' relative differences; ``first`` and
    ``again`` have ``energy_kwh_per_1000`` and ``loop_duration_s`` (``None`` when unknown).

    Example:
        >>> from types import SimpleNamespace as Loop
        >>> round(noise_of(Loop(energy_kwh_per_1000=2e-6, loop_duration_s=1.0),
        ...                Loop(energy_kwh_per_1000=2e-6, loop_duration_s=1.03)), 3)
        0.03
    """
    found = []
    for key in ("energy_kwh_per_1000", "loop_duration_s"):
        a, b = getattr(first, key), getattr(again, key)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) and a > 0:
            found.append(abs(b - a) / a)
    return max(found) if found else None


def against(base: GreenerRow | None, row: GreenerRow) -> dict[str, Any]:
    """``row``'s verdict against the measured baseline ``base``, as fields of the row.

    ``within_noise``, and ``break_even_inferences`` (``None`` within noise, unmeasured, or
    with no baseline).
    """
    kwh = None if base is None or not base.measured else base.energy_kwh_per_inference
    own = row.energy_kwh_per_inference
    if not row.measured or kwh is None or own is None:
        return {"within_noise": False, "break_even_inferences": None}
    noise = base.noise_fraction if base is not None else None
    if noise is not None and abs(own - kwh) <= NOISE_FACTOR * noise * kwh:
        return {"within_noise": True, "break_even_inferences": None}
    even = break_even_inferences(max(row.training_energy_kwh, 0.0), kwh, own)
    return {"within_noise": False, "break_even_inferences": even}


def finish(
    rows: Sequence[GreenerRow],
    *,
    metric: str,
    mode: Literal["max", "min"],
    baseline: str,
    notes: tuple[str, ...] = (),
    run_id: str | None = None,
    study: str | None = None,
) -> GreenerResult:
    """The result of measured rows: break-even against ``baseline`` and the Pareto front.

    The baseline's two timed loops (its ``noise_fraction``) give the comparison's noise:
    a variant no farther than :data:`NOISE_FACTOR` times it from the baseline's energy per
    inference has no break-even (``within_noise``), and on the front two energies that close
    are a tie (:func:`_front`): a within-noise saving put a copy of the baseline on the front
    and the baseline off it, where the table said no saving was told apart.
    """
    base = next((r for r in rows if r.name == baseline and r.measured), None)
    done = [
        replace(row, **against(base, row), on_front=False)
        if row.name != baseline
        else replace(row, break_even_inferences=None, within_noise=False, on_front=False)
        for row in rows
    ]
    candidates = [
        i
        for i, r in enumerate(done)
        if r.measured
        and r.score is not None
        and math.isfinite(r.score)
        and r.energy_kwh_per_1000 is not None
        and math.isfinite(r.energy_kwh_per_1000)
    ]
    front: list[str] = []
    points = [
        (float(done[i].score or 0.0), float(done[i].energy_kwh_per_1000 or 0.0)) for i in candidates
    ]
    for k in _front(points, higher=mode == "max", tie=_tie_per_1000(base)):
        i = candidates[k]
        done[i] = replace(done[i], on_front=True)
        front.append(done[i].name)
    provenance = tuple(
        dict.fromkeys(
            f"energy and CO2-eq per inference: {r.energy_provenance}"
            for r in done
            if r.measured and r.energy_provenance
        )
    )
    return GreenerResult(
        rows=tuple(done),
        metric=metric,
        mode=mode,
        baseline=baseline,
        front=tuple(front),
        provenance=provenance,
        notes=notes,
        run_id=run_id,
        study=study,
        noise_fraction=None if base is None else base.noise_fraction,
    )


def _tie_per_1000(base: GreenerRow | None) -> float:
    """The energy per 1,000 inferences within which two rows are not told apart (kWh).

    :data:`NOISE_FACTOR` times the baseline's noise of its energy, as :func:`against` reads a
    variant within noise of the baseline; 0 when the noise was not measured.
    """
    kwh = None if base is None else base.energy_kwh_per_1000
    noise = None if base is None else base.noise_fraction
    if kwh is None or noise is None or not math.isfinite(kwh * noise):
        return 0.0
    return NOISE_FACTOR * noise * kwh


def _front(points: Sequence[tuple[float, float]], *, higher: bool, tie: float) -> list[int]:
    """Indices (ascending) of the ``(score, energy)`` points no other point dominates.

    A point dominates another with a score as good (``higher``: greater is better) and an
    energy no more than ``tie`` above, and is better in one of them: a better score, or an
    energy lower by more than ``tie``. Energies within ``tie`` (the comparison's noise) are a
    tie: a variant whose only advantage is a saving within noise does not push the baseline
    (or another row) off the front, as it has no break-even either. ``tie`` 0 is the plain
    Pareto front (identical points do not dominate each other).
    """

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        (sa, ea), (sb, eb) = a, b
        if not higher:
            sa, sb = -sa, -sb
        return sa >= sb and ea <= eb + tie and (sa > sb or ea < eb - tie)

    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i)
    ]


def noise_caveat(result: GreenerResult) -> str | None:
    """The comparison's noise and the rows within it, or ``None`` when it was not measured."""
    if result.noise_fraction is None:
        return None
    within = [r.name for r in result.rows if r.within_noise]
    told = (
        f"{', '.join(within)} within it (no saving or loss told apart, so no break-even)"
        if within
        else "no variant within it"
    )
    return (
        f"noise: the baseline's two timed loops read {result.noise_fraction:.1%} apart "
        "(energy or duration); a variant's energy per inference is told apart "
        f"from the baseline's beyond {NOISE_FACTOR:g} times that "
        f"({NOISE_FACTOR * result.noise_fraction:.1%}): {told}; a longer min_time_s, "
        "num_threads=1 or a quieter machine narrow it, and one repeat is a rough gauge: "
        "compare again before you publish a small difference"
    )


# ----------------------------------------------------------------------------------- cells
def _num(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _fpo(value: float | None) -> str:
    """FPO as the report writes them: ``2.43 kFPO``, ``130 FPO``."""
    return "-" if value is None or not math.isfinite(value) else format_fpo(value)


def _count(value: float | None) -> str:
    """A count per second as the report writes counts: ``77,880``, ``312``, ``0.5``."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def break_even_text(row: GreenerRow) -> str:
    """A row's break-even in words: ``"0"``, ``"12,345"``, ``"never"``, ``"within noise"``, ``"-"``.

    ``"within noise"``: no saving or loss told apart (:attr:`GreenerRow.within_noise`);
    ``"0"``: no training, a saving from the first inference; ``"-"``: not measured. The
    baseline's own row is the caller's to show as ``"-"``.
    """
    if not row.measured or row.energy_kwh_per_1000 is None:
        return "-"
    if row.within_noise:
        return "within noise"
    if row.break_even_inferences is None:
        return "never"
    if row.break_even_inferences == 0:
        return "0"
    return f"{math.ceil(row.break_even_inferences):,}"


#: Column headers of the greener table, with their units.
TABLE_HEADER = (
    "variant",
    "score",
    "latency (ms/batch)",
    "throughput (inferences/s)",
    "IT energy (Wh/1000)",
    "CO2-eq (g/1000)",
    "FPO dense",
    "FPO executed",
    "params (nonzero)",
    "size",
    "training (Wh)",
    "break-even (inferences)",
)


def _column_unit(values: Iterable[float | None], base: str) -> tuple[float, str]:
    """(factor, unit) for a column of ``base``-unit values: the unit of its largest value."""
    top = max((abs(v) for v in values if v is not None and math.isfinite(v) and v), default=0.0)
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ")):
        if top >= factor:
            return factor, prefix + base
    return 1e-9, "n" + base


#: What the table's energy and CO2-eq columns count, said under it in every format (the
#: provenance line alone said that the CO2-eq includes the PUE and the energy does not).
PUE_CAVEAT = (
    "IT energy and training: energy as metered, before PUE (as the price tag's energy "
    "(IT)); CO2-eq: that energy times the PUE (the facility's overhead, in the provenance) "
    "and the grid's intensity"
)


def row_caveats(result: GreenerResult) -> list[str]:
    """Each measured row's caveats, ``"name: ..."``, which the plain table cannot put in a cell.

    A pruned row's *FPO executed* assume a sparse kernel (the dense kernels timed run FPO
    dense), and the row's own notes. The report's sections say them with each description.
    """
    out = []
    for r in (r for r in result.rows if r.measured):
        said = list(r.notes)
        if not r.int_ops and (r.fpo_executed or 0) < (r.fpo_dense or 0):
            said.insert(
                0,
                f"FPO executed ({_fpo(r.fpo_executed)}) assume a sparse kernel that skips the "
                f"zero weights; the dense kernels timed here run all {_fpo(r.fpo_dense)} (FPO "
                "dense)",
            )
        if said:
            out.append(f"{r.name}: " + "; ".join(said))
    return out


def table_cells(result: GreenerResult) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The greener table as text cells: a header and one row per variant (front marked ◆).

    Energy and CO2-eq columns take the unit of their largest value (Wh, mWh, µWh; g, mg, µg).
    """
    measured = [r for r in result.rows if r.measured]
    e_factor, e_unit = _column_unit(
        (None if r.energy_kwh_per_1000 is None else r.energy_kwh_per_1000 * 1e3 for r in measured),
        "Wh",
    )
    c_factor, c_unit = _column_unit(
        (
            None if r.emissions_kg_per_1000 is None else r.emissions_kg_per_1000 * 1e3
            for r in measured
        ),
        "g",
    )
    t_factor, t_unit = _column_unit((r.training_energy_kwh * 1e3 for r in measured), "Wh")
    header = list(TABLE_HEADER)
    # which score, and its direction: "score" alone left a newcomer guessing what was scored
    named = result.metric if result.metric and result.metric != "score" else ""
    direction = "lower is better" if result.mode == "min" else ""
    if named or direction:
        header[1] = f"score ({', '.join(part for part in (named, direction) if part)})"
    header[4] = f"IT energy ({e_unit}/1000)"  # before PUE, as the price tag's energy (IT)
    header[5] = f"CO2-eq ({c_unit}/1000)"
    header[10] = f"training ({t_unit})"
    base = next((r for r in measured if r.name == result.baseline), None)
    base_kwh = None if base is None else base.energy_kwh_per_1000
    body = []
    for r in result.rows:
        label = ("◆ " if r.on_front else "") + r.name
        if not r.measured:
            body.append((label, f"skipped: {r.reason}", *("-" for _ in TABLE_HEADER[2:])))
            continue
        executed = _fpo(r.fpo_executed)
        if r.int_ops:
            executed += f" (+{_count(r.int_ops)} int8 ops)"
        params = "-" if r.param_count is None else f"{r.param_count:,}"
        if r.nonzero_param_count is not None and r.nonzero_param_count != r.param_count:
            params += f" ({r.nonzero_param_count:,})"
        body.append(
            (
                label,
                _num(r.score, ".4g"),
                _num(None if r.latency_s is None else r.latency_s * 1e3, ".3g"),
                _count(r.throughput_per_s),
                _num(
                    None
                    if r.energy_kwh_per_1000 is None
                    else r.energy_kwh_per_1000 * 1e3 / e_factor
                ),
                _num(
                    None
                    if r.emissions_kg_per_1000 is None
                    else r.emissions_kg_per_1000 * 1e3 / c_factor
                ),
                _fpo(r.fpo_dense),
                executed,
                params,
                _size(r.size_bytes),
                _num(r.training_energy_kwh * 1e3 / t_factor) if r.training_energy_kwh else "0",
                # the reference itself, or no reference measured: nothing to break even with
                "-" if r.name == result.baseline or base_kwh is None else break_even_text(r),
            )
        )
    return tuple(header), body
