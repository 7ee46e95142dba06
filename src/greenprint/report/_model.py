"""The report model: one frozen description of a study, rendered by every format.

A :class:`Report` holds numbers and text only (no markup): the study's price tag, one
:class:`RunRow` per run, the data of every :class:`Figure`, the model-card block and the
compute statement. Renderers (HTML, Markdown, LaTeX, JSON) read it and never go back to the
ledger, so every format shows the same figures. Units are in the field names; figure axes carry
their unit in ``x_unit``/``y_unit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from greenprint._format import count_of
from greenprint.analysis import PriceTag
from greenprint.analysis._common import json_float

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.greener._result import GreenerResult
    from greenprint.report._efficiency import EfficiencySection
    from greenprint.report._prediction import PredictionSummary
    from greenprint.report._pruned import PrunedSummary
    from greenprint.report._whatif import WhatIfSection

__all__ = [
    "HF_CO2_KEYS",
    "SCHEMA",
    "Figure",
    "ModelCardEmissions",
    "Panel",
    "Report",
    "RunRow",
    "Series",
]

#: A run's FPO that assumed nothing (:attr:`RunRow.fpo_assumptions`): one shared, read-only.
NOTHING_ASSUMED: Mapping[str, str] = MappingProxyType({})

#: Identifier and version of the JSON layout (``docs/report-schema.json``). The number after
#: the slash changes when a field is removed or changes meaning; new fields keep it.
SCHEMA = "greenprint.report/2"

SeriesKind = Literal["line", "step", "scatter", "band"]


def _floats(values: tuple[float, ...]) -> list[float | None]:
    """Each value as :func:`json_float` gives it (NaN and infinities: ``None``).

    Values all floats with a finite sum are all finite: they are given as they are, without a
    call per value (a 100,000-run report's figures: 98,000 values, 0.02-0.03 -> 0.013-0.015 s).
    """
    if set(map(type, values)) <= _FLOAT and math.isfinite(sum(values)):
        return list(values)
    return [json_float(v) for v in values]


_FLOAT = frozenset({float})


@dataclass(frozen=True)
class Series:
    """One plotted series of a panel.

    Attributes:
        label: legend text (may come from the user: renderers escape it).
        kind: ``"line"``, ``"step"`` (post-step, for power over time), ``"scatter"`` or
            ``"band"`` (a shaded range between ``y_low`` and ``y_high``).
        x: x values, in the panel's ``x_unit``.
        y: y values, in the panel's ``y_unit`` (empty for a band).
        y_low: lower edge of a band (same length as ``x``), else empty.
        y_high: upper edge of a band, else empty.
        role: what the series is, for styling and for readers of the JSON: e.g. ``"mean"``,
            ``"std"``, ``"finished"``, ``"pruned"``, ``"front"``, ``"final"``, ``"cpu"``.
        run_ids: for scatter series of runs, the id of each point's run (else empty).
    """

    label: str
    kind: SeriesKind
    x: tuple[float, ...]
    y: tuple[float, ...] = ()
    y_low: tuple[float, ...] = ()
    y_high: tuple[float, ...] = ()
    role: str = ""
    run_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``)."""
        out: dict[str, Any] = {
            "label": self.label,
            "kind": self.kind,
            "role": self.role,
            "x": _floats(self.x),
            "y": _floats(self.y),
        }
        if self.kind == "band":
            out["y_low"] = _floats(self.y_low)
            out["y_high"] = _floats(self.y_high)
        if self.run_ids:
            out["run_ids"] = list(self.run_ids)
        return out


@dataclass(frozen=True)
class Panel:
    """One set of axes of a figure.

    Attributes:
        x_label: x-axis label, with its unit.
        y_label: y-axis label, with its unit.
        x_unit: unit of the x values (``"trials"``, ``"Wh"``, ``"s"``, ``"examples"``...).
        y_unit: unit of the y values (the metric's name for scores).
        series: the series drawn, in drawing order.
        x_scale: ``"linear"`` or ``"log"``.
        y_scale: ``"linear"`` or ``"log"``.
    """

    x_label: str
    y_label: str
    x_unit: str
    y_unit: str
    series: tuple[Series, ...]
    x_scale: Literal["linear", "log"] = "linear"
    y_scale: Literal["linear", "log"] = "linear"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "x_label": self.x_label,
            "y_label": self.y_label,
            "x_unit": self.x_unit,
            "y_unit": self.y_unit,
            "x_scale": self.x_scale,
            "y_scale": self.y_scale,
            "series": [s.to_dict() for s in self.series],
        }


@dataclass(frozen=True)
class Figure:
    """A figure of the report: its data, caption and where its numbers came from.

    Attributes:
        id: stable identifier, also the figure's file name (``"evp_trials"``, ``"evp_energy"``,
            ``"pareto"``, ``"learning_curve"``, ``"timeline"``).
        title: the figure's title.
        caption: one or two sentences saying what it shows.
        panels: its axes, side by side.
        provenance: where the numbers came from (measured or estimated energy, intensity table,
            PUE, how scores were taken), one line each; shown next to the figure.
        notes: caveats (missing data, approximations).
    """

    id: str
    title: str
    caption: str
    panels: tuple[Panel, ...]
    provenance: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "title": self.title,
            "caption": self.caption,
            "provenance": list(self.provenance),
            "notes": list(self.notes),
            "panels": [p.to_dict() for p in self.panels],
        }


@dataclass(frozen=True, slots=True)  # slots: 100,000 rows without a dict each
class RunRow:
    """One run of the study as the report shows it.

    Costs are the run's own recorded figures (a parent's include its children's; the price tag
    counts each only once). ``depth`` is the nesting level (0 for a top-level run).

    Attributes:
        id: run id.
        name: run name.
        parent_id: the enclosing run's id, or ``None``; for a node or rank of a distributed
            job that recorded no parent there, the run the job links it under (its node's
            meter, the job's head), as ``depth`` counts it; for a run of a reused worker
            process recorded under a run that had ended, the run open when it started.
        depth: nesting depth within the study.
        is_trial: whether its role is ``trial`` (never a part such as a fold, a sweep, a
            baseline, the final run or a learning-curve run).
        status: ``finished``, ``failed``, ``pruned``, ``interrupted``, ``lost`` or ``running``.
        score: its score of the report's metric, ``None`` when it has none (NaN, not logged,
            or a run that ended failed, interrupted or lost: it produced no model): its own,
            else the mean of its parts' (``score_source`` says which).
        started_at: start, seconds since the Unix epoch.
        duration_s: duration, s; ``None`` when it recorded none (``RunRecord.duration_s``
            0.0: a run built by hand through the ledger API, or imported).
        energy_kwh: IT energy, kWh; NaN (``null`` in JSON) when the run recorded none (no
            meter, ``meters=[]``: ``RunRecord.energy_recorded`` false), never 0.
        emissions_kg: emissions, kg CO2-eq; NaN where ``energy_kwh`` is.
        fpo: floating-point operations: its own; for a run that counted none of its own but
            whose children inside it all know theirs (a trial over its folds, a sweep over its
            trials), their sum; else ``None`` (unknown).
        dataset_size: training examples, ``None`` if unknown.
        param_count: model parameters, ``None`` if unknown.
        params: hyper-parameters.
        energy_source: ``"measured"``, ``"estimated"``, ``"mixed"`` or ``"unknown"``.
        pue: PUE applied.
        intensity_g_per_kwh: grid intensity applied, g CO2-eq/kWh (``None`` if unknown); for
            a run priced by an hourly series, the series' energy-weighted mean over the run.
        intensity_source: where the intensity came from.
        score_per_kwh: score per kWh (``None`` without a score or energy, when a lower
            score is better: a loss per kWh is no efficiency, or when the score is below 0:
            a negated error per kWh falls as the cost falls).
        score_per_gflop: score per GFLOP (``None`` without a score or FPO, when a lower
            score is better, or when the score is below 0).
        error: the recorded error of a failed or interrupted run.
        is_final: whether it is the run behind the reported result.
        role: its role: ``trial``, ``part``, ``baseline``, ``final``, ``learning-curve`` or
            ``sweep``.
        role_inferred: whether the role was inferred (no role was given when it was tracked).
        score_source: ``"own"``, ``"parts"`` (the mean of its parts' scores) or ``"none"``.
        fpo_lower_bound: whether its ``fpo`` is a lower bound: counted with ops that have no
            rule or on complex tensors (its provenance says so), or, when ``fpo`` is its
            children's sum, one of them was; the report writes "at least".
        job_id: the distributed job it is a process of (``torchrun:...``, ``slurm:...``, or
            ``GREENPRINT_JOB_ID``), ``None`` outside a job (see ``docs/distributed.md``).
        node_rank: the rank of the node that ran it in its job, ``None`` outside a job.
        local_rank: the rank of its process on that node, ``None`` when not known.
        node_meter: whether it metered its node for its job (the whole machine, once: the
            ranks on that node measure their own process, inside its reading); ``None``
            outside a job.
        contained: whether its energy, CO2-eq and time are inside a measurement above it (a
            nested run, a rank under its node's meter, a rank its job linked under its
            training's rank 0 inside a sweep's process tree: outside rank 0's row, inside the
            sweep's); ``False`` when they add to the price tag's, outside every measurement
            above it (another node of its job, a run outside its parent's process tree or on
            another host, a rank linked under a rank 0 that no run around it measured);
            ``None`` for a run with no parent in the study. The rows whose ``contained`` is
            not true sum to the price tag's energy, CO2-eq and time (save where a parent
            recorded less than the runs inside it: the price tag then counts theirs); the
            rows with no parent sum to its FPO (a row's ``fpo`` includes its children's).
        fpo_assumptions: what its ``fpo`` assumed that the ops' shapes do not say, name ->
            value (``{"fft_library": "mkl"}``: FFTs counted as MKL computes them; a count on
            another torch build or device can differ), from its provenance's
            ``fpo_assumptions``; when ``fpo`` is its children's sum, theirs merged too
            (``"cufft+mkl"``); empty when nothing was assumed or ``fpo`` is unknown. Treat
            it as read-only: rows with one provenance share it.
    """

    id: str
    name: str
    parent_id: str | None
    depth: int
    is_trial: bool
    status: str
    score: float | None
    started_at: float
    duration_s: float | None
    energy_kwh: float
    emissions_kg: float
    fpo: int | None
    dataset_size: int | None
    param_count: int | None
    params: Mapping[str, Any]
    energy_source: str
    pue: float
    intensity_g_per_kwh: float | None
    intensity_source: str
    score_per_kwh: float | None
    score_per_gflop: float | None
    error: str | None
    is_final: bool = False
    role: str = "trial"
    role_inferred: bool = True
    score_source: str = "own"
    fpo_lower_bound: bool = False
    job_id: str | None = None
    node_rank: int | None = None
    local_rank: int | None = None
    node_meter: bool | None = None
    contained: bool | None = None
    fpo_assumptions: Mapping[str, str] = field(default_factory=lambda: NOTHING_ASSUMED)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "parent_id": self.parent_id,
            "depth": self.depth,
            "is_trial": self.is_trial,
            "is_final": self.is_final,
            "role": self.role,
            "role_inferred": self.role_inferred,
            "score_source": self.score_source,
            "status": self.status,
            "score": json_float(self.score),
            "started_at": json_float(self.started_at),
            "duration_s": json_float(self.duration_s),
            "energy_kwh": json_float(self.energy_kwh),
            "emissions_kg": json_float(self.emissions_kg),
            "fpo": self.fpo,
            "dataset_size": self.dataset_size,
            "param_count": self.param_count,
            "params": _json_params(self.params),
            "energy_source": self.energy_source,
            "pue": json_float(self.pue),
            "intensity_g_per_kwh": json_float(self.intensity_g_per_kwh),
            "intensity_source": self.intensity_source,
            "score_per_kwh": json_float(self.score_per_kwh),
            "score_per_gflop": json_float(self.score_per_gflop),
            "error": self.error,
            "fpo_lower_bound": self.fpo_lower_bound,
            "fpo_assumptions": dict(self.fpo_assumptions),
            "job_id": self.job_id,
            "node_rank": self.node_rank,
            "local_rank": self.local_rank,
            "node_meter": self.node_meter,
            "contained": self.contained,
        }


#: The keys of Hugging Face's model-card ``co2_eq_emissions`` block, in its order
#: (https://huggingface.co/docs/hub/model-cards-co2).
HF_CO2_KEYS = ("emissions", "source", "training_type", "geographical_location", "hardware_used")


@dataclass(frozen=True)
class ModelCardEmissions:
    """The Hugging Face model-card ``co2_eq_emissions`` block.

    See https://huggingface.co/docs/hub/model-cards-co2 for the fields. ``emissions`` is in
    grams of CO2-eq and, following Green AI, covers the whole study (every trial, failed and
    pruned ones included), not only the final run. The block holds exactly Hugging Face's keys
    (:data:`HF_CO2_KEYS`); ``final_emissions_g`` is kept apart (:meth:`extras`).

    Attributes:
        emissions_g: the study's emissions, g CO2-eq.
        source: how they were obtained (greenprint version, measured or estimated, intensity).
        training_type: ``"pre-training"``, ``"fine-tuning"``... (given, the study's, or
            ``"unknown"``).
        geographical_location: the grid region of the intensity, or why it is unknown.
        hardware_used: the hardware the runs used.
        final_emissions_g: the final run's own emissions, g CO2-eq (``None`` if unknown).
    """

    emissions_g: float
    source: str
    training_type: str
    geographical_location: str
    hardware_used: str
    final_emissions_g: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The block as the model card's YAML has it: exactly Hugging Face's keys."""
        return {
            "emissions": json_float(self.emissions_g),
            "source": self.source,
            "training_type": self.training_type,
            "geographical_location": self.geographical_location,
            "hardware_used": self.hardware_used,
        }

    def extras(self) -> dict[str, Any]:
        """What greenprint adds beside the block: ``final_emissions_g`` (grams CO2-eq)."""
        return {"final_emissions_g": json_float(self.final_emissions_g)}

    def to_yaml(self) -> str:
        """The block as YAML to paste into a model card's front matter."""
        lines = ["co2_eq_emissions:", f"  emissions: {_yaml_number(self.emissions_g)}"]
        for key in ("source", "training_type", "geographical_location", "hardware_used"):
            lines.append(f"  {key}: {_yaml_string(getattr(self, key))}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    """Everything a study's report shows, built by :func:`~greenprint.report.build_report`.

    Attributes:
        study: the study's name.
        ledger: the ledger's URL (password masked).
        generated_at: when the report was built, seconds since the Unix epoch.
        greenprint_version: the version that built it.
        metric: the metric runs are ranked by; ``None`` when no run logged a metric (the
            report then has no ranking, EVP or Pareto figure, and a note says so).
        mode: ``"max"`` (higher is better) or ``"min"`` (``"max"`` and unused without a metric).
        reduce: ``"last"`` or ``"best"`` logged value of each run's metric.
        price_tag: the study's price tag (totals by status and by role, every run's role, the
            final run's share and the rule that chose it, E·D·H, provenance, the mode's note).
        runs: every run of the study, in start order.
        figures: the figures, in display order.
        hardware: the distinct hardware descriptions of the runs.
        model_card: the Hugging Face ``co2_eq_emissions`` block.
        compute_statement: a paragraph for a paper's compute-reporting checklist.
        notes: caveats about the whole report.
        schema: the JSON layout identifier, :data:`SCHEMA`.
        greener: the greener-variant comparisons the study recorded
            (:func:`greenprint.greener.compare`), oldest first.
        prediction: how good the runs' cost predictions were (``None``: no run predicted).
        whatif: the study's energy priced in reference regions (``None``: no energy measured).
        final_scores: the held-out scores (name, last value) the final run logged when it has
            no score of ``metric`` (a retrain scored on a test split); in the price tag's
            sentence and the compute statement.
        efficiency: score per unit of cost of the final run, the best trial, the Pareto front
            and the baselines (``None``: no metric, or a metric that is better lower).
        pruning: the pruned trials: where they stopped against the finished ones, what they
            cost and (an estimate) what stopping them saved (``None``: no trial was pruned).
        failures: the failed-runs section as the JSON report gives it
            (:func:`~greenprint.report._failure_text.failures_json`, set by ``build_report``;
            ``None``: a report built without it, whose JSON then has no ``failures``).
    """

    study: str
    ledger: str
    generated_at: float
    greenprint_version: str
    metric: str | None
    mode: Literal["max", "min"]
    reduce: Literal["last", "best"]
    price_tag: PriceTag
    runs: tuple[RunRow, ...]
    figures: tuple[Figure, ...]
    hardware: tuple[str, ...]
    model_card: ModelCardEmissions
    compute_statement: str
    notes: tuple[str, ...] = field(default=())
    schema: str = SCHEMA
    greener: tuple[GreenerResult, ...] = ()
    prediction: PredictionSummary | None = None
    whatif: WhatIfSection | None = None
    final_scores: tuple[tuple[str, float], ...] = ()
    efficiency: EfficiencySection | None = None
    failures: Mapping[str, Any] | None = None
    pruning: PrunedSummary | None = None

    @property
    def final(self) -> RunRow | None:
        """The row of the final run (named, the ``final`` run, or the best finished trial)."""
        return next((r for r in self.runs if r.is_final), None)

    def figure(self, figure_id: str) -> Figure | None:
        """The figure with this id, or ``None``."""
        return next((f for f in self.figures if f.id == figure_id), None)

    def _repr_html_(self) -> str:
        """The report's headline, price tag and runs as an HTML fragment, for notebooks."""
        from greenprint._reprs import report_html

        return report_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: the headline and the price tag, not every field.

        ``repr`` (every run and figure, 100 kB for a small study) would fill the screen and
        the notebook's saved text/plain output.
        """
        ranked = f", ranked by {self.metric}" if self.metric else ""
        printer.text(
            f"greenprint report: {self.study}{ranked}; {count_of(len(self.runs), 'run')}, "
            f"{count_of(len(self.figures), 'figure')}\n{self.price_tag.summary()}"
        )

    def to_dict(self, *, with_runs: bool = True) -> dict[str, Any]:
        """The JSON document (see ``docs/report-schema.json``): every run and every figure.

        ``with_runs=False`` leaves out ``runs`` (the last key), for writers that stream them.
        """
        document = {
            "schema": self.schema,
            "study": self.study,
            "ledger": self.ledger,
            "generated_at": json_float(self.generated_at),
            "greenprint_version": self.greenprint_version,
            "metric": self.metric,
            "mode": self.mode,
            "reduce": self.reduce,
            "final_scores": {name: json_float(value) for name, value in self.final_scores},
            "price_tag": self.price_tag.to_dict(),
            "hardware": list(self.hardware),
            "model_card": {
                "co2_eq_emissions": self.model_card.to_dict(),
                "greenprint": self.model_card.extras(),
            },
            "compute_statement": self.compute_statement,
            "notes": list(self.notes),
            "figures": [f.to_dict() for f in self.figures],
            "greener": [g.to_dict() for g in self.greener],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "whatif": None if self.whatif is None else self.whatif.to_dict(),
            "efficiency": None if self.efficiency is None else self.efficiency.to_dict(),
            "pruning": None if self.pruning is None else self.pruning.to_dict(),
        }
        if self.failures is not None:
            document["failures"] = dict(self.failures)
        if with_runs:
            document["runs"] = [r.to_dict() for r in self.runs]
        return document


# ---------------------------------------------------------------------------------- helpers
_PLAIN_TYPES = (str, int, bool, type(None))


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    # Fast path: string keys and plain values (the common case) are copied as they are.
    for key, value in params.items():
        if type(key) is not str or not (
            type(value) in _PLAIN_TYPES or (type(value) is float and math.isfinite(value))
        ):
            return {str(k): _json_value(v) for k, v in params.items()}
    return dict(params)


def _json_value(value: Any) -> Any:
    """Plain JSON: non-finite floats become strings, containers are walked, others ``repr``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return repr(value)


def _yaml_number(value: float) -> str:
    if not math.isfinite(value):
        return "null"
    return f"{value:.6g}"


def _yaml_string(text: str) -> str:
    """A double-quoted YAML scalar: backslashes, quotes and control characters escaped."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
