"""Session 30: W&B runs made with ``reinit="create_new"``, run as a user runs it (helper H8).

``wandb.init(reinit="create_new")`` (what W&B means to make its only behaviour; the way to keep
several runs open in one process) does not set ``wandb.run``. docs/integrations.md's example,
``gp_wandb.autolog(run)`` inside ``with wandb.init(...) as wb``, then raised "no W&B run: call
wandb.init() first", though ``wandb.init()`` had been called, and the trial failed. Now
``autolog`` (and ``log_run``) given no ``wandb_run`` follow the one W&B run active in the process
when ``wandb.run`` is not set; with several active, which one is meant cannot be told: a
``ConfigError`` says to pass it as ``wandb_run=``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _report_cli import cli_report, empty_home, run_in
from integrations._frameworks import need_installed

SCRIPT = """
import json, os

os.environ["WANDB_MODE"] = "offline"  # as docs/integrations.md: no network
os.environ["WANDB_SILENT"] = "true"
import wandb

import greenprint as gp
from greenprint.integrations import wandb as gp_wandb

settings = wandb.Settings(console="off", x_disable_stats=True)
where = {}
for lr in (0.1, 0.01):
    with (
        wandb.init(project="sweep", config={"lr": lr}, reinit="create_new",
                   settings=settings) as wb,
        gp.track(f"lr{lr}", study="wb", ledger="greenprint.db", role="trial",
                 params={"lr": lr}, sample_interval_s=0.05) as run,
    ):
        logger = gp_wandb.autolog(run)  # the docs' call: the W&B run is not passed
        for epoch in range(2):
            wb.log({"loss": lr / (epoch + 1), **logger.figures()})
        run.log(val_acc=1 - lr)
    where[run.id] = wb.dir

# two W&B runs open at once: which one to follow cannot be told
first = wandb.init(project="sweep", reinit="create_new", settings=settings)
second = wandb.init(project="sweep", reinit="create_new", settings=settings)
with gp.track("both", study="two-open", ledger="greenprint.db") as run:
    try:
        gp_wandb.autolog(run)
        where["both"] = "followed one"
    except gp.ConfigError as e:
        where["both"] = str(e)
first.finish()
second.finish()
print(json.dumps(where))
"""


@pytest.fixture(scope="module")
def wandb_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The script run once in an empty directory; each run's W&B files folder."""
    need_installed("wandb", "wandb")
    from _clean_env import clean_env

    home = empty_home(tmp_path_factory, "wandb-create-new")
    (home / "sweep.py").write_text(SCRIPT, encoding="utf-8")
    env = clean_env()
    env.update(WANDB_ERROR_REPORTING="false", WANDB_DISABLE_GIT="true")
    done = run_in(home, sys.executable, "sweep.py", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, json.loads(done.stdout.strip().splitlines()[-1])


def test_autolog_follows_the_one_run_that_wandb_init_made(wandb_home) -> None:
    """Each trial's W&B run (``reinit="create_new"``) holds its greenprint totals in its
    summary; the report ranks the two trials by val_acc (before: both trials failed with "no
    W&B run")."""
    from integrations.test_wandb import _read_run  # the reader of W&B's offline run files

    home, where = wandb_home
    report = cli_report(home, "--study", "wb", "--no-plots", "--format", "json")
    rows = {row["id"]: row for row in report["runs"]}
    assert {rows[i]["name"]: rows[i]["status"] for i in where if i in rows} == {
        "lr0.1": "finished",
        "lr0.01": "finished",
    }
    assert report["price_tag"]["final"]["name"] == "lr0.01"  # val_acc 0.99, higher is better
    for run_id, files in ((i, d) for i, d in where.items() if i in rows):
        history, summary = _read_run(Path(files).parent)
        assert summary["greenprint/run_id"] == run_id
        assert (summary["greenprint/status"], summary["greenprint/role"]) == ("finished", "trial")
        assert summary["greenprint/energy_kwh"] == pytest.approx(rows[run_id]["energy_kwh"])
        assert len([row for row in history if "loss" in row]) == 2


def test_with_two_wandb_runs_open_autolog_asks_which(wandb_home) -> None:
    """Two runs open at once: a ConfigError names ``wandb_run=`` (not "call wandb.init()")."""
    _, where = wandb_home
    assert "wandb_run=" in where["both"]
    assert "2 W&B runs are active" in where["both"]
