"""A Hugging Face training's run: started at the ``train`` call or at ``on_train_begin``.

:class:`_TrainingRuns`, a base of the callback: the run's options and params, its start (one
meter per node, the node's other processes its parts), what ``on_train_begin`` adds to a run
started at the call, the run of a checkpoint's training taken as a part of a resumed one,
and the run's end.

Private: :mod:`greenprint.integrations.transformers` is the public module.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import warnings
import weakref
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._format import and_list
from greenprint._imports import require
from greenprint.integrations._common import options_now
from greenprint.integrations._dl import (
    LiveFigures,
    continue_from,
    plain_params,
    role_inside,
    share_node_run_id,
)
from greenprint.integrations._hf_args import (
    RUN_FILE,
    _args_params,
    _best_metric_key,
    _checkpoint_folder,
    _explicit_run_name,
    _rename,
    _start_rank_part,
    _world_size,
)
from greenprint.integrations._hf_search import _suggested_params, _trial_name_of

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run


#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.transformers")

_PURPOSE = "greenprint.integrations.transformers"
_transformers = require("transformers", extra="transformers", purpose=_PURPOSE)


def keep_once(callbacks: list[Any], callback: Any) -> int:
    """Remove the places of ``callback`` in ``callbacks`` after its first; how many there were.

    ``Trainer(callbacks=[cb, cb])`` (or ``trainer.add_callback(cb)`` of a callback it has)
    lists one callback twice: Hugging Face logs a warning and calls each of its hooks twice,
    so a second ``on_train_begin`` of the same training ended its run ``failed`` ("training
    ended without on_train_end") and started another. Only later places are removed: the
    Trainer's loop over the list, at the first place now, calls the callbacks after it.
    """
    places = [i for i, c in enumerate(callbacks) if c is callback]
    for i in reversed(places[1:]):
        del callbacks[i]
    return len(places)


#: The Trainers' callback handlers already warned of holding two GreenprintCallbacks or more
_WARNED_OTHERS: weakref.WeakSet[Any] = weakref.WeakSet()


def warn_other_callbacks(handler: Any, callback: Any, *, stacklevel: int) -> None:
    """Warn, once per Trainer, that ``handler`` lists other GreenprintCallbacks beside ``callback``.

    Two instances (one in ``Trainer(callbacks=[...])``, another attached; or two in the list)
    each record the training: a run of its own with meters of its own, the later a part of the
    earlier where they write one study (it opens inside it), so the machine is metered twice
    over (the totals count the part inside its parent once). Lightning refuses two at the
    Trainer's making (two stateful callbacks of one type); a Hugging Face Trainer takes them,
    so they are kept, with this warning. The handler, not the callback, remembers the warning:
    each of them sees it.
    """
    names = [c for c in handler.callbacks if isinstance(c, _TrainingRuns)]
    if len(names) < 2 or handler in _WARNED_OTHERS or callback not in names:
        return
    _WARNED_OTHERS.add(handler)
    # the named ones by name, the others counted: "(unnamed and unnamed)" said nothing
    named = [repr(c._name) for c in names if c._name]
    unnamed = len(names) - len(named)
    listed = and_list(named + ([f"{unnamed} unnamed"] if unnamed else [])) if named else ""
    warnings.warn(
        f"greenprint: this Trainer has {len(names)} GreenprintCallbacks"
        f"{f' ({listed})' if listed else ''}: each "
        "records the training as a run of its own with meters of its own, so it is metered "
        f"{'twice' if len(names) == 2 else f'{len(names)} times'} over (in one study, the later "
        "runs are parts of the first); keep one: attach the one given in callbacks=, or leave "
        "it out of them",
        UserWarning,
        stacklevel=stacklevel,
    )


class _TrainingRuns:
    """The run of a training: its start, what ``on_train_begin`` completes, its end."""

    def _once_in_callbacks(self) -> None:
        """Keep this callback once in the callbacks of the Trainer calling its hook now.

        Called first by the hooks that start something (``on_init_end``, ``on_train_begin``,
        ``on_prediction_step``): the Trainer's ``CallbackHandler.call_event`` is two frames
        up (the hook, then this). A callback listed twice is kept at its first place, with a
        warning; another GreenprintCallback beside it is warned of (:func:`warn_other_callbacks`);
        another caller (a test calling the hook) is left alone.
        """
        caller = sys._getframe(2).f_locals  # call_event's: the handler and the callback
        handler = caller.get("self")
        if caller.get("callback") is not self or not isinstance(
            handler, _transformers.trainer_callback.CallbackHandler
        ):
            return
        times = keep_once(handler.callbacks, self)
        if times > 1:
            self._warn_once(  # type: ignore[attr-defined]
                "listed twice",
                f"greenprint: this GreenprintCallback was {times} times in the Trainer's "
                "callbacks (Trainer(callbacks=[cb, cb]), or add_callback of one it had): kept "
                f"once (else each hook runs {times} times: a second run for one training, the "
                "first ended 'failed')",
            )
        warn_other_callbacks(handler, self, stacklevel=5)

    _options: dict[str, Any]
    _default_ledger: Any  # the configured ledger, pinned when the callback was made
    _name: str | None
    _run: Run | None
    _run_name: str | None
    _figures: LiveFigures | None
    _resume_path: Any
    _early_run: Run | None
    _early_trial: Any
    last_run_id: str | None

    if TYPE_CHECKING:  # pragma: no cover - the callback's other bases

        def _end_fpo(self) -> None: ...

        def _retrains_best(self, args: Any) -> bool: ...

        def _stop_evaluation(self, status: str, error: str | None) -> None: ...

    def _run_options(self, args: Any, *, starts: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``track`` options and the params of a training's run, from its arguments.

        ``starts``: for a run that starts now (``False``: one started at the ``train`` call,
        whose role is set already).
        """
        options = options_now(self._options, self._default_ledger)
        if not starts:
            options.pop("role", None)
        params = _args_params(args)
        if getattr(args, "load_best_model_at_end", False):  # the run is scored as kept
            params["load_best_model_at_end"] = True
            params["metric_for_best_model"] = _best_metric_key(args)
        params.update(options.pop("params", None) or {})
        return options, params

    def _start_run(
        self, name: str, params: dict[str, Any], options: dict[str, Any], args: Any
    ) -> Run:
        """Start a training's run: one meter per node, the node's other processes its parts.

        Every process must call it with several processes (an exchange of the node's run id).
        """
        from greenprint.tracking import track

        world = _world_size(args)
        local = int(getattr(args, "local_process_index", 0) or 0)
        role = role_inside(options)  # a training inside a trial's run is its part, said
        if role is not None:
            options = {**options, "role": role}
        if world <= 1:
            return track(name, params=params, **options).start()
        if local == 0:
            run = track(name, params=params, pid=os.getppid(), **options).start()
            share_node_run_id(socket.gethostname(), 0, run.id)
            return run
        return _start_rank_part(name, args, local, params, options)

    def _start_at_call(self, trainer: Any, trial: Any) -> None:
        """Start the run of an attached trainer's ``train`` call, at the call.

        The Trainer makes the model (``model_init``: for a real model, its loading from disk and
        onto the GPU), sets a search trial's hyper-parameters (``_hp_search_setup``), frees
        memory (a garbage collection), builds the data loader and the optimizer before it
        calls ``on_train_begin``: that time and energy are the training's. What is known now
        is recorded now: the name (a search trial's ``trial-<number>``; your ``hp_name``'s
        and a ``model_init`` model's class are set at ``on_train_begin``), the role, and the
        params outside a search (a trial's are set at ``on_train_begin``, once the Trainer
        has set them). A training that raises before ``on_train_begin`` ends ``failed`` with
        what was known (a trial's params that Optuna suggested by then).
        """
        self._stop_if_running("failed", "training ended without on_train_end (an exception)")
        self._stop_evaluation("failed", "the evaluation ended without its end hook (an exception)")
        args = trainer.args
        if not isinstance(args, _transformers.TrainingArguments):
            return  # on_train_begin says so (ConfigError), as without attach
        search = trial is not None
        options, params = self._run_options(args, starts=True)
        model = getattr(trainer, "model", None)
        name = self._name or _explicit_run_name(args)
        name = name or (type(model).__name__ if model is not None else "training")
        if search:
            params = plain_params(self._options.get("params") or {})  # args: the last trial's
            name = _trial_name_of(trial) or name
            options.setdefault("role", "trial")
        elif "role" not in options and self._retrains_best(args):
            options["role"] = "final"  # the retrain with the search's best hyper-parameters
        run = self._start_run(name, params, options, args)
        self._run = self._early_run = run
        self._early_trial = trial
        self._run_name = name
        self.last_run_id = run.id
        self._figures = LiveFigures(run)  # its power since the run began

    def _complete_run(
        self,
        run: Run,
        name: str,
        params: dict[str, Any],
        dataset_size: int | None,
        args: Any,
    ) -> None:
        """Record on a run started at the ``train`` call what ``on_train_begin`` knows."""
        fields: dict[str, Any] = {"params": params}
        if dataset_size is not None:
            fields["dataset_size"] = dataset_size
        run.set(**fields)  # checked as track(params=...) checks them at on_train_begin
        local = int(getattr(args, "local_process_index", 0) or 0)
        if _world_size(args) > 1 and local != 0:
            name = f"{name}-rank{getattr(args, 'process_index', local)}"
        _rename(run, name)

    def _continue(self, args: Any, state: Any) -> None:
        """Make the run of the checkpoint's training a part of this run (a resumed training)."""
        # the checkpoint given by its path, else (resume_from_checkpoint=True) the latest in
        # output_dir; never output_dir's of the same step for a path given: another training's
        if isinstance(self._resume_path, (str, os.PathLike)):
            folder: str | None = os.fspath(self._resume_path)
        else:
            folder = _checkpoint_folder(args, state)
        if folder is None:
            return
        try:
            with open(os.path.join(folder, RUN_FILE), encoding="utf-8") as f:
                earlier = json.load(f).get("run_id")
        except (OSError, ValueError, AttributeError) as e:
            logger.debug("greenprint: no run id read beside checkpoint %s: %s", folder, e)
            return
        if self._run is not None:
            continue_from(self._run, earlier, how="trainer.train(resume_from_checkpoint=...)")

    def _stop_if_running(self, status: str, error: str | None) -> None:
        self._end_fpo()
        run = self._run
        early, trial = self._early_run, self._early_trial
        self._early_run = self._early_trial = None
        if run is None or run.status != "running":
            return
        if early is run and trial is not None:  # a trial that ended before on_train_begin
            suggested = _suggested_params(trial)
            if suggested:
                try:
                    run.set(params=suggested)
                except ConfigError:  # pragma: no cover - Optuna's params are plain values
                    pass
        run.stop(status=status, error=error)
