"""The Lightning callback on real Lightning: tiny modules, CPU, in-memory data."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import ConfigError, LedgerError
from integrations._frameworks import need_installed, one_thread

need_installed("lightning", "lightning")
need_installed("torch", "torch")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import torch and Lightning when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; Lightning alone takes 6-9 s of CPU to import.
    The names are this module's globals, as a top-level import would make them. Training runs on
    one thread (tiny models: the pool's spinning threads cost more CPU than they save).
    """
    global torch, pl, CSVLogger, DataLoader, TensorDataset, GreenprintCallback, Regressor
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    from greenprint.integrations.lightning import GreenprintCallback

    Regressor = _regressor()
    with one_thread():
        yield


def _regressor() -> type:
    class Regressor(pl.LightningModule):
        def __init__(self, lr: float = 0.1, fail_at: int = -1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def training_step(self, batch, batch_idx):
            if self.global_step == self.hparams.fail_at:
                raise RuntimeError("loss is NaN")
            x, y = batch
            loss = torch.nn.functional.mse_loss(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Regressor


def _data(n: int = 64, batch_size: int = 16) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, 4, generator=gen), torch.randn(n, 1, generator=gen))
    return DataLoader(ds, batch_size=batch_size)


def _trainer(tmp_path: Path, cb: GreenprintCallback, **kwargs) -> pl.Trainer:
    options = dict(
        max_epochs=2,
        accelerator="cpu",
        logger=CSVLogger(tmp_path / "logs"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[cb],
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def test_a_fit_is_one_finished_run_with_figures_in_every_logger(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = GreenprintCallback("reg", study="lit", ledger=db, role="final", **FAST)
    trainer = _trainer(tmp_path, cb)
    trainer.fit(Regressor(lr=0.05), _data(), _data(batch_size=32))

    (record,) = gp.Ledger(db).runs(study="lit")
    assert (record.name, record.status, record.role) == ("reg", "finished", "final")
    assert record.id == cb.last_run_id
    assert record.params["lr"] == 0.05 and record.params["trainer.max_epochs"] == 2
    assert record.dataset_size == 64  # the training set's examples (E x D x H), not validation's
    assert record.energy_kwh > 0 and record.emissions_kg > 0
    names = {point.name for point in record.metrics}
    assert {"val_loss", "train_loss"} <= names
    assert not any(n.startswith("greenprint/") for n in names)  # the run's fields, not metrics
    # one point per validation (4 batches an epoch): the fit's end adds none at the last step
    # (it logged every metric there again: val_loss at steps 4, 8, 8)
    assert [p.step for p in record.metrics if p.name == "val_loss"] == [4, 8]
    # every logger got the figures once per epoch: here the CSV logger; then the run's totals
    (metrics_csv,) = (tmp_path / "logs").rglob("metrics.csv")
    logged = [r for r in csv.DictReader(metrics_csv.open()) if r["greenprint/energy_kwh"]]
    *rows, totals = logged
    assert float(totals["greenprint/energy_kwh"]) == pytest.approx(record.energy_kwh, rel=1e-12)
    assert float(totals["greenprint/emissions_kg"]) == pytest.approx(record.emissions_kg, rel=1e-12)
    energy = [float(r["greenprint/energy_kwh"]) for r in rows]
    assert len(rows) == 2 and energy == sorted(energy) and 0 < energy[-1] <= record.energy_kwh
    epoch_kwh = [float(r["greenprint/epoch_energy_kwh"]) for r in rows]
    assert sum(epoch_kwh) == pytest.approx(energy[-1], rel=1e-6)
    emissions = [float(r["greenprint/emissions_kg"]) for r in rows]
    assert 0 < emissions[-1] <= record.emissions_kg
    assert all(float(r["greenprint/power_w"]) >= 0 for r in rows)

    # a test and a validation by this Trainer after the fit score the model it trained: on the
    # fit's run, at its last step (they were dropped: the run had ended); each is measured, a
    # run of its own, a part of the fit's outside its measurement (their cost was left out)
    module, held_out = trainer.lightning_module, _data(n=32, batch_size=32)
    (tested,) = trainer.test(module, held_out, verbose=False)
    (validated,) = trainer.validate(module, held_out, verbose=False)
    runs = {r.name: r for r in gp.Ledger(db).runs(study="lit")}
    record = runs.pop("reg")
    assert [(p.step, p.value) for p in record.metrics if p.name == "test_loss"] == [
        (trainer.global_step, pytest.approx(tested["test_loss"]))
    ]
    assert record.metric("val_loss") == pytest.approx(validated["val_loss"])
    assert {n: (r.role, r.parent_id, r.contained) for n, r in runs.items()} == {
        "reg-test": ("part", record.id, False),
        "reg-validate": ("part", record.id, False),
    }
    assert all(r.energy_kwh > 0 and r.status == "finished" for r in runs.values())
    # another Trainer's test is not this fit's score (a run of its own, of the fit's module)
    _trainer(tmp_path, cb, logger=False).test(module, held_out, verbose=False)
    record = next(r for r in gp.Ledger(db).runs(study="lit") if r.name == "reg")
    assert [p.name for p in record.metrics].count("test_loss") == 1


def test_count_fpo_adds_one_counted_step_per_batch(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = GreenprintCallback(study="lit", ledger=db, count_fpo=True, **FAST)
    _trainer(tmp_path, cb, logger=False).fit(Regressor(), _data())  # 4 batches x 2 epochs

    module = Regressor()
    x, y = next(iter(_data()))
    with gp.FPOCounter() as counter:  # the same step, on real tensors
        torch.nn.functional.mse_loss(module(x), y).backward()
    (record,) = gp.Ledger(db).runs(study="lit")
    assert record.fpo == 8 * counter.result.total
    assert record.name == "Regressor"


def test_count_fpo_with_fpo_inputs_counts_forward_and_backward(tmp_path: Path) -> None:
    cb = GreenprintCallback(ledger=False, count_fpo=True, fpo_inputs=lambda b: b[0], **FAST)
    _trainer(tmp_path, cb, logger=False, max_epochs=1).fit(Regressor(), _data())
    x, _ = next(iter(_data()))
    assert cb.run.fpo == 4 * gp.count_fpo(Regressor(), x).total


def test_an_exception_in_fit_ends_the_run_failed_and_propagates(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = GreenprintCallback("crash", study="lit", ledger=db, **FAST)
    with pytest.raises(RuntimeError, match="loss is NaN"):
        _trainer(tmp_path, cb, logger=False).fit(Regressor(fail_at=3), _data())
    (record,) = gp.Ledger(db).runs(study="lit")
    assert record.status == "failed"
    assert "RuntimeError: loss is NaN" in (record.error or "")
    assert record.energy_kwh > 0  # the cost so far is kept


def test_a_fit_resumed_from_its_checkpoint_after_a_crash_is_one_training(tmp_path: Path) -> None:
    """Issue 12: trainer.fit(model, ckpt_path=...) after a crash, with a new callback (as in a
    new process), is one training: the crashed fit's run, whose id the checkpoint keeps,
    becomes a part of the resumed fit's run (failed, its error and cost kept, added once: it
    ran before), not a second trial."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from greenprint.analysis import price_tag

    db = tmp_path / "gp.db"

    def trainer(cb: GreenprintCallback) -> pl.Trainer:
        saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        return _trainer(
            tmp_path, cb, logger=False, enable_checkpointing=True, callbacks=[cb, saver]
        )

    first = GreenprintCallback("reg", study="lit", ledger=db, **FAST)
    with pytest.raises(RuntimeError, match="loss is NaN"):  # in the second epoch (4 batches each)
        trainer(first).fit(Regressor(fail_at=6), _data())
    again = GreenprintCallback("reg", study="lit", ledger=db, **FAST)
    resumed_trainer = trainer(again)
    resumed_trainer.fit(Regressor(), _data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert resumed_trainer.global_step == 8  # the second epoch only, from the checkpoint

    runs = {r.id: r for r in gp.Ledger(db).runs(study="lit")}
    assert len(runs) == 2
    resumed, earlier = runs[again.last_run_id], runs[first.last_run_id]
    assert resumed.status == "finished" and resumed.parent_id is None
    assert (earlier.role, earlier.parent_id, earlier.contained) == ("part", resumed.id, False)
    assert earlier.status == "failed" and "loss is NaN" in (earlier.error or "")
    assert earlier.energy_kwh > 0  # its cost kept
    tag = price_tag(list(runs.values()))
    assert tag.total.trials == 1 and tag.by_status["failed"].runs == 1
    assert tag.total.energy_kwh == pytest.approx(resumed.energy_kwh + earlier.energy_kwh)

    # a validation from the checkpoint restores the callback's state too, and resumes nothing:
    # the next fit by that callback is a training of its own
    other = GreenprintCallback("reg", study="lit", ledger=db, **FAST)
    trainer(other).validate(Regressor(), _data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    trainer(other).fit(Regressor(), _data())
    assert {r.id: r.parent_id for r in gp.Ledger(db).runs(study="lit")} == {
        earlier.id: resumed.id,
        resumed.id: None,
        other.last_evaluation_id: resumed.id,  # it evaluated the model that fit trained
        other.last_run_id: None,
    }


def test_a_training_that_crashes_twice_before_its_next_checkpoint_is_still_one(
    tmp_path: Path,
) -> None:
    """A resumed fit that crashes again before saving a checkpoint of its own is resumed from
    the same checkpoint, which names the first fit's run: the third fit takes the second (which
    holds the first) as its part, one training, not a failed second trial beside it (2 trials
    before). Another fit from that checkpoint once the training finished leaves it as it is."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from greenprint.analysis import price_tag

    db = tmp_path / "gp.db"
    ckpt = tmp_path / "ckpt" / "last.ckpt"

    def fit(fail_at: int, ckpt_path: Path | None) -> GreenprintCallback:
        cb = GreenprintCallback("reg", study="lit", ledger=db, **FAST)
        saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = _trainer(
            tmp_path, cb, logger=False, enable_checkpointing=True, callbacks=[cb, saver]
        )
        if fail_at < 0:
            trainer.fit(Regressor(), _data(), ckpt_path=ckpt_path)
        else:
            with pytest.raises(RuntimeError, match="loss is NaN"):
                trainer.fit(Regressor(fail_at=fail_at), _data(), ckpt_path=ckpt_path)
        return cb

    # both crash at step 6, before the next checkpoint: last.ckpt stays the first fit's (step 4)
    ids = [fit(6, None).last_run_id]
    shutil.copy(ckpt, tmp_path / "first.ckpt")
    ids.append(fit(6, ckpt).last_run_id)
    last = fit(-1, ckpt).last_run_id

    runs = {r.id: r for r in gp.Ledger(db).runs(study="lit")}
    assert {r.id: r.parent_id for r in runs.values()} == {
        ids[0]: ids[1],
        ids[1]: last,
        last: None,
    }
    assert [runs[i].role for i in ids] == ["part", "part"]
    tag = price_tag(list(runs.values()))
    assert tag.total.trials == 1 and tag.by_status["failed"].runs == 2
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in runs.values()))

    # a fourth fit from the first checkpoint, once the training finished, is one of its own
    branch = fit(-1, tmp_path / "first.ckpt").last_run_id
    assert {r.id: r.parent_id for r in gp.Ledger(db).runs(study="lit")} == {
        ids[0]: ids[1],
        ids[1]: last,
        last: None,
        branch: None,
    }


def test_a_fit_resumed_inside_the_users_own_run_is_one_trial(tmp_path: Path) -> None:
    """A script that opens its own run around fit (``with gp.track("lr=0.01", params=...)``,
    logging its test score after) and is run again after a crash: the crashed attempt's own run
    becomes a part of the new one, the crashed fit inside it; one trial, not a failed trial
    beside it (2 trials, the failed one the worst score in EVP). Twice crashed before the next
    checkpoint: still one."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from greenprint.analysis import price_tag, study_trials

    db = tmp_path / "gp.db"
    ckpt = tmp_path / "ckpt" / "last.ckpt"

    def script(fail_at: int, ckpt_path: Path | None) -> tuple[str, str | None]:
        cb = GreenprintCallback(study="lit", ledger=db, **FAST)
        saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = _trainer(
            tmp_path, cb, logger=False, enable_checkpointing=True, callbacks=[cb, saver]
        )
        outer = gp.track("lr=0.01", study="lit", ledger=db, params={"lr": 0.01}, **FAST)
        try:
            with outer:
                trainer.fit(Regressor(fail_at=fail_at), _data(), ckpt_path=ckpt_path)
                outer.log(test_loss=0.5)
        except RuntimeError as e:
            assert "loss is NaN" in str(e)
        return outer.id, cb.last_run_id

    first, first_fit = script(6, None)  # crashes in epoch 2, after last.ckpt of epoch 1
    second, second_fit = script(6, ckpt)  # again, before a checkpoint of its own
    third, third_fit = script(-1, ckpt)
    runs = {r.id: r for r in gp.Ledger(db).runs(study="lit")}
    assert {r.id: r.parent_id for r in runs.values()} == {
        first: second,  # each crashed attempt a part of the next
        second: third,
        third: None,
        first_fit: first,  # each fit inside the script's own run
        second_fit: second,
        third_fit: third,
    }
    assert [(runs[i].role, runs[i].contained, runs[i].status) for i in (first, second)] == [
        ("part", False, "failed"),
        ("part", False, "failed"),
    ]
    assert runs[third].status == "finished"
    tag = price_tag(list(runs.values()))
    assert tag.total.trials == 1
    assert tag.total.energy_kwh == pytest.approx(
        sum(runs[i].energy_kwh for i in (first, second, third))
    )
    trials = study_trials(list(runs.values()), metric="test_loss")
    assert [trials.forest.runs[p].id for p in trials.positions] == [third]


def test_a_resumed_training_takes_a_killed_attempt_as_an_interrupted_part(
    tmp_path: Path,
) -> None:
    """The run of a training whose process was killed (no last write: read ``lost``) becomes an
    ``interrupted`` part of the run that resumes it, its cost kept; a run id of another study
    or not in the ledger changes nothing and raises nothing (the training goes on)."""
    from greenprint.integrations._dl import continue_from

    db = tmp_path / "gp.db"
    code = (
        "import os, time, greenprint as gp\n"
        f"run = gp.track('reg', study='lit', ledger={str(db)!r}, sample_interval_s=0.05,\n"
        "               flush_interval_s=0.1).start()\n"
        "time.sleep(0.3)\n"
        "print(run.id, flush=True)\n"
        "os._exit(9)  # killed: no last write\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 9, killed.stderr
    earlier_id = killed.stdout.split()[-1]
    assert gp.Ledger(db).run(earlier_id).status == "lost"
    elsewhere = gp.track("other", study="another", ledger=db).start()
    elsewhere.stop()
    with gp.track("reg", study="lit", ledger=db, **FAST) as run:
        continue_from(run, "0" * 32, how="trainer.fit(ckpt_path=...)")  # not in this ledger
        continue_from(run, elsewhere.id, how="trainer.fit(ckpt_path=...)")  # another study
        continue_from(run, earlier_id, how="trainer.fit(ckpt_path=...)")
    earlier = gp.Ledger(db).run(earlier_id)
    assert (earlier.role, earlier.parent_id, earlier.contained) == ("part", run.id, False)
    assert earlier.status == "interrupted" and earlier.ended_at == earlier.heartbeat_at
    assert "ended without a final write; trainer.fit(ckpt_path=...) resumed" in earlier.error
    assert gp.Ledger(db).run(elsewhere.id).parent_id is None


def test_a_stop_budget_ends_fit_at_the_step_that_crosses_it(tmp_path: Path) -> None:
    x, y = next(iter(_data()))
    with gp.FPOCounter() as counter:  # one training step's FPO, on real tensors
        torch.nn.functional.mse_loss(Regressor()(x), y).backward()
    step_fpo = counter.result.total
    db = tmp_path / "gp.db"
    cb = GreenprintCallback(
        "capped",
        study="lit",
        ledger=db,
        count_fpo=True,
        budget_fpo=2.5 * step_fpo,
        on_exceed="stop",
        **FAST,
    )
    trainer = _trainer(tmp_path, cb, logger=False)  # 4 batches x 2 epochs without the budget
    trainer.fit(Regressor(), _data())  # stopped as EarlyStopping stops it: nothing raised

    assert trainer.should_stop
    assert trainer.global_step == 3  # stopped after the third step, the one over 2.5 steps
    (record,) = gp.Ledger(db).runs(study="lit")
    assert record.status == "interrupted" and (record.error or "").startswith("BudgetExceeded:")
    # the message writes FPO as the report does ('FPO 1.2 kFPO > budget_fpo 1 kFPO')
    from greenprint._format import format_fpo

    assert "budget_fpo" in record.error and f"FPO {format_fpo(3 * step_fpo)} >" in record.error
    assert record.fpo == 3 * step_fpo and record.energy_kwh > 0  # the cost so far is kept


def test_each_fit_is_its_own_run(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = GreenprintCallback(study="lit", ledger=db, **FAST)
    for _ in range(2):
        _trainer(tmp_path, cb, logger=False, max_epochs=1).fit(Regressor(), _data())
    records = gp.Ledger(db).runs(study="lit")
    assert [r.status for r in records] == ["finished", "finished"]
    assert len({r.id for r in records}) == 2


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"pue": -1}, ConfigError, "PUE|pue"),
        ({"role": "winner"}, ConfigError, "roles"),
        ({"parent": "abc"}, ConfigError, "sets parent itself"),
        ({"colour": "green"}, ConfigError, "unknown option"),
        ({"study": " "}, ConfigError, "study must be a non-empty string"),
        ({"count_fpo": "yes"}, ConfigError, "True or False"),
        ({"fpo_inputs": 3}, ConfigError, "fpo_inputs"),
    ],
)
def test_bad_options_are_refused_when_the_callback_is_made(
    tmp_path: Path, options: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        GreenprintCallback(ledger=tmp_path / "gp.db", **options)
    assert not (tmp_path / "gp.db").exists()


def test_a_closed_ledger_is_refused_when_the_callback_is_made(tmp_path: Path) -> None:
    ledger = gp.Ledger(tmp_path / "gp.db")
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        GreenprintCallback(ledger=ledger)


def test_a_wrong_trainer_or_module_is_a_config_error(tmp_path: Path) -> None:
    cb = GreenprintCallback(ledger=False)
    trainer = _trainer(tmp_path, cb, logger=False)
    with pytest.raises(ConfigError, match="Trainer"):
        cb.on_fit_start(object(), Regressor())
    with pytest.raises(ConfigError, match="LightningModule"):
        cb.on_fit_start(trainer, torch.nn.Linear(2, 2))
    assert cb.run is None


def _one_thread() -> dict[str, str]:
    """The test's environment as it is now (conftest's empty sysfs roots, no GREENPRINT_* of the
    user's), with torch on one thread in the scripts, as in this module's tests (the pool's
    spinning threads cost more CPU than they save on tiny modules)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env=_one_thread(),
    )


def test_scripts_run_in_the_tests_environment(tmp_path: Path) -> None:
    """The scripts here see the environment of the test that runs them, as the meters' isolation
    needs (its sysfs roots point at empty folders), not the one at collection; one torch thread."""
    done = _python(
        """
        import os
        print(os.environ.get("GREENPRINT_RAPL_ROOT"), os.environ.get("OMP_NUM_THREADS"))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [os.environ["GREENPRINT_RAPL_ROOT"], "1"]


def test_without_lightning_the_import_error_names_the_extra(tmp_path: Path) -> None:
    done = _python(
        """
        import sys
        sys.modules["lightning"] = sys.modules["pytorch_lightning"] = None
        from greenprint import MissingDependencyError
        try:
            import greenprint.integrations.lightning
        except MissingDependencyError as e:
            print(e)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'greenprint[lightning]'" in done.stdout


#: greenprint's modules that take Lightning when imported (its ``_pl`` at module level)
_GP_LIGHTNING = ("lightning", "_pl_trainer", "_pl_evaluations", "_pl_fpo")


def test_pytorch_lightning_alone_is_supported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``lightning`` not importable, the callback derives from ``pytorch_lightning``'s
    ``Callback`` and measures its fit.

    In this process, not a new one (a new interpreter imported torch and the whole of
    ``pytorch_lightning``: 8 s of CPU; here torch and the modules it shares with ``lightning``
    are imported already): ``lightning`` and its modules are out of ``sys.modules`` (``None``
    for ``lightning``, as a missing package reads) and greenprint's Lightning modules are
    imported again, as a process without ``lightning`` imports them; all put back after."""
    pytest.importorskip("pytorch_lightning")
    import greenprint.integrations as integrations

    for name in [n for n in sys.modules if n == "lightning" or n.startswith("lightning.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lightning", None)
    for name in _GP_LIGHTNING:
        monkeypatch.delitem(sys.modules, f"greenprint.integrations.{name}", raising=False)
        monkeypatch.delattr(integrations, name, raising=False)  # put back after, as it was
    import pytorch_lightning as alone

    from greenprint.integrations.lightning import GreenprintCallback as AloneCallback

    assert issubclass(AloneCallback, alone.Callback)
    assert not issubclass(AloneCallback, pl.Callback)

    class M(alone.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, i):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    ds = TensorDataset(torch.randn(32, 4))
    db = tmp_path / "gp.db"
    cb = AloneCallback("pl", ledger=db, study="pl", **FAST)
    trainer = alone.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[cb],
    )
    trainer.fit(M(), DataLoader(ds, batch_size=8))
    assert [(r.name, r.status) for r in gp.Ledger(db).runs(study="pl")] == [("pl", "finished")]


@pytest.mark.slow
def test_ddp_meters_once_per_node_and_other_ranks_are_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``strategy="ddp_spawn"`` on two CPU ranks (gloo): local rank 0 meters the node, rank 1 is
    its part with no energy of its own, each counts its own FPO, and the logged energy is the
    node's.

    ``fit`` is called in this process, as a notebook or a function calls it (``ddp_spawn`` is
    Lightning's strategy for them): the ranks are new processes (``spawn``) that import
    Lightning and unpickle the Trainer, its callback and the module (``DDPRegressor``, defined
    in a module of its own for that); this process is their launcher, as a script's would be. A
    script as the launcher imported Lightning a third time (8 s of CPU of the test's 30).
    """
    from _tiny_lightning import DDPRegressor

    # Lightning sets the master port in the launcher's environment: restored after the test
    for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the spawned ranks: tiny models, one thread
    db = tmp_path / "gp.db"
    cb = GreenprintCallback("ddp", study="ddp", ledger=db, count_fpo=True, **FAST)
    trainer = _trainer(tmp_path, cb, logger=False, devices=2, strategy="ddp_spawn")
    ds = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    trainer.fit(DDPRegressor(), DataLoader(ds, batch_size=16))
    records = {r.name: r for r in gp.Ledger(db).runs(study="ddp")}
    assert set(records) == {"ddp", "ddp-rank1"}
    node, part = records["ddp"], records["ddp-rank1"]
    assert (node.status, node.role, node.parent_id) == ("finished", None, None)
    assert (part.status, part.role, part.parent_id) == ("finished", "part", node.id)
    assert node.energy_kwh > 0 and part.energy_kwh == 0  # one meter per node
    assert part.provenance.get("cpu") is None
    # each rank counted its own steps: 64 samples / 2 ranks / 16 per batch = 2 batches x 2 epochs
    assert node.fpo == part.fpo and node.fpo > 0
    # the logged energy is summed over ranks: the node's, as metered by local rank 0 (rank 0's
    # figures come back to the launcher)
    logged = float(trainer.callback_metrics["greenprint/energy_kwh"])
    assert 0 < logged <= node.energy_kwh


def test_log_figures_false_keeps_the_loggers_clean(tmp_path: Path) -> None:
    cb = GreenprintCallback(ledger=False, log_figures=False, **FAST)
    trainer = _trainer(tmp_path, cb, max_epochs=1)
    trainer.fit(Regressor(), _data())
    assert not any(k.startswith("greenprint/") for k in trainer.callback_metrics)
    assert cb.run.status == "finished" and cb.run.energy_kwh > 0


def test_a_dataset_size_given_wins_and_an_iterable_dataset_records_none(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = GreenprintCallback("given", study="d", ledger=db, dataset_size=1000, **FAST)
    _trainer(tmp_path, cb, max_epochs=1).fit(Regressor(lr=0.05), _data())

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            gen = torch.Generator().manual_seed(0)
            for _ in range(32):
                yield torch.randn(4, generator=gen), torch.randn(1, generator=gen)

    cb = GreenprintCallback("stream", study="d", ledger=db, **FAST)
    _trainer(tmp_path, cb, max_epochs=1).fit(Regressor(lr=0.05), DataLoader(Stream(), 16))
    # an epoch of 2 of the 4 batches trains on 32 of the 64 examples (it read 64: a learning
    # curve by limit_train_batches had one size)
    cb = GreenprintCallback("half", study="d", ledger=db, **FAST)
    _trainer(tmp_path, cb, max_epochs=1, limit_train_batches=0.5).fit(Regressor(), _data())
    sizes = {r.name: r.dataset_size for r in gp.Ledger(db).runs(study="d")}
    assert sizes == {"given": 1000, "stream": None, "half": 32}
