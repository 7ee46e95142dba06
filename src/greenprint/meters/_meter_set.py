"""MeterSet: the meters of one run, one per component, with fallback to estimates that never raises.

:class:`MeterSet` reads them all on each tick, sharing one process-tree sample. When a meter
fails (a :class:`~greenprint.MeterError`, an ``OSError`` from the hardware, or, as a last line of
defence, any other exception, logged with its traceback), it is replaced for the rest of the run
by the estimate of that component, continuing from the last good cumulative value: the estimate
runs in the shadow from the start, so the interval in which the failure happened is covered by
the estimate's own figure for that interval. The provenance then says, for example,
``"estimate:tdp:AMD EPYC 7B13 (240 W) (rapl failed: permission denied reading ...)"``.
A counter the machine has but this process cannot read from the start (``energy_uj`` root-only
since Linux 5.10, NVML refusing) leaves its estimate saying so, with the fix:
``"estimate:tdp:AMD EPYC 7B13 (240 W) (rapl not used: permission denied reading ...; fix: ...)"``.
A component without such an estimate (``gpu``) continues at the mean power it measured so far;
one that failed before measuring anything (``powermetrics`` dying before its first sample, NVML
failing at its first read) continues with the estimate the meter names
(:meth:`~greenprint.meters._base.Meter.estimate_if_unmeasured`: the GPUs' TDP estimate, or
``estimate:gpu:unknown (...)`` saying why nothing is counted), never at a made-up 0 W.

A meter also fails when it cannot be trusted: a read that does not return within
``read_timeout_s`` (hardware and foreign meters are called on a worker thread with that deadline,
see :mod:`greenprint.meters._deadline`; greenprint's own estimates run inline), or a reading that
is not a finite, non-negative number of joules, or that goes backwards. So a blocked driver or a
meter that returns NaN costs a run at most one deadline and is then estimated, labelled as such.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from greenprint._exceptions import MeterError
from greenprint._provenance import MEASURED_SOURCES, Provenance
from greenprint.meters._attribution import (
    ProcessTree,
    UsageSample,
    resolution_note,
)
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._counter import SharedEnergy
from greenprint.meters._deadline import DEFAULT_READ_TIMEOUT_S, DeadlineWorker, MeterTimeoutError
from greenprint.meters._estimate import (
    CpuEstimateMeter,
    GpuEstimateMeter,
    RamEstimateMeter,
)

__all__ = ["MeterSet"]

logger = logging.getLogger(__name__)

_ORDER = ("cpu", "gpu", "ram")


class _Slot:
    """One component: its meter, the estimate in its shadow, and the last good readings."""

    __slots__ = ("failed", "last", "last_shadow", "last_t", "meter", "shadow")

    def __init__(self, meter: Meter, shadow: Meter | None) -> None:
        self.meter = meter
        self.shadow = shadow  # the estimate running alongside a hardware meter (cpu, ram)
        self.last = MeterReading(0.0, 0.0)
        self.last_shadow: MeterReading | None = None
        self.last_t = 0.0
        self.failed = False


class _Continuation(Meter):
    """An estimate continuing a failed meter: ``offset + (estimate now - estimate at offset)``."""

    def __init__(
        self,
        estimate: Meter,
        *,
        offset: MeterReading,
        base: MeterReading,
        provenance: str,
    ) -> None:
        self.component = estimate.component
        self.estimate = estimate
        self._offset = offset
        self._base = base
        self._provenance = provenance

    @property
    def provenance(self) -> str:
        return self._provenance

    @property
    def is_estimate(self) -> bool:
        return True

    def start(self) -> None:  # the estimate is already running
        return None

    def read(self) -> MeterReading:
        now = self.estimate.read()
        machine = self._offset.machine_j + max(now.machine_j - self._base.machine_j, 0.0)
        process: float | None = None
        if (
            self._offset.process_j is not None
            and now.process_j is not None
            and self._base.process_j is not None
        ):
            process = self._offset.process_j + max(now.process_j - self._base.process_j, 0.0)
        return MeterReading(machine, process)

    def close(self) -> None:
        self.estimate.close()


def _cpu_share_part(meter: Meter) -> str | None:
    """What of ``meter``'s process figure is the tree's share of the machine's busy CPU time.

    ``"idle-floor"``: a CPU estimate's (its busy part is the tree's own CPU seconds);
    ``"whole"``: a machine-wide counter shared out by that share (RAPL, hwmon, powermetrics);
    ``None``: none of it (a meter of the caller's, a GPU's).
    """
    if isinstance(meter, _Continuation):
        meter = meter.estimate
    if isinstance(meter, CpuEstimateMeter):
        return "idle-floor"
    energy = getattr(meter, "_energy", None)  # the counters keep their figures in one
    if isinstance(energy, SharedEnergy) and energy.tree is not None and energy.share == "cpu":
        return "whole"
    return None


class MeterSet:
    """One meter per component, read together; reading never raises.

    Attributes:
        components: the components measured, in ``("cpu", "gpu", "ram")`` order.
        provenance: component -> where its figures come from; updated on every read (a meter
            whose source changes mid-run, such as a GPU counter dropped for sampled power, says
            so in its own provenance) and on fallback.
        tree: the process tree used for attribution.
        attribution_notes: component -> what its process share lacks (see the property).

    Args:
        meters: component -> primary meter.
        tree: the process tree the meters share (sampled once per :meth:`read`); other meter
            sets may share it too (:func:`~greenprint.meters._attribution.shared_tree`, as
            :func:`detect_meters` does): each then adds its samples to one series, and a run
            nested in another reads a part of its parent's usage.
        estimates: component -> estimate to run in the shadow of a hardware meter, taking over
            if it fails (``cpu`` and ``ram``). A component without one (``gpu``) is continued at
            the mean power it measured so far, or, failing before it measured anything, by the
            estimate its meter names (``estimate_if_unmeasured``).
        clock: monotonic clock in s.
        read_timeout_s: longest wait for one call into a hardware or foreign meter, in s; a
            meter that overruns it is treated as failed.
        notes: component -> a note its provenance carries while its first meter is in use, in
            parentheses (why a counter the machine has is not used: ``"rapl not used: ..."``).
    """

    def __init__(
        self,
        meters: Mapping[str, Meter],
        *,
        tree: ProcessTree,
        estimates: Mapping[str, Meter] | None = None,
        clock: Callable[[], float] = time.monotonic,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        notes: Mapping[str, str] | None = None,
    ) -> None:
        self.tree = tree
        self._notes = {c: n for c, n in (notes or {}).items() if n}
        self._clock = clock
        self._timeout_s = read_timeout_s
        self._worker = DeadlineWorker("greenprint-meter-read")
        estimates = dict(estimates or {})
        self.components: tuple[str, ...] = tuple(
            sorted(meters, key=lambda c: (_ORDER.index(c) if c in _ORDER else len(_ORDER), c))
        )
        self._slots: dict[str, _Slot] = {}
        for comp in self.components:
            meter = meters[comp]
            shadow = estimates.get(comp)
            if shadow is meter or meter.is_estimate:
                shadow = None
            self._slots[comp] = _Slot(meter, shadow)
        self.provenance: dict[str, str] = {
            c: self._noted(c, s.meter.provenance) for c, s in self._slots.items()
        }
        self._attributed: set[str] = set()  # components whose meter gave a process share
        self._base_usage: UsageSample | None = None  # the tree's sample at start
        self._started = False
        self._attached = False
        self._closed = False
        self._t_start = 0.0
        #: wall-clock time (s since the epoch) the last start or read refers to: when it called
        #: the meters under the deadline (a hardware counter's), or for greenprint's estimates
        #: alone the time of the tree's sample they read (:meth:`_stamp_with_sample`)
        self.read_at = 0.0

    def meter(self, component: str) -> Meter:
        """The meter now in use for ``component``."""
        return self._slots[component].meter

    def start(self) -> None:
        """Take the baseline of every meter (a meter that cannot start falls back at once).

        The tree is reset unless another meter set uses it; then a sample taken now is this
        set's baseline on the series they share.
        """
        if self._attached:  # started again: let go of the earlier baseline
            self.tree.detach()
        self._base_usage = self.tree.attach()
        self._attached = True
        for slot in self._slots.values():  # shadows first: the primaries start last, together
            if slot.shadow is not None:
                slot.shadow.start()
                slot.last_shadow = slot.shadow.read()
        now = self._t_start = self._clock()
        guarded = self._guarded("start")
        for comp, slot in self._slots.items():
            if comp in guarded:
                outcome = guarded[comp]
            elif _needs_deadline(slot.meter):  # not reached: an earlier meter overran
                outcome = MeterTimeoutError("not started: an earlier meter overran")
            else:
                outcome = _attempt(slot.meter.start)
            slot.last = MeterReading(0.0, 0.0)
            slot.last_t = now  # before a fallback: the estimate counts from here
            if isinstance(outcome, BaseException):
                self._fail(comp, slot, outcome)
                slot.meter.start()
        self._stamp_with_sample()
        self._started = True

    def read(self) -> dict[str, MeterReading]:
        """Cumulative energy per component since :meth:`start`, in J. Never raises."""
        if not self._started:
            self.start()
        try:
            self.tree.sample()
        except OSError as e:  # keep the previous sample (the tree handles psutil's own errors)
            logger.warning("process-tree sample failed: %s", e)
        now = self._clock()
        guarded = self._guarded("read")
        root_unread = self.tree.root_unreadable is not None
        out: dict[str, MeterReading] = {}
        for comp, slot in self._slots.items():
            shadow_now = self._read_shadow(comp, slot)
            if comp in guarded:
                outcome = guarded[comp]
            elif _needs_deadline(slot.meter):  # not reached: an earlier meter overran
                out[comp] = slot.last
                continue
            else:
                outcome = _attempt(slot.meter.read)
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                reading = _checked(outcome, slot.last)
            except Exception as e:  # a meter never breaks user code
                self._fail(comp, slot, e)
                try:
                    reading = _checked(slot.meter.read(), slot.last)
                except Exception:  # even the estimate failed: hold the last
                    logger.exception("the %s estimate failed too; holding the last value", comp)
                    reading = slot.last
            else:
                if shadow_now is not None:
                    slot.last_shadow = shadow_now
                if _needs_deadline(slot.meter):  # a hardware meter may change source mid-run
                    # (a GPU's counter dropped for sampled power): record what it says now;
                    # greenprint's own estimates and continuations keep theirs for the run
                    self.provenance[comp] = self._noted(
                        comp, _provenance_of(slot.meter, self.provenance[comp])
                    )
            if reading.process_j is not None:
                self._attributed.add(comp)
                if root_unread:  # a share of 0 would be made up: the whole machine's instead
                    reading = MeterReading(reading.machine_j, None)
            reading = self._monotone(slot.last, reading)
            slot.last, slot.last_t = reading, now
            out[comp] = reading
        self._stamp_with_sample()
        return out

    def _stamp_with_sample(self) -> None:
        """:attr:`read_at` of a set of greenprint's estimates alone: their sample's wall time.

        The estimates read the energy up to the tree's sample, taken before the meters are
        called: a thread that waited in between (for the GIL, beside threads running Python:
        up to 0.1 s seen beside two, in a 0.2 s run) was stamped when the wait ended, so a run
        in a thread pool was charged the CPU time of a window up to that much shorter or longer
        than its own (a 0.3 s run at 2.5 W beside runs at 4.4 W on one core of the same
        process). A set that reads a hardware meter keeps the time its deadline call began.
        """
        if any(_needs_deadline(slot.meter) for slot in self._slots.values()):
            return
        for comp in ("cpu", "ram"):  # the CPU estimate's sample; RAM's where CPU has none
            slot = self._slots.get(comp)
            meter = None if slot is None else slot.meter
            if isinstance(meter, _Continuation):
                meter = meter.estimate
            if not isinstance(meter, (CpuEstimateMeter, RamEstimateMeter)):
                continue
            if meter.reached is not None and meter.reached.wall > 0.0:
                self.read_at = meter.reached.wall
                return

    @property
    def attribution_notes(self) -> dict[str, str]:
        """Component -> what its process share lacks, for its provenance; empty when nothing.

        For each component whose meter attributes to the tree: ``"process share a lower bound:
        1 process of the tree could not be read (permission denied reading /proc/123/stat), nor
        their children"`` when processes of the tree exist but cannot be read; when the root
        cannot be read, ``"not attributed: ...: the whole machine's energy"`` (the device's for
        ``gpu``): :meth:`read` then gives no process figure (``process_j`` is ``None``), so a run
        counts the whole domain, an upper bound, rather than a share of 0.

        ``cpu``, over a run too short for CPU times read in clock ticks (10 ms): what is rough,
        ``"idle-floor share rough: machine busy CPU time under 100 ms, read in 10 ms ticks"``
        (:func:`~greenprint.meters._attribution.resolution_note`).
        """
        note = self.tree.attribution_note()
        notes = {}
        for comp in self.components:
            if comp not in self._attributed:
                continue
            if self.tree.root_unreadable is not None:
                domain = "device" if comp == "gpu" else "machine"
                notes[comp] = f"{note}: the whole {domain}'s energy"
                continue
            rough = ""
            part = _cpu_share_part(self._slots[comp].meter) if comp == "cpu" else None
            if part is not None and self._base_usage is not None:
                rough = resolution_note(
                    self._base_usage, self.tree.last, estimate=part == "idle-floor"
                )
            if note or rough:
                notes[comp] = "; ".join(n for n in (note, rough) if n)
        return notes

    def _guarded(self, action: str) -> dict[str, Any]:
        """Call ``start`` or ``read`` on every meter that needs a deadline, in one hand-off.

        Sets :attr:`read_at` to the wall-clock time just before the first meter is called.

        Returns:
            component -> the call's result or the exception it raised. The meter that overran
            the deadline gets a :class:`MeterTimeoutError`; meters after it are absent (a read
            holds their last value and tries them again on a fresh thread next tick).
        """
        guarded = [(c, s.meter) for c, s in self._slots.items() if _needs_deadline(s.meter)]
        if not guarded:
            self.read_at = time.time()
            return {}
        results: dict[str, Any] = {}
        current: list[str | None] = [None]
        stamp: list[float | None] = [None]
        cancelled = threading.Event()

        def call_all() -> None:
            stamp[0] = time.time()
            for comp, meter in guarded:
                if cancelled.is_set():  # abandoned: never call a meter the next tick calls too
                    return
                current[0] = comp
                results[comp] = _attempt(getattr(meter, action))
            current[0] = None

        try:
            self._worker.call(call_all, self._timeout_s)
        except MeterTimeoutError:
            cancelled.set()
            results = dict(results)
            stuck = current[0]
            if stuck is not None:
                results[stuck] = MeterTimeoutError(
                    f"{self._slots[stuck].meter.provenance} {action} did not return within "
                    f"{self._timeout_s:g} s"
                )
        self.read_at = stamp[0] if stamp[0] is not None else time.time()
        return results

    def _noted(self, comp: str, text: str) -> str:
        """``text``, ``comp``'s provenance, with its note (see ``notes``) appended once."""
        note = self._notes.get(comp)
        if not note or text.endswith(f"({note})"):
            return text
        return str(Provenance.parse(text).with_note(note))

    @staticmethod
    def _read_shadow(comp: str, slot: _Slot) -> MeterReading | None:
        if slot.shadow is None:
            return None
        try:
            return slot.shadow.read()
        except Exception:  # a broken shadow must not stop the primary
            logger.exception("the shadow %s estimate failed; it is dropped", comp)
            slot.shadow = None
            return None

    @staticmethod
    def _monotone(last: MeterReading, new: MeterReading) -> MeterReading:
        machine = max(new.machine_j, last.machine_j)
        if new.process_j is None:
            return MeterReading(machine, None)
        process = max(new.process_j, last.process_j or 0.0)
        return MeterReading(machine, min(process, machine) if machine > 0 else process)

    def _fail(self, comp: str, slot: _Slot, err: BaseException) -> None:
        old = slot.meter
        source = _source_names(old.provenance)
        if isinstance(err, (MeterError, OSError)):
            logger.warning("%s meter %s failed, using an estimate: %s", comp, old.provenance, err)
            why = str(err)
        else:
            logger.error(
                "%s meter %s raised a bug; using an estimate", comp, old.provenance, exc_info=err
            )
            why = f"{type(err).__name__}: {err}"
        _close_quietly(old, wait_s=0.0 if isinstance(err, MeterTimeoutError) else None)
        if slot.shadow is not None:
            estimate = slot.shadow
            base = slot.last_shadow or MeterReading(0.0, 0.0)
        elif (unmeasured := _estimate_if_unmeasured(old, slot.last_t)) is not None:
            # failed before measuring anything (a GPU): its TDP estimate, or "unknown", labelled
            estimate, base = unmeasured, MeterReading(0.0, 0.0)
            estimate.start()
        else:  # gpu (or a failed estimate): the mean power so far, from the last good read on
            elapsed = slot.last_t - self._t_start
            if elapsed > 1e-3:
                power_w = slot.last.machine_j / elapsed
            else:
                power_w = getattr(old, "mean_power_w", None) or 0.0
            share = None
            if slot.last.process_j is not None and slot.last.machine_j > 0:
                share = slot.last.process_j / slot.last.machine_j
            estimate = GpuEstimateMeter(
                power_w=power_w,
                share=share,
                clock=self._clock,
                started_at=slot.last_t,
                component=comp,
            )
            base = MeterReading(0.0, 0.0)
        self._notes.pop(comp, None)  # said of the meter that failed
        provenance = f"{estimate.provenance} ({source} failed: {why})"
        slot.meter = _Continuation(estimate, offset=slot.last, base=base, provenance=provenance)
        slot.shadow = None
        slot.failed = True
        self.provenance[comp] = provenance

    def close(self) -> None:
        """Release every meter (NVML handles, files). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots.values():
            for meter in (slot.meter, slot.shadow):
                if meter is not None:
                    _close_quietly(
                        meter, wait_s=self._timeout_s if _needs_deadline(meter) else None
                    )
        if self._attached:  # the last user closes the /proc descriptors it keeps
            self._attached = False
            self.tree.detach()
        elif self.tree.users == 0:  # never started: close only a tree nobody uses
            self.tree.close()
        self._worker.close()

    def __enter__(self) -> MeterSet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _needs_deadline(meter: Meter) -> bool:
    """Whether calls into ``meter`` run under the deadline: all but greenprint's own estimates."""
    return not isinstance(
        meter, (CpuEstimateMeter, RamEstimateMeter, GpuEstimateMeter, _Continuation)
    )


def _estimate_if_unmeasured(meter: Meter, since: float) -> Meter | None:
    """``meter.estimate_if_unmeasured(since=...)``; ``None`` (logged) should the hook raise."""
    hook = getattr(meter, "estimate_if_unmeasured", None)  # a foreign meter may lack it
    if hook is None:
        return None
    try:
        estimate = hook(since=since)
    except Exception:  # a bug in the hook: the mean power so far, as before
        logger.exception("the %s meter's estimate_if_unmeasured raised", meter.component)
        return None
    return estimate if isinstance(estimate, Meter) else None


def _source_names(provenance: str) -> str:
    """The sources a provenance names, for "... failed": ``"rapl"``, ``"nvml+amdsmi"``."""
    head = provenance.split(" (", 1)[0]
    names = [part.split(":", 1)[0] for part in head.split("+")]
    measured = [n for n in dict.fromkeys(names) if n in MEASURED_SOURCES]
    return "+".join(measured) if len(measured) > 1 else provenance.split(":", 1)[0]


def _provenance_of(meter: Meter, last: str) -> str:
    """``meter.provenance`` now; ``last`` (logged) should a foreign meter's property raise."""
    try:
        return str(meter.provenance)
    except Exception:  # a user's meter set must not break the run through its label
        logger.exception("the %s meter's provenance raised; keeping %r", meter.component, last)
        return last


def _attempt(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:  # the caller turns it into a fallback
        return e


def _checked(reading: object, last: MeterReading) -> MeterReading:
    """``reading`` if it is a plausible cumulative reading after ``last``.

    Raises:
        MeterError: not a reading, a NaN, infinite or negative energy, or energy going backwards
            (counter wrap-around and GPU resets are undone inside the meters, so a decrease that
            reaches here is a fault).
    """
    if not isinstance(reading, MeterReading):
        raise MeterError(f"returned {reading!r}, not a MeterReading")
    machine, process = reading.machine_j, reading.process_j
    if not (isinstance(machine, (int, float)) and math.isfinite(machine) and machine >= 0):
        raise MeterError(f"returned {machine!r} J, not a finite non-negative energy")
    if process is not None and not (
        isinstance(process, (int, float)) and math.isfinite(process) and process >= 0
    ):
        raise MeterError(f"returned a process share of {process!r} J")
    if machine < last.machine_j - 1e-9 * max(1.0, last.machine_j):
        raise MeterError(f"went backwards: {machine:.6g} J after {last.machine_j:.6g} J")
    return reading


def _close_quietly(meter: Meter, *, wait_s: float | None) -> None:
    """Close ``meter``; never raises. ``wait_s``: deadline in s (0: do not wait; None: inline)."""

    def close() -> None:
        try:
            meter.close()
        except Exception as e:  # closing a broken meter must not raise either
            logger.debug("closing the %s meter raised: %s", meter.component, e)

    if wait_s is None:
        close()
        return
    thread = threading.Thread(target=close, name="greenprint-meter-close", daemon=True)
    thread.start()
    if wait_s > 0:
        thread.join(wait_s)
