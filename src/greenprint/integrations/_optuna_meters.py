"""One ``meters=`` object shared by the runs of trials that run at the same time.

``GreenprintCallback(meters=m)`` passes every trial's run the same object. A meter set counts
cumulative joules since its ``start()``, so a second trial starting while the first runs
(``study.optimize(n_jobs=2)``) started it again: the first trial's next reading went backwards
(its meter was taken for failed and replaced by an estimate, or read a fraction of what it
should), and the first trial to end closed it under the others. Each trial's run now gets a
:class:`SharedMeters` view: the object is started once, when the first of the trials running
together starts, each run reads the energy since its own start (a difference of two readings
of the one object), and it is closed when the last of them ends, as a run closes its meters.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from greenprint._exceptions import MeterError
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._set import MeterSet

__all__ = ["SharedMeters"]

T = TypeVar("T")


class SharedMeters:
    """One meter set read by several runs, each from its own start.

    A :class:`~greenprint.meters.MeterSet` or any meter-set-like object. Every call into it
    (``start``, ``read``, ``close``) runs on one thread of this object's, one at a time, as a
    run calls its meters on one thread: an object that keeps its state per thread, or a
    library that wants its calls from the thread that started it, works as under one run.

    Args:
        meters: what the user passed as ``meters=``: an object with ``components``,
            ``provenance``, ``start()``, ``read()`` (component -> :class:`MeterReading`,
            cumulative J since ``start()``) and ``close()``.
    """

    def __init__(self, meters: Any) -> None:
        self.meters = meters
        self._lock = threading.Lock()  # the count of runs using it, and its start and close
        self._users = 0
        self._thread = _OneThread("greenprint-shared-meters")

    def view(self) -> _MeterView | _MeterSetView:
        """A meter set for one run: energy since the run started it, in J per component.

        Of a :class:`~greenprint.meters.MeterSet`, a ``MeterSet`` too, which a run takes as
        it is (as it would the shared one: its own estimates are read without a deadline);
        of any other object, an object a run wraps as it wraps that one.
        """
        if isinstance(self.meters, MeterSet):
            return _MeterSetView(self)
        return _MeterView(self)

    def _acquire(self) -> dict[str, MeterReading]:
        """Start the object if no run uses it; count one more user; its reading now."""
        with self._lock:
            if self._users == 0:
                self._thread.call(self.meters.start)
            self._users += 1
        try:
            return self._read()
        except BaseException:
            self._release()
            raise

    def _read(self) -> dict[str, MeterReading]:
        return dict(self._thread.call(self.meters.read))

    def _release(self) -> None:
        """Count one user less; close the object when none is left (as a run closes it)."""
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            try:
                self._thread.call(self.meters.close)
            finally:
                self._thread.close()


class _OneThread:
    """Calls run on one daemon thread, in order; each caller waits for its own.

    No deadline: a run's meter set gives the calls it makes one of its own.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the thread; its exception is raised here."""
        done = threading.Event()
        out: list[Any] = []

        def job() -> None:
            try:
                out.append((True, fn()))
            except BaseException as e:  # handed to the caller
                out.append((False, e))
            finally:
                done.set()

        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(
                    target=_serve, args=(self._jobs,), name=self._name, daemon=True
                ).start()
            self._jobs.put(job)
        done.wait()
        ok, value = out[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Let the thread end once its calls are done (the next call starts another)."""
        with self._lock:
            if self._jobs is not None:
                self._jobs.put(None)
                self._jobs = None


def _serve(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while (job := jobs.get()) is not None:
        job()


class _MeterView:
    """One run's meters: the shared object's readings less those at this view's start."""

    def __init__(self, shared: SharedMeters) -> None:
        self._shared = shared
        self._base: dict[str, MeterReading] | None = None
        self._closed = False
        self._guard = threading.Lock()  # start and close: a start past its deadline may end last

    @property
    def components(self) -> tuple[str, ...]:
        """The shared object's components."""
        return tuple(getattr(self._shared.meters, "components", ()) or ())

    @property
    def provenance(self) -> Mapping[str, str]:
        """The shared object's provenance (component -> where its figures come from)."""
        return getattr(self._shared.meters, "provenance", None) or {}

    def start(self) -> None:
        """Start the shared object if no run uses it yet; take this run's baseline."""
        if self._base is not None or self._closed:
            return
        base = self._shared._acquire()
        with self._guard:
            late = self._closed  # the run let go while this start waited
            if not late:
                self._base = base
        if late:
            self._shared._release()

    def read(self) -> dict[str, MeterReading]:
        """Energy per component since :meth:`start`, in J (process share ``None`` if unread).

        Raises:
            MeterError: the run let go of the shared object (closed).
        """
        if self._base is None:
            self.start()
        base = self._base
        if base is None:
            raise MeterError("this run let go of the shared meter set")
        out = {}
        for component, now in self._shared._read().items():
            then = base.get(component, MeterReading(0.0, 0.0))
            process = None
            if now.process_j is not None and then.process_j is not None:
                process = now.process_j - then.process_j
            out[component] = MeterReading(now.machine_j - then.machine_j, process)
        return out

    def close(self) -> None:
        """Let go of the shared object (closed when the last run that uses it lets go)."""
        with self._guard:
            self._closed = True
            held, self._base = self._base, None
        if held is not None:
            self._shared._release()


class _MeterSetView(MeterSet):
    """A :class:`_MeterView` of a shared :class:`MeterSet` that is a ``MeterSet`` itself.

    A run takes a ``MeterSet`` as it is, and wraps any other object so that each call gets a
    deadline (0.4 s): greenprint's estimates, which a ``MeterSet`` reads without one, would
    then be taken for failed whenever trials in threads hold the interpreter longer. The
    provenance, attribution notes, meters and read times are the shared set's.
    """

    def __init__(self, shared: SharedMeters) -> None:
        under: MeterSet = shared.meters
        super().__init__({}, tree=under.tree)
        self._view = _MeterView(shared)
        self._under = under
        self.components = under.components
        self.provenance = under.provenance  # the same dict, kept up to date by the shared set
        self._last: dict[str, MeterReading] = {}

    @property
    def attribution_notes(self) -> dict[str, str]:
        """The shared set's (component -> what its process share lacks)."""
        return self._under.attribution_notes

    def meter(self, component: str) -> Meter:
        """The shared set's meter now in use for ``component``."""
        return self._under.meter(component)

    def start(self) -> None:
        """Start the shared set if no run uses it yet; take this run's baseline."""
        self._view.start()
        self.read_at = self._under.read_at

    def read(self) -> dict[str, MeterReading]:
        """Energy per component since :meth:`start`, in J.

        Never raises, as a ``MeterSet``: read after :meth:`close`, the last reading.
        """
        try:
            self._last = self._view.read()
        except MeterError:
            return dict(self._last)
        self.read_at = self._under.read_at
        return self._last

    def close(self) -> None:
        """Let go of the shared set (closed when the last run that uses it lets go)."""
        self._view.close()
