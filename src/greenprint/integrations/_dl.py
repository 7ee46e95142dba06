"""What the deep-learning integrations (Lightning, Hugging Face Trainer) share.

A training framework calls greenprint from its own hooks, so a run is started and stopped by
hand here instead of by ``with gp.track(...)``. This module reads a running run's live figures
as the framework's loggers want them and makes the meterless stand-in that ranks other than a
node's first use (one meter per node). A callback's options are checked when it is made by
:func:`greenprint.integrations._common.check_run_options`, as every integration's are.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import GreenprintError, UnknownRunError
from greenprint._resume import continue_from, record_link
from greenprint._units import JOULES_PER_KWH

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.meters._base import MeterReading
    from greenprint.tracking import Run

__all__ = [
    "FIGURE_PREFIX",
    "LiveFigures",
    "NoMeters",
    "append_metrics",
    "asks_no_meter",
    "continue_from",
    "end_evaluation",
    "energy_metered",
    "last_training",
    "metric_values",
    "part_of",
    "plain_params",
    "rank_meters",
    "refresh",
    "same_ledger",
    "share_node_run_id",
    "take_waiting_parts",
    "trained_again",
    "trained_run",
    "waiting_parts",
    "weak_ref",
]

logger = logging.getLogger(__name__)

#: Prefix of the names under which the integrations log greenprint's figures.
FIGURE_PREFIX = "greenprint/"


def plain_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Hyper-parameters as the ledger keeps them: numbers, text, bools and ``None``.

    Anything else (a tensor, a list, a config object) is kept as its ``str``; keys become text.
    """
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None or isinstance(value, (bool, str)):
            out[str(key)] = value
        elif isinstance(value, numbers.Integral):
            out[str(key)] = int(value)
        elif isinstance(value, numbers.Real):
            out[str(key)] = float(value)
        else:
            out[str(key)] = str(value)
    return out


def metric_values(
    metrics: Mapping[str, Any], *, skip_prefix: str = FIGURE_PREFIX
) -> dict[str, float]:
    """The numeric entries of a framework's metrics (floats, ints, 0-d tensors).

    Entries whose name starts with ``skip_prefix`` (greenprint's own figures) and anything that
    is not one number are left out. A value that is not finite (a loss that diverged to
    infinity or NaN, as Lightning's ``EarlyStopping(check_finite=True)`` stops on) is kept as
    NaN: the run's last value then says it has no score, which a report counts as the worst,
    instead of the last finite value of an earlier epoch (and an infinite score, which the
    analyses refuse, never reaches the ledger).
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or key.startswith(skip_prefix) or isinstance(value, bool):
            continue
        item = getattr(value, "item", None)
        if item is not None and getattr(value, "numel", lambda: 1)() == 1:
            try:
                value = item()
            except (ValueError, RuntimeError):  # an array of several values, a meta tensor
                continue
        if isinstance(value, numbers.Real):
            out[key] = float(value) if math.isfinite(float(value)) else math.nan
    return out


def append_metrics(run: Run, values: Mapping[str, float], *, step: int | None) -> None:
    """Append metric points to an ended run's record in its ledger.

    As ``run.log`` after the run's end does, but each value taken as ``float(v)`` (a
    framework's values: never a ConfigError into its loop).

    For what the framework evaluates after the run's training ended (a search trial's last
    evaluation, ``trainer.evaluate()`` or ``trainer.test()`` after training): the scores of
    the model the run trained. A ledger that cannot take them is logged as a warning, never
    raised into the framework.
    """
    from greenprint._records import MetricPoint

    ledger = run.ledger
    if ledger is None or not values:
        return
    now = time.time()
    points = [MetricPoint(name, float(v), step, now) for name, v in values.items()]
    try:
        ledger.flush(run.id, metrics=points)
    except GreenprintError as e:  # the run stays as recorded; never stop the framework
        logger.warning("greenprint: could not add %s to run %s: %s", ", ".join(values), run.id, e)


def _sampled(run: Run) -> tuple[float, float, float]:
    """The run's energy (kWh) and CO2-eq (kg) so far and the time they refer to, read at once.

    Read apart, a meter sample landing between the energy and its time (the sampler thread)
    paired an earlier energy with a later time: a power 0.2 % low at a constant 360 W.
    """
    with run._lock:
        account = run._account
        if account is None:
            return 0.0, 0.0, 0.0
        return account.energy_kwh, account.emissions_kg, account.last_t


def refresh(run: Run) -> None:
    """Read the run's meters now, so that its figures are current at an epoch or log boundary.

    The run otherwise accounts energy once per ``sample_interval_s``; a read here is bounded by
    the meters' own deadline and, as every meter read, never raises into the training loop.
    """
    if run.status != "running":
        return
    try:
        run._sample(wait_s=0.05)  # at the framework's pace
    except Exception:  # a failing meter must not stop training; the sampler logs it too
        return


#: The roles of a run of this process whose trainings, run inside it, are its parts: a trial's
#: fit (an Optuna trial's, a cross-validation fold's), the final model's, a learning-curve
#: point's (a sweep's children are its trials).
_HOLDS_PARTS = ("trial", "part", "final", "baseline", "learning-curve")


def role_inside(options: Mapping[str, Any]) -> str | None:
    """The role of a training's run: the one given, else the one its enclosing run makes it.

    A training given no role inside a run that holds parts (an Optuna trial's run, a run of
    yours given ``role="trial"`` or ``"final"``, a fold) is a ``part`` of it, and one inside a
    ``sweep`` is a ``trial``: said, not left for the report to infer (it read ``part*`` in
    ``greenprint ledger ls --tree``, the report's note asked for ``set-role``, and MLflow, W&B
    and TensorBoard tagged it inferred), as the evaluations beside it were. ``None`` when
    nothing encloses it here (a top-level training), its enclosing run has no role, or a
    ``parent`` is given.
    """
    given = options.get("role")
    if given is not None or options.get("parent") is not None:
        return given
    from greenprint import _lineage

    role = getattr(_lineage.enclosing(), "role", None)
    if role in _HOLDS_PARTS:
        return "part"
    return "trial" if role == "sweep" else None


#: The roles of a training whose later stages, given the same, continue it
#: (:func:`trained_again`): none given, or one that names the model trained (a stage given
#: ``role="final"`` then fitted again is still that final model); a learning curve's points,
#: parts and sweeps keep their runs apart.
_MODEL_ROLES = (None, "trial", "final", "baseline")

#: Each model's last training's run id, in this process (a module object, weakly: the entry goes
#: with it): a later training of the same object continues it (:func:`trained_again`).
_LAST_TRAINING: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def last_training(model: Any) -> str | None:
    """The run id of ``model``'s last training in this process (``None``: none known)."""
    try:
        return _LAST_TRAINING.get(model)
    except TypeError:  # not weakly referenceable, or unhashable
        return None


def trained_again(
    run: Run, model: Any, *, link: bool = True, schedule: str | frozenset[str] = ""
) -> None:
    """Record ``run`` as ``model``'s latest training; an earlier one becomes its part.

    A second training of the same model object in this process (two-stage fine-tuning: the
    head with the backbone frozen, then the whole model; or more epochs on a trained model)
    trains the weights the first left: one training, whose model is the last one's. With
    several processes (DDP: Lightning's ``strategy="ddp"``, a Hugging Face Trainer under
    ``torchrun``) only each node's local rank 0 calls it, with the node's run: the node's
    earlier training run, its other ranks' runs still its parts, is linked as below. The
    earlier training's run becomes a ``part`` of ``run``, ``contained`` false (it ran before,
    outside its measurement: the price tag adds it once), not a trial of its own. Only two
    top-level runs of one study (trainings inside a run of the user's are its parts already),
    of one name and of one configuration (their params, those that set the training's
    schedule left out), both given no role or the same role that names the model
    (``trial``, ``final``, ``baseline``): a loop of configurations that reuses one model
    object (``model.hparams.lr = lr`` then a fit, other params) is a search, one that changes
    only the schedule (a Hugging Face ``learning_rate`` per ``Trainer``) is one training
    continued, a model given ``role="final"`` and fitted twice is one final model costing
    both stages, and any other role given (each point of a learning curve over epochs, a
    ``part``, a ``sweep``), or two roles that differ, are kept (a trial given no role whose
    model is trained on with ``role="final"`` may be a search's best configuration, which
    stays one of its trials). Else nothing changes. A model that cannot be weakly referenced is
    not followed.

    Args:
        run: the running run of the training that starts now: a single process's, or with
            several processes the node's (local rank 0's, the other ranks' runs its parts).
        model: the model object it trains (a ``LightningModule``, a Hugging Face model).
        link: link the earlier training (``False``: only record this one, for a training
            resumed from a checkpoint, which is linked to the checkpoint's run instead).
        schedule: the params that set how a training runs, not the model's configuration,
            left out of the comparison: a prefix (Lightning's ``"trainer."``: its epochs,
            precision, accumulation) or a set of names (Hugging Face's ``TrainingArguments``
            fields: learning rate, epochs, ``max_steps``, seed, output folder). A second stage
            trained for more epochs or at another learning rate continues the first (``""``:
            every param compared).
    """
    try:
        earlier_id = _LAST_TRAINING.get(model)
        _LAST_TRAINING[model] = run.id
    except TypeError:  # not weakly referenceable, or unhashable
        return
    ledger = run.ledger
    if not link or earlier_id is None or ledger is None or run.parent_id is not None:
        return
    if earlier_id == run.id:
        return
    try:
        earlier = ledger.run(earlier_id)
    except UnknownRunError:  # the earlier training wrote to another ledger: one of its own
        return
    except GreenprintError as e:
        logger.warning("greenprint: could not read run %s: %s", earlier_id[:8], e)
        return
    if earlier.parent_id is not None or earlier.study != run.study:
        return
    # one configuration trained on: a loop of configurations reusing one model object (other
    # params or names: a search) is not one training, nor are runs given other roles (each
    # point of a learning curve over epochs), or two roles that differ
    record = run.record
    if earlier.name != record.name or _configured(earlier.params, schedule) != _configured(
        record.params, schedule
    ):
        return
    if record.role not in _MODEL_ROLES or earlier.role != record.role:
        return
    record_link(
        ledger, earlier_id, {"parent_id": run.id, "role": "part", "contained": False}, run.id
    )


#: Each model's runs waiting for its next training to take them as parts, in this process (a
#: Lightning ``fast_dev_run`` fit, an evaluation of a model no known run trained): see
#: :func:`waiting_parts`.
_WAITING: weakref.WeakKeyDictionary[Any, list[Run]] = weakref.WeakKeyDictionary()


def waiting_parts(model: Any, *, take: bool = False) -> list[Run]:
    """The runs about ``model`` that wait for its next training to take them as parts.

    A Lightning ``fast_dev_run`` fit, or an evaluation of a model that no known run trained
    (the untrained model validated before its training): appended to the list returned.
    ``take``: hand them over (the list is emptied), for the training that starts now. A model
    that cannot be weakly referenced keeps none: its runs stay parts of no run.
    """
    try:
        runs = _WAITING.pop(model, []) if take else _WAITING.setdefault(model, [])
    except TypeError:  # not weakly referenceable, or unhashable
        return []
    return runs


def take_waiting_parts(run: Run, model: Any) -> None:
    """Make the runs waiting for ``model``'s next training (:func:`waiting_parts`) parts of ``run``.

    Only those still top-level, of ``run``'s study and ledger; each is recorded ``contained``
    false (it ran before ``run``, outside its measurement: the price tag adds it once).
    """
    for waiting in waiting_parts(model, take=True):
        if waiting.parent_id is None and waiting.study == run.study and same_ledger(waiting, run):
            part_of(run.id, waiting)


def weak_ref(obj: Any) -> weakref.ref[Any] | None:
    """A weak reference to ``obj``, ``None`` when it cannot be weakly referenced."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


def trained_run(run: Run, candidates: list[str | None]) -> str | None:
    """The first of ``candidates`` that is an ended run of ``run``'s ledger and study.

    For an evaluation outside a training (``run``): the runs that may have trained the model
    it evaluates, most likely first. One not in the ledger (another ledger's, deleted), of
    another study, still running, or ``run`` itself is passed over. Inside a run of the
    user's (``run`` has a parent), none: that run holds the evaluation's cost.
    """
    ledger = run.ledger
    if ledger is None or run.parent_id is not None:
        return None
    for run_id in candidates:
        if not isinstance(run_id, str) or not run_id or run_id == run.id:
            continue
        try:
            trained = ledger.run(run_id)
        except GreenprintError as e:  # another ledger's run, or a deleted one
            logger.debug("greenprint: run %s is not in the ledger: %s", run_id[:8], e)
            continue
        if trained.study == run.study and trained.status != "running":
            return run_id
    return None


def end_evaluation(
    run: Run | None, status: str, error: str | None, *, trained_by: str | None, model: Any
) -> None:
    """End the run of an evaluation outside a training; link it to the model's training.

    Of a model a known run trained (``trained_by``), it becomes a ``part`` of that run,
    ``contained`` false (it ran after it: the price tag adds it once). One of no known
    training with role ``part`` waits for the next training of ``model`` in this process,
    which takes it as its part (:func:`take_waiting_parts`). Inside a run of the user's, it
    stays that run's part. A run not running (ended already) is left as it is.
    """
    if run is None or run.status != "running":
        return
    run.stop(status=status, error=error)
    if run.parent_id is not None:  # inside a run of the user's, which holds its cost
        return
    if trained_by is not None:
        part_of(trained_by, run)
    elif run.role == "part" and model is not None:
        waiting_parts(model).append(run)


def same_ledger(one: Run, other: Run) -> bool:
    """Whether two runs write to the same ledger."""
    if one.ledger is None or other.ledger is None:
        return False
    return bool(one.ledger.url_unmasked == other.ledger.url_unmasked)


def part_of(parent_id: str | None, run: Run) -> None:
    """Record ``run`` (ended before or after run ``parent_id``) as a part outside that run.

    ``contained`` false: it ran outside that run's measurement, so the price tag adds it once.
    A ledger that cannot take it is logged as a warning, never raised into the framework.
    """
    ledger = run.ledger
    if ledger is None or not parent_id or not run.id:
        return
    try:
        ledger.flush(run.id, fields={"parent_id": parent_id, "role": "part", "contained": False})
    except GreenprintError as e:
        logger.warning(
            "greenprint: could not record run %s as a part of run %s: %s",
            run.id[:8],
            parent_id[:8],
            e,
        )


def _configured(params: Mapping[str, Any], schedule: str | frozenset[str]) -> dict[str, Any]:
    """``params`` without those that set the schedule.

    Those whose name starts with ``schedule`` (a prefix; none when it is ``""``), or whose name
    is in it (a set of names).
    """
    if isinstance(schedule, str):
        if not schedule:
            return dict(params)
        return {k: v for k, v in params.items() if not k.startswith(schedule)}
    return {k: v for k, v in params.items() if k not in schedule}


def share_node_run_id(node: object, local_rank: int, own_id: str | None) -> str | None:
    """The run id of local rank 0 on this node, exchanged between every rank.

    A collective: every rank of the job must call it (with ``own_id`` ``None`` except on local
    rank 0). Without an initialised ``torch.distributed`` process group, ``own_id`` (or the run
    a launcher exported through ``GREENPRINT_PARENT_RUN``) is returned.

    Args:
        node: what identifies this node (a node rank or host name), the same on its ranks.
        local_rank: this process's rank on the node.
        own_id: this process's run id when it is local rank 0.
    """
    import os

    import torch.distributed as dist

    from greenprint._lineage import PARENT_ENV

    if not (dist.is_available() and dist.is_initialized()):
        return own_id or os.environ.get(PARENT_ENV) or None
    entries: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(entries, (node, int(local_rank), own_id))
    for entry_node, entry_local, run_id in entries:
        if entry_node == node and entry_local == 0:
            return run_id
    return None


def asks_no_meter(meters: Any) -> bool:
    """Whether a ``meters`` option asks for no energy meter: ``[]``, or a set with no component.

    A run started with it measures nothing (:func:`energy_metered` false). Read from the
    options, not from a run, it is the same on every rank of a job given the same callback, so
    the ranks can decide by it together (a collective log needs all of them, or none).
    """
    return meters is not None and not tuple(getattr(meters, "components", ()) or ())


def rank_meters(node_meters: Any) -> Any:
    """The meters of a rank that is not its node's local rank 0, given the node's option.

    :class:`NoMeters` when the node is metered (its run reads the node: this rank's share is
    0 of a known figure); ``[]`` when the node's run has no energy meter either
    (:func:`asks_no_meter`): the rank's energy is then unknown, as its node's, never a 0 share.
    """
    return [] if asks_no_meter(node_meters) else NoMeters()


def energy_metered(run: Run) -> bool:
    """Whether a started run measures energy: ``False`` for one with no meter (``meters=[]``).

    Such a run's energy and CO2-eq are unknown, never 0 (its record's
    :attr:`~greenprint.RunRecord.energy_recorded` is false): a logger leaves them out. A rank
    whose node another rank meters (:class:`NoMeters`) counts as metered: its own share is 0,
    inside that rank's run (and a collective log, Lightning's ``sync_dist``, needs every rank).
    A rank of a node with no meter has none either (:func:`rank_meters`): not metered.
    """
    if isinstance(getattr(run, "_options", {}).get("meters"), NoMeters):
        return True
    meters = getattr(run, "_meters", None)
    return meters is None or bool(getattr(meters, "components", ()))


class LiveFigures:
    """A run's figures as loggers want them: totals so far and mean power over a window.

    A run with no energy meter (:func:`energy_metered` false) has none of them: :meth:`read`
    returns an empty dict (its energy is unknown, never 0).

    Args:
        run: the running run.
        min_window_s: shortest span, in s, over which power is averaged; reads closer together
            repeat the last value (energy is accounted at meter reads, and the CPU time behind
            an estimate ticks every 10 ms, so a power over a few ms would be noise). Default:
            the run's sample interval, at least 0.5 s.
    """

    def __init__(self, run: Run, *, min_window_s: float | None = None) -> None:
        self._run = run
        default_s = max(run._sample_s, 0.5)  # the run's own sampling pace
        self._window_s = default_s if min_window_s is None else min_window_s
        self._last_kwh = 0.0
        self._last_kg = 0.0
        self._anchor_kwh = 0.0
        self._anchor_t = run._last_sample_t  # the time the figures refer to
        self._power_w = 0.0

    def read(self) -> dict[str, float]:
        """``energy_kwh``, ``emissions_kg`` (so far), ``power_w`` (mean over the last window).

        Also ``delta_energy_kwh`` and ``delta_emissions_kg``: what was added since the last
        read. Before a whole window has passed, the power is the mean since the run started.
        Empty for a run with no energy meter.
        """
        if not energy_metered(self._run):
            return {}
        kwh, kg, t = _sampled(self._run)
        span = t - self._anchor_t
        if span >= self._window_s:
            self._power_w = (kwh - self._anchor_kwh) * JOULES_PER_KWH / span
            self._anchor_kwh, self._anchor_t = kwh, t
        elif not self._power_w and span > 0:
            self._power_w = (kwh - self._anchor_kwh) * JOULES_PER_KWH / span
        figures = {
            "energy_kwh": kwh,
            "emissions_kg": kg,
            "power_w": self._power_w,
            "delta_energy_kwh": kwh - self._last_kwh,
            "delta_emissions_kg": kg - self._last_kg,
        }
        self._last_kwh, self._last_kg = kwh, kg
        return figures


class NoMeters:
    """A meter set that measures nothing: the runs of ranks whose node is metered by another.

    One process per node reads the hardware (its run attributes the whole node's job processes);
    the other ranks still record their time, metrics and FPO as parts of it, with no energy of
    their own, so nothing is counted twice.
    """

    components: tuple[str, ...] = ()
    provenance: dict[str, str] = {}  # read-only, as the contract says

    def start(self) -> None:
        """Nothing to start."""

    def read(self) -> dict[str, MeterReading]:
        """No readings."""
        return {}

    def close(self) -> None:
        """Nothing to close."""
