"""``run.log()`` as a new user calls it: other trackers' habits, and values the ledger refuses.

Before session 26, ``run.log({"acc": 0.9})`` (wandb's form) and ``run.log("acc", 0.9)``
recorded nothing and said nothing (the first argument was taken as the step), and a point the
ledger refuses at write time (an empty name, a float step, a step beyond 64 bits) was accepted
by ``log()`` and then kept every later write of the run from landing: the run, with every
metric logged before, was read ``lost``. Each bad call now raises ``ConfigError`` at once and
records nothing; what the run recorded before and after it is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import greenprint as gp
from _report_cli import run_in

#: (the call, what the error says)
_BAD_CALLS = {
    # run.log("val_loss", 0.3), as mlflow's log_metric, logs one point since session 30
    "a name alone": (lambda run: run.log("val_loss"), "'val_loss'\\) has no value"),
    "an empty name": (lambda run: run.log(**{"": 1.0}), "non-empty text"),
    "a name that is not text": (lambda run: run.log({3: 1.0}), "non-empty text, not 3"),
    "a float step": (lambda run: run.log(step=1.5, acc=1.0), "must be an integer, not 1.5"),
    "a float first argument": (lambda run: run.log(1.5, acc=1.0), "not float 1.5"),
    "a step beyond 64 bits": (lambda run: run.log(2**70, acc=1.0), "fit in 64 bits"),
    "two steps": (lambda run: run.log(1, 2), "two steps, 1 and 2"),
    "a name twice": (lambda run: run.log({"acc": 1.0}, acc=2.0), "'acc' given both"),
    # PostgreSQL's text holds no NUL: the run was never written there, and read lost
    "a NUL in a name": (lambda run: run.log(**{"acc\x00": 1.0}), "NUL character"),
}


@pytest.mark.parametrize("case", list(_BAD_CALLS))
def test_a_bad_log_call_raises_at_once_and_the_run_keeps_everything_else(
    home: Path, case: str
) -> None:
    call, says = _BAD_CALLS[case]
    with gp.track("t", study="s") as run:
        run.log(acc=0.5, step=1)
        with pytest.raises(gp.ConfigError, match=says):
            call(run)
        run.log(acc=0.75, step=2)
    (record,) = gp.Ledger("greenprint.db").runs()
    assert record.status == "finished"
    assert [(p.name, p.value, p.step) for p in record.metrics] == [
        ("acc", 0.5, 1),
        ("acc", 0.75, 2),
    ]


def test_a_mapping_logs_names_keywords_cannot_hold(home: Path) -> None:
    with gp.track("t", study="s") as run:
        run.log({"eval/loss": 0.31, "eval/accuracy": 0.9}, step=np.int64(10))
        run.log({"train/loss": 0.5}, 11, lr=1e-3)
        run.log(12, acc=0.91)  # the step first, as before
        run.log(metrics=0.2)  # a metric that happens to be named like the parameter
    (record,) = gp.Ledger("greenprint.db").runs()
    points = [(p.name, p.value, p.step) for p in record.metrics]
    assert points == [
        ("eval/loss", 0.31, 10),
        ("eval/accuracy", 0.9, 10),
        ("train/loss", 0.5, 11),
        ("lr", 1e-3, 11),
        ("acc", 0.91, 12),
        ("metrics", 0.2, None),
    ]
    assert type(record.metrics[0].step) is int


SCRIPT = """
import greenprint as gp

with gp.track("search", study="s") as run:
    run.log({"eval/loss": 0.4}, step=1)
    for bad in (lambda: run.log({"acc": 0.9}, step=0.5), lambda: run.log(**{"": 1})):
        try:
            bad()
        except gp.ConfigError as e:
            print("refused:", e)
    run.log({"eval/loss": 0.3}, step=2)
"""


def test_a_script_that_makes_bad_calls_keeps_its_run(home: Path) -> None:
    """The new user's script, in an empty directory with a clean environment: the run is
    ``finished`` with both good points, and ``greenprint ledger ls`` reads it so."""
    (home / "search.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused:") == 2
    assert "lost" not in done.stderr and "could not write" not in done.stderr
    (record,) = gp.Ledger(home / "greenprint.db").runs()
    assert record.status == "finished"
    assert [(p.name, p.value, p.step) for p in record.metrics] == [
        ("eval/loss", 0.4, 1),
        ("eval/loss", 0.3, 2),
    ]


ARGV_SCRIPT = """
import sys
import greenprint as gp

with gp.track("train", study="s") as run:
    run.log(acc=0.9)
print("arguments:", ascii(sys.argv[1:]))
"""


def test_a_script_given_an_argument_that_is_not_utf8_keeps_its_run(home: Path) -> None:
    """``python train.py café.txt`` with the file name in Latin-1: Python reads the argument
    with a lone surrogate, which the run's recorded command holds. Before, no write of the run
    could land (UTF-8 cannot encode it) and the run was read ``lost``; its command is now
    stored with the byte escaped."""
    (home / "train.py").write_text(ARGV_SCRIPT, encoding="utf-8")
    latin1 = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    done = run_in(home, sys.executable, "train.py", latin1)
    assert done.returncode == 0, done.stderr
    assert "'caf\\udce9.txt'" in done.stdout  # the script was given the undecodable name
    assert "lost" not in done.stderr and "could not write" not in done.stderr
    (record,) = gp.Ledger(home / "greenprint.db").runs()
    assert record.status == "finished"
    assert [p.value for p in record.metrics] == [0.9]
    assert "caf\\xe9.txt" in record.command  # shell-quoted: "train.py 'caf\\xe9.txt'"


def test_a_name_utf8_cannot_hold_is_refused_where_it_is_given(home: Path) -> None:
    bad = b"\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(gp.ConfigError, match="lone surrogate"):
        gp.track(f"run-{bad}", study="s")
    with pytest.raises(gp.ConfigError, match="NUL character"):  # PostgreSQL refused it later
        gp.track("run", study="s\x00")
    with gp.track("t", study="s") as run:
        run.log(acc=0.5)
        with pytest.raises(gp.ConfigError, match="metric name .* lone surrogate"):
            run.log(**{f"acc-{bad}": 1.0})
    (record,) = gp.Ledger("greenprint.db").runs()
    assert record.status == "finished"
    assert [p.name for p in record.metrics] == ["acc"]


def test_params_from_the_configuration_objects_scripts_hold(home: Path) -> None:
    """``params=args`` (argparse), a dataclass, or an object with ``to_dict()``/``model_dump()``
    (Hugging Face's ``TrainingArguments``, pydantic): read as their fields. Before, each was
    "params must be a mapping of names to values" and the user wrote ``vars(args)``."""
    import argparse
    import dataclasses

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--layers", type=int, default=2)

    @dataclasses.dataclass
    class Config:
        lr: float = 0.2
        widths: tuple[int, ...] = (64, 32)

    class Arguments:  # as TrainingArguments: to_dict() masks what must not be stored
        def to_dict(self) -> dict[str, object]:
            return {"learning_rate": 3e-5, "hub_token": "<HUB_TOKEN>"}

    with gp.track("argparse", study="s", params=parser.parse_args(["--lr", "0.3"])):
        pass
    with gp.track("dataclass", study="s") as run:
        run.set(params=Config())
    with gp.track("to_dict", study="s", params=Arguments()):
        pass
    with pytest.raises(gp.ConfigError, match="must be a mapping"):
        gp.track("int", study="s", params=5)
    runs = {r.name: r.params for r in gp.Ledger("greenprint.db").runs()}
    assert runs == {
        "argparse": {"lr": 0.3, "layers": 2},
        "dataclass": {"lr": 0.2, "widths": [64, 32]},
        "to_dict": {"learning_rate": 3e-5, "hub_token": "<HUB_TOKEN>"},
    }


def test_a_sqlite_url_with_three_slashes_says_it_is_relative(home: Path) -> None:
    """``sqlite:///tmp/x.db`` is SQLAlchemy's ``tmp/x.db`` under the working directory; a user
    who meant ``/tmp/x.db`` got "no ledger at <cwd>/tmp/x.db" and nothing more."""
    from _report_cli import GREENPRINT

    with gp.track("t", study="s", ledger=home / "g.db"):
        pass
    url = f"sqlite://{home / 'g.db'}"  # three slashes: relative to the working directory
    done = run_in(home, GREENPRINT, "report", "--ledger", url, "--format", "json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"takes four: sqlite:///{home / 'g.db'}" in done.stderr
    with pytest.raises(gp.LedgerError, match="three slashes is relative"):
        gp.track("t", study="s", ledger=f"sqlite://{home / 'new.db'}")
    # four slashes: the absolute path, as meant
    done = run_in(home, GREENPRINT, "report", "--ledger", f"sqlite:///{home / 'g.db'}")
    assert done.returncode == 0, done.stderr


def test_a_report_before_any_run_says_why_there_is_no_ledger(home: Path) -> None:
    from _report_cli import GREENPRINT

    done = run_in(home, GREENPRINT, "report")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no ledger at" in done.stderr and "nothing was recorded there yet" in done.stderr
    assert not (home / "greenprint.db").exists()
