"""The fast paths a 100,000-run report takes give what the plain per-run paths give.

A big study is read in bulk (one ``SELECT`` per table, columns decoded once per distinct
value, metrics found by one scan of the table, provenance and hardware looked up once per
shared dictionary) and its runs are written to JSON without a dictionary per run. Each of
these must give exactly what reading the runs one at a time, and encoding ``RunRow.to_dict``,
gives: on a messy ledger (roles given and inferred, a sweep, CV-fold parts, baselines, a final
retrain, a learning curve; failed, pruned and interrupted runs; NaN scores, unknown FPO and
energy components, estimated and measured energy, several hardware and provenance
dictionaries) and a second study beside it.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint._gc import gc_paused
from greenprint._provenance import Provenance
from greenprint.analysis import ProvenanceSummary, price_tag
from greenprint.analysis._common import RunForest
from greenprint.ledger._fields import (
    FIELD_KINDS,
    SCHEMA_VERSION,
    CorruptValueError,
    decode_columns,
)
from greenprint.ledger._schema import SCHEMA_VERSION as SA_SCHEMA_VERSION
from greenprint.ledger._sql import SQLStore
from greenprint.ledger._sqlite import SQLiteStore
from greenprint.ledger._target import resolve_target
from greenprint.report import build_report, render
from greenprint.report._build import ROW_FIELD_ORDER, _assemble
from greenprint.report._json import ROW_KEYS, params_json, row_json
from greenprint.report._model import RunRow, _json_params

STUDY = "messy"
T0 = 1_700_000_000.0
HARDWARE = (
    {"cpu_model": "EPYC 7763", "logical_cores": 128, "ram_gb": 512.0, "gpus": [{"name": "A100"}]},
    {"cpu_model": "Xeon 6338", "logical_cores": 64, "ram_gb": 256.0, "gpus": []},
)
PROVENANCE = (
    {"cpu": "rapl", "gpu": "nvml:energy", "ram": "rapl:dram", "intensity": "table:DE:2023"},
    {"cpu": "estimate:tdp (280 W)", "intensity": "table:FR:2023", "pue": "argument"},
    {"cpu": "rapl"},  # gpu and ram energy without a provenance: unknown
)


def _record(rng: random.Random, k: int, **fields: Any) -> gp.RunRecord:
    duration = rng.uniform(5, 500)
    watts = rng.uniform(20, 400)
    energy = watts * duration / 3.6e6
    components = rng.choice(
        [(0.3, 0.6, 0.1), (1.0, None, None), (None, None, None), (0.5, 0.4, None)]
    )
    parts = [None if c is None else energy * c for c in components]
    defaults: dict[str, Any] = {
        "id": f"{k:04x}{rng.getrandbits(48):012x}",
        "name": f"run-{k} «ü» <&>",
        "study": STUDY,
        "status": "finished",
        "started_at": T0 + 600 * k,
        "ended_at": T0 + 600 * k + duration,
        "duration_s": duration,
        "energy_cpu_kwh": parts[0],
        "energy_gpu_kwh": parts[1],
        "energy_ram_kwh": parts[2],
        "energy_kwh": energy,
        "emissions_kg": energy * 0.4,
        "pue": rng.choice([1.0, 1.2, 1.58]),
        "intensity_g_per_kwh": rng.choice([None, 56.0, 380.0]),
        "intensity_source": rng.choice(["table:DE:2023", "argument", ""]),
        "provenance": dict(rng.choice(PROVENANCE)),
        "hardware": dict(rng.choice(HARDWARE)),
        "params": {
            "model": rng.choice(["mlp", "cnn"]),
            "lr": 10 ** rng.uniform(-5, -1),
            "tag": rng.choice(["a", "ü", "x<y"]),
        },
        "fpo": rng.choice([None, rng.randrange(10**12, 10**20)]),  # beyond 64 bits too
        "dataset_size": rng.choice([None, 1000, 50_000]),
        "param_count": rng.choice([None, 12_345]),
    }
    defaults.update(fields)
    return gp.RunRecord(**defaults)


def _score(rng: random.Random, name: str, at: float, *, nan: bool = False) -> tuple:
    value = math.nan if nan else rng.uniform(0.5, 0.95)
    return (
        gp.MetricPoint(name, value * 0.9, 1, at),
        gp.MetricPoint("loss", 1 - value, 1, at),
        gp.MetricPoint(name, value, 2, at + 1),
    )


def build_messy(path: Path, *, seed: int = 7) -> None:
    """A messy study (about 60 runs) and a small second study, through the public API."""
    rng = random.Random(seed)
    k = 0
    with gp.Ledger(path) as led:

        def add(**fields: Any) -> gp.RunRecord:
            nonlocal k
            record = _record(rng, k, **fields)
            k += 1
            led.start_run(record)
            if rng.random() < 0.5:
                step = record.duration_s / 2
                led.flush(
                    record.id,
                    samples=[
                        gp.PowerSample(
                            record.started_at + j * step,
                            record.started_at + (j + 1) * step,
                            cpu_w=100.0,
                            gpu_w=None if j else 200.0,
                            ram_w=float("nan") if j else 10.0,
                        )
                        for j in range(2)
                    ],
                )
            return record

        for name in ("majority", "logreg"):
            add(name=name, role="baseline", metrics=_score(rng, "accuracy", T0))
        sweep = add(name="sweep (inferred)", metrics=())
        for t in range(14):
            status = rng.choice(["finished", "finished", "pruned", "failed", "interrupted"])
            own = t % 3 != 0  # a third score by their folds only
            trial = add(
                name=f"trial-{t}",
                parent_id=sweep.id,
                status=status,
                error="CUDA out of memory" if status == "failed" else None,
                metrics=_score(rng, "accuracy", T0 + t, nan=t == 5) if own else (),
            )
            for fold in range(rng.choice([0, 2, 3])):
                add(
                    name=f"trial-{t}-fold-{fold}",
                    parent_id=trial.id,
                    status=rng.choice(["finished", "finished", "pruned", "failed"]),
                    metrics=_score(rng, "accuracy", T0 + t + fold),
                    energy_kwh=trial.energy_kwh / 4,
                    energy_cpu_kwh=trial.energy_kwh / 4,
                    energy_gpu_kwh=None,
                    energy_ram_kwh=None,
                    emissions_kg=trial.emissions_kg / 4,
                    duration_s=trial.duration_s / 4,
                )
        for fraction in (0.25, 0.5, 1.0):
            add(
                name=f"curve-{fraction}",
                role="learning-curve",
                params={"fraction": fraction},
                metrics=_score(rng, "accuracy", T0),
            )
        final = add(name="final retrain", role="final", metrics=_score(rng, "accuracy", T0))
        add(name="final helper", parent_id=final.id, status="failed", metrics=())
        for j in range(5):  # a second, smaller study: read through the IN-list query
            add(name=f"other-{j}", study="other", metrics=_score(rng, "accuracy", T0))


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "messy.db"
    build_messy(path)
    return path


def _one_by_one(led: gp.Ledger, study: str) -> tuple[gp.RunRecord, ...]:
    """The study's runs read one at a time: no column shared between runs, no table scan."""
    ids = [r.id for r in led.runs(study=study)]
    return tuple(led.run(run_id) for run_id in ids)


@pytest.mark.parametrize("study", [STUDY, "other"])
def test_bulk_read_equals_reading_each_run(messy: Path, study: str) -> None:
    with gp.Ledger(messy, create=False) as led:
        bulk = led.runs(study=study)
        single = _one_by_one(led, study)
    assert len(bulk) == len(single) > 0
    # repr: NaN scores compare unequal as floats, equal as text
    assert [repr(r) for r in bulk] == [repr(r) for r in single]
    # a study's runs share each distinct dictionary and string once read in bulk
    assert len({id(r.hardware) for r in bulk}) <= len(HARDWARE)
    assert len({id(r.study) for r in bulk}) == 1


def test_sqlalchemy_store_reads_the_same_columns(messy: Path) -> None:
    """The two stores share one read mapping (ledger/_rows.py) and one schema version."""
    assert SCHEMA_VERSION == SA_SCHEMA_VERSION
    target = resolve_target(str(messy))
    plain, alchemy = SQLiteStore(target, create=False), SQLStore(target, create=False)
    try:
        for query in ({"study": STUDY}, {"study": "other"}, {}, {"top_level": True}):
            decoded_a, points_a = plain.select_runs(**query)
            decoded_b, points_b = alchemy.select_runs(**query)
            assert set(decoded_a) == set(FIELD_KINDS)
            assert repr(decoded_a) == repr(decoded_b)
            assert repr(points_a) == repr(points_b)
    finally:
        plain.close()
        alchemy.close()


def test_price_tag_bulk_equals_per_run(messy: Path) -> None:
    with gp.Ledger(messy, create=False) as led:
        bulk = led.runs(study=STUDY)
        single = _one_by_one(led, STUDY)
    a = price_tag(bulk, metric="accuracy").to_dict()
    b = price_tag(list(single), metric="accuracy").to_dict()
    assert a == b
    assert a["roles"]["counts"]["part"] > 0 and a["roles"]["counts"]["sweep"] == 1
    assert set(a["by_status"]) >= {"finished", "failed", "pruned"}
    assert a["provenance"]["unknown_share"] is not None
    assert a["final"]["name"] == "final retrain"


def _reference_provenance(forest: RunForest, energy_in: list[Any]) -> ProvenanceSummary:
    """The provenance summary computed run by run, component by component (no caching)."""
    measured = estimated = unknown = 0.0
    counted = [
        *forest.roots,
        *(p for p in range(len(forest.runs)) if forest.parents[p] is not None and forest.adds(p)),
    ]

    def inside(position: int) -> float:
        added = sum(energy_in[c] for c in forest.children[position] if forest.adds(c))
        return float(energy_in[position]) - float(added)

    def split(position: int, own: float) -> list[float]:
        """Measured, estimated, unknown kWh of the ``own`` kWh a run counts inside itself:
        its components by their source; what its children's sum adds beyond its record
        split as theirs is; the rest unknown."""
        run = forest.runs[position]
        parts = run.energy_by_component
        kinds = [0.0, 0.0, 0.0]
        for component, kwh in parts.items():
            source = run.provenance.get(component)
            if source is None:
                kinds[2] += kwh
            elif Provenance.parse(source).is_estimate:
                kinds[1] += kwh
            else:
                kinds[0] += kwh
        lifted = own - max(run.energy_kwh or 0.0, sum(parts.values()))
        children = [c for c in forest.children[position] if not forest.adds(c)]
        if lifted > 0 and children and own > sum(parts.values()):
            below = [split(c, inside(c)) for c in children]
            spent = sum(map(sum, below))
            if spent > 0:
                for k in range(3):
                    kinds[k] += lifted * sum(b[k] for b in below) / spent
        kinds[2] += max(own - sum(kinds), 0.0)
        return kinds

    for position in counted:
        kinds = split(position, inside(position))
        measured += kinds[0]
        estimated += kinds[1]
        unknown += kinds[2]
    sources: dict[str, set[str]] = {}
    intensity: set[str] = set()
    pue_sources: set[str] = set()
    for run in forest.runs:
        for component in ("cpu", "gpu", "ram"):
            if component in run.provenance:
                sources.setdefault(component, set()).add(run.provenance[component])
        source = run.provenance.get("intensity") or run.intensity_source
        if source:
            intensity.add(source)
        if "pue" in run.provenance:
            pue_sources.add(run.provenance["pue"])
    return ProvenanceSummary(
        measured_kwh=measured,
        estimated_kwh=estimated,
        unknown_kwh=unknown,
        sources={k: tuple(sorted(v)) for k, v in sorted(sources.items())},
        intensity_sources=tuple(sorted(intensity)),
        pue_values=tuple(sorted({float(r.pue) for r in forest.runs})),
        pue_sources=tuple(sorted(pue_sources)),
    )


@pytest.mark.parametrize("one_by_one", [False, True])
def test_price_tag_figures_from_first_principles(messy: Path, one_by_one: bool) -> None:
    """Totals by status and role, and provenance shares, recomputed run by run."""
    with gp.Ledger(messy, create=False) as led:
        runs = _one_by_one(led, STUDY) if one_by_one else tuple(led.runs(study=STUDY))
    tag = price_tag(runs, metric="accuracy")
    assert tag.roles is not None
    forest = tag.roles.forest
    energy_in, energy_ex = forest.nested_sum([r.energy_kwh for r in runs])
    assert tag.provenance == _reference_provenance(forest, energy_in)
    assert tag.provenance.measured_kwh > 0 and tag.provenance.estimated_kwh > 0
    assert tag.provenance.unknown_kwh > 0
    co2_ex = forest.nested_sum([r.emissions_kg for r in runs])[1]
    roles = tag.roles
    worse = ("lost", "failed", "interrupted", "running", "pruned", "finished")
    counted = [  # a part's cost: its owner's status or its own, whichever ended worse
        min(runs[roles.owners[p]].status, r.status, key=worse.index) for p, r in enumerate(runs)
    ]
    for status, totals in tag.by_status.items():
        mine = [p for p in range(len(runs)) if counted[p] == status]
        assert totals.runs == len(mine)
        assert totals.energy_kwh == float(sum(energy_ex[p] for p in mine))
        assert totals.emissions_kg == float(sum(co2_ex[p] for p in mine))
    for role, totals in tag.by_role.items():
        mine = [p for p in range(len(runs)) if roles.roles[roles.owners[p]] == role]
        assert totals.runs == len(mine)
        assert totals.trials == sum(1 for p in mine if roles.roles[p] == "trial")
        assert totals.energy_kwh == float(sum(energy_ex[p] for p in mine))
    assert sum(t.energy_kwh for t in tag.by_role.values()) == pytest.approx(tag.total.energy_kwh)
    for role in ("trial", "part", "sweep", "baseline", "final", "learning-curve"):
        assert roles.positions(role) == tuple(p for p, r in enumerate(roles.roles) if r == role)


def _reference_energy_source(run: gp.RunRecord) -> str:
    kinds = set()
    for component in run.energy_by_component:
        source = run.provenance.get(component)
        if source is None:
            kinds.add("unknown")
        else:
            kinds.add("estimated" if Provenance.parse(source).is_estimate else "measured")
    if not kinds:
        return "unknown"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _report_of(runs: tuple[gp.RunRecord, ...], led: gp.Ledger) -> Any:
    return _assemble(
        runs,
        study=STUDY,
        ledger_url=led.url,
        metric="accuracy",
        mode=None,
        final=None,
        reduce="last",
        training_type=None,
        samples_of=led.samples,
        max_sampled_runs=300,
        group_by="params.model",
    )


def test_report_model_bulk_equals_per_run(messy: Path) -> None:
    with gp.Ledger(messy, create=False) as led:
        built = build_report(led, STUDY, metric="accuracy", group_by="params.model")
        single = _report_of(_one_by_one(led, STUDY), led)
    same_time = dataclasses.replace(single, generated_at=built.generated_at)
    assert json.dumps(built.to_dict(), sort_keys=True) == json.dumps(
        same_time.to_dict(), sort_keys=True
    )
    with gp.Ledger(messy, create=False) as led:
        by_id = {r.id: r for r in led.runs(study=STUDY)}
    assert [r.energy_source for r in built.runs] == [
        _reference_energy_source(by_id[r.id]) for r in built.runs
    ]
    assert {r.energy_source for r in built.runs} >= {"measured", "estimated", "unknown", "mixed"}
    assert sorted(built.hardware) == [
        "EPYC 7763 (128 logical CPUs, 512 GB RAM), 1 x A100",
        "Xeon 6338 (64 logical CPUs, 256 GB RAM), no GPU",
    ]


def test_json_report_equals_the_model_dict(messy: Path) -> None:
    """The JSON writer's direct run rows parse to exactly ``Report.to_dict()``."""
    report = build_report(messy, STUDY, metric="accuracy")
    assert json.loads(render(report, "json")) == json.loads(
        json.dumps(report.to_dict(), allow_nan=False)
    )


ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

_floats = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)
)
_texts = st.text(max_size=12)
_params = st.dictionaries(
    st.one_of(st.text(max_size=5), st.integers(0, 9)),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
        st.lists(st.floats(allow_nan=True), max_size=3),
        st.tuples(st.integers(), st.text(max_size=3)),
    ),
    max_size=4,
)
_ints = st.one_of(st.none(), st.integers(0, 2**70))


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        RunRow,
        id=_texts,
        name=_texts,
        parent_id=st.one_of(st.none(), _texts),
        depth=st.integers(0, 5),
        is_trial=st.booleans(),
        status=st.sampled_from(["finished", "failed", "pruned"]),
        score=_floats,
        started_at=_floats,
        duration_s=_floats,
        energy_kwh=_floats,
        emissions_kg=_floats,
        fpo=_ints,
        dataset_size=_ints,
        param_count=_ints,
        params=_params,
        energy_source=st.sampled_from(["measured", "estimated", "mixed", "unknown"]),
        pue=_floats,
        intensity_g_per_kwh=_floats,
        intensity_source=_texts,
        score_per_kwh=_floats,
        score_per_gflop=_floats,
        error=st.one_of(st.none(), _texts),
        is_final=st.booleans(),
        role=st.sampled_from(["trial", "part", "sweep"]),
        role_inferred=st.booleans(),
        score_source=st.sampled_from(["own", "parts", "none"]),
    )
)
def test_row_json_is_the_encoded_row_dict(row: RunRow) -> None:
    assert row_json(row, ENCODER) == ENCODER.encode(row.to_dict())


_MARKER_TEXT = "\x00greenprint: next run\x00"


@settings(max_examples=100, deadline=None)
@example([{"tags": ["a", _MARKER_TEXT, "b"]}, {"x": 1.5}])  # the fallback: one piece too many
@example([])
@given(
    st.lists(
        st.one_of(
            _params,
            st.just({"tag": _MARKER_TEXT}),  # the marker itself, as a value
            st.just({"tags": ["a", _MARKER_TEXT, "b"]}),  # its encoded form between commas
        ),
        max_size=8,
    )
)
def test_params_of_a_chunk_encoded_at_once_equal_each_encoded(params: list) -> None:
    rows = [
        RunRow(
            "a",
            "b",
            None,
            0,
            True,
            "finished",
            None,
            0.0,
            1.0,
            0.0,
            0.0,
            None,
            None,
            None,
            p,
            "unknown",
            1.0,
            None,
            "",
            None,
            None,
            None,
        )  # fmt: skip
        for p in params
    ]
    each = [ENCODER.encode(_json_params(p)) for p in params]
    assert params_json(rows, ENCODER) == each
    assert [row_json(r, ENCODER, p) for r, p in zip(rows, each, strict=True)] == [
        ENCODER.encode(r.to_dict()) for r in rows
    ]


def test_report_rows_give_runrow_fields_in_its_order() -> None:
    """``_rows`` builds RunRows positionally: its order is the dataclass's."""
    assert ROW_FIELD_ORDER == tuple(f.name for f in dataclasses.fields(RunRow))


def test_row_keys_are_the_row_dict_keys() -> None:
    row = RunRow("a", "b", None, 0, True, "finished", None, 0.0, 1.0, 0.0, 0.0, None, None, None,
                 {}, "unknown", 1.0, None, "", None, None, None)  # fmt: skip
    assert list(row.to_dict()) == list(ROW_KEYS)
    assert list(json.loads(row_json(row, ENCODER))) == list(ROW_KEYS)


def test_decode_columns_converts_only_what_needs_it() -> None:
    """Stored values as SQLite returns them: 'NaN' text, FPO as decimal text, 0/1 booleans."""
    stored: dict[str, list[Any]] = {name: [None, None, None] for name in FIELD_KINDS}
    stored.update(
        id=["a", "b", "c"],
        name=["x", "x", "y"],
        study=["s", "s", "s"],
        energy_kwh=[1.0, "NaN", 2],
        fpo=["123456789012345678901234567890", None, "5"],
        dataset_size=[1, None, 3],
        git_dirty=[1, 0, None],
        params=['{"lr": 0.1}', ' {"a": NaN} ', "[1, 2]"],
        hardware=["{}", "{}", None],
    )
    out = decode_columns(stored)
    assert out["energy_kwh"][0] == 1.0 and math.isnan(out["energy_kwh"][1])
    assert out["energy_kwh"][2] == 2.0 and type(out["energy_kwh"][2]) is float
    assert out["fpo"] == [123456789012345678901234567890, None, 5]
    assert out["git_dirty"] == [True, False, None]
    assert out["params"][0] == {"lr": 0.1} and math.isnan(out["params"][1]["a"])
    assert out["params"][2] == {}  # a JSON value that is not an object
    assert out["hardware"] == [{}, {}, {}] and out["hardware"][0] is out["hardware"][1]
    assert out["name"][0] is out["name"][1]
    # a corrupt text names its run and column (a reader adds the ledger: test_corrupt_rows)
    with pytest.raises(CorruptValueError, match="run a has a corrupt params column") as error:
        decode_columns({**stored, "params": ['{"lr": ', "{}", "{}"]})
    assert (error.value.run_id, error.value.column) == ("a", "params")


def test_gc_paused_restores_the_collector_and_keeps_a_freeze() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        made = [[k] for k in range(10_000)]
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.freeze()  # a program that froze its objects (before a fork) keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            more = [[k] for k in range(1_000)]
        # not released (0) nor grown by what the block made (1,000 lists); frozen objects that
        # other threads or finalisers free meanwhile leave it, so it may fall by a few
        assert 0 < gc.get_freeze_count() <= frozen and gc.isenabled()
    finally:
        gc.unfreeze()
    del made, more


def test_a_call_with_the_collector_paused_restores_it_even_when_it_raises() -> None:
    """``gc_paused_call`` (``ledger ls``, ``ledger export``): the collector off inside the
    call, back on after it, also when the call raises; a nested pause leaves it off."""
    from greenprint._gc import gc_paused_call

    @gc_paused_call
    def inside(fail: bool = False) -> bool:
        """Its docstring."""
        with gc_paused():  # nested: still off after the inner pause ends
            pass
        if fail:
            raise KeyError("x")
        return gc.isenabled()

    assert gc.isenabled()
    assert inside() is False and gc.isenabled()
    with pytest.raises(KeyError):
        inside(fail=True)
    assert gc.isenabled()
    assert inside.__name__ == "inside" and inside.__doc__ == "Its docstring."
