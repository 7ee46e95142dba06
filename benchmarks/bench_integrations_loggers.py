"""Overhead of the MLflow, W&B and TensorBoard integrations beside the bare logger.

    .venv/bin/python benchmarks/bench_integrations_loggers.py [--steps 60]

For each logger, one greenprint run and one logger run (MLflow: a local SQLite store; W&B:
offline; TensorBoard: an event file) in a temporary directory. Per step, alternately, the bare
logger logs a loss (``log_batch`` of one metric, ``wandb.log({"loss": ...})``,
``add_scalar("loss", ...)``) and greenprint logs its figures (``logger.log(step)`` for MLflow
and TensorBoard, which reads the meters and writes 5-6 figures; ``wandb.log({"loss": ...,
**logger.figures()})`` for W&B, whose bare step is subtracted). Then the end of a run: the
totals, tags and record (``greenprint/run.json``) that each writes when the greenprint run ends.

The median per step and the end cost are extrapolated to a 30 s job: at the default flush
interval (10 s) MLflow and TensorBoard log the figures 3 times (on the sampler thread: "flush
log", written at once) plus the end; with figures at every step of a job that logs once a
second, 30 steps plus the end. A step greenprint logs to MLflow from your code is queued (MLflow's
asynchronous logging): "greenprint step" is the time your loop waits; MLflow writes it on its
own thread (about a flush log's time) and the end waits for the queue ("end" includes that).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _overhead import median_ms, timed_ms

JOB_S = 30.0

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def _report(
    name: str, bare_ms: float, step_ms: float, end_ms: float, flush_ms: float | None
) -> None:
    every_s = 30 * step_ms + end_ms
    at_flushes = "n/a (no background logging)"
    if flush_ms is not None:
        cost = 3 * flush_ms + end_ms
        at_flushes = f"{cost:6.1f} ms = {cost / (JOB_S * 1e3):.3%}"
    flush = "" if flush_ms is None else f"  flush log {flush_ms:6.2f} ms"
    print(
        f"{name:<18} bare step {bare_ms:6.2f} ms  greenprint step {step_ms:6.2f} ms{flush}  "
        f"end {end_ms:6.1f} ms\n{'':<18} 30 s job: 3 flushes + end {at_flushes}; "
        f"a log per second + end {every_s:6.1f} ms = {every_s / (JOB_S * 1e3):.3%}"
    )


def bench_mlflow(tmp: Path, steps: int) -> None:
    import mlflow
    from mlflow.entities import Metric

    import greenprint as gp
    from greenprint.integrations import mlflow as gp_mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.create_experiment("bench", artifact_location=str(tmp / "mlartifacts"))
    ml = client.create_run(exp)
    run_id = ml.info.run_id
    with gp.track("bench", ledger=tmp / "gp.db") as run:
        logger = gp_mlflow.autolog(run, run_id=run_id, client=client, every_flush=False)

        def bare(step: int) -> None:
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (step + 1), now, step)])

        bare_ms = median_ms(bare, steps)
        step_ms = median_ms(logger.log, steps)  # queued: MLflow writes on its own thread
        flush_ms = median_ms(lambda step: logger._log_figures(None, fresh=False), steps)
        drain_ms = timed_ms(lambda: gp_mlflow._wait(logger._pending, run_id))
    record = run.record
    end_ms = drain_ms + statistics.median(
        timed_ms(lambda: gp_mlflow._log_record(client, run_id, record, step=steps))
        for _ in range(5)
    )
    _report(f"mlflow {mlflow.__version__}", bare_ms, step_ms, end_ms, flush_ms)


def bench_wandb(tmp: Path, steps: int) -> None:
    import wandb

    import greenprint as gp
    from greenprint.integrations import wandb as gp_wandb

    settings = wandb.Settings(console="off", x_disable_stats=True)
    with (
        wandb.init(project="bench", mode="offline", dir=str(tmp), settings=settings) as wb,
        gp.track("bench", ledger=tmp / "gp.db") as run,
    ):
        logger = gp_wandb.autolog(run, wb)
        bare_ms = median_ms(lambda step: wb.log({"loss": 1.0 / (step + 1)}), steps)
        both_ms = median_ms(
            lambda step: wb.log({"loss": 1.0 / (step + 1), **logger.figures()}), steps
        )
        record = run.record
        end_ms = statistics.median(
            timed_ms(lambda: gp_wandb._log_record(wb, record)) for _ in range(5)
        )
    _report(f"wandb {wandb.__version__}", bare_ms, max(both_ms - bare_ms, 0.0), end_ms, None)


def bench_tensorboard(tmp: Path, steps: int) -> None:
    from tensorboard.version import VERSION
    from torch.utils.tensorboard import SummaryWriter

    import greenprint as gp
    from greenprint.integrations import tensorboard as gp_tensorboard

    with (
        SummaryWriter(str(tmp / "tb")) as writer,
        gp.track("bench", ledger=tmp / "gp.db", params={"lr": 0.1}) as run,
    ):
        logger = gp_tensorboard.autolog(run, writer, every_flush=False)
        bare_ms = median_ms(lambda step: writer.add_scalar("loss", 1.0 / (step + 1), step), steps)
        step_ms = median_ms(logger.log, steps)
        flush_ms = median_ms(lambda step: logger._write(None, fresh=False), steps)
        record = run.record
        end_ms = statistics.median(
            timed_ms(lambda: logger._write_totals(record, steps)) for _ in range(5)
        )
    _report(f"tensorboard {VERSION}", bare_ms, step_ms, end_ms, flush_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, steps={args.steps}")
    with tempfile.TemporaryDirectory() as tmp:
        for bench in (bench_mlflow, bench_wandb, bench_tensorboard):
            folder = Path(tmp) / bench.__name__
            folder.mkdir()
            bench(folder, args.steps)


if __name__ == "__main__":
    main()
