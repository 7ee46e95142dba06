"""Ctrl-C and SIGTERM held while a run starts or ends: :func:`interrupts_held`.

Ctrl-C (SIGINT) and SIGTERM landing while a run starts or ends are held until it has started
or ended: Python raises ``KeyboardInterrupt`` between any two instructions of the main thread,
and one raised half-way through a run's start left the run written ``running`` and never ended
(read ``lost``), its context (``gp.current_run()``, the parent of every later run) and its
sampler thread left behind; half-way through its end, the run read ``lost`` too (60 Ctrl-C's at
random points of 60 short runs: 7 lost, 45 later runs nested in runs the ledger never had).
SIGTERM in a run's start, before the run was registered, killed the process with the run
written ``running`` (11 of 25 such kills read ``lost``).

A hold installs greenprint's SIGTERM handler first and, once the run has ended, gives it back
when the process has no run left to end (:meth:`greenprint._lifecycle._Registry.release_sigterm`):
this module sits above :mod:`greenprint._lifecycle`, below :mod:`greenprint.tracking`.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from greenprint._lifecycle import registry

__all__ = ["InterruptsHeld", "interrupts_held"]


class InterruptsHeld:
    """Around a run's start or end in the main thread: SIGINT's and SIGTERM's handlers after it.

    While held, each signal's Python handler (``KeyboardInterrupt`` for SIGINT by default,
    greenprint's for SIGTERM, or the user's) is replaced by one that notes the signal;
    :meth:`deliver`, called once the run has started or ended, runs the handlers then, in the
    order the signals came. Nothing is held in other threads (Python runs signal handlers in the
    main thread only), for a signal without a Python handler (ignored, or the default action),
    or inside another hold (the outer one delivers).
    """

    __slots__ = ("_previous", "_held", "_active", "_raised")

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._held: list[tuple[int | None, Any]] = []
        self._active = False
        self._raised: BaseException | None = None

    def __enter__(self) -> InterruptsHeld:
        global _holding
        if _holding is not None or threading.current_thread() is not threading.main_thread():
            return self
        # A signal's handler may run before its signal is swapped (Ctrl-C while this runs): its
        # KeyboardInterrupt (SystemExit...) escaped here, so that the run's end never ran and the
        # run stayed 'running' and current. It is kept instead, raised by deliver(), and the
        # swap is finished (a handler that raises again is kept the same way: a few signals).
        try:
            self._active = True  # first: __exit__ then puts back whatever was swapped
            _holding = self
            for _ in range(4):
                try:
                    self._swap()
                    break
                except BaseException as exc:
                    if self._raised is None:
                        self._raised = exc
        except BaseException:  # before the loop took it: nothing left held, the caller ends it
            self.__exit__()
            raise
        return self

    def _swap(self) -> None:
        """Replace each held signal's handler by :meth:`_note`, keeping the previous one first.

        A signal between the two loses nothing: the handler is then swapped at a retry.
        """
        registry.install_sigterm()  # first, so that it never takes this hold's as the previous
        for signum in _HELD_SIGNALS:
            try:
                previous = signal.getsignal(signum)
                if callable(previous) and previous != self._note:
                    self._previous[signum] = previous
                    signal.signal(signum, self._note)
            except (ValueError, OSError):  # not allowed here (an embedded interpreter)
                pass

    def _note(self, signum: int, frame: Any) -> None:
        self._held.append((signum, frame))

    def __exit__(self, *exc: object) -> None:
        global _holding
        if not self._active:
            return
        self._active = False
        _holding = None
        # A signal whose handler is back runs it at once: SIGINT's KeyboardInterrupt between
        # two signals put back came out of the run's start, the run begun but never ended. It
        # is kept after the held ones for deliver(), and the others are put back.
        for _ in range(4):
            try:
                self._restore()
                break
            except BaseException as exc:
                self._held.append((None, exc))
        # a run ended (or failed to start) and a pool's worker has none left: SIGTERM's default
        # action again, which no wait of the main thread can hold back (a signal held here is
        # delivered to greenprint's handler still, by deliver())
        try:
            registry.release_sigterm()
        except BaseException as exc:  # a signal's handler ran meanwhile: as above
            self._held.append((None, exc))

    def _restore(self) -> None:
        """Put back each handler :meth:`_swap` replaced (one replaced meanwhile is kept)."""
        for signum, previous in self._previous.items():
            try:
                if signal.getsignal(signum) == self._note:
                    signal.signal(signum, previous)
            except (ValueError, OSError):
                pass

    def deliver(self) -> None:
        """Run the handlers of the signals that came while held, in their order.

        SIGINT's raises ``KeyboardInterrupt`` by default; greenprint's SIGTERM ends the runs,
        then the process.
        """
        raised, self._raised = self._raised, None
        if raised is not None:  # a handler that ran before the hold took: it came first
            self._held = []
            raise raised
        held, self._held = self._held, []
        for signum, frame in held:
            if signum is None:  # a handler that ran as its signal was put back: its exception
                raise frame
            self._previous[signum](signum, frame)


#: The signals a run's start and end hold (those that end a run when they interrupt it).
_HELD_SIGNALS: tuple[int, ...] = tuple(
    int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


#: Whether the main thread is inside an :class:`InterruptsHeld` (only the outermost holds).
_holding: InterruptsHeld | None = None


def interrupts_held() -> InterruptsHeld:
    """A context manager that holds SIGINT and SIGTERM while a run starts or ends.

    See :class:`InterruptsHeld`.
    """
    return InterruptsHeld()


def _end_in_forked_child() -> None:
    """In a forked child: a hold the fork copied (forked while a run started or ended) ends."""
    global _holding
    if _holding is not None:  # forked while a run started or ended: the handlers back
        _holding.__exit__()
    _holding = None


registry.in_forked_child.append(_end_in_forked_child)
