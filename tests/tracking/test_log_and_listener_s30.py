"""Two papercuts a new user met with ``Run`` (session 30).

``run.log("val_accuracy", acc, step=1)``, MLflow's ``log_metric(key, value, step)`` typed from
habit, raised Python's ``TypeError: got multiple values for argument 'step'`` (the value was
taken as the step); it now logs one point. ``run.add_listener(fn)`` after the ``with`` block
was accepted and ``fn`` never called; it is now refused with a ``ConfigError``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import greenprint as gp


def _points(ledger: str = "greenprint.db") -> list[tuple[str, float, int | None]]:
    (record,) = gp.Ledger(ledger).runs()
    return [(p.name, p.value, p.step) for p in record.metrics]


def test_a_name_and_its_value_log_one_point_as_mlflow_log_metric(home: Path) -> None:
    with gp.track("t", study="s") as run:
        run.log("val_accuracy", 0.91, step=1)
        run.log("eval/loss", np.float32(0.5), step=np.int64(2), lr=1e-3)
        run.log("val_accuracy", 0.93)
        run.log({"eval/loss": 0.25}, 3)  # the mapping's second argument is still the step
        run.log(4, acc=0.5)  # and so is an integer first argument
    assert _points() == [
        ("val_accuracy", 0.91, 1),
        ("eval/loss", 0.5, 2),
        ("lr", 1e-3, 2),
        ("val_accuracy", 0.93, None),
        ("eval/loss", 0.25, 3),
        ("acc", 0.5, 4),
    ]


#: (the call, what the error says): each records nothing
_BAD_NAMED_CALLS = {
    "a name alone": (
        lambda run: run.log("val_loss"),
        r"has no value: .* or run.log\(val_loss=value\)",
    ),
    "a name and a step": (
        lambda run: run.log("val_loss", step=3),
        r"run.log\('val_loss', value\)",
    ),
    # a step by position is ambiguous: Lightning's self.log(name, value, True) is prog_bar
    "mlflow's positional step": (
        lambda run: run.log("val_loss", 0.3, 3),
        r"run.log\('val_loss', value, step=3\)",
    ),
    "a value that is text": (lambda run: run.log("val_loss", "0.3"), "val_loss"),
    "a name twice": (lambda run: run.log("acc", 0.3, acc=0.4), "'acc' given both"),
    "three arguments to a mapping": (
        lambda run: run.log({"acc": 0.3}, 3, 4),
        "at most two arguments, not 3",
    ),
    "two steps": (lambda run: run.log({"acc": 0.3}, 3, step=4), "two steps, 3 and 4"),
}


@pytest.mark.parametrize("case", list(_BAD_NAMED_CALLS))
def test_a_bad_named_call_says_the_right_one_and_records_nothing(home: Path, case: str) -> None:
    call, says = _BAD_NAMED_CALLS[case]
    with gp.track("t", study="s") as run:
        with pytest.raises(gp.ConfigError, match=says):
            call(run)
        run.log(acc=0.75, step=2)
    assert _points() == [("acc", 0.75, 2)]


def test_a_listener_added_after_the_run_ended_is_refused(home: Path) -> None:
    events: list[str] = []
    with gp.track("t", study="s", flush_interval_s=60) as run:
        run.add_listener(lambda _, event: events.append(event))
    assert events == ["stop"]
    with pytest.raises(gp.ConfigError, match=r"run 't' has ended \(finished\).* never be called"):
        run.add_listener(lambda _, event: events.append("late " + event))
    assert events == ["stop"]

    # before the run starts, a listener is kept and called
    early = gp.track("early", study="s")
    early.add_listener(lambda _, event: events.append("early " + event))
    with early:
        pass
    assert events == ["stop", "early stop"]
