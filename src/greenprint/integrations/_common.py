"""What the integrations share: checking run options once, up front, and a warning given once."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError, GreenprintError, LedgerError
from greenprint._resume import interrupted_at_heartbeat
from greenprint._suggest import did_you_mean as _nearest

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._budget import BudgetGuard

__all__ = [
    "RUN_OPTION_NAMES",
    "SET_BY_INTEGRATION",
    "WarnOnce",
    "check_run_options",
    "default_ledger",
    "interrupted_at_heartbeat",
    "ledger_now",
    "options_now",
    "pin_ledger_option",
    "pinned_ledger",
    "sized_dataset",
    "stopped_by_budget",
]

#: The :func:`greenprint.track` options an integration passes through to the runs it makes.
RUN_OPTION_NAMES = frozenset(
    {
        "region",
        "intensity",
        "pue",
        "scope",
        "meters",
        "sample_interval_s",
        "flush_interval_s",
        "budget_kwh",
        "budget_kg",
        "budget_fpo",
        "budget_s",
        "on_exceed",
        "budget",
    }
)

#: How the error of a run that a budget stopped begins (see ``_lifecycle.status_for``).
_BUDGET_ERROR_PREFIX = "BudgetExceeded:"


#: Options of :func:`greenprint.track` an integration sets itself on each run it makes.
SET_BY_INTEGRATION = frozenset({"parent", "pid"})


def check_run_options(
    options: Mapping[str, Any],
    *,
    where: str,
    ledger: Any = None,
    study: str | None = None,
    name: str | None = None,
    allowed: Collection[str] | None = RUN_OPTION_NAMES,
) -> dict[str, Any]:
    """Check an integration's run options now, as a run would when it is made.

    A bad option (an unknown name, an invalid PUE or region, a path that cannot be a ledger, a
    :class:`~greenprint.Ledger` that is closed) is refused when the integration is set up,
    before any trial or training step runs, instead of failing every run later. A run is made
    (not started): nothing is measured or written.

    Args:
        options: the :func:`greenprint.track` options passed through to each run.
        where: what is being set up, for messages (``"GreenprintCallback"``).
        ledger: the integration's own ``ledger`` argument, when it takes one apart from
            ``options``.
        study: the integration's own study argument, or ``None`` (the integration picks the
            study later, or ``options`` holds it).
        name: the run name given to the integration, or ``None``.
        allowed: the option names ``options`` may hold (default :data:`RUN_OPTION_NAMES`);
            ``None``: any option of :func:`greenprint.track` except those in
            :data:`SET_BY_INTEGRATION`.

    Returns:
        ``options`` as a new dict (``ledger`` and ``study`` given apart are not included).

    Raises:
        ConfigError: an unknown option, one the integration sets itself, or a bad value.
        LedgerError: the ledger path cannot be a ledger, or the ledger is closed.
    """
    from greenprint.ledger import Ledger
    from greenprint.tracking import Run

    if allowed is None:
        taken = sorted(SET_BY_INTEGRATION & set(options))
        if taken:
            raise ConfigError(f"{where} sets {', '.join(taken)} itself; do not pass it")
        from greenprint.tracking import _OPTIONS

        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigError(
                f"{where}: unknown option(s) {sorted(unknown)}"
                f"{_nearest(unknown, _OPTIONS - SET_BY_INTEGRATION)}; the options of "
                "greenprint.track are passed to the run"
            )
    else:
        unknown = set(options) - set(allowed)
        if unknown:
            raise ConfigError(
                f"{where}: unknown option(s) {sorted(unknown)}"
                f"{_nearest(unknown, {*allowed, 'ledger', 'study'})}; options passed to each "
                f"run: {sorted(allowed)}"
            )
    run_options = {"ledger": ledger, "study": study, **options}
    study = run_options["study"]
    if study is not None and (not isinstance(study, str) or not study.strip()):
        raise ConfigError(f"{where}: study must be a non-empty string, not {study!r}")
    ledger = run_options["ledger"]
    if isinstance(ledger, Ledger) and getattr(ledger, "_closed", False):
        # refused now, not when the first run starts
        raise LedgerError(f"{where}: ledger {ledger.url} is closed; pass an open ledger")
    Run(name, **run_options)  # checks every option; writes nothing
    _reach_server_ledger(ledger)
    return dict(options)


def _reach_server_ledger(ledger: Any) -> None:
    """Connect now to a ledger on a database server, so that a wrong URL is refused at setup.

    A run checks a path when it is made but reaches a server only when it starts: an
    integration given a mistyped PostgreSQL URL (a database that does not exist, another
    socket folder or port) was accepted, and the first trial raised instead, a traceback out
    of ``study.optimize`` (its Optuna trial left ``FAIL`` in a shared storage) or out of
    ``Tuner.fit`` once the cluster had started its trials. The ledger opened here is the one
    the process's runs share later (its tables made, on a new database, as the first run
    would). A ledger this process has already written to is not reached again: failing now, it
    is the study's ledger failing mid-study, and its runs fall back as they start.

    Args:
        ledger: the ``ledger=`` option (a path or URL, ``None``: the inherited or configured
            one; an open :class:`~greenprint.Ledger` and ``False`` are left alone).

    Raises:
        LedgerError: the server cannot be reached, or the database there is not a ledger.
    """
    from greenprint._run_fallback import known_good
    from greenprint.ledger import Ledger
    from greenprint.ledger._shared import shared_ledger

    if ledger is False or isinstance(ledger, Ledger):
        return
    target = ledger_target(ledger)
    if target.path is not None or target.memory or known_good(target.url):
        return
    shared_ledger(target.url)


def stopped_by_budget(status: str | None, error: str | None) -> bool:
    """Whether a run's recorded end is a budget's ``on_exceed="stop"``.

    Such a run ends ``interrupted`` with its cost so far; a framework that only knows
    finished, pruned and failed (Optuna's ``FAIL``, Ray Tune's ``ERROR``) must not overwrite that.
    """
    return status == "interrupted" and (error or "").startswith(_BUDGET_ERROR_PREFIX)


class WarnOnce:
    """A warning an object gives at most once (thread-safe).

    Pickled without its lock (a callback pickled with a trainer or a run config, by Ray):
    the copy keeps the warnings already given and has a lock of its own.
    """

    def __init__(self) -> None:
        self._given: set[str] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"_given": set(self._given)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._given = set(state["_given"])
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str, *, stacklevel: int = 3) -> None:
        """Warn ``message`` (a ``UserWarning``) unless ``key`` was warned already."""
        with self._lock:
            if key in self._given:
                return
            self._given.add(key)
        warnings.warn(message, UserWarning, stacklevel=stacklevel)


def warn_fpo_budget_uncounted(guard: BudgetGuard | None, count_fpo: bool) -> None:
    """Warn, where a callback is made, that its FPO budget needs ``count_fpo`` to act.

    A framework callback records FPO only when it counts them (``count_fpo=True``): a limit on
    the run's own FPO (``budget_fpo``, or a ``gp.Budget(fpo=...)`` per run) would otherwise see
    only what the user records by hand (``callback.run.add_fpo``), usually nothing, which the
    run's end said only in general terms. A study's FPO budget can still act on the study's
    other runs: not warned.

    Args:
        guard: the budgets of the callback's run options (``BudgetGuard.from_options``).
        count_fpo: the callback's ``count_fpo``.
    """
    if count_fpo or guard is None:
        return
    if not any(b.per == "run" and b.fpo is not None for b in guard.budgets):
        return
    warnings.warn(
        "greenprint: GreenprintCallback's budget_fpo without count_fpo=True acts only on FPO "
        "you record yourself (callback.run.add_fpo(...)): pass count_fpo=True to count the "
        "training's",
        UserWarning,
        stacklevel=3,
    )


def sized_dataset(loader: Any) -> int | None:
    """The number of examples a training data loader's dataset holds, or ``None``.

    ``len(loader.dataset)`` when it has one (a map-style dataset; every rank of a distributed
    training sees the whole dataset, its sampler a part); ``None`` for an iterable dataset,
    no loader, or anything that cannot say (a run then records no ``dataset_size``, as before).
    """
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        return None
    try:
        size = len(dataset)
    except (TypeError, NotImplementedError):  # no __len__ (an IterableDataset raises TypeError)
        return None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def ledger_target(ledger: Any) -> Any:
    """The :class:`~greenprint.ledger._target.Target` a ``ledger=`` option names.

    An open :class:`~greenprint.Ledger` (its full URL), a path or URL, or ``None``: the
    enclosing run's ledger (inherited from a parent process), else the configured one.

    Raises:
        GreenprintError: a location that cannot be read (as :func:`resolve_target` says).
    """
    from greenprint import _lineage
    from greenprint._config import load_config
    from greenprint.ledger import Ledger
    from greenprint.ledger._target import resolve_target

    if isinstance(ledger, Ledger):
        return resolve_target(ledger.url_unmasked)
    if ledger is None:
        return resolve_target(_lineage.inherited_ledger() or load_config().ledger)
    return resolve_target(ledger)


def pinned_ledger(ledger: Any) -> Any:
    """``ledger`` as the runs made later must open it, wherever the current directory is then.

    An integration makes its runs long after it is set up (each trial, each fit), and a
    script may change directory in between (Hydra runs each job in a folder of its own; an
    objective that ``os.chdir``s into its trial's output folder). A relative SQLite path
    (``"greenprint.db"``, ``sqlite:///runs/gp.db``) is made absolute against the current
    directory now, where the user named it; anything else is returned as given (``None``,
    ``False``, a :class:`~greenprint.Ledger`, a PostgreSQL URL, an in-memory ledger, or a
    location :func:`check_run_options` refuses).
    """
    from greenprint.ledger import Ledger
    from greenprint.ledger._target import resolve_target

    if ledger is None or ledger is False or isinstance(ledger, Ledger):
        return ledger
    try:
        target = resolve_target(ledger)
    except GreenprintError:
        return ledger
    if target.backend == "sqlite" and target.path is not None:
        return str(target.path)
    return ledger


def default_ledger() -> Any:
    """The configured ledger (``./greenprint.db`` unless set), pinned now."""
    from greenprint._config import load_config

    return pinned_ledger(load_config().ledger)


def ledger_now(ledger: Any, default: Any) -> Any:
    """The ``ledger=`` of a run made now by an integration set up earlier.

    The ledger the integration was given (pinned when it was set up); else, as for a run
    given none, the ledger of the run it is made in (or inherited from a parent process);
    else ``default``: the configured ledger pinned when the integration was set up.
    """
    if ledger is not None:
        return ledger
    from greenprint import _lineage

    return _lineage.inherited_ledger() or default


def options_now(options: Mapping[str, Any], default: Any) -> dict[str, Any]:
    """A copy of an integration's run ``options`` with the ``ledger`` of :func:`ledger_now`."""
    return {**options, "ledger": ledger_now(options.get("ledger"), default)}


def pin_ledger_option(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with its ``ledger``, if any, pinned (:func:`pinned_ledger`)."""
    out = dict(options)
    if "ledger" in out:
        out["ledger"] = pinned_ledger(out["ledger"])
    return out
