"""Lightning under DDP: a second ``fit`` of one module (session 30), what ran before a fit
(session 29, moved here from ``test_carryovers_s29.py``), a learning-rate finder before a fit
(session 26, moved here from ``test_integrations_s26.py``) and a fit with no energy meter
(session 43): one DDP launch for all four.

Session 30: a second Lightning ``fit`` of one module under DDP, as a user met it.

Two-stage fine-tuning (``trainer.fit(model)``, then another Trainer's ``fit`` of the same
module), or more epochs on more data (the same Trainer fitted again), with
``strategy="ddp"``: in one process the later fit's run takes the earlier fit's as a ``part``
(one training, one trial); under DDP each fit stayed a trial of its own (``trained_again``
was told not to link with several processes), so the study read a trial per stage, the
final model's trial at a fraction of what training it cost. Now the node's earlier fit run
(rank 1's run still its part) is a part of the node's later one, as in one process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations._ddp_reads import (
    assert_ranks_are_parts_of_their_nodes,
    assert_two_trials_the_stages_one,
    runs_by_name,
)
from integrations._frameworks import need_installed
from tracking._meters import READ_LAG_S

#: The constant power, in W, of the test meters.
WATTS = 100.0

#: Two CPU ranks, ``strategy="ddp"`` (Lightning starts rank 1 as a new run of this script),
#: each rank's meter the test meter; one epoch of 2 batches per rank and fit (the finder's fit: 8
#: batches). Four studies in one launch (each rank imports Lightning once, about 8 s of CPU: a
#: launch of their own cost the finder's study about 16 s of CPU and 18 s in the suite):
#:
#: * ``pre`` (session 29): ``validate`` and ``test`` before a module's fit by its Trainer, a
#:   ``test`` after it by another Trainer; another module's ``fast_dev_run`` fit, then its fit.
#: * ``refit``: one module fitted by a Trainer, fine-tuned by another, then fitted again by that
#:   Trainer for one more epoch on more data; another module (another configuration) fitted by
#:   a third Trainer.
#: * ``ddp`` (session 26): ``Tuner(trainer).lr_find`` (6 steps) then ``fit`` by that Trainer
#:   (``ddp_spawn`` and ``ddp_fork`` fail inside Lightning 2.6's ``lr_find``).
#: * ``none`` (session 43): a 2-epoch fit with validation, ``meters=[]``, a CSV logger; each
#:   rank writes the ``greenprint/`` names of its ``callback_metrics`` to ``none-rank<k>.json``.
SCRIPT = """
import json, os, sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower


class M(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), sync_dist=True)

    test_step = validation_step

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def trainer(name, study, meters=None, **kwargs):
    meters = ConstantProcessPower(@WATTS@) if meters is None else meters
    cb = GreenprintCallback(name, study=study, ledger=os.path.abspath("gp.db"), meters=meters,
                            sample_interval_s=0.05, flush_interval_s=0.1)
    options = dict(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                   enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[cb])
    return pl.Trainer(**{**options, **kwargs})


if __name__ == "__main__":
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=4)
    model, fits = M(), trainer("val", "pre")
    fits.validate(model, data)  # the untrained model, before its fit
    fits.test(model, data)
    fits.fit(model, data)
    trainer("val", "pre").test(model, data)  # the trained model, by another Trainer
    model = M()
    trainer("dev", "pre", fast_dev_run=2).fit(model, data)
    trainer("dev", "pre").fit(model, data)

    data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=4)
    more = DataLoader(TensorDataset(torch.randn(24, 4), torch.randn(24, 1)), batch_size=4)
    model = M()
    trainer("tune", "refit").fit(model, data)
    tuner = trainer("tune", "refit")
    tuner.fit(model, data)  # stage 2: the same module, another Trainer
    tuner.fit_loop.max_epochs = 2
    tuner.fit(model, more)  # one more epoch on more data, the same Trainer
    trainer("other", "refit").fit(M(lr=0.01), data)  # another configuration: its own training

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=4)
    finds, model = trainer("ddp", "ddp"), M(lr=0.01)
    Tuner(finds).lr_find(model, data, min_lr=1e-4, max_lr=1e-2, num_training=6)
    finds.fit(model, data)

    data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=4)
    unmetered = trainer("none", "none", meters=[], max_epochs=2, logger=CSVLogger("csv"))
    unmetered.fit(M(), data, data)
    logged = sorted(k for k in unmetered.callback_metrics if k.startswith("greenprint/"))
    with open(f"none-rank{unmetered.global_rank}.json", "w") as f:
        json.dump(logged, f)
    torch.distributed.destroy_process_group()
"""


@pytest.fixture(scope="module")
def ddp_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ledger of :data:`SCRIPT`, run once under DDP in an empty folder."""
    from _clean_env import clean_env

    need_installed("lightning", "lightning")
    home = tmp_path_factory.mktemp("lightning-ddp")
    meters_dir = str(Path(__file__).resolve().parent.parent / "tracking")
    script = SCRIPT.replace("@METERS@", repr(meters_dir)).replace("@WATTS@", repr(WATTS))
    (home / "ddp.py").write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "ddp.py"],
        cwd=home,
        env={**clean_env(), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home / "gp.db"


@pytest.mark.slow  # the launch: 2 ranks, each importing Lightning, about 25 s
def test_lightning_under_ddp_a_module_fitted_again_is_one_trial_costing_every_stage(
    ddp_ledger: Path,
) -> None:
    """Three fits of one module under DDP (two Trainers) and one fit of another: two trials.
    The last fit's node run is the module's trial, the earlier fits' node runs parts of it in
    a chain (``contained`` false: each ran before the next, added once), each fit's rank 1 run
    a part of its own fit's node run with no energy of its own; the other module's fit is a
    trial of its own. The price tag's total is the sum of every row's measured energy, and the
    module's trial costs its three node runs. Before: three trials of ``tune``, the last one
    at about a third of what training the module cost."""
    runs = gp.Ledger(ddp_ledger).runs(study="refit")
    by_name = runs_by_name(runs)
    assert {name: len(each) for name, each in by_name.items()} == {
        "tune": 3,
        "tune-rank1": 3,
        "other": 1,
        "other-rank1": 1,
    }
    assert all(r.status == "finished" for r in runs)
    first, second, last = by_name["tune"]
    assert (last.role, last.parent_id) == (None, None)
    assert (second.role, second.parent_id, second.contained) == ("part", last.id, False)
    assert (first.role, first.parent_id, first.contained) == ("part", second.id, False)
    (other,) = by_name["other"]
    assert (other.role, other.parent_id) == (None, None)
    # each fit's rank 1 is a part of that fit's node run, metered by it alone
    ranks = [*by_name["tune-rank1"], *by_name["other-rank1"]]
    assert_ranks_are_parts_of_their_nodes([first, second, last, other], ranks, WATTS)
    assert_two_trials_the_stages_one(runs, last)  # was one trial a stage


@pytest.mark.slow  # the launch (the module's fixture)
def test_lightning_under_ddp_what_ran_before_a_fit_is_a_part_of_the_nodes_fit(
    ddp_ledger: Path,
) -> None:
    """``trainer.validate(model)`` and ``trainer.test(model)`` before ``trainer.fit(model)``,
    and a ``fast_dev_run`` fit before a module's fit, under DDP: each node run (local rank 0)
    is a ``part`` of the node's fit (``contained`` false: it ran before it, added once), rank
    1's a part of it with no energy of its own; a test by another Trainer after the fit is a
    part of that fit too. The study is its two fits, each costing what ran for it. Before:
    top-level parts beside the fits (``by_role`` had ``part``), as in no single process."""
    runs = gp.Ledger(ddp_ledger).runs(study="pre")
    by_name = runs_by_name(runs)
    assert {name: len(each) for name, each in by_name.items()} == {
        "val-validate": 1,
        "val-validate-rank1": 1,
        "val-test": 2,
        "val-test-rank1": 2,
        "val": 1,
        "val-rank1": 1,
        "dev-fast_dev_run": 1,
        "dev-fast_dev_run-rank1": 1,
        "dev": 1,
        "dev-rank1": 1,
    }
    for fit_name, parts in (
        ("val", [*by_name["val-validate"], *by_name["val-test"]]),
        ("dev", by_name["dev-fast_dev_run"]),
    ):
        (fit,) = by_name[fit_name]
        assert (fit.status, fit.role, fit.parent_id) == ("finished", None, None)
        for part in parts:
            assert (part.status, part.role) == ("finished", "part"), part.name
            assert (part.parent_id, part.contained) == (fit.id, False), part.name
            assert part.energy_kwh > 0, part.name  # the node's meter
        ranks = [r for r in runs if r.name.startswith(f"{fit_name}-") and r.name.endswith("-rank1")]
        assert sorted(r.parent_id for r in ranks) == sorted(r.id for r in [fit, *parts])
        assert all(r.energy_kwh == 0 for r in ranks)  # one meter per node
    before, after = by_name["val-test"]
    assert before.ended_at <= by_name["val"][0].started_at <= after.started_at
    tag = price_tag(runs)
    assert set(tag.by_role) == {"trial"} and (tag.total.trials, tag.total.runs) == (2, len(runs))
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)


@pytest.mark.slow  # the launch (the module's fixture)
def test_lightning_lr_find_under_ddp_is_a_part_of_the_fit_metered_once_per_node(
    ddp_ledger: Path,
) -> None:
    """Before: under DDP the finder's training made no run (``setup`` returned with several
    processes): its cost was in no price tag. Now it is measured as the fit is: local rank 0's
    ``ddp-lr_find`` meters the node, a ``part`` of the node's fit (``contained`` false: added
    once), rank 1's ``ddp-lr_find-rank1`` a part of it with no energy of its own; one trial.
    (Session 26, moved from ``test_integrations_s26.py``: its launch is this module's.)"""
    records = gp.Ledger(ddp_ledger).runs(study="ddp")
    runs = {r.name: r for r in records}
    assert set(runs) == {"ddp", "ddp-rank1", "ddp-lr_find", "ddp-lr_find-rank1"}  # was 2
    fit, finder, rank1 = runs["ddp"], runs["ddp-lr_find"], runs["ddp-lr_find-rank1"]
    assert (fit.status, fit.role, fit.parent_id) == ("finished", None, None)
    assert (finder.status, finder.role) == ("finished", "part")
    assert (finder.parent_id, finder.contained) == (fit.id, False)
    assert finder.ended_at <= fit.started_at
    # measured: the node's test meter's power x the finder's time
    assert finder.energy_kwh > 0
    measured_j = finder.energy_kwh * 3.6e6
    assert measured_j == pytest.approx(WATTS * finder.duration_s, abs=WATTS * READ_LAG_S)
    assert (rank1.status, rank1.role, rank1.parent_id) == ("finished", "part", finder.id)
    assert rank1.energy_kwh == 0  # one meter per node
    tag = price_tag(records)
    assert (tag.total.runs, tag.total.trials) == (4, 1)
    assert tag.total.energy_kwh == pytest.approx(fit.energy_kwh + finder.energy_kwh, rel=1e-9)


@pytest.mark.slow  # the launch (the module's fixture)
def test_lightning_under_ddp_with_no_energy_meter_logs_and_predicts_no_energy(
    ddp_ledger: Path,
) -> None:
    """``meters=[]`` under DDP: the energy is unknown on every rank. Before (session 43's
    find), each rank logged a 0 share with ``sync_dist``, so the CSV logger (and TensorBoard,
    MLflow, W&B) read ``greenprint/energy_kwh`` 0 at each epoch, and each run's progress
    recorded a predicted energy and CO2-eq of 0, whose 0-wide intervals the report counted as
    holding its energy. Now no rank logs a figure, rank 1's part has no meter (as its node),
    and the predictions are of the time only."""
    from greenprint.report._prediction import prediction_summary

    home = ddp_ledger.parent
    for rank in (0, 1):  # each rank's callback_metrics: no greenprint/ figure (was 5, all 0)
        assert json.loads((home / f"none-rank{rank}.json").read_text()) == []
    (csv,) = home.glob("csv/**/metrics.csv")
    header = csv.read_text().splitlines()[0].split(",")
    assert "val_loss" in header
    assert not [name for name in header if name.startswith("greenprint/")]
    runs = gp.Ledger(ddp_ledger).runs(study="none")
    by_name = {r.name: r for r in runs}
    assert set(by_name) == {"none", "none-rank1"}
    node, rank1 = by_name["none"], by_name["none-rank1"]
    assert (rank1.role, rank1.parent_id) == ("part", node.id)
    assert not node.energy_recorded and not rank1.energy_recorded
    names = {p.name for r in runs for p in r.metrics}
    assert "greenprint.predicted_duration_s" in names  # the progress predicted the time
    assert not [n for n in names if n.startswith("greenprint.predicted_e")]  # was 0 kWh, 0 kg
    summary = prediction_summary(runs)
    assert summary is not None and summary.predicted_runs == 2
    assert all(row.intervals == 0 for row in summary.rows)  # none of 0 kWh held "its energy"
    assert not price_tag(runs).total.energy_known
