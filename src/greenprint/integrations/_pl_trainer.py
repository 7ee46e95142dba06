"""What the Lightning callback reads of the Trainer, and the runs it starts beside a fit's.

Which Lightning is installed (``lightning.pytorch``, else ``pytorch_lightning``), the checks of
the Trainer and module, a finder among the callbacks, MLflow's autolog callbacks, the
debugging flags of a fit, the evaluation the Trainer runs, the examples an epoch's batch
limit keeps, the module's and Trainer's params, and the run of a finder or an evaluation (one
meter per node, the other ranks its parts).

Private: :mod:`greenprint.integrations.lightning` is the public module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError, MissingDependencyError
from greenprint._imports import is_available, require
from greenprint.integrations._dl import (
    plain_params,
    rank_meters,
    share_node_run_id,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run


_PURPOSE = "greenprint.integrations.lightning"


def _lightning() -> Any:
    """``lightning.pytorch`` if installed, else ``pytorch_lightning``.

    Raises:
        MissingDependencyError: neither is installed; names ``greenprint[lightning]``.
    """
    if is_available("lightning"):
        return require(
            "lightning.pytorch", extra="lightning", purpose=_PURPOSE, package="lightning"
        )
    if is_available("pytorch_lightning"):
        return require("pytorch_lightning", extra="lightning", purpose=_PURPOSE)
    raise MissingDependencyError("lightning", "lightning", _PURPOSE)


_pl = _lightning()


def _check_objects(trainer: Any, pl_module: Any) -> None:
    if not isinstance(trainer, _pl.Trainer):
        raise ConfigError(
            f"GreenprintCallback needs a {_pl.__name__}.Trainer, not {type(trainer).__name__}"
        )
    if not isinstance(pl_module, _pl.LightningModule):
        raise ConfigError(
            f"GreenprintCallback needs a {_pl.__name__}.LightningModule, "
            f"not {type(pl_module).__name__}"
        )


#: Lightning's finders that train the model in their ``on_fit_start``: class name -> run suffix.
_FINDERS = {"LearningRateFinder": "lr_find", "BatchSizeFinder": "scale_batch_size"}


def _finder_before(trainer: Any, callback: Any) -> str | None:
    """The run suffix of a finder among the Trainer's callbacks before ``callback``, if any."""
    for each in getattr(trainer, "callbacks", None) or ():
        if each is callback:
            return None
        for kind, suffix in _FINDERS.items():
            finder = getattr(_pl.callbacks, kind, None)
            if isinstance(finder, type) and isinstance(each, finder):
                return suffix
    return None


def _mlflow_autologs(trainer: Any) -> list[Any]:
    """The metrics loggers of ``mlflow.pytorch.autolog()``'s callbacks on ``trainer``.

    MLflow's autolog is no Lightning logger: it adds a callback of its own that logs
    ``trainer.callback_metrics`` (greenprint's figures among them) at each epoch's end, at
    the epoch's number, through a ``BatchMetricsLogger`` (``record_metrics(metrics, step)``,
    ``flush()``). None when MLflow's autolog is off.
    """
    found = []
    for each in getattr(trainer, "callbacks", None) or ():
        kind = type(each)
        if kind.__module__.startswith("mlflow.") and kind.__name__.endswith("MlflowPLCallback"):
            metrics = getattr(each, "metrics_logger", None)
            if callable(getattr(metrics, "record_metrics", None)) and callable(
                getattr(metrics, "flush", None)
            ):
                found.append(metrics)
    return found


def _dev_run(trainer: Any) -> tuple[str, int | float] | None:
    """The debugging flag of a fit and its value, ``None`` for a fit that is a training.

    ``("fast_dev_run", n)``: Lightning's "unit test" of the loops, n batches (``True``: 1).
    ``("overfit_batches", v)``: the check that the model can overfit a few batches (a
    fraction, or a number of batches), validated on those same training batches: its score
    says nothing of the configuration. ``limit_train_batches``/``limit_val_batches`` alone
    are a training on part of the data (a trial, with those params; see
    :func:`_trainer_params`).
    """
    value = getattr(trainer, "fast_dev_run", False)
    batches = int(value) if isinstance(value, bool) else value
    if isinstance(batches, int) and batches > 0:
        return "fast_dev_run", batches
    overfit = getattr(trainer, "overfit_batches", 0)
    if isinstance(overfit, (int, float)) and not isinstance(overfit, bool) and overfit > 0:
        return "overfit_batches", overfit
    return None


def _evaluation_kind(trainer: Any) -> str | None:
    """``"validate"``, ``"test"`` or ``"predict"`` while the Trainer runs one outside a fit."""
    state = getattr(trainer, "state", None)
    fn = getattr(state, "fn", None)
    value = getattr(fn, "value", fn)
    return value if value in ("validate", "test", "predict") else None


def _limited(trainer: Any, loader: Any, size: int) -> int:
    """``size`` examples, or those of the batches ``limit_train_batches`` keeps of an epoch.

    ``trainer.num_training_batches`` (each rank's, after the limit) below the loader's length:
    that many batches of ``loader.batch_size`` on each rank, at most ``size``.
    """
    batches = getattr(trainer, "num_training_batches", None)
    batch_size = getattr(loader, "batch_size", None)
    try:
        full = len(loader)
    except TypeError:  # no length: no limit to read
        return size
    if not isinstance(batches, int) or not isinstance(batch_size, int) or batches >= full:
        return size
    world = int(getattr(trainer, "world_size", 1) or 1)
    return max(1, min(size, batches * batch_size * world))


def _same(logged: tuple[int, float] | None, now: tuple[int, float]) -> bool:
    """Whether a metric's (step, value) is the one logged last (NaN equal to NaN)."""
    if logged is None or logged[0] != now[0]:
        return False
    return logged[1] == now[1] or (math.isnan(logged[1]) and math.isnan(now[1]))


def _module_params(pl_module: Any) -> dict[str, Any]:
    hparams = getattr(pl_module, "hparams", None)
    return plain_params(hparams if isinstance(hparams, Mapping) else {})


def _trainer_params(trainer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("max_epochs", "max_steps", "accumulate_grad_batches", "precision"):
        value = getattr(trainer, key, None)
        if value is not None and value != -1:
            out[f"trainer.{key}"] = value
    out["trainer.world_size"] = int(getattr(trainer, "world_size", 1))
    if _dev_run(trainer) is None:  # else set by the debugging flag, named by it
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(trainer, key, None)  # a fraction (1.0: all) or a number of batches
            whole = isinstance(value, float) and value == 1.0  # the int 1 is one batch
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not whole:
                out[f"trainer.{key}"] = value
    return plain_params(out)


def _node_root_pid(trainer: Any) -> int:
    """The process whose tree holds every rank on this node.

    Lightning's ``ddp`` launcher runs rank 0 in the script's process and starts the others as
    its children; ``ddp_spawn`` and external launchers (torchrun, SLURM) start every rank as a
    child of one launcher process.
    """
    launcher = getattr(trainer.strategy, "launcher", None)
    if launcher is not None and type(launcher).__name__ == "_SubprocessScriptLauncher":
        return os.getpid()
    return os.getppid()


def _metered_run(
    trainer: Any, name: str, params: dict[str, Any], role: str, options: dict[str, Any]
) -> Run:
    """The started run of a finder or an evaluation, one meter per node as the fit's.

    One process: a run of its own. Several (DDP): the node's local rank 0 meters the node's
    process tree and shares its run's id; the other ranks record parts of it
    (:func:`_rank_run`). ``options`` without a role.
    """
    from greenprint.tracking import track

    if int(getattr(trainer, "world_size", 1) or 1) <= 1:
        return track(name, params=params, role=role, **options).start()
    if trainer.local_rank != 0:
        return _rank_run(trainer, name, params, options)
    node_run: Run | None = None
    try:
        node_run = track(
            name, params=params, role=role, pid=_node_root_pid(trainer), **options
        ).start()
    finally:  # every rank takes part in the exchange, a run started or not
        _node_run_id(trainer, node_run.id if node_run is not None else None)
    return node_run


def _rank_run(trainer: Any, name: str, params: dict[str, Any], options: dict[str, Any]) -> Run:
    """The started run of a rank that is not its node's local rank 0 (DDP).

    A part of the node's run (its id from :func:`_node_run_id`'s exchange), reading no meter
    (one meter per node: the node's run has them; with ``meters=[]`` the node's has none, and
    the rank's energy is unknown as the node's, not a 0 share: :func:`rank_meters`).
    ``options`` without a role.
    """
    from greenprint.tracking import track

    meters = rank_meters(options.get("meters"))
    options = {k: v for k, v in options.items() if k != "meters"}
    return track(
        f"{name}-rank{trainer.global_rank}",
        params=params,
        role="part",
        parent=_node_run_id(trainer, None),
        meters=meters,
        **options,
    ).start()


def _node_run_id(trainer: Any, own_id: str | None) -> str | None:
    return share_node_run_id(int(trainer.node_rank), int(trainer.local_rank), own_id)
