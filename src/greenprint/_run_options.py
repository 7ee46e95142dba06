"""A run's options, checked and resolved before anything is opened: :func:`checked`.

:class:`greenprint.tracking.Run` takes its options here: each is checked in turn (the first bad
one wins), then its carbon settings (intensity or region, PUE: what it was given, else what the
enclosing run was given, else the configuration), its ledger (checked, not created) and its
study are resolved. Every argument and setting is checked before the ledger is opened, so a bad
one leaves no ledger file behind (``greenprint run`` inherits this).
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from greenprint import _lineage
from greenprint._budget import BudgetGuard
from greenprint._config import load_config
from greenprint._exceptions import ConfigError, GreenprintError
from greenprint._records import check_role
from greenprint._run_fallback import known_good
from greenprint._suggest import did_you_mean
from greenprint._validate import finite_number, mapping_of_names, optional_text, stored_count

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._types import LedgerLike
    from greenprint.carbon import PUE, Intensity
    from greenprint.ledger import Ledger

__all__ = ["RunSettings", "checked"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")

#: Seconds between two ledger writes of a run when none is given (and its sample interval is
#: shorter: a longer sample interval is the flush interval then).
DEFAULT_FLUSH_INTERVAL_S = 10.0


def default_flush_interval_s(sample_interval_s: float) -> float:
    """The flush interval (s) of a run given none: 10 s, or its sample interval when longer.

    A flush writes what the last sample read, so it cannot come more often than samples do.
    """
    return max(DEFAULT_FLUSH_INTERVAL_S, sample_interval_s)


#: The keyword options of :func:`track` (and :class:`Run`).
_OPTIONS = frozenset(
    {
        "study",
        "ledger",
        "region",
        "intensity",
        "pue",
        "params",
        "dataset_size",
        "parent",
        "scope",
        "pid",
        "command",
        "sample_interval_s",
        "flush_interval_s",
        "meters",
        "budget_kwh",
        "budget_kg",
        "budget_fpo",
        "budget_s",
        "on_exceed",
        "budget",
        "role",
        "node_meter",
    }
)


def _carbon_given(options: Mapping[str, Any]) -> dict[str, str]:
    """The ``intensity``, ``region`` and ``pue`` options given, as text a child can resolve.

    A number as Python writes a float (a NumPy scalar's too); a file's path (an hourly CSV)
    absolute, so that a child in another folder finds it.
    """
    given = {}
    for key in ("intensity", "region", "pue"):
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, os.PathLike) or (
            key == "intensity" and isinstance(value, str) and os.path.isfile(value)
        ):
            value = os.path.abspath(os.fspath(value))
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = repr(float(value))  # numpy's repr is 'np.float64(56.0)', no number
        given[key] = str(value)
    return given


_T = TypeVar("_T", "Intensity", "PUE")


def _inherited_setting(resolve: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
    """``resolve(*args, **kwargs)`` of what the enclosing run was given, its source saying so.

    ``None`` (with a warning) when it cannot be resolved here (a CSV the child cannot read, a
    value the parent's greenprint wrote differently): the run then resolves its own, never
    raising for its parent's setting.
    """
    try:
        setting = resolve(*args, **kwargs)
    except GreenprintError as e:
        logger.warning("greenprint: the enclosing run's carbon setting does not apply here: %s", e)
        return None
    return replace(setting, source=f"parent run -> {setting.source}")


def _ledger_location(ledger: LedgerLike, configured: str) -> Ledger | str | os.PathLike[str] | None:
    """Where the run will write: an open ledger, a path or URL, or ``None`` (no ledger).

    A path is checked as opening it would (a directory, a missing parent, a file that is not a
    ledger), but a missing ledger file is not created yet. A ledger this process already wrote a
    run to is not refused: the run falls back as it starts (:mod:`greenprint._run_fallback`).

    Raises:
        LedgerPathError, NotALedgerError: the path cannot be a ledger.
    """
    if ledger is False:
        return None
    from greenprint.ledger import Ledger
    from greenprint.ledger._target import resolve_target

    if ledger is None:
        ledger = _lineage.inherited_ledger() or configured
    if isinstance(ledger, Ledger):
        return ledger
    try:
        resolve_target(ledger).prepare(create=True, dry_run=True)
    except GreenprintError:
        if not known_good(ledger):  # the user's input; one this process wrote to failing
            raise  # mid-study is a measurement's failure: the run falls back as it starts
    return ledger


def _check_parent(parent: Any, run_class: type) -> None:
    """A parent is a :class:`Run` (``run_class``), a run id (non-empty text) or ``None``."""
    if parent is None or isinstance(parent, run_class) or (isinstance(parent, str) and parent):
        return
    raise ConfigError(
        f"parent must be a Run, a run id (a non-empty string) or None, not {parent!r}"
    )


def _check_meters(meters: Any) -> None:
    """Meters are a meter set (or meter-set-like object), ``[]`` for none, or ``None``.

    ``meters=["rapl"]`` read as no meter: a run that was meant to use RAPL alone measured
    nothing, and its energy budget was never checked, without a word.
    """
    if isinstance(meters, (str, bytes)) or (
        isinstance(meters, (list, tuple, set, frozenset)) and meters
    ):
        raise ConfigError(
            f"meters must be a meter set (greenprint.meters.detect_meters(), your own), [] for "
            f"no energy meter, or left out (every meter that works here), not {meters!r}"
        )


def _check_pid(pid: Any) -> None:
    """A pid to attribute is a positive int naming a process that exists now."""
    if pid is None:
        return
    if isinstance(pid, bool) or not isinstance(pid, numbers.Integral) or pid <= 0:
        raise ConfigError(f"pid must be a positive integer (a process id), not {pid!r}")
    import psutil

    if not psutil.pid_exists(int(pid)):
        raise ConfigError(f"pid {pid}: no such process")


@dataclass(frozen=True)
class RunSettings:
    """A run's options, checked, and what they resolve to (:func:`checked`)."""

    scope: str
    #: whether a scope was given (``None`` is not one: the job may choose the machine's)
    scope_given: bool
    sample_s: float
    flush_s: float
    #: the run's budgets (its study's set), or ``None``
    guard: BudgetGuard | None
    params: dict[str, Any]
    dataset_size: int | None
    role: str | None
    intensity: Intensity
    pue: PUE
    #: the intensity, region and PUE given (or taken from the enclosing run), as text
    carbon_given: dict[str, str]
    #: the ledger, checked (nothing is created): the run opens it as it starts
    ledger_location: Ledger | str | os.PathLike[str] | None
    study: str


def checked(name: str | None, options: dict[str, Any], *, run_class: type) -> RunSettings:
    """A run's options checked in turn (the first bad one wins), and its settings resolved.

    ``run_class`` is :class:`greenprint.tracking.Run` (a parent may be one): this module sits
    below it. Nothing is opened or written: the ledger is checked, not created.

    Raises:
        ConfigError: an unknown option or a bad one, a bad setting (see :func:`greenprint.track`).
        LedgerError: the ledger path is not usable.
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown option(s) {sorted(unknown)} for a run{did_you_mean(unknown, _OPTIONS)}"
        )
    optional_text("name", name)
    optional_text("study", options.get("study"))
    optional_text("command", options.get("command"))
    optional_text("region", options.get("region"))
    scope = options.get("scope")
    node_meter = options.get("node_meter")
    if node_meter is not None and not isinstance(node_meter, bool):
        raise ConfigError(f"node_meter must be True, False or None, not {node_meter!r}")
    if node_meter and scope == "process":
        raise ConfigError("a node meter records the whole machine: scope='process' contradicts it")
    scope_given = scope is not None
    scope = "process" if scope is None else scope
    if scope not in ("process", "machine"):
        raise ConfigError(f"scope must be 'process' or 'machine', not {scope!r}")
    sample_s = finite_number(
        "sample_interval_s",
        options.get("sample_interval_s", 1.0),
        low=0.0,
        low_open=True,
        unit="s",
        text=False,
    )
    flush_given = options.get("flush_interval_s")
    flush_s = finite_number(
        "flush_interval_s (at least sample_interval_s)",
        default_flush_interval_s(sample_s) if flush_given is None else flush_given,
        low=sample_s,
        unit="s",
        text=False,
    )
    guard = BudgetGuard.from_options(options, study="")
    if guard is not None and guard.needs_study and options.get("ledger") is False:
        raise ConfigError("a study budget needs a ledger to read the study's cost from")
    params = options.get("params")
    params = {} if params is None else mapping_of_names("params", params)
    dataset_size = options.get("dataset_size")
    if dataset_size is not None:
        dataset_size = stored_count("dataset_size", dataset_size)
    _check_meters(options.get("meters"))
    _check_parent(options.get("parent"), run_class)
    role = check_role(options.get("role"))
    _check_pid(options.get("pid"))
    from greenprint.carbon import resolve_intensity, resolve_pue
    from greenprint.meters._estimate import configured_cpu_tdp

    config = load_config()
    given = _carbon_given(options)
    # the enclosing run's settings fill what this run was not given (an intensity or region;
    # a PUE)
    complete = "pue" in given and bool(given.keys() & {"intensity", "region"})
    from_parent = None if complete else _lineage.inherited_carbon()
    intensity = pue = None
    if from_parent and not given.keys() & {"intensity", "region"}:
        # a run given no intensity or region takes its enclosing run's, as its study
        taken = {k: v for k, v in from_parent.items() if k in ("intensity", "region")}
        if taken:
            intensity = _inherited_setting(
                resolve_intensity,
                intensity=taken.get("intensity"),
                region=taken.get("region"),
                config=config,
            )
            if intensity is not None:
                given.update(taken)
    if from_parent and "pue" not in given and "pue" in from_parent:
        pue = _inherited_setting(resolve_pue, from_parent["pue"], config=config)
        if pue is not None:
            given["pue"] = from_parent["pue"]
    intensity = intensity or resolve_intensity(
        intensity=options.get("intensity"), region=options.get("region"), config=config
    )
    pue = pue or resolve_pue(options.get("pue"), config=config)
    configured_cpu_tdp(config)  # a bad cpu_tdp_w is refused now, not when meters start
    ledger_location = _ledger_location(options.get("ledger"), config.ledger)
    configured = config.get("study")
    if configured is not None and configured and not configured.strip():
        # as --study ' ' and gp.track(study=' ') are: a blank name no report can be asked for
        where = config.sources.get("study", "the configuration")
        raise ConfigError(f"{where}: study needs a study name, not {configured!r}")
    study = options.get("study") or _lineage.inherited_study() or configured or "default"
    if guard is not None:
        guard.study = study
    return RunSettings(
        scope=scope,
        scope_given=scope_given,
        sample_s=sample_s,
        flush_s=flush_s,
        guard=guard,
        params=params,
        dataset_size=dataset_size,
        role=role,
        intensity=intensity,
        pue=pue,
        carbon_given=given,
        ledger_location=ledger_location,
        study=study,
    )
