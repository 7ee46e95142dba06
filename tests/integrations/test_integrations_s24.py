"""Session 24: integrations as their users write studies (helper U).

Each study is built as a user builds it, through the real framework, in an empty directory with
a clean environment (no ``GREENPRINT_*`` variable), then read back with ``greenprint report``
and ``greenprint ledger ls``.

* Lightning: ``trainer.validate()``, ``trainer.test()`` and ``trainer.predict()`` outside a fit
  were never measured (no run): a user who evaluates a model paid energy the study's price tag
  left out. Each is now a run of its own: a part of the run that trained the model when that is
  known (this Trainer's fit, the fit whose checkpoint it restored, the last fit of that module
  object), else a top-level part (counted, never a trial), or the role given to the callback
  when it is ``final`` or ``baseline``.
* W&B and TensorBoard now carry the role a report infers for a run given none, marked inferred,
  as MLflow's tags do (``greenprint.role_inferred``).

The Ray Tune test of this session (an experiment restored from a moved folder) is in
``test_ray_scripts.py``: its first script shares a driver and a local Ray cluster there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from integrations._frameworks import need_installed

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent.parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

# ------------------------------------------------------------------ Lightning evaluations
_LIGHTNING_HEAD = """
import sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower

torch.manual_seed(0)


class Regressor(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.layer(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


data = TensorDataset(torch.randn(256, 8), torch.randn(256, 1))
train, held_out = DataLoader(data, batch_size=16), DataLoader(data, batch_size=8)


def trainer(study, **options):
    cb = GreenprintCallback("reg", study=study, meters=ConstantProcessPower(@WATTS@), **options)
    saver = ModelCheckpoint(dirpath="ckpt", filename="reg", save_last=False)
    return pl.Trainer(max_epochs=2, accelerator="cpu", callbacks=[cb, saver], logger=False,
                      enable_progress_bar=False, enable_model_summary=False)
"""

#: One process: the untrained model validated (a baseline check), fitted, tested, predicted.
LIGHTNING_TRAIN = (
    _LIGHTNING_HEAD
    + """
t = trainer("lit-eval")
model = Regressor()
t.validate(model, held_out, verbose=False)
t.fit(model, train, held_out)
t.test(model, held_out, verbose=False)
t.predict(model, held_out)
"""
)

#: A new process: the checkpoint tested through ``ckpt_path`` (its callback state names the
#: fit), then the same weights loaded by ``load_from_checkpoint`` and tested (no fit known),
#: then by a callback given ``role="final"``.
LIGHTNING_EVALUATE = (
    _LIGHTNING_HEAD
    + """
trainer("lit-eval").test(Regressor(), held_out, ckpt_path="ckpt/reg.ckpt", verbose=False)
loaded = Regressor.load_from_checkpoint("ckpt/reg.ckpt")
trainer("lit-eval").test(loaded, held_out, verbose=False)
trainer("lit-final", role="final").test(loaded, held_out, verbose=False)
"""
)


def _script(text: str) -> str:
    return text.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))


@pytest.fixture(scope="module")
def lightning_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training script, then the evaluation script, run in one empty directory."""
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "lit-eval")
    for name, text in (("train.py", LIGHTNING_TRAIN), ("evaluate.py", LIGHTNING_EVALUATE)):
        (home / name).write_text(_script(text), encoding="utf-8")
        done = run_in(home, sys.executable, name)
        assert done.returncode == 0, done.stderr[-3000:]
    return home


def _runs(home: Path, study: str) -> dict[str, list[gp.RunRecord]]:
    out: dict[str, list[gp.RunRecord]] = {}
    for record in gp.Ledger(home / "greenprint.db").runs(study=study):
        out.setdefault(record.name, []).append(record)
    return out


def test_every_evaluation_of_a_lightning_model_is_measured_and_in_the_price_tag(lightning_home):
    """Before: one run (the fit); the validation before it, the test and the prediction after
    it, and both tests of the checkpoint in a new process were measured by nobody. Now each is
    a finished run whose energy is the meter's power x its time; those of the fitted model are
    parts of the fit's run (``contained`` false: the price tag adds them once), the one of a
    checkpoint loaded by hand a top-level part: one trial, and the study's energy is every run's."""
    runs = _runs(lightning_home, "lit-eval")
    assert sorted((name, len(each)) for name, each in runs.items()) == [
        ("reg", 1),
        ("reg-predict", 1),
        ("reg-test", 3),
        ("reg-validate", 1),
    ]
    (fit,) = runs["reg"]
    assert (fit.role, fit.parent_id, fit.status) == (None, None, "finished")
    evaluations = [r for name, each in runs.items() if name != "reg" for r in each]
    for run in evaluations:
        assert run.status == "finished" and run.role == "part"
        assert run.energy_kwh == pytest.approx(WATTS * run.duration_s / 3.6e6, rel=0.05)
        assert run.params["lr"] == 0.1  # the module's hparams
    # the fit's own test (same Trainer), its prediction, the checkpoint's test (ckpt_path, a
    # new process) and the validation of the untrained module (taken by its fit): its parts
    loaded = [r for r in runs["reg-test"] if r.parent_id is None]
    assert len(loaded) == 1  # load_from_checkpoint: no training known, a part of no run
    linked = [r for r in evaluations if r.parent_id is not None]
    assert len(linked) == 4
    assert {(r.parent_id, r.contained) for r in linked} == {(fit.id, False)}
    (validated,) = runs["reg-validate"]
    assert validated.ended_at <= fit.started_at and validated.metric("val_loss") is not None
    (predicted,) = runs["reg-predict"]
    assert not predicted.metrics  # a prediction has no score
    assert all(r.metric("test_loss") is not None for r in runs["reg-test"])
    assert fit.metric("test_loss") is not None  # the same Trainer's test still scores the fit

    report = _report(lightning_home, "--study", "lit-eval", "--no-plots", "--format", "json")
    total = report["price_tag"]["total"]
    assert (total["runs"], total["trials"]) == (6, 1)
    every = fit.energy_kwh + sum(r.energy_kwh for r in evaluations)
    assert total["energy_kwh"] == pytest.approx(every, rel=1e-9)
    assert report["price_tag"]["final"]["name"] == "reg"
    roles = {row["id"]: row["role"] for row in report["runs"]}
    assert roles[fit.id] == "trial"
    assert {roles[r.id] for r in evaluations} == {"part"}
    _export_reads_as_the_report(lightning_home, "lit-eval", report)

    done = run_in(lightning_home, GREENPRINT, "ledger", "ls", "--study", "lit-eval", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    listed = listed["runs"] if isinstance(listed, dict) else listed
    assert sorted(r["name"] for r in listed) == sorted(
        [r.name for each in runs.values() for r in each]
    )


def test_a_test_by_a_callback_given_role_final_is_the_final_model(lightning_home):
    """A checkpoint's test with ``GreenprintCallback(..., role="final")`` and no fit known: a
    top-level run with that role, scored by its ``test_loss``; the report reads it as the final
    model, no trial."""
    (final,) = _runs(lightning_home, "lit-final")["reg-test"]
    assert (final.role, final.parent_id, final.status) == ("final", None, "finished")
    assert final.energy_kwh > 0 and final.metric("test_loss") is not None
    report = _report(lightning_home, "--study", "lit-final", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(final.energy_kwh)
    assert [row["role"] for row in report["runs"]] == ["final"]


# ------------------------------------------------------------------ W&B and TensorBoard roles
#: A hand-written search given no roles (study ``search``: each trial with a TensorBoard writer
#: and a W&B run of its own), a lone run (study ``lone``) and a search given ``role="sweep"``
#: (study ``swept``), each followed in W&B (offline) and TensorBoard as their docs show.
LOGGERS_SCRIPT = """
import json
import os

os.environ.update(WANDB_SILENT="true", WANDB_ERROR_REPORTING="false", WANDB_DISABLE_GIT="true")
import wandb
from torch.utils.tensorboard import SummaryWriter
import greenprint as gp
from greenprint.integrations import tensorboard as gp_tensorboard
from greenprint.integrations import wandb as gp_wandb

where = {}


def trial(name, study, **options):
    settings = wandb.Settings(console="off", x_disable_stats=True)
    with (
        SummaryWriter(f"tb/{study}/{name}") as writer,
        wandb.init(project="p", name=name, mode="offline", dir=".", settings=settings) as wb,
        gp.track(name, study=study, sample_interval_s=0.05, **options) as run,
    ):
        gp_tensorboard.autolog(run, writer)
        gp_wandb.autolog(run)
        run.log(loss=options["params"]["lr"])
    where[run.id] = {"tb": f"tb/{study}/{name}", "wandb": str(wb.dir)}


with gp.track("search", study="search"):
    for lr in (0.1, 0.01):
        trial(f"lr{lr}", "search", params={"lr": lr})
trial("lone", "lone", params={"lr": 0.5})
with gp.track("search", study="swept", role="sweep"):
    trial("lr0.2", "swept", params={"lr": 0.2})
print(json.dumps(where))
"""


@pytest.fixture(scope="module")
def loggers_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """The script run once in an empty directory; each greenprint run's TensorBoard folder and
    W&B files folder."""
    need_installed("wandb", "wandb")
    need_installed("tensorboard", "tensorboard")
    need_installed("torch", "torch")
    import _script_fork
    from _clean_env import clean_env

    home = _empty(tmp_path_factory, "loggers")
    (home / "search.py").write_text(LOGGERS_SCRIPT, encoding="utf-8")
    # ``python search.py`` as run_in runs it, in a child of a server forked from this file's
    # Lightning server (lightning_home's scripts) that imports W&B and TensorBoard's writer
    # beside it: torch is imported once in the file, not again (about 2.5 s of CPU); a fresh
    # process when no server can serve
    done = _script_fork.run_script_beside(
        ("lightning",),
        [["wandb"], ["torch.utils.tensorboard", "SummaryWriter"]],
        home,
        "search.py",
        clean_env(),
        300,
    )
    if done is None:
        done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home, json.loads(done.stdout.strip().splitlines()[-1])


def _tensorboard_roles(logdir: Path) -> tuple[list[str], dict[str, str]]:
    """The ``greenprint/role`` texts of a run's event files, and its string hparams."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    texts, hparams = [], {}
    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(logdir))
    events.Reload()
    for run in events.Runs():
        accumulated = events.GetAccumulator(run)
        if "greenprint/role/text_summary" in accumulated.Tags()["tensors"]:
            for event in accumulated.Tensors("greenprint/role/text_summary"):
                texts.append(event.tensor_proto.string_val[0].decode())
        try:
            plugin = accumulated.PluginTagToContent("hparams")
        except KeyError:  # no hparams in this folder's events
            plugin = {}
        if "_hparams_/session_start_info" in plugin:
            start = plugin_data_pb2.HParamsPluginData.FromString(
                plugin["_hparams_/session_start_info"]
            )
            for key, value in start.session_start_info.hparams.items():
                if value.HasField("string_value"):
                    hparams[key] = value.string_value
    return texts, hparams


def _wandb_summary(files_dir: Path) -> dict[str, object]:
    from integrations.test_wandb import _read_run  # the reader of W&B's offline run files

    return _read_run(files_dir.parent)[1]


@pytest.mark.parametrize("study", ["search", "lone", "swept"])
def test_wandb_and_tensorboard_show_the_role_the_report_reads(loggers_home, study):
    """Before: a run given no role had no role in W&B or TensorBoard (MLflow tagged it). Now
    each carries the report's role: W&B's summary ``greenprint/role`` with
    ``greenprint/role_inferred`` true, TensorBoard's text ``greenprint/role`` ("trial
    (inferred)") and hparam. A trial of a search given no role cannot be told a trial from a
    part at its end: its W&B run has no role (documented), its TensorBoard text is written when
    the search ends (no hparam)."""
    home, where = loggers_home
    report = _report(home, "--study", study, "--no-plots", "--format", "json")
    roles = {row["id"]: row["role"] for row in report["runs"] if row["id"] in where}
    assert roles and set(roles.values()) == {"trial"}
    for run_id, role in roles.items():
        texts, hparams = _tensorboard_roles(home / where[run_id]["tb"])
        summary = _wandb_summary(home / where[run_id]["wandb"])
        assert texts == [f"{role} (inferred)"]
        if study == "search":  # inside a search given no role, still running at its end
            assert "greenprint/role" not in summary and "greenprint/role" not in hparams
        else:
            assert summary["greenprint/role"] == role
            assert summary["greenprint/role_inferred"] is True
            assert hparams["greenprint/role"] == role
        assert summary["greenprint/run_id"] == run_id
