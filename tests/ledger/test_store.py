"""The ledger contract, run against every backend (SQLite file and a real PostgreSQL server)."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import pytest

import greenprint as gp
from greenprint import MetricPoint, PowerSample, RunRecord
from greenprint.ledger import STALE_GRACE_S, BaseLedger, Ledger, get_ledger
from greenprint.ledger._sqlite import SCHEMA_VERSION

from .conftest import make_record

NAN = float("nan")
INF = float("inf")


def full_record(run_id: str = "0123456789abcdef0123456789abcdef") -> RunRecord:
    """Every RunRecord field set to a non-default value."""
    return RunRecord(
        id=run_id,
        name="resnet-lr0.1",
        study="cifar-sweep",
        parent_id="ffff0000",
        status="finished",
        started_at=1_700_000_000.25,
        ended_at=1_700_000_360.5,
        heartbeat_at=1_700_000_359.0,
        flush_interval_s=2.5,
        duration_s=360.25,
        host="gpu-node-07",
        command="python train.py --lr 0.1 --name 'é ünïcode'",
        git_commit="0123456789abcdef0123456789abcdef01234567",
        git_dirty=True,
        python_version="3.11.7",
        greenprint_version="0.1.0",
        torch_version="2.13.0",
        hardware={"cpu_model": "AMD EPYC 7763", "cores": 64, "gpus": [{"name": "A100"}]},
        env={"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "0,1"},
        params={"lr": 0.1, "layers": [64, 32], "nested": {"beta": [0.9, 0.999]}, "nan": NAN},
        dataset_size=50_000,
        fpo=3 * 10**23,  # beyond 64 bits
        param_count=11_689_512,
        scope="machine",
        energy_cpu_kwh=0.125,
        energy_gpu_kwh=0.5,
        energy_ram_kwh=0.0,
        energy_kwh=0.625,
        machine_energy_kwh=0.75,
        pue=1.2,
        intensity_g_per_kwh=381.5,
        intensity_source="table:DE:2023",
        emissions_kg=0.2861,
        provenance={"cpu": "rapl:package-0", "gpu": "nvml:counter", "intensity": "table:DE"},
        metrics=(
            MetricPoint("accuracy", 0.5, 0, 1_700_000_100.0),
            MetricPoint("loss", NAN, 0, 1_700_000_100.0),
            MetricPoint("loss", INF, 1, 1_700_000_200.0),
            MetricPoint("loss", -INF, None, 1_700_000_300.0),
        ),
        error="RuntimeError: boom",
        role="trial",
    )


def same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to NaN, through dicts, lists and dataclasses."""
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(
            same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.fixture
def led(ledger_url):
    with Ledger(ledger_url) as ledger:
        yield ledger


def test_every_field_round_trips(led):
    record = full_record()
    led.start_run(record)
    back = led.run(record.id)
    assert same(back, record), (back, record)
    assert isinstance(back.fpo, int) and back.fpo == 3 * 10**23
    assert back.git_dirty is True


def test_every_field_round_trips_when_reopened(ledger_url):
    record = full_record()
    with Ledger(ledger_url) as led:
        led.start_run(record)
    with Ledger(ledger_url, create=False) as again:
        assert same(again.run(record.id), record)
        assert again.schema_version == SCHEMA_VERSION


def test_nan_and_infinities_round_trip_in_metrics_and_samples(led):
    led.start_run(make_record("nanrun00"))
    values = [NAN, INF, -INF, 0.0, -0.0, 1e-300, 1.7976931348623157e308]
    led.flush(
        "nanrun00",
        fields={"energy_kwh": INF, "energy_gpu_kwh": NAN},
        metrics=[MetricPoint("m", v, i, 1.0 + i) for i, v in enumerate(values)],
        samples=[PowerSample(0.0, 1.0, cpu_w=NAN, gpu_w=INF, ram_w=-INF, intensity_g_per_kwh=NAN)],
    )
    back = led.run("nanrun00")
    assert same([p.value for p in back.metrics], values)
    assert back.energy_kwh == INF and math.isnan(back.energy_gpu_kwh)
    (sample,) = led.samples("nanrun00")
    assert math.isnan(sample.cpu_w) and sample.gpu_w == INF and sample.ram_w == -INF
    assert math.isnan(sample.intensity_g_per_kwh)


def test_flush_updates_fields_and_appends_in_order(led):
    led.start_run(make_record("flush001", metrics=(MetricPoint("acc", 0.1, 0, 1.0),)))
    led.flush(
        "flush001",
        fields={"energy_kwh": 0.5, "params": {"lr": 0.01}, "status": "running"},
        metrics=[MetricPoint("acc", 0.2, 1, 2.0), MetricPoint("loss", 3.0, 1, 2.0)],
        samples=[PowerSample(10.0, 11.0, cpu_w=20.0), PowerSample(9.0, 10.0, cpu_w=10.0)],
    )
    led.flush("flush001", fields={"status": "finished", "ended_at": 5.0, "energy_kwh": 0.75})
    led.flush("flush001", metrics=[MetricPoint("acc", 0.3, 2, 3.0)])
    run = led.run("flush001")
    assert run.status == "finished" and run.ended_at == 5.0 and run.energy_kwh == 0.75
    assert run.params == {"lr": 0.01}
    assert [(p.name, p.value, p.step) for p in run.metrics] == [
        ("acc", 0.1, 0),
        ("acc", 0.2, 1),
        ("loss", 3.0, 1),
        ("acc", 0.3, 2),
    ]
    assert run.metric("acc") == 0.3 and run.metric("acc", mode="max") == 0.3
    assert [s.t0 for s in led.samples("flush001")] == [9.0, 10.0]  # ordered by t0


def test_flush_with_nothing_checks_the_run_exists(led):
    led.start_run(make_record("exists00"))
    led.flush("exists00")
    with pytest.raises(gp.UnknownRunError):
        led.flush("nosuchrun")
    with pytest.raises(gp.UnknownRunError):
        led.flush("nosuchrun", fields={"energy_kwh": 1.0}, metrics=[MetricPoint("a", 1.0)])


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"no_such_field": 1}, "unknown ledger field"),
        ({"id": "other"}, "id cannot be changed"),
        ({"metrics": ()}, "appended"),
        ({"energy_kwh": "lots"}, "must be a number"),
        ({"energy_kwh": None}, "not None"),
        ({"status": "exploded"}, "status"),
        ({"params": [1, 2]}, "must be a dict"),
        ({"dataset_size": 1.5}, "integer"),
        ({"name": 3}, "string"),
    ],
)
def test_flush_rejects_bad_fields_and_changes_nothing(led, fields, match):
    led.start_run(make_record("badfield", metrics=(MetricPoint("acc", 0.1, 0, 1.0),)))
    before = led.run("badfield")
    with pytest.raises(gp.ConfigError, match=match):
        led.flush("badfield", fields=fields, metrics=[MetricPoint("acc", 0.9, 1, 2.0)])
    assert isinstance(gp.ConfigError("x"), ValueError)
    assert same(led.run("badfield"), before)


def test_flush_rejects_bad_metrics_and_samples(led):
    led.start_run(make_record("badpoint"))
    with pytest.raises(gp.ConfigError, match="numeric"):
        led.flush("badpoint", metrics=[MetricPoint("acc", "high")])  # type: ignore[arg-type]
    with pytest.raises(gp.ConfigError, match="non-empty"):
        led.flush("badpoint", metrics=[MetricPoint("", 1.0)])
    with pytest.raises(gp.ConfigError, match="power sample"):
        led.flush("badpoint", samples=[PowerSample(0.0, 1.0, cpu_w="9W")])  # type: ignore[arg-type]
    assert led.run("badpoint").metrics == () and led.samples("badpoint") == []


def test_a_sample_whose_time_is_no_number_is_refused_and_the_flush_keeps_nothing(led):
    """A NaN or infinite start or end: SQLite refused the NaN as a NULL (a LedgerError for the
    whole flush), PostgreSQL stored it. Both refuse it before writing, as bad input."""
    led.start_run(make_record("badtime0"))
    for bad in (PowerSample(NAN, 1.0, cpu_w=1.0), PowerSample(0.0, INF, cpu_w=1.0)):
        with pytest.raises(gp.ConfigError, match="finite time"):
            led.flush("badtime0", metrics=[MetricPoint("acc", 0.5)], samples=[bad])
    assert led.run("badtime0").metrics == () and led.samples("badtime0") == []


def test_duplicate_run_id_is_refused_and_keeps_the_first(led):
    led.start_run(make_record("dup00000", name="first"))
    with pytest.raises(gp.LedgerError, match="already"):
        led.start_run(make_record("dup00000", name="second"))
    assert led.run("dup00000").name == "first"


def test_prefix_lookup(led):
    for run_id in ("abcd1111", "abcd2222", "abce3333"):
        led.start_run(make_record(run_id))
    assert led.run("abce").id == "abce3333"
    assert led.run("abcd1").id == "abcd1111"
    assert led.run("abcd2222").id == "abcd2222"
    with pytest.raises(gp.UnknownRunError, match="ambiguous"):
        led.run("abcd")
    with pytest.raises(gp.UnknownRunError, match="at least 4"):
        led.run("abc")
    with pytest.raises(gp.UnknownRunError, match="no run"):
        led.run("zzzz")
    with pytest.raises(KeyError):  # UnknownRunError is also a KeyError
        led.run("abcd9")
    # ids are lowercase hex: a prefix typed in capitals finds its run on every backend
    assert led.run("ABCE").id == "abce3333"
    # LIKE wildcards in a prefix are plain characters
    with pytest.raises(gp.UnknownRunError):
        led.run("ab%_")


def test_a_run_name_given_for_an_id_says_which_id_to_give(led):
    # `greenprint ledger show trial-7`, `whatif --run trial-7`, `report --final trial-7`: the
    # name users see in `ledger ls`; the error read only "no run with id 'trial-7'"
    led.start_run(make_record("aaaa1111", name="trial-7"))
    with pytest.raises(gp.UnknownRunError) as found:
        led.run("trial-7")
    assert str(found.value).endswith(
        "; 'trial-7' is the name of run aaaa1111 of study 'sweep': give its id"
    )
    for k in range(7):
        led.start_run(make_record(f"bbbb{k}000", name="fold", study=f"s{k % 2}"))
    with pytest.raises(gp.UnknownRunError, match=r"'fold' is the name of 6 or more runs \(bbbb0"):
        led.run("fold")
    with pytest.raises(gp.UnknownRunError) as found:
        led.run("zzzz")
    assert "is the name of" not in str(found.value)  # no run has it as a name either


def test_a_short_full_id_is_found_exactly(led):
    led.start_run(make_record("ab"))
    led.start_run(make_record("abXYZW"))
    assert led.run("ab").id == "ab"


def test_runs_order_and_filters(led):
    now = time.time()
    parent = make_record("p0000000", started_at=now - 50, study="s1", status="finished")
    child_b = make_record("c000000b", started_at=now - 40, parent_id=parent.id, study="s1")
    child_a = make_record("c000000a", started_at=now - 40, parent_id=parent.id, study="s1")
    other = make_record("o0000000", started_at=now - 60, study="s2", status="failed")
    for record in (parent, child_b, child_a, other):
        led.start_run(record)
    assert [r.id for r in led.runs()] == ["o0000000", "p0000000", "c000000a", "c000000b"]
    assert [r.id for r in led.runs(study="s1")] == ["p0000000", "c000000a", "c000000b"]
    assert [r.id for r in led.runs(parent_id=None)] == ["o0000000", "p0000000"]
    assert [r.id for r in led.runs(parent_id=parent.id)] == ["c000000a", "c000000b"]
    assert [r.id for r in led.runs(status="failed")] == ["o0000000"]
    assert [r.id for r in led.runs(status=("failed", "finished"))] == ["o0000000", "p0000000"]
    assert led.runs(study="s2", status="running") == []
    assert led.studies() == ["s1", "s2"]


def test_runs_include_metrics(led):
    led.start_run(make_record("m1000000", metrics=(MetricPoint("acc", 0.5, 0, 1.0),)))
    led.start_run(make_record("m2000000"))
    led.flush("m2000000", metrics=[MetricPoint("acc", 0.7, 0, 1.0)])
    by_id = {r.id: r for r in led.runs(study="sweep")}
    assert by_id["m1000000"].metric("acc") == 0.5 and by_id["m2000000"].metric("acc") == 0.7


def test_unknown_study_lists_known_ones(led):
    led.start_run(make_record("s0000001", study="alpha"))
    led.start_run(make_record("s0000002", study="beta"))
    with pytest.raises(gp.UnknownStudyError, match="'alpha', 'beta'") as info:
        led.runs(study="gamma")
    assert isinstance(info.value, KeyError)


def test_unknown_status_is_refused(led):
    with pytest.raises(gp.ConfigError, match="unknown run status"):
        led.runs(status="exploded")


def test_a_status_misspelt_or_not_a_string_is_refused_as_the_analyses_refuse_it(led):
    """One check for ``Ledger.runs(status=...)`` and the analyses' ``statuses``: a misspelt
    status gets the nearest one suggested, and ``status=5`` a ConfigError, not a TypeError."""
    led.start_run(make_record("st000001", status="finished"))
    with pytest.raises(gp.ConfigError, match="did you mean 'finished'"):
        led.runs(status="finshed")
    for odd in (5, ["finished", 3]):
        with pytest.raises(gp.ConfigError, match="status must be run statuses"):
            led.runs(status=odd)
    assert [r.id for r in led.runs(status="finished")] == ["st000001"]
    assert [r.id for r in led.runs(status=("lost", "finished"))] == ["st000001"]


def test_lost_is_derived_at_read_time_and_never_stored(led):
    now = time.time()
    limit = 3 * 2.0 + STALE_GRACE_S
    led.start_run(make_record("lost0000", flush_interval_s=2.0, heartbeat_at=now - limit - 5))
    led.start_run(make_record("alive000", flush_interval_s=2.0, heartbeat_at=now - limit + 5))
    led.start_run(
        make_record("nobeat00", flush_interval_s=2.0, heartbeat_at=None, started_at=now - 100)
    )
    led.start_run(
        make_record("donelong", status="finished", heartbeat_at=now - 10_000, started_at=0.0)
    )
    assert led.run("lost0000").status == "lost"
    assert led.run("nobeat00").status == "lost"  # no heartbeat: started_at counts
    assert led.run("alive000").status == "running"
    assert led.run("donelong").status == "finished"
    assert [r.id for r in led.runs(status="lost")] == ["nobeat00", "lost0000"]
    assert [r.id for r in led.runs(status="running")] == ["alive000"]
    # the row still says running: a heartbeat brings the run back
    led.flush("lost0000", fields={"heartbeat_at": time.time()})
    assert led.run("lost0000").status == "running"


def test_samples_of_unknown_run(led):
    with pytest.raises(gp.UnknownRunError):
        led.samples("nothere0")


def test_records_are_frozen(led):
    led.start_run(make_record("frozen00"))
    run = led.run("frozen00")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "finished"  # type: ignore[misc]


def test_threads_flush_concurrently(led):
    """The tracker's sampler thread flushes while other threads write and read."""
    ids = [f"thread{i:02d}" for i in range(6)]
    for run_id in ids:
        led.start_run(make_record(run_id))
    errors: list[BaseException] = []

    def work(run_id: str) -> None:
        try:
            for step in range(20):
                led.flush(
                    run_id,
                    fields={"energy_kwh": float(step), "heartbeat_at": time.time()},
                    metrics=[MetricPoint("acc", step / 20, step, time.time())],
                    samples=[PowerSample(float(step), step + 1.0, cpu_w=1.0)],
                )
                led.runs(study="sweep")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for run_id in ids:
        run = led.run(run_id)
        assert run.energy_kwh == 19.0
        assert [p.step for p in run.metrics] == list(range(20))
        assert len(led.samples(run_id)) == 20


def test_close_and_context_manager(ledger_url):
    led = Ledger(ledger_url)
    led.start_run(make_record("closed00"))
    led.close()
    led.close()  # idempotent
    with pytest.raises(gp.LedgerError, match="closed"):
        led.run("closed00")
    with Ledger(ledger_url) as again:
        assert again.run("closed00").id == "closed00"


def test_get_ledger_factory(ledger_url):
    led = get_ledger(ledger_url)
    try:
        assert get_ledger(led) is led
        assert isinstance(led, BaseLedger)
    finally:
        led.close()


def test_url_masks_the_password(backend, ledger_url):
    with Ledger(ledger_url) as led:
        if backend == "sqlite":
            assert led.url.startswith("sqlite:///") and led.url.endswith("ledger.db")
            assert led.path is not None
        else:
            assert led.url.startswith("postgresql+psycopg://")
            assert led.url_unmasked == ledger_url
    from greenprint.ledger._target import mask_url

    assert mask_url("postgresql+psycopg://bob:s3cr%40t@db:5432/gp") == (
        "postgresql+psycopg://bob:***@db:5432/gp"
    )
    assert mask_url("postgresql+psycopg://bob@db/gp") == "postgresql+psycopg://bob@db/gp"
