"""What greenprint.greener.compare costs: time and energy of each variant's measurement.

Two models, each compared against every technique (dynamic and static int8, unstructured and
structured pruning, bf16, fp16, a distilled student), recorded in a temporary ledger:

* ``cnn``: the tests' small CNN on 8x8 images (9,394 parameters), batch 128;
* ``mlp``: a 784-512-512-10 MLP on 28x28 inputs (669,706 parameters), batch 256.

Per variant, from its run in the ledger: wall time and energy of the whole variant (applying
the technique, checking it, evaluating, counting FPO, sizing it on disk, warm-up and the timed
loop), the timed loop's share, and what is left (greener's own work around the loop). Then the
whole compare() call. The timed loop lasts ``--min-time`` seconds (default 1 s, as compare's);
``--threads`` torch threads while timing (default 1).

Usage::

    .venv/bin/python benchmarks/bench_greener.py
    .venv/bin/python benchmarks/bench_greener.py --min-time 0.5 --models cnn
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _models(name: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "cnn":
        x = torch.randn(1024, 1, 8, 8)
        y = (x.mean(dim=(1, 2, 3)) > 0).long()
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(288, 32),
            nn.ReLU(),
            nn.Linear(32, 2),
        )
        student = nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(72, 8),
            nn.ReLU(),
            nn.Linear(8, 2),
        )
        batch = 128
    else:
        x = torch.randn(2048, 784)
        y = (x[:, :392].sum(dim=1) > x[:, 392:].sum(dim=1)).long() + 2 * (x[:, 0] > 0).long()
        model = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )
        student = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
        batch = 256
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), student, x, y, batch


def bench(name: str, min_time_s: float, threads: int) -> None:
    import torch

    import greenprint as gp
    from greenprint import greener

    model, student, x, y, batch = _models(name)
    params = sum(p.numel() for p in model.parameters())
    data = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]

    def accuracy(m):
        with torch.inference_mode():
            return float((m(x).argmax(dim=1) == y).float().mean())

    variants = [
        greener.dynamic_int8(),
        greener.static_int8(),
        greener.prune_unstructured(0.5),
        greener.prune_structured(0.3),
        greener.half_precision("bfloat16"),
        greener.half_precision("float16"),
        greener.distilled(student, data, epochs=3, lr=1e-2),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "bench.db"
        started = time.perf_counter()
        result = greener.compare(
            model,
            accuracy,
            x[:batch],
            variants,
            ledger=ledger,
            study="bench",
            calibration=[b for b, _ in data[:4]],
            min_time_s=min_time_s,
            num_threads=threads,
        )
        wall = time.perf_counter() - started
        runs = {r.id: r for r in gp.Ledger(ledger).runs(study="bench")}
    print(
        f"\n### {name}: {params:,} parameters, batch {batch}, min_time_s={min_time_s:g}, "
        f"{threads} thread(s) while timing"
    )
    print(
        "\n| variant | status | variant run (s) | timed loop (s) | around the loop (s) | "
        "variant run energy (mWh) | loop energy (mWh) | batches timed | score |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in result.rows:
        run = runs[row.run_id] if row.run_id else None
        if run is None or not row.measured:
            print(f"| {row.name} | {row.status} | | | | | | | |")
            continue
        loop_mwh = row.energy_kwh_per_1000 * row.measured_inferences / 1000 * 1e6
        print(
            f"| {row.name} | measured | {run.duration_s:.2f} | {row.loop_duration_s:.2f} | "
            f"{run.duration_s - row.loop_duration_s:.2f} | {run.energy_kwh * 1e6:.3f} | "
            f"{loop_mwh:.3f} | {row.measured_inferences // batch} | {row.score:.3f} |"
        )
    container = runs[result.run_id]
    print(
        f"\ncompare() wall {wall:.2f} s; its run {container.duration_s:.2f} s, "
        f"{container.energy_kwh * 1e6:.3f} mWh ({container.energy_kwh * 1e3:.5f} Wh), "
        f"{container.emissions_kg * 1e6:.3f} mg CO2-eq; energy provenance: "
        f"{result.rows[0].energy_provenance.split(', intensity')[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for name in args.models.split(","):
        bench(name.strip(), args.min_time, args.threads)


if __name__ == "__main__":
    main()
