"""What the user records in a run: :class:`RunMetrics` (``log``, ``set``, ``add_fpo``).

Everything is checked when it is recorded (a metric's value is a number, its step a 64-bit
integer; a field is one that can be set, a count one the ledger stores), so that a bad call
records nothing and a point the ledger would refuse never blocks the run's later writes.
Values recorded after the run's end (a test score computed after the ``with`` block) are
written at once; values logged in a forked child's copy of the run are written to its ledger
from the child; values logged to a run never started are said to go nowhere, once a process.
"""

from __future__ import annotations

import logging
import numbers
import os
import sys
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError, GreenprintError
from greenprint._provenance import merge_fpo_assumptions
from greenprint._records import MetricPoint, check_role
from greenprint._run_state import RunState
from greenprint._validate import (
    INT64_MAX,
    check_fpo,
    mapping_of_names,
    non_negative_int,
    optional_text,
    storable_text,
    stored_count,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo import FPOResult

__all__ = ["RunMetrics"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


class _NeverStarted:
    """What was logged to a run that has not started; said if it never does (see Run.log)."""

    __slots__ = ("name", "started", "study", "values")
    #: whether a run never started has been reported in this process (once: a loop of them)
    told = False

    def __init__(self, name: str, study: str) -> None:
        self.name, self.study = name, study
        self.values = 0
        self.started = False

    def tell(self) -> None:
        """At exit, or when the run is collected: say that what was logged is not recorded."""
        if self.started or not self.values or _NeverStarted.told:
            return
        _NeverStarted.told = True
        logger.warning(
            "greenprint: run %r (study %r) was never started: its %d logged value%s went "
            "nowhere; measure and record a run with `with gp.track(...) as run:`, "
            "`@gp.track`, or run.start() ... run.stop() (later runs never started are not "
            "reported)",
            self.name,
            self.study,
            self.values,
            "" if self.values == 1 else "s",
        )


def _metric_step(step: object) -> int | None:
    """A metric's step as an int the ledger stores (64 bits), or ``None``.

    A NumPy or other integral scalar is taken as its int; a bool, a float or text is refused.

    Raises:
        ConfigError: the step is not an integer, or does not fit in 64 bits.
    """
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ConfigError(f"a metric's step must be an integer, not {step!r:.60}")
    if abs(int(step)) > INT64_MAX:
        raise ConfigError(f"a metric's step must fit in 64 bits, not {int(step)}")
    return int(step)


def _metric_number(metric: str, value: Any) -> float:
    """A metric's value as a float: a number, a NumPy scalar, a tensor or array of one value.

    A tensor that requires grad is detached first (``float()`` on it warns from torch). Text is
    refused rather than parsed (``float("0.5")`` would take it), as is anything ``float()``
    cannot read (``None``, a complex number, a tensor of several values, a meta tensor).

    Raises:
        ConfigError: ``value`` is not a number; the message names the metric and its type.
    """
    if not isinstance(value, (str, bytes, bytearray)):
        if getattr(value, "requires_grad", False) and callable(getattr(value, "detach", None)):
            value = value.detach()
        try:
            return float(value)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: torch (a meta tensor)
            pass
        except OverflowError:  # an int beyond the largest float
            raise ConfigError(
                f"metric {metric!r} must be a number a float can hold (up to about 1.8e308), "
                f"not an integer of {value.bit_length() if isinstance(value, int) else '?'} bits"
            ) from None
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise ConfigError(
        f"metric {metric!r} must be a number (int, float, a NumPy scalar or a one-value "
        f"tensor), not {type(value).__name__}: {shown}"
        + ("; convert it with float() if it is one" if isinstance(value, str) else "")
    )


def _new_name(name: object) -> str:
    """A name ``run.set(name=...)`` can give: a non-empty string the ledger can store.

    Raises:
        ConfigError: anything else (``gp.track``'s name check, and not empty).
    """
    checked = optional_text("name", name)
    if checked is None or not checked.strip():
        raise ConfigError(f"name must be a non-empty string, not {name!r}")
    return checked


def _fpo_result(
    value: object,
) -> tuple[int, dict[str, int], dict[str, int], dict[str, str]] | None:
    """``(total, unknown_ops, complex_ops, assumptions)`` of an FPOResult, else ``None``.

    Without the counter imported nothing can be one: the check imports nothing.
    """
    if isinstance(value, int) or "greenprint.fpo._result" not in sys.modules:
        return None
    from greenprint.fpo._result import FPOResult

    if not isinstance(value, FPOResult):
        return None
    return (
        value.total,
        dict(value.unknown_ops),
        dict(value.complex_ops),
        {str(k): str(v) for k, v in (getattr(value, "assumptions", None) or {}).items()},
    )


_SETTABLE = frozenset({"params", "dataset_size", "fpo", "param_count", "role", "name"})


class RunMetrics(RunState):
    """Record metrics and facts (params, sizes, FPO, role, name) in a run."""

    #: what was logged before the run started, said if it never does (see :meth:`log`)
    _unstarted: _NeverStarted | None

    def log(
        self,
        metrics: Mapping[str, Any] | str | int | None = None,
        /,
        *args: Any,
        step: int | None = None,
        **values: Any,
    ) -> None:
        """Record metric values, e.g. ``run.log(accuracy=0.93, step=10)``.

        Names that are not Python identifiers go in one mapping, as other trackers take them:
        ``run.log({"eval/loss": 0.31}, step=10)`` or ``run.log({"eval/loss": 0.31}, 10)``
        (keywords may be added beside it). One metric may be given as a name and a value, as
        MLflow's ``log_metric`` takes it: ``run.log("eval/loss", 0.31, step=10)`` (the step
        then only as a keyword). The step may also be the first argument,
        ``run.log(10, accuracy=0.93)``.

        Values are stored as floats (NaN and infinities are kept as such). A value is a number:
        a Python ``int``, ``float`` or ``bool``, a NumPy scalar, or a tensor or array of one
        value (a loss that requires grad is read detached). Text such as ``"0.5"`` is refused,
        not parsed. Everything is checked when it is logged: a bad call records nothing and
        changes nothing already recorded.

        Raises:
            ConfigError: a value is not a number (the message names the metric and the type),
                a name is empty or not text, the step is not an integer of at most 64 bits,
                a name is given twice, a name comes without its value (``run.log("acc")``),
                a third argument follows a name and its value (``run.log("acc", 0.9, 3)``:
                the step is ``step=3``), or the first argument is neither a mapping of
                metrics, a name nor a step; nothing of the call is recorded then.
            BudgetExceeded: a budget with ``on_exceed="stop"`` was crossed (raised once, after
                the values are recorded).
        """
        if isinstance(metrics, str):  # run.log("acc", 0.9, step=1): mlflow's log_metric
            metrics = self._named_value(metrics, args, step)
            args = ()
        if len(args) > 1:
            raise ConfigError(
                f"run.log() takes at most two arguments, not {1 + len(args)}: metrics as "
                "keywords, run.log(accuracy=0.93, step=10), or as one mapping and the step"
            )
        if args:
            if step is not None:
                raise ConfigError(f"run.log() got two steps, {args[0]!r:.40} and {step!r:.40}")
            if not isinstance(metrics, Mapping):  # run.log(1, 2)
                raise ConfigError(f"run.log() got two steps, {metrics!r:.40} and {args[0]!r:.40}")
            step = args[0]
        if isinstance(metrics, Mapping):
            repeated = sorted(str(name) for name in values if name in metrics)
            if repeated:
                raise ConfigError(
                    f"run.log(): metric {repeated[0]!r} given both in the mapping and as a keyword"
                )
            values = {**metrics, **values}
        elif metrics is not None:
            if isinstance(metrics, bool) or not isinstance(metrics, numbers.Integral):
                shown = repr(metrics)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ConfigError(
                    "run.log() takes metrics as keywords, run.log(accuracy=0.93, step=10), or "
                    f"as one mapping, run.log({{'eval/loss': 0.31}}); not {type(metrics).__name__} "
                    f"{shown} as its first argument"
                )
            if step is not None:
                raise ConfigError(f"run.log() got two steps, {metrics!r:.40} and {step!r:.40}")
            step = metrics
        points = self._add_metrics(step, values)
        if self._state == "new":
            self._note_unstarted(len(points))
        if self._pid and self._pid != os.getpid():  # a forked child's copy (a Pool worker)
            self._write_from_child(points)
        elif self._ended_here():
            self._write_late()  # after the run's end: written at once (a test score of the model)
        elif self._guard is not None or self._guarded_up:
            self._enforce_budgets()

    @staticmethod
    def _named_value(name: str, args: tuple[Any, ...], step: object) -> dict[str, Any]:
        """``{name: value}`` for ``run.log(name, value)``, or why the call is not that form.

        Raises:
            ConfigError: no value follows the name, or more than the value does (a step given
                by position: MLflow's ``log_metric(key, value, step)``; Lightning's third
                argument is ``prog_bar``).
        """
        shown = name if name.isidentifier() else "..."
        if not args:
            raise ConfigError(
                f"run.log({name!r:.40}) has no value: run.log({name!r:.40}, value) or "
                f"run.log({shown}=value)"
            )
        if len(args) > 1:
            at = f"step={args[1]!r:.20}" if step is None else f"step={step!r:.20}"
            raise ConfigError(
                f"run.log() takes a name, its value and the step as a keyword: "
                f"run.log({name!r:.40}, value, {at}), not {1 + len(args)} arguments"
            )
        return {name: args[0]}

    def _write_from_child(self, points: list[MetricPoint]) -> None:
        """Write ``points`` logged in a forked child's copy of this run to its ledger at once.

        A ``fork`` worker (``multiprocessing.Pool``, ``ProcessPoolExecutor``) that logs to the
        run it inherited (``gp.current_run().log(...)``, a closure over ``run``) holds a copy
        that stands still at the fork: its points stayed in the copy and were lost without a
        word. The points are appended to the run's rows on a connection of this process; a
        ledger that cannot take them is said once (never raised).
        """
        if self._ledger is None or not points:
            return
        from greenprint.ledger._shared import ledger_in_use

        try:
            with ledger_in_use(self._ledger.url_unmasked) as ledger:
                ledger.flush(self.id, metrics=points)
        except GreenprintError as e:
            if not self._child_said:
                self._child_said = True
                logger.warning(
                    "greenprint: points logged to run %s in a child process (pid %d) could "
                    "not be written to its ledger: %s",
                    self.id[:8],
                    os.getpid(),
                    e,
                )
        with self._lock:  # written: not the copy's to write again
            self._pending_metrics = [p for p in self._pending_metrics if p not in points]

    def _add_metrics(self, step: int | None, metrics: Mapping[str, Any]) -> list[MetricPoint]:
        """:meth:`log` without the budget check: for an integration's own thread (a listener).

        Returns:
            The points recorded.

        Raises:
            ConfigError: a value is not a number, a name is empty or not text, or the step is
                not an integer the ledger can store (nothing is recorded then: a point the
                ledger would refuse would keep every later write of the run from landing).
        """
        now = time.time()
        step = _metric_step(step)
        points = []
        for metric, value in metrics.items():
            if not isinstance(metric, str) or not metric:
                raise ConfigError(f"a metric name must be non-empty text, not {metric!r}")
            storable_text("metric name", metric)
            points.append(MetricPoint(metric, _metric_number(metric, value), step, now))
        with self._lock:
            self._metrics.extend(points)
            self._pending_metrics.extend(points)
        return points

    def _note_unstarted(self, values: int) -> None:
        """Count values logged before the run started; said if it never starts (once a process).

        ``run = gp.track("x")`` then ``run.log(accuracy=0.9)``, as ``wandb.init()`` is used,
        recorded nothing and said nothing: a run is measured and written only once started
        (``with``, a decorator, or ``start()``/``stop()``).
        """
        with self._lock:
            if self._state != "new":
                return
            if self._unstarted is None:
                self._unstarted = _NeverStarted(self.name, self._study)
                weakref.finalize(self, self._unstarted.tell)
            self._unstarted.values += values

    def set(self, **fields: Any) -> None:
        """Record facts: ``params`` (merged), ``dataset_size``, ``fpo``, ``param_count``, ``role``.

        ``name`` renames the run (``run.set(name=f"lr={lr}")`` once the script knows what names
        it): :attr:`name` at once, and the ledger's record, written at once while the run is
        running (a ledger that cannot take it now is a warning; the name is written with the
        run's next write).

        ``fpo`` may be an :class:`~greenprint.FPOResult` (``gp.count_fpo(...)``): its total is
        recorded, and when it ran ops with no rule or on complex tensors the run's provenance
        says that the figure is a lower bound (``provenance["fpo"]``); what the count assumed
        (:attr:`~greenprint.FPOResult.assumptions`, such as the FFT library) is in
        ``provenance["fpo_assumptions"]`` (``"fft_library=mkl"``). An int replaces both.

        Raises:
            ConfigError: an unknown field, ``params`` that is not a mapping with string keys, or
                a count that is not a non-negative integer, a ``dataset_size`` or ``param_count``
                above 2**63 - 1 (stored in 64 bits), an ``fpo`` above the largest float
                (about 1.8e308: ``_validate.FPO_MAX``), an unknown ``role`` (the message
                lists the roles), or a ``name`` that is not a non-empty string the ledger can
                store (no NUL, no lone surrogate); nothing is recorded then.
        """
        unknown = set(fields) - _SETTABLE
        if unknown:
            hint = ""
            if "status" in unknown:  # a run's status is what happens to it, not a field
                hint = (
                    "; a run's status is set by how it ends: run.prune() for a trial stopped "
                    "early, an exception for a failed one"
                )
            raise ConfigError(
                f"unknown run {'field' if len(unknown) == 1 else 'fields'} {sorted(unknown)}; "
                f"settable: {sorted(_SETTABLE)}{hint}"
            )
        params = fields.get("params")
        params = None if params is None else mapping_of_names("params", params)
        counted = _fpo_result(fields["fpo"]) if "fpo" in fields else None
        if counted is not None:
            fields = {**fields, "fpo": counted[0]}
        counts = {
            key: None if fields[key] is None else check(key, fields[key])
            for key, check in (
                ("dataset_size", stored_count),
                ("fpo", non_negative_int),
                ("param_count", stored_count),
            )
            if key in fields
        }
        if (fpo := counts.get("fpo")) is not None:
            check_fpo("fpo", fpo)
        role = check_role(fields["role"]) if "role" in fields else None
        name = _new_name(fields["name"]) if "name" in fields else None
        with self._lock:  # everything checked first: a bad field changes nothing
            if params is not None:
                self._params.update(params)
                self._pending_fields["params"] = dict(self._params)
            for key, value in counts.items():
                setattr(self, f"_{key}", value)
                self._pending_fields[key] = value
            if "fpo" in fields:  # a new total: exact unless its count result says otherwise
                self._fpo_unknown_ops, self._fpo_complex_ops, self._fpo_assumptions = (
                    (dict(counted[1]), dict(counted[2]), dict(counted[3]))
                    if counted is not None
                    else ({}, {}, {})
                )
                self._note_fpo_bound()
            if "role" in fields:
                self._role = self._pending_fields["role"] = role
            if name is not None:
                self.name = self._pending_fields["name"] = name
        if self._ended_here():
            self._write_late()
        elif name is not None:
            self._write_name(name)

    def _write_name(self, name: str) -> None:
        """Write a running run's new name to its ledger record now (kept pending on failure)."""
        if self._ledger is None or self._state != "running" or self._pid != os.getpid():
            return  # not started (written with its record), or a fork's copy of the run
        try:
            self._ledger.flush(self.id, fields={"name": name})
        except GreenprintError as e:  # never into the user's code: the next flush tries again
            logger.warning(
                "greenprint: could not rename run %s to %r in the ledger now: %s (written with "
                "the run's next write)",
                self.id[:8],
                name,
                e,
            )
            return
        with self._lock:  # written: unless renamed again meanwhile, nothing left to write
            if self._pending_fields.get("name") == name:
                del self._pending_fields["name"]

    def add_fpo(self, fpo: int | FPOResult) -> None:
        """Add floating-point operations done by this run (e.g. one training step's, per step).

        ``fpo`` may be an :class:`~greenprint.FPOResult`: its total is added, and when it ran
        ops with no rule or on complex tensors the run's provenance says that its FPO are a
        lower bound (``provenance["fpo"]``: ``"counted; lower bound: 2 ops without a rule:
        aten.bar, aten.foo"``), which the report reads as "at least". What it assumed
        (:attr:`~greenprint.FPOResult.assumptions`) is merged into
        ``provenance["fpo_assumptions"]``: counts of FFTs on MKL and then on cuFFT read
        ``"fft_library=cufft+mkl"``. An integer (Python's or numpy's) adds to the total and keeps
        both notes.

        Raises:
            ConfigError: ``fpo`` is not a non-negative integer, or the run's total would be
                above :data:`~greenprint._validate.FPO_MAX` (about 1.8e308); nothing is added.
            BudgetExceeded: a budget with ``on_exceed="stop"`` was crossed (raised once, after
                the operations are added).
        """
        counted = _fpo_result(fpo)
        if counted is not None:
            fpo = counted[0]
        # numpy's integers too (a count worked out with numpy), as run.set(fpo=...) takes them
        fpo = non_negative_int("fpo", fpo)
        with self._lock:
            self._fpo = check_fpo("fpo (the run's total)", (self._fpo or 0) + fpo)
            self._pending_fields["fpo"] = self._fpo
            if counted is not None and (counted[1] or counted[2] or counted[3]):
                for ops, more in zip(
                    (self._fpo_unknown_ops, self._fpo_complex_ops), counted[1:3], strict=True
                ):
                    for op, calls in more.items():
                        ops[op] = ops.get(op, 0) + calls
                if counted[3]:
                    self._fpo_assumptions = merge_fpo_assumptions(self._fpo_assumptions, counted[3])
                self._note_fpo_bound()
        if self._ended_here():
            self._write_late()
        elif self._guard is not None or self._guarded_up:
            self._enforce_budgets()

    def _ended_here(self) -> bool:
        """Whether the run has ended in this process (its final record written).

        What :meth:`log`, :meth:`set` and :meth:`add_fpo` record after that (a test score
        computed after the ``with`` block) is written to the ledger at once; the run's cost,
        final at its end, is not changed.
        """
        return self._state == "stopped" and self._ended_at is not None and self._pid == os.getpid()
