"""What the integrations share: checking run options once, up front, and a warning given once."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any

from greenprint._exceptions import ConfigError

__all__ = ["RUN_OPTION_NAMES", "WarnOnce", "check_run_options"]

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
    }
)


def check_run_options(
    ledger: Any, study: str | None, options: Mapping[str, Any], *, where: str
) -> dict[str, Any]:
    """Check an integration's run options now, as a run would when it is made.

    A bad option (an unknown name, an invalid PUE or region, a path that cannot be a ledger, a
    :class:`~greenprint.Ledger` that is closed) is refused when the integration is set up,
    before any trial runs, instead of failing every trial later. Nothing is written.

    Args:
        ledger: the ``ledger`` argument of :func:`greenprint.track`.
        study: the study name, or ``None`` (the integration picks it later).
        options: further :func:`greenprint.track` options (:data:`RUN_OPTION_NAMES`).
        where: what is being set up, for messages (``"GreenprintCallback"``).

    Returns:
        The options as a new dict (``ledger`` and ``study`` not included).

    Raises:
        ConfigError: an unknown option or a bad value.
        LedgerError: the ledger path cannot be a ledger, or the ledger is closed.
    """
    from greenprint.ledger import Ledger
    from greenprint.tracking import Run

    unknown = set(options) - RUN_OPTION_NAMES
    if unknown:
        raise ConfigError(
            f"{where}: unknown option(s) {sorted(unknown)}; options passed to each run: "
            f"{sorted(RUN_OPTION_NAMES)}"
        )
    if study is not None and (not isinstance(study, str) or not study.strip()):
        raise ConfigError(f"{where}: study must be a non-empty string, not {study!r}")
    Run("greenprint-check", ledger=ledger, study=study, **options)  # checks; writes nothing
    if isinstance(ledger, Ledger):
        ledger.studies()  # a closed ledger raises LedgerError now, not in every trial
    return dict(options)


class WarnOnce:
    """A warning an object gives at most once (thread-safe)."""

    def __init__(self) -> None:
        self._given: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str, *, stacklevel: int = 3) -> None:
        """Warn ``message`` (a ``UserWarning``) unless ``key`` was warned already."""
        with self._lock:
            if key in self._given:
                return
            self._given.add(key)
        warnings.warn(message, UserWarning, stacklevel=stacklevel)
