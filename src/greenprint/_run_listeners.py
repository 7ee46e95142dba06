"""The listeners of a run: :class:`RunListeners`.

``run.add_listener(fn)``: ``fn(run, event)`` after each flush (``"flush"``) and once when the
run has stopped (``"stop"``); how the logger integrations (MLflow, TensorBoard) follow a run.
A listener's failure is logged (its traceback once per kind of error and event), never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from greenprint._exceptions import ConfigError
from greenprint._run_state import RunState

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

__all__ = ["RunListeners"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


class RunListeners(RunState):
    """Call a run's listeners at each flush and at its end."""

    def add_listener(self, listener: Callable[[Self, str], None]) -> None:
        """Call ``listener(run, event)`` after each flush and once when the run has stopped.

        ``event`` is ``"flush"`` (every ``flush_interval_s``, on the sampler thread) or
        ``"stop"`` (on the thread that stopped the run, after its final record is written). This
        is how the logger integrations (MLflow, TensorBoard) follow a run. A listener must be
        quick and thread-safe; an exception it raises is logged (with its traceback once per
        kind of error and event, then at debug level), never raised into user code.

        A listener may be added before the run starts or while it runs, not after its end: it
        would never be called (it missed the ``"stop"`` event, which is delivered once).

        Raises:
            ConfigError: ``listener`` is not callable, or the run has ended.
        """
        if not callable(listener):
            raise ConfigError(f"a run listener must be callable, not {listener!r}")
        with self._lock:  # _stop() ends the run under this lock, before it calls the listeners
            if self._state == "stopped":
                ended = "" if self._status == "running" else f" ({self._status})"  # ending now
                raise ConfigError(
                    f"run {self.name!r} has ended{ended}: a listener added now would never be "
                    "called; add it inside the run's `with` block"
                )
            self._listeners.append(listener)

    def _notify(self: Self, event: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(self, event)
            except Exception as e:  # a listener's failure must not reach the user's code
                self._listener_failed(listener, event, e)
        if event == "stop":
            with self._lock:
                counts = list(self._listener_failures.values())
            for failures in counts:
                if failures > 1:
                    logger.warning(
                        "greenprint: a listener of run %s failed %d times in all (each kind of "
                        "error logged once above, the rest at debug level)",
                        self.id[:8],
                        failures,
                    )

    def _listener_failed(
        self: Self, listener: Callable[[Self, str], None], event: str, error: Exception
    ) -> None:
        """Log a listener's failure: with its traceback the first time, else at debug level.

        Once per listener, kind of error and event: a listener that breaks for good would
        otherwise log a traceback at every flush (every ``flush_interval_s``).
        """
        key = (id(listener), type(error).__qualname__, event)
        with self._lock:
            self._listener_failures[id(listener)] = self._listener_failures.get(id(listener), 0) + 1
            first = key not in self._listener_said
            self._listener_said.add(key)
        if first:
            logger.error(
                "greenprint: a listener of run %s failed (%s)", self.id[:8], event, exc_info=error
            )
        else:
            logger.debug(
                "greenprint: a listener of run %s failed (%s) again: %s", self.id[:8], event, error
            )
