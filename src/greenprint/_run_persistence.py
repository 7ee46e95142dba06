"""A run's ledger writes: :class:`RunPersistence`, and the runs kept unsaved.

A flush writes the run's cost so far and what was recorded since the last one; a write that
fails keeps what it took, for the next flush. A ledger closed under the run is opened again,
and a ledger file deleted or replaced under it is made again with the whole run. The final
record is written on a thread of its own, waited for :data:`_FINAL_WRITE_S` at most; a run
whose ledger did not take everything is kept in :data:`_UNSAVED`, written again when another
run starts in that ledger and at the interpreter's exit (:data:`_EXIT_WRITE_S` at most), and
a run still not written then is saved in a ledger file of its own
(:meth:`RunPersistence._spill`), with a warning naming the ``greenprint ledger merge`` command
that puts it back. The registry, its lock and its exit handlers exist once, here.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from greenprint._exceptions import GreenprintError
from greenprint._forks import renew_after_fork
from greenprint._lifecycle import registry
from greenprint._records import PowerSample
from greenprint._run_fallback import (
    counted,
    fallback_ledger,
    merge_command,
    password_masked,
    written_to,
)
from greenprint._run_state import RunState

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.ledger import Ledger

__all__ = ["RunPersistence"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")

#: Longest wait, in s, for the ledger to take a run's final record when the run ends (or what it
#: recorded after its end): the write goes on in the background past it. The runs that the
#: process's end stops together (interpreter exit, SIGTERM, an uncaught exception) share one
#: such wait (:meth:`greenprint._lifecycle._Registry.ending_wait_left`). A database another
#: process keeps locked made the end of a run wait for SQLite's retries (about 180 s). Not
#: shorter: a write that only waits its turn among busy writers (a search's workers sharing
#: one file) should land before the user's code reads the ledger, without a warning.
_FINAL_WRITE_S = 5.0
#: Longest wait, in s, at the interpreter's exit for the ledger to take every run kept unwritten;
#: a run not written by then is saved in a ledger file of its own (:meth:`Run._spill`).
_EXIT_WRITE_S = 3.0


def _open_ledger(location: Ledger | str | os.PathLike[str], run: RunState) -> Ledger:
    """The ledger ``run`` writes to: ``location`` if a ledger, else the shared one.

    ``run`` is the shared ledger's holder: kept open while :meth:`RunPersistence._needs_ledger`.
    """
    from greenprint.ledger import Ledger
    from greenprint.ledger._shared import shared_ledger

    return location if isinstance(location, Ledger) else shared_ledger(location, holder=run)


class RunPersistence(RunState):
    """Write a run to its ledger; keep what the ledger did not take, and save it apart."""

    #: The run's row is not in its ledger yet: neither the ledger nor its fallback file took
    #: it as it started (:meth:`greenprint._run_lifecycle.RunLifecycle._start_in_ledger`)
    _row_missing: bool = False

    @property
    def ledger(self) -> Ledger | None:
        """The :class:`~greenprint.Ledger` written to, or ``None`` for an in-memory run.

        The ledger is opened when the run starts (here, if asked for before that). A shared
        ledger closed since the run ended (no run needed it, and others were opened since:
        :mod:`greenprint.ledger._shared`) is opened again.
        """
        from greenprint.ledger._shared import closed_here, shared_ledger

        if self._ledger is None and self._ledger_location is not None:
            self._ledger = _open_ledger(self._ledger_location, self)
        elif self._ledger is not None and closed_here(self._ledger):
            try:
                self._ledger = shared_ledger(self._ledger.url_unmasked, holder=self, create=False)
            except GreenprintError:  # its file gone: the closed one, which says it is closed
                pass
        return self._ledger

    def _needs_ledger(self) -> bool:
        """Whether the run's shared ledger must stay open (see :mod:`greenprint.ledger._shared`).

        True from its start until it has ended and its ledger took everything: its final
        record, what it recorded after its end, a run kept unsaved; a write after that takes
        the ledger again (:func:`~greenprint.ledger._shared.ledger_in_use`). Read by another
        thread without the run's locks: any doubt reads true (the ledger stays open).
        """
        if not self._ledger_done or not self._final_written:
            return True
        writer = self._writer
        if writer is not None and writer.is_alive():
            return True
        if self._pending_fields or self._pending_metrics or self._in_flight:
            return True
        return any(run is self for run in list(_UNSAVED))

    def _flush_late(self, *, quiet: bool = False) -> bool:
        """Write what was recorded after the run's end: those values only.

        Not its cost, status or time, final at its end: the ledger may hold a status set since
        by someone else (a driver's callback marking the trial pruned), which stays. A run whose
        final record is not written yet (:func:`_keep_unsaved`) is written whole instead.

        Returns:
            Whether the ledger holds everything recorded (``False``: kept to try again).
        """
        if self._ledger is None:
            return True
        from greenprint.ledger._shared import ledger_in_use

        if not self._final_written:
            if not self._flush(quiet=quiet):
                return False
            self._final_written = True
            _forget_unsaved(self)
            return True
        with self._lock:
            fields, self._pending_fields = self._pending_fields, {}
            metrics, self._pending_metrics = self._pending_metrics, []
            if "fpo" in fields:  # whether the FPO are a lower bound now, what they assumed
                fields["provenance"] = dict(self._provenance)
        try:  # a shared ledger closed since the run's end (no run needed it): opened again
            with ledger_in_use(self._ledger) as ledger:
                self._ledger = ledger
                ledger.flush(self.id, fields=fields, metrics=metrics)
        except Exception as e:  # never raise into the user's code for the ledger
            if not quiet:
                logger.warning(
                    "greenprint: could not write run %s to the ledger: %s", self.id[:8], e
                )
            with self._lock:  # kept, to be written with what comes next or tried again
                self._pending_metrics[:0] = metrics
                self._pending_fields = {**fields, **self._pending_fields}
                self._write_error = str(e)
            _keep_unsaved(self)
            return False
        _forget_unsaved(self)
        return True

    def _write_late(self) -> None:
        """Write what was recorded after the run's end, waiting :data:`_FINAL_WRITE_S` at most.

        A ledger that does not answer by then (a database another process keeps locked) takes
        it in the background, or at the interpreter's exit (:func:`_keep_unsaved`).
        """
        if self._ledger is None:
            return
        if self._write_final(_FINAL_WRITE_S) is not True:
            _keep_unsaved(self)

    def _write_final(self, wait_s: float, *, quiet: bool = False) -> bool | None:
        """Write what the run kept on a thread of its own, waiting ``wait_s`` at most for it.

        What is written: the run's final record if the ledger has not taken it yet, else what
        was recorded after its end (:meth:`_flush_late`, again while more came meanwhile). A
        write already under way is waited for, not started twice.

        Args:
            wait_s: longest wait, in s; the write goes on past it (SQLite retries a locked
                database for about 150 s).
            quiet: no warning when the write fails.

        Returns:
            True when written, False when the write failed (kept, for the next try), ``None``
            when it was still under way after ``wait_s``.
        """
        if self._ledger is None:
            return True
        with self._lock:
            writer = self._writer
            if writer is None or not writer.is_alive():
                self._write_result = None
                writer = threading.Thread(
                    target=self._write_kept,
                    args=(quiet,),
                    name=f"greenprint-write-{self.id[:8]}",
                    daemon=True,  # never holds the interpreter's exit: saved apart instead
                )
                try:
                    writer.start()
                except RuntimeError:  # Python 3.12.0-1 at exit: no new thread; written here
                    self._writer = None
                    writer = None
                else:
                    self._writer = writer
        if writer is None:
            self._write_kept(quiet)
            return self._write_result
        writer.join(wait_s)
        if writer.is_alive():
            return None
        return self._write_result

    def _write_kept(self, quiet: bool) -> None:
        """The body of :meth:`_write_final`'s thread (records its outcome; never raises)."""
        try:
            written = self._flush_late(quiet=quiet)
            while written:  # recorded after the end while the final record was being written
                with self._lock:
                    more = bool(self._pending_fields or self._pending_metrics)
                if not more:
                    break
                written = self._flush_late(quiet=quiet)
        except Exception:  # pragma: no cover - _flush_late catches the ledger's errors
            logger.exception("greenprint: writing run %s failed", self.id[:8])
            written = False
        self._write_result = written

    def _flush(self, *, quiet: bool = False) -> bool:
        """Write the run's cost so far and what was recorded since the last flush.

        Args:
            quiet: no warning when the write fails (a write tried again: warned once).

        Returns:
            Whether it was written (``False``: kept pending, for the next flush).
        """
        if self._ledger is None:
            return True
        with self._flush_lock:
            return self._flush_now(quiet=quiet)

    def _flush_now(self, *, quiet: bool) -> bool:
        """:meth:`_flush`, its caller holding the flush lock."""
        if self._ledger is None:  # pragma: no cover - checked by _flush
            return True
        if getattr(self._ledger, "_closed", False):
            self._reopen_ledger()
        replaced = getattr(self._ledger, "_file_replaced", None)
        if replaced is not None and replaced() and not self._recover_ledger():
            return False  # the pending data stays pending; the next flush tries again
        if self._row_missing:  # the run's first record first, as it starts
            try:
                self._ledger.start_run(self._base_record())
            except Exception as e:  # still refused: kept, tried again at the next flush
                with self._lock:
                    self._write_error = str(e)
                return False
            self._row_missing = False
            written_to(self._ledger)
        key = threading.get_ident()
        with self._lock:
            fields = {**self._cost_fields(), **self._pending_fields}
            metrics, self._pending_metrics = self._pending_metrics, []
            samples, self._pending_samples = self._pending_samples, []
            pending_fields, self._pending_fields = self._pending_fields, {}
            self._in_flight[key] = (pending_fields, metrics, samples)
        try:
            self._ledger.flush(self.id, fields=fields, metrics=metrics, samples=samples)
        except Exception as e:  # a full disk or a locked database must not stop the user's code
            if not quiet and self._write_error is None:  # once, not at every flush that fails
                logger.warning(
                    "greenprint: could not write run %s to the ledger: %s (what it records is "
                    "kept and written at its next flush)",
                    self.id[:8],
                    e,
                )
            with self._lock:
                self._pending_metrics[:0] = metrics
                self._pending_samples[:0] = samples
                self._pending_fields = {**pending_fields, **self._pending_fields}
                self._write_error = str(e)
                self._in_flight.pop(key, None)
            return False
        with self._lock:
            self._in_flight.pop(key, None)
        if self._write_error is not None and self._state == "running":
            logger.warning("greenprint: run %s is written to the ledger again", self.id[:8])
        self._write_error = None
        return True

    def _reopen_ledger(self) -> None:
        """The run's ledger opened again after it was closed under the running run.

        The user's code closed the ledger object the run writes to (the process's shared one,
        or its own given as ``ledger=``): the run is written on to the same database, where it
        was meant to be. An in-memory ledger (gone with its object), or one that cannot be
        opened, stays as it is: the write then fails and the run is kept (:func:`_keep_unsaved`).
        """
        from greenprint.ledger._shared import shared_ledger

        old = self._ledger
        target = getattr(old, "_target", None)
        if old is None or target is None or target.memory:
            return
        try:
            self._ledger = shared_ledger(old.url_unmasked, holder=self)
        except GreenprintError:
            return

    def _spill(self) -> None:
        """Save a run whose final record the ledger never took into a ledger file of its own.

        Called at the interpreter's exit (:func:`_write_unsaved`). The file, in the temporary
        folder, holds the run as it ended: its row, every metric point, and its power samples
        (those written to its ledger before, when they can still be read there, and the rest),
        so that ``greenprint ledger merge LEDGER FILE`` replaces the run's ``running`` row (read
        ``lost``) by its final state, as it does for a node's ledger copied mid-run.
        """
        import tempfile
        from pathlib import Path

        from greenprint.ledger import Ledger

        ledger = self._ledger
        where = getattr(ledger, "path", None) or getattr(ledger, "url", "its ledger")
        written: list[PowerSample] = []
        if ledger is not None:
            try:  # what earlier flushes wrote: the merge keeps a run's samples whole
                written = ledger.samples(self.id)
            except Exception:  # an unreadable ledger: the samples kept here only
                written = []
        with self._lock:
            # what flushes blocked on the ledger took (a database another process keeps
            # locked), then what is pending; later values over earlier ones
            in_flight = list(self._in_flight.values())
            fields = {**self._cost_fields()}
            for taken, _, _ in in_flight:
                fields.update(taken)
            fields.update(self._pending_fields)
            fields["ended_at"] = self._ended_at
            record = replace(self._base_record(), **fields, metrics=tuple(self._metrics))
            samples = [*written, *(s for _, _, batch in in_flight for s in batch)]
            samples += self._pending_samples
            error = self._write_error
        # in the user's own folder (0700) of the shared temporary folder, as the fallback files:
        # a run's record (its command, host, parameters) is theirs, and a name any user can
        # compute in /tmp is one another user can plant first
        from greenprint._run_fallback import private_folder

        try:
            folder = private_folder()
        except OSError:  # the temporary folder takes no folder: the file alone, as before
            folder = Path(tempfile.gettempdir())
        path = folder / f"greenprint-unsaved-{self.id}.db"
        try:
            path.unlink(missing_ok=True)  # an earlier process's copy of the same run id
            saved = Ledger(path)
            try:
                saved.start_run(record)
                if samples:
                    saved.flush(self.id, samples=samples)
            finally:
                saved.close()
        except Exception as e:  # never raise at exit: say what is lost
            for leftover in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)  # not a broken file left to be merged
            logger.warning(
                "greenprint: run %s (%r) is lost: its ledger %s could not take its final record "
                "(%s) and neither could %s (%s); the ledger reads it 'lost' at %.4g kWh",
                self.id[:8],
                self.name,
                where,
                error,
                path,
                e,
                record.energy_kwh,
            )
            return
        # the command as it can be run; a URL's password is not printed (a shell variable)
        hidden = ledger is not None and password_masked(ledger)
        logger.warning(
            "greenprint: run %s (%r) could not be written to its ledger %s (%s); it is saved "
            "in %s: %s puts it in the ledger (it reads 'lost' there until then)%s",
            self.id[:8],
            self.name,
            where,
            error,
            path,
            merge_command(str(where), path, hidden=hidden),
            "; set LEDGER_URL to the ledger's URL above, with its password" if hidden else "",
        )

    def _move_to_fallback(
        self, old: Ledger, record: RunRecord, in_record: int, error: GreenprintError
    ) -> bool:
        """Write the whole run into its ledger's fallback file (:mod:`greenprint._run_fallback`).

        For a run whose ledger, one this process wrote to, is gone and cannot be made again
        (its folder deleted): the run goes on in the file the process's next runs for that
        ledger are made in, instead of being saved apart only at its end.

        Returns:
            Whether the run is in the fallback file now.
        """
        from greenprint._exceptions import UnknownRunError

        try:
            ledger = fallback_ledger(old, self, error)
            try:
                ledger.resolve_id(self.id)
            except UnknownRunError:
                ledger.start_run(record)
                counted(ledger)
                with self._lock:  # those metrics are in the record now
                    del self._pending_metrics[:in_record]
        except GreenprintError:
            return False
        self._ledger = ledger
        self._gone_said = None
        return True

    def _recover_ledger(self) -> bool:
        """Write the run into a new ledger at the path of one whose file was deleted or replaced.

        An open SQLite connection keeps writing to a deleted file without an error, so without
        this the rest of the run would vanish silently. The whole record (cost so far, metrics,
        fields) is inserted into the ledger now at that path, created if need be; power samples
        flushed before the file went are lost with it, and the warning says so.

        Returns:
            True when the run is in a ledger at the path again; False (with a warning that the
            run cannot be saved) when none can be opened or written there.
        """
        from greenprint._exceptions import UnknownRunError
        from greenprint.ledger._shared import shared_ledger

        old = self._ledger
        if old is None:  # pragma: no cover - only called with a ledger
            return False
        where = getattr(old, "path", None) or old.url
        with self._lock:
            record = replace(
                self._base_record(), **self._cost_fields(), metrics=tuple(self._metrics)
            )
            in_record = len(self._pending_metrics)
        try:
            ledger = shared_ledger(old.url_unmasked, holder=self)
            try:
                ledger.resolve_id(self.id)  # a restored copy may hold the run already
            except UnknownRunError:
                ledger.start_run(record)
                counted(ledger)
                with self._lock:  # those metrics are in the record now
                    del self._pending_metrics[:in_record]
        except GreenprintError as e:
            if self._gone_said is None:  # said once: the next flushes try again, quietly
                logger.warning(
                    "greenprint: ledger file %s was deleted or replaced while run %s was "
                    "running (power samples written before are lost with it)",
                    where,
                    self.id[:8],
                )
            if self._move_to_fallback(old, record, in_record, e):
                return True
            if str(e) != self._gone_said:  # a new reason: said; the same one was said already
                logger.warning(
                    "greenprint: run %s cannot be saved: its ledger %s is gone and cannot be "
                    "recreated: %s (tried again at each flush; saved apart at its end if "
                    "still not)",
                    self.id[:8],
                    where,
                    e,
                )
            self._gone_said = str(e)
            with self._lock:  # the reason the run's final record gives if it is saved apart
                self._write_error = f"the file is gone and cannot be recreated: {e}"
            return False
        if self._gone_said is None:
            logger.warning(
                "greenprint: ledger file %s was deleted or replaced while run %s was running; "
                "the run is written into a ledger at that path again (power samples written "
                "before are lost)",
                where,
                self.id[:8],
            )
        self._ledger = ledger
        if self._gone_said:  # it could not be, before
            logger.warning("greenprint: run %s is in a ledger at %s again", self.id[:8], where)
        self._gone_said = None
        return True


# Runs of this process that ended but whose ledger did not take everything they recorded (a
# full disk, a quota, a database that stayed locked, a server down): written again when another
# run starts and at the interpreter's exit; a run whose final record is still not written then
# is saved in a ledger file of its own (Run._spill), a warning saying how to merge it.
_UNSAVED: list[RunState] = []
_UNSAVED_LOCK = threading.Lock()


def _keep_unsaved(run: RunState) -> None:
    """Keep ``run`` to be written again later (see :data:`_UNSAVED`)."""
    with _UNSAVED_LOCK:
        if run not in _UNSAVED:
            _UNSAVED.append(run)


def _forget_unsaved(run: RunState) -> None:
    """``run`` is written whole now: no longer kept, and said so if it was."""
    if run not in _UNSAVED:
        return
    with _UNSAVED_LOCK:
        if run not in _UNSAVED:
            return
        _UNSAVED.remove(run)
    logger.warning(
        "greenprint: run %s (%r) is in the ledger now: written after its earlier failure",
        run.id[:8],
        run.name,
    )


def _write_unsaved(*, into: Ledger | None = None, at_exit: bool = False) -> None:
    """Write the kept runs again; at exit, save the runs still not written apart.

    Each run is written with what it kept (its final record with its cost, status, metrics and
    samples, or what it recorded after its end); a run written now is said to be, since its
    failure was. Never raises.

    Args:
        into: only the runs kept for this ledger (a run starting in it: it needs that ledger
            anyway, and another ledger's retries, a server's connect timeout, never hold it).
        at_exit: save apart the runs still not written.
    """
    if not _UNSAVED:
        return
    with _UNSAVED_LOCK:
        runs = list(_UNSAVED)
    if into is not None:
        url = into.url
        runs = [r for r in runs if r._ledger is not None and r._ledger.url == url]
    # bounded: a database another process keeps locked never holds the exit (nor a new run)
    deadline = time.monotonic() + (_EXIT_WRITE_S if at_exit else _FINAL_WRITE_S)
    for run in runs:
        wait_s = max(deadline - time.monotonic(), 0.0)
        try:  # says so when written (_forget_unsaved)
            written = run._write_final(wait_s, quiet=True) is True
        except Exception:  # pragma: no cover - _write_final catches the ledger's errors
            written = False
        if not written and at_exit:
            with _UNSAVED_LOCK:
                if run in _UNSAVED:
                    _UNSAVED.remove(run)
            if not run._final_written:
                run._spill()
            else:
                lost = {p.name for p in run._pending_metrics} | set(run._pending_fields)
                logger.warning(
                    "greenprint: what run %s (%r) recorded after its end could not be written "
                    "to its ledger (%s) and is lost: %s",
                    run.id[:8],
                    run.name,
                    run._write_error,
                    ", ".join(sorted(lost)),
                )


def _unsaved_at_exit() -> None:
    try:
        _write_unsaved(at_exit=True)
    except Exception:  # pragma: no cover - never raise at exit
        logger.exception("greenprint: could not write the runs kept unsaved")


# Registered when this module is imported, before the run registry's exit handler (installed
# with the first run): exit handlers run last-registered first, so this one runs after the
# registry has ended the runs still live at exit, whose final records may fail too.
atexit.register(_unsaved_at_exit)
# SIGTERM's default action ends the process without running the exit handlers: saved apart then
registry.before_death.append(_unsaved_at_exit)
# ... and SIGTERM's handler stays installed while runs are kept (it saves them apart)
registry.keep_sigterm.append(lambda: bool(_UNSAVED))
renew_after_fork(globals(), "_UNSAVED_LOCK")
if hasattr(os, "register_at_fork"):  # a forked child writes its own runs, not its parent's
    os.register_at_fork(after_in_child=_UNSAVED.clear)
