"""What the Hugging Face callback reads of a Trainer's arguments and state.

The ``TrainingArguments`` recorded as a run's params and those that only set how a training
runs, the examples ``max_steps`` reaches, the processes of a training and their agreement to
stop, the checkpoint folder of a step and the file beside it that names its run, the
evaluation ``load_best_model_at_end`` kept, a run renamed once ``on_train_begin`` names it,
and a node's process other than its first (a part of the node's run, no meter of its own).

Private: :mod:`greenprint.integrations.transformers` is the public module.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._imports import require
from greenprint.integrations._dl import (
    metric_values,
    plain_params,
    rank_meters,
    share_node_run_id,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run


#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.transformers")

_PURPOSE = "greenprint.integrations.transformers"
_transformers = require("transformers", extra="transformers", purpose=_PURPOSE)

#: The file beside each checkpoint that names the run that saved it (``{"run_id": ...}``).
RUN_FILE = "greenprint_run.json"


#: TrainingArguments recorded as run params.
_ARGS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "seed",
)


#: The params that set how a training runs, not the model's configuration: every
#: TrainingArguments field (those recorded above, ``load_best_model_at_end``, and any of your
#: ``params`` named as one). A later training of the same model that differs only in them (a
#: fine-tune at another learning rate, for other epochs, into another folder) continues the
#: earlier one (:func:`~greenprint.integrations._dl.trained_again`).
_SCHEDULE = frozenset(field.name for field in dataclasses.fields(_transformers.TrainingArguments))


def _args_params(args: Any) -> dict[str, Any]:
    """The TrainingArguments recorded as a run's params (:data:`_ARGS`).

    The Trainer trains ``max_steps`` optimizer steps when it is set (> 0) and then ignores
    ``num_train_epochs``; else it trains ``num_train_epochs`` (``max_steps`` -1): the one that
    rules is kept.
    """
    params = plain_params({key: getattr(args, key, None) for key in _ARGS})
    steps = getattr(args, "max_steps", -1)
    if isinstance(steps, int) and steps > 0:
        params.pop("num_train_epochs", None)
    else:
        params.pop("max_steps", None)
    return params


def _calling_kind() -> str:
    """``"predict"`` inside a ``Trainer.predict`` call, else ``"evaluate"``.

    The nearest caller's frame that is a Trainer's ``evaluate`` or ``predict`` (a subclass's
    too) says which: ``on_prediction_step`` does not (both run the same evaluation loop).
    """
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_name
        if name in ("evaluate", "predict") and isinstance(
            frame.f_locals.get("self"), _transformers.Trainer
        ):
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "evaluate"


def _within_max_steps(args: Any, size: int) -> int:
    """The examples training reaches: ``size``, or fewer when ``max_steps`` ends it sooner.

    ``max_steps`` optimizer steps of ``train_batch_size`` x gradient accumulation x processes
    examples each, when that is less than one pass over the ``size`` examples.
    """
    steps = getattr(args, "max_steps", -1)
    if not isinstance(steps, int) or steps <= 0:
        return size
    batch = getattr(args, "train_batch_size", None) or getattr(
        args, "per_device_train_batch_size", None
    )
    accumulation = getattr(args, "gradient_accumulation_steps", 1) or 1
    if not isinstance(batch, int) or not isinstance(accumulation, int):
        return size
    return max(1, min(size, steps * batch * accumulation * _world_size(args)))


def _world_size(args: Any) -> int:
    return int(getattr(args, "world_size", 1) or 1)


def _any_process(stop: bool, args: Any) -> bool:
    """Whether any process of the training says stop (a MAX all-reduce of one flag)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return stop
    flag = torch.tensor([1 if stop else 0], device=args.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _stop_training(args: Any, control: Any) -> None:
    """Ask the Trainer to end training after this step, as ``EarlyStoppingCallback`` does.

    With a ``"steps"`` or ``"epoch"`` save strategy the step is saved too (a checkpoint of the
    training paid for); ``"best"`` and ``"no"`` keep their own rule.
    """
    control.should_training_stop = True
    strategy = getattr(args, "save_strategy", "no")
    if str(getattr(strategy, "value", strategy)) in ("steps", "epoch"):
        control.should_save = True


def _checkpoint_folder(args: Any, state: Any) -> str | None:
    """The folder the Trainer saves the checkpoint of the current step in (``None``: unknown)."""
    output_dir = getattr(args, "output_dir", None)
    if not isinstance(output_dir, (str, os.PathLike)):
        return None
    return os.path.join(os.fspath(output_dir), f"checkpoint-{state.global_step}")


def _best_metric_key(args: Any) -> str:
    """The evaluation metric ``load_best_model_at_end`` compares, as the Trainer names it."""
    name = getattr(args, "metric_for_best_model", None) or "loss"
    return name if name.startswith("eval_") else f"eval_{name}"


def _best_evaluation(args: Any, state: Any) -> dict[str, float]:
    """The evaluation metrics of the checkpoint ``load_best_model_at_end`` loaded, else none.

    The Trainer loads the best checkpoint (``state.best_model_checkpoint``, saved at
    ``state.best_global_step``) before ``on_train_end``; its evaluation is the entry of
    ``state.log_history`` at that step that holds the compared metric at ``state.best_metric``.
    """
    if not getattr(args, "load_best_model_at_end", False):
        return {}
    best = getattr(state, "best_metric", None)
    if best is None or getattr(state, "best_model_checkpoint", None) is None:
        return {}
    key = _best_metric_key(args)
    step = getattr(state, "best_global_step", None)
    for logs in reversed(getattr(state, "log_history", None) or []):
        if key in logs and logs[key] == best and (step is None or logs.get("step") == step):
            return {k: v for k, v in metric_values(logs).items() if k.startswith("eval_")}
    return {}


def _is_evaluation(logs: Mapping[str, Any]) -> bool:
    """Whether ``logs`` are an evaluation's metrics (``<prefix>_runtime``, prefix not ``train``)."""
    return any(
        isinstance(key, str) and key.endswith("_runtime") and key != "train_runtime" for key in logs
    )


def _start_rank_part(
    name: str, args: Any, local: int, params: dict[str, Any], options: dict[str, Any]
) -> Run:
    """The run of a node's process other than its first: a part of the node's run.

    Its parent is the id the node's first process shares (:func:`share_node_run_id`); it reads
    no meter (one meter per node; with ``meters=[]`` the node's run has none either, and this
    run's energy is unknown as the node's, never a 0 share in the logs: :func:`rank_meters`)
    and has no role of its own but ``part``.
    """
    from greenprint.tracking import track

    rest = {key: value for key, value in options.items() if key not in ("role", "meters")}
    return track(
        f"{name}-rank{getattr(args, 'process_index', local)}",
        params=params,
        role="part",
        parent=share_node_run_id(socket.gethostname(), local, None),
        meters=rank_meters(options.get("meters")),
        **rest,
    ).start()


def _rename(run: Run, name: str) -> None:
    """Give a running run the name ``on_train_begin`` found (the ledger's record too).

    A run started at the ``train`` call is named before the Trainer knows everything that
    names it (your ``hp_name``, a ``model_init`` model's class). ``run.set(name=...)``: a
    ledger that cannot take it now is a warning, and the name is written with the run's next
    write.
    """
    if run.name == name:
        return
    try:
        run.set(name=name)  # a ledger that cannot take it now: a warning, written later
    except ConfigError as e:  # a name the ledger cannot store: the run keeps its first one
        logger.warning("greenprint: could not rename run %s to %r: %s", run.id[:8], name, e)


def _explicit_run_name(args: Any) -> str | None:
    """``args.run_name`` when the user set it (transformers defaults it to the output dir)."""
    run_name = getattr(args, "run_name", None)
    output_dir = getattr(args, "output_dir", None)
    if not run_name or run_name == output_dir:
        return None
    return str(run_name)


def _check_args(args: Any, state: Any) -> None:
    if not isinstance(args, _transformers.TrainingArguments):
        raise ConfigError(
            f"GreenprintCallback needs transformers.TrainingArguments, not {type(args).__name__}"
        )
    if not isinstance(state, _transformers.TrainerState):
        raise ConfigError(
            f"GreenprintCallback needs a transformers.TrainerState, not {type(state).__name__}"
        )
