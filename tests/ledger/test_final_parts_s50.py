"""A final run scored by its parts, read from the ledger with them (both stores).

A final model retrained on all the data and scored on a test split in runs of its own under
it (``greenprint run --role final -- python final.py``, the script's ``gp.track`` runs inside
the command's) has the mean of its parts' held-out scores: the report reads the final run and
its parts, every point of them, in two queries (not one per part).
"""

from __future__ import annotations

import math

import greenprint as gp

T0 = 1_700_000_000.0


def _study(led: gp.Ledger, parts: int) -> None:
    for k in range(3):
        led.start_run(
            gp.RunRecord(
                id=f"t{k}", name=f"t{k}", study="s", status="finished", started_at=T0 + k,
                ended_at=T0 + k + 1, params={"lr": 0.1 * (k + 1)},
            )
        )  # fmt: skip
        led.flush(f"t{k}", metrics=[gp.MetricPoint("accuracy", 0.6 + k / 10, 1, T0 + k)])
    led.start_run(
        gp.RunRecord(
            id="final", name="final", study="s", role="final", status="finished",
            started_at=T0 + 10, ended_at=T0 + 20,
        )
    )  # fmt: skip
    for k in range(parts):
        rid = f"part-{k:03d}"
        led.start_run(
            gp.RunRecord(
                id=rid, name=rid, study="s", parent_id="final",
                status="failed" if k == parts - 1 else "finished",
                started_at=T0 + 11 + k / 100, ended_at=T0 + 11.005 + k / 100,
            )
        )  # fmt: skip
        # its score at each of 30 steps (the marks keep a few: the read here keeps them all)
        points = [
            gp.MetricPoint("test_accuracy", 0.5 + k / 1000 + s / 100, s, T0) for s in range(30)
        ]
        led.flush(rid, metrics=points)


def test_the_final_model_states_its_parts_mean_held_out_score(ledger_url: str) -> None:
    with gp.Ledger(ledger_url) as led:
        _study(led, parts=40)
    from greenprint.report import build_report

    report = build_report(ledger_url, study="s")
    final = report.price_tag.final
    assert final is not None and final.name == "final"
    # the last test_accuracy of each finished part (the failed one left out), their mean
    expected = math.fsum(0.5 + k / 1000 + 0.29 for k in range(39)) / 39
    written = [n for n in report.notes + (report.compute_statement,) if "test_accuracy" in n]
    assert any(f"test_accuracy = {expected:.4g}" in n for n in written), written
    ((name, score),) = report.final_scores
    assert name == "test_accuracy" and abs(score - expected) < 1e-12
