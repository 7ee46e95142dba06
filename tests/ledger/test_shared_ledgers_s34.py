"""A process that writes many ledgers holds a bounded number of file descriptors.

``gp.track`` shares one open ledger per process and path (ledger/_shared.py). They were kept
for the process's life: about 4 descriptors per SQLite file (the database, its WAL and WAL
index, a pin on the file), so a sweep writing one ledger per experiment, a notebook or a
service leaked them without bound (measured on session 33's code: 300 ledgers one after
another, 1,208 descriptors; ``select()`` fails past 1,024). The ledgers no run needs are now
closed beyond the 8 most recently used (40 descriptors for the same 300), and a run's ledger is
never closed while the run is live or still has something to write. Each script runs in a fresh
interpreter, as a user's does, and counts its own descriptors (``/proc/self/fd``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from greenprint.ledger._shared import KEPT_OPEN

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc/self/fd"
)

#: descriptors a SQLite ledger holds open with one connection: database, WAL, WAL index, pin
_PER_LEDGER = 4
#: the files the meters keep open from a process's first run on (/proc/stat, /proc/loadavg)
_METERS = 4

_COMMON = """
import os, sys, threading
import greenprint as gp

d = sys.argv[1]

def fds():
    return len(os.listdir("/proc/self/fd"))

def sweep(start, stop, most=None):
    for i in range(start, stop):
        with gp.track(f"exp{i}", study="sweep", ledger=os.path.join(d, f"e{i}.db")) as run:
            run.log(score=i / 1000, step=1)
        if most is not None:
            most[0] = max(most[0], fds())
"""


def _run(body: str, folder: Path) -> list[str]:
    """``body`` (after the common helpers) in a fresh interpreter: its output's lines."""
    source = _COMMON + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", source, str(folder)],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "could not" not in done.stderr  # no write failed, none was kept for later
    return done.stdout.splitlines()


def _assert_swept(folder: Path, numbers: range) -> None:
    """Each ledger ``e{i}.db`` holds its one run, finished, with its score."""
    for i in numbers:
        with gp.Ledger(folder / f"e{i}.db", create=False) as led:
            (record,) = led.runs()
        assert (record.name, record.status) == (f"exp{i}", "finished")
        assert [(p.name, p.value, p.step) for p in record.metrics] == [("score", i / 1000, 1)]


def test_a_sweep_of_60_ledgers_holds_a_bounded_number_of_descriptors(tmp_path: Path) -> None:
    """60 ledgers, more than 6 times the 8 kept open: kept for the process's life, as before,
    they would hold 240 descriptors against the bound's 40 (300 held 1,208 on session 33's
    code; the bound does not grow with their number)."""
    before, most, after = map(
        int,
        _run(
            """
            before, most = fds(), [0]
            sweep(0, 60, most)
            print(before, most[0], fds())
            """,
            tmp_path,
        )[0].split(),
    )
    # the 8 ledgers kept open, and the one being written (session 33: 4 more per ledger)
    assert most - before <= (KEPT_OPEN + 1) * _PER_LEDGER + _METERS, (before, most, after)
    assert after - before <= KEPT_OPEN * _PER_LEDGER + _METERS, (before, most, after)
    _assert_swept(tmp_path, range(60))


def test_a_live_run_writes_on_while_many_ledgers_come_and_go(tmp_path: Path) -> None:
    """A run's ledger is never closed under it: it writes its metrics and its end while 40
    other ledgers are used (in a thread: not its children), and a metric logged after its end,
    once 40 more were used and its ledger was closed, reaches the ledger (opened anew), as
    ``run.ledger`` and the ledger object kept from it before read it."""
    lines = _run(
        """
        from greenprint.ledger._shared import closed_here

        long = gp.track("long", study="s", ledger=os.path.join(d, "long.db"))
        with long:
            first = long.ledger
            long.log(loss=1.0, step=1)
            worker = threading.Thread(target=sweep, args=(0, 40))
            worker.start()
            worker.join()
            long.log(loss=0.5, step=2)
            print("open while live", not first._closed, long.ledger is first)
        sweep(40, 80)
        print("closed once ended", closed_here(first))
        print("kept reads", [r.name for r in first.runs()])  # opened again, not an error
        long.log(late=7.0)  # written at once, into its ledger opened anew
        with gp.Ledger(os.path.join(d, "long.db"), create=False) as led:
            print("late", [p.name for p in led.run(long.id).metrics])
        print("reads", [r.name for r in long.ledger.runs()])
        """,
        tmp_path,
    )
    assert lines[0] == "open while live True True"
    assert lines[1] == "closed once ended True"
    # a ledger object kept from the run reads on: opened again at its next use
    assert lines[2] == "kept reads ['long']"
    assert lines[3] == "late ['loss', 'loss', 'late']"
    assert lines[4] == "reads ['long']"
    with gp.Ledger(tmp_path / "long.db", create=False) as led:
        (record,) = led.runs()
    assert record.status == "finished"
    assert [(p.name, p.value) for p in record.metrics] == [
        ("loss", 1.0),
        ("loss", 0.5),
        ("late", 7.0),
    ]
    assert record.energy_kwh > 0
    _assert_swept(tmp_path, range(80))


def test_runs_in_threads_each_writing_ledgers_of_their_own(tmp_path: Path) -> None:
    lines = _run(
        """
        before, most = fds(), [0]
        workers = [
            threading.Thread(target=sweep, args=(12 * k, 12 * (k + 1), most)) for k in range(8)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        print(before, most[0], fds())
        """,
        tmp_path,
    )
    before, most, after = map(int, lines[0].split())
    # at most 8 live runs' ledgers (their samplers' connections besides) and the 8 kept open:
    # 320 ledgers held 1,288 descriptors before; these 96 would hold 384 against the bound's 196
    assert most - before <= 3 * (KEPT_OPEN + 8) * _PER_LEDGER + _METERS, (before, most, after)
    assert after - before <= KEPT_OPEN * _PER_LEDGER + _METERS, (before, most, after)
    _assert_swept(tmp_path, range(96))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_bounds_its_own_ledgers_and_the_parents_run_goes_on(
    tmp_path: Path,
) -> None:
    """The child inherits its parent's shared ledgers (left as they are) and a live run; its
    own 60 ledgers are bounded as the parent's are; the parent's run, live across the fork,
    writes on and ends in its ledger."""
    lines = _run(
        """
        sweep(0, 12)
        parent = gp.track("parent", study="s", ledger=os.path.join(d, "parent.db"))
        parent.start()
        parent.log(x=1.0)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                before, most = fds(), [0]
                sweep(100, 160, most)
                code = 0 if most[0] - before <= 9 * 4 + 4 else 4
                print("child", before, most[0], flush=True)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        sweep(12, 40)
        parent.log(x=2.0)
        parent.stop()
        print("parent", parent.status)
        """,
        tmp_path,
    )
    assert "child exit 0" in lines, lines
    assert lines[-1] == "parent finished"
    with gp.Ledger(tmp_path / "parent.db", create=False) as led:
        (record,) = led.runs()
    assert record.status == "finished"
    assert [p.value for p in record.metrics] == [1.0, 2.0]
    _assert_swept(tmp_path, [*range(40), *range(100, 160)])


def test_a_ledger_file_replaced_after_its_ledger_was_closed_is_told_apart(
    tmp_path: Path,
) -> None:
    """The file at a path whose shared ledger was closed (9 others used since) is replaced
    by another ledger: the next run there writes into the new file, beside its run."""
    lines = _run(
        """
        sweep(0, 10)
        os.remove(os.path.join(d, "e0.db"))
        with gp.Ledger(os.path.join(d, "e0.db")) as led:
            led.start_run(gp.RunRecord(id="0123456789abcdef", name="other", study="sweep"))
        with gp.track("again", study="sweep", ledger=os.path.join(d, "e0.db")) as run:
            run.log(score=1.0)
        print(run.status)
        """,
        tmp_path,
    )
    assert lines == ["finished"]
    with gp.Ledger(tmp_path / "e0.db", create=False) as led:
        assert sorted(r.name for r in led.runs()) == ["again", "other"]


def test_a_run_still_writing_its_end_keeps_its_ledger_open(tmp_path: Path) -> None:
    """Another process keeps the run's ledger locked past the wait of its end (until told to
    let go): the run ends with its final record unwritten (kept, written in the background). 30
    other ledgers used meanwhile do not close its ledger under that write: the record lands
    once the lock goes. The end waits 0.5 s here, not its 5 s (``test_exit_s24`` holds that
    length): the lock outlasts either."""
    lines = _run(
        """
        import subprocess, time
        from greenprint import _run_lifecycle, _run_persistence
        from greenprint.ledger._shared import closed_here

        # the end's wait: one binding, in _run_persistence, read there by every end of the run
        # (its stop, its late writes, its unsaved-run flushes): set once, every end waits 0.5 s
        assert "_FINAL_WRITE_S" in vars(_run_persistence)  # there, or this would set nothing
        assert "_FINAL_WRITE_S" not in vars(_run_lifecycle)  # no copy a patch would miss
        _run_persistence._FINAL_WRITE_S = 0.5
        db = os.path.join(d, "long.db")
        long = gp.track("long", study="s", ledger=db)
        long.start()
        long.log(loss=1.0)
        locker = subprocess.Popen(
            [sys.executable, "-c", (
                "import sqlite3, sys\\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\\n"
                "c.execute('BEGIN IMMEDIATE')\\n"
                "print('locked', flush=True)\\n"
                "sys.stdin.readline()\\n"
                "c.execute('COMMIT')\\n"
            ), db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert locker.stdout.readline().strip() == "locked"
        first = long.ledger
        long.stop()  # waits 0.5 s, then leaves the write to the background
        sweep(0, 30)
        print("kept open", not closed_here(first) and not first._closed)
        locker.communicate("go\\n")  # the lock goes: the write waiting in the background lands
        deadline = time.monotonic() + 20
        while long._writer is not None and long._writer.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        print("written", long.ledger.run(long.id).status)
        """,
        tmp_path,
    )
    assert lines == ["kept open True", "written finished"]
    with gp.Ledger(tmp_path / "long.db", create=False) as led:
        (record,) = led.runs()
    assert (record.status, [p.value for p in record.metrics]) == ("finished", [1.0])
    _assert_swept(tmp_path, range(30))


def _open_on(path: Path) -> int:
    """How many of this process's descriptors are on ``path`` or its WAL files."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed since
            continue
        count += target.startswith(str(path))
    return count


def test_a_connection_in_use_when_its_ledger_closes_is_closed_when_returned(
    tmp_path: Path,
) -> None:
    """A ledger closed while one of its connections is in a transaction (another thread's
    read, here the transaction itself closing it) put that connection back in its pool when the
    transaction ended: open for good, with its 3 descriptors (database, WAL, WAL index)."""
    path = tmp_path / "g.db"
    led = gp.Ledger(path)
    assert _open_on(path) == 3
    led._store.transaction(lambda conn: led.close(), write=False)
    assert _open_on(path) == 0


def test_a_ledger_kept_from_run_ledger_reads_on_in_a_thread_pool(tmp_path: Path) -> None:
    """``led = run.ledger`` then reads a moment later, in 12 threads each writing ledgers of its
    own: the ledger was often closed between (other threads opened 8 since) and the read raised
    'ledger ... is closed' (measured: 1 to 5 reads of 120 failed); now it is opened again. One
    whose file was deleted meanwhile says it was closed and cannot be opened again."""
    lines = _run(
        """
        import time
        errors, reads = [], [0]

        def worker(k):
            for i in range(10):
                path = os.path.join(d, f"t{k}.{i}.db")
                with gp.track(f"r{k}.{i}", ledger=path) as run:
                    run.log(score=i, step=1)
                led = run.ledger
                time.sleep(0.05)  # the user's own work: other threads open ledgers meanwhile
                try:
                    (record,) = led.runs()
                    assert [p.value for p in record.metrics] == [i]
                    reads[0] += 1
                except Exception as e:
                    errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        print("reads", reads[0], "errors", errors[:1])

        with gp.track("gone", ledger=os.path.join(d, "gone.db")) as run:
            pass
        led = run.ledger
        sweep(0, 2 * len(threads))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(d, "gone.db" + suffix)):
                os.remove(os.path.join(d, "gone.db" + suffix))
        try:
            led.runs()
        except gp.LedgerError as e:
            print(e)
        print("not created", not os.path.exists(os.path.join(d, "gone.db")))
        """,
        tmp_path,
    )
    assert lines[0] == "reads 120 errors []"
    assert "gone.db was closed by greenprint (its run had ended" in lines[1]
    assert "cannot be opened again" in lines[1]
    assert lines[2] == "not created True"


def test_a_late_metric_does_not_create_again_a_ledger_deleted_while_closed(
    tmp_path: Path,
) -> None:
    """A run's ledger closed after its end (8 others used since) and then deleted: a metric
    logged on the run later, and ``run.ledger``, created an empty ledger at the path (the
    metric then failed on it: 'no run with id ...'); now nothing is created, the warning says
    there is no ledger there, and ``run.ledger``'s reads say it cannot be opened again."""
    source = _COMMON + textwrap.dedent(
        """
        path = os.path.join(d, "gone.db")
        with gp.track("gone", ledger=path) as run:
            run.log(score=1.0, step=1)
        sweep(0, 12)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        run.log(late=2.0)  # never raises into the user's code
        try:
            run.ledger.runs()
        except gp.LedgerError as e:
            print("reads:", e)
        print("created", os.path.exists(path))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", source, str(tmp_path)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("reads: ledger sqlite:")
    assert "gone.db was closed by greenprint" in lines[0]
    assert "cannot be opened again: no ledger at" in lines[0]
    assert lines[1] == "created False"
    assert "could not write run" in done.stderr
    assert "no ledger at" in done.stderr
    assert "no run with id" not in done.stderr
    _assert_swept(tmp_path, range(12))


def test_a_run_given_a_ledger_kept_from_an_earlier_run_writes_into_it(tmp_path: Path) -> None:
    """``gp.track(ledger=first.ledger)`` once 12 other ledgers were used since ``first`` ended
    (its ledger closed here) raised 'ledger ... is closed' into the user's code; now the run is
    written into that ledger."""
    lines = _run(
        """
        with gp.track("first", ledger=os.path.join(d, "main.db")) as first:
            pass
        kept = first.ledger
        sweep(0, 12)
        with gp.track("second", ledger=kept) as run:
            run.log(score=0.5, step=1)
        print([r.name for r in kept.runs()])
        """,
        tmp_path,
    )
    assert lines == ["['first', 'second']"]
    with gp.Ledger(tmp_path / "main.db", create=False) as led:
        assert sorted((r.name, r.status) for r in led.runs()) == [
            ("first", "finished"),
            ("second", "finished"),
        ]
    _assert_swept(tmp_path, range(12))
