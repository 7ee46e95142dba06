"""No greenprint thread is inside SQLite when the process forks (ledger/_sqlite_forks.ForkGate).

SQLite keeps process-wide mutexes (its memory allocator's, its list of open files') that a fork
copies as they stand, and Python's ``sqlite3`` does nothing about fork. Before every SQLite call
of greenprint's passed the fork gate, only transactions did: a child forked while another
thread opened, set up or closed a ledger's connection (a thread pool of trials, each ``gp.track``
into its own ledger; a ``Ledger`` dropped unclosed) could get such a mutex held by a thread it
does not have, and waited on it for good at its first SQLite call (under gdb:
``sqlite3WalClose`` / ``sqlite3_free`` -> ``pthread_mutex_lock``). Measured on 2 cores, beside
two threads tracking runs into 12 ledgers: 4 of 200 forked children that ``run.log`` hung, 8
of 200 that ``gp.track`` their own run, 5 of 40 DataLoader epochs (2 workers each) timed out;
after: 0 of 1,000, 0 of 1,000 and 0 of 100 epochs. The scripts below failed on the previous
code: the first 10 of 10 runs, the second 8 of 10. On the way: a child that closed every
connection it inherited deleted the WAL of a ledger its parent was opening again, whose next
connection failed with "disk I/O error" (2 of 9 runs of the first script at 300 forks; now a
child closes those of the files it opens only: 0 of 21).

Each script runs in a fresh interpreter with deadlines of its own: a hang fails the test.
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

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")


def _run(source: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``source`` in a fresh interpreter with a clean environment, as a user's script runs."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


# Two threads track runs into 12 ledgers (each opened and closed by greenprint as runs need
# them) and read ledgers they drop unclosed, while the tracked main run, sampled and flushed
# every 10 ms, forks children that log to it or track runs of their own.
CHURN = """
import os, sys, threading, time
import greenprint as gp

folder = sys.argv[1]
stop = threading.Event()

def churner(k):
    i = 0
    while not stop.is_set():
        path = os.path.join(folder, f"churn{i % 12}.db")
        with gp.track(f"churn{k}-{i}", ledger=path) as r:
            r.log(c=i, step=i)
        if i % 3 == 0:
            len(gp.Ledger(path).runs(status="running"))  # a ledger dropped unclosed
        i += 1

def start_churn():
    threads = [threading.Thread(target=churner, args=(k,), daemon=True) for k in range(2)]
    for thread in threads:
        thread.start()
    return threads
"""

FORKS_BESIDE_LEDGERS_OPENED_AND_CLOSED = (
    CHURN
    + """
import signal
n = int(sys.argv[2])
main = os.path.join(folder, "main.db")
hung = failed = 0
with gp.track("main", ledger=main, sample_interval_s=0.01, flush_interval_s=0.01) as run:
    threads = start_churn()
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if i % 2:
                    with gp.track(f"child{i}", ledger=main) as child:
                        child.log(x=i)
                else:
                    run.log(from_child=i, step=i)
            except BaseException as e:
                print("child", i, repr(e), file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                failed += os.waitstatus_to_exitcode(status) != 0
                break
            if time.monotonic() > deadline:  # hung: stop at the first
                hung += 1
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.001)
        if hung:
            break
    stop.set()
    for thread in threads:
        thread.join()
print(hung, failed)
"""
)


def test_forked_children_beside_threads_opening_and_closing_ledgers_never_hang(
    tmp_path: Path,
) -> None:
    n = 160
    done = _run(FORKS_BESIDE_LEDGERS_OPENED_AND_CLOSED, str(tmp_path), str(n), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"], done.stderr  # none hung, none failed
    assert "Traceback" not in done.stderr  # no thread failed ("disk I/O error": see _after_fork)
    with gp.Ledger(tmp_path / "main.db", create=False) as led:
        runs = {r.name: r for r in led.runs()}
    # every child's work is in the ledger: its points on the inherited run, its own runs
    assert sorted(p.value for p in runs["main"].metrics if p.name == "from_child") == [
        float(i) for i in range(0, n, 2)
    ]
    assert {f"child{i}" for i in range(1, n, 2)} <= set(runs)
    assert {runs[f"child{i}"].status for i in range(1, n, 2)} == {"finished"}


DATALOADER_BESIDE_LEDGERS_OPENED_AND_CLOSED = (
    CHURN
    + """
import torch
from torch.utils.data import DataLoader, TensorDataset

class Logged(TensorDataset):
    def __getitem__(self, i):
        if i % 16 == 0:  # a worker logs to the run it inherited
            gp.current_run().log(worker_item=float(i), step=i)
        return super().__getitem__(i)

epochs = int(sys.argv[2])
data = Logged(torch.randn(64, 4), torch.randn(64, 1))
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
main = os.path.join(folder, "main.db")
timed_out = 0
with gp.track("train", ledger=main, sample_interval_s=0.01, flush_interval_s=0.01) as run:
    threads = start_churn()
    for epoch in range(epochs):
        try:  # a worker that hangs times the loader out
            for x, y in DataLoader(data, batch_size=16, num_workers=2, timeout=5):
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        except RuntimeError as e:
            print(epoch, repr(e), file=sys.stderr, flush=True)
            timed_out += 1
            break
        run.log(loss=loss.item(), step=epoch)
    stop.set()
    for thread in threads:
        thread.join()
print(timed_out)
"""
)


def test_a_dataloaders_workers_forked_beside_ledgers_opened_and_closed_never_hang(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    epochs = 16
    done = _run(
        DATALOADER_BESIDE_LEDGERS_OPENED_AND_CLOSED, str(tmp_path), str(epochs), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"], done.stderr  # no epoch timed out on a hung worker
    with gp.Ledger(tmp_path / "main.db", create=False) as led:
        [train] = [r for r in led.runs() if r.name == "train"]
    # each epoch's 2 workers logged items 0, 16, 32 and 48 to the training run
    items = sorted(p.value for p in train.metrics if p.name == "worker_item")
    assert items == sorted([0.0, 16.0, 32.0, 48.0] * epochs)
    assert len([p for p in train.metrics if p.name == "loss"]) == epochs


CHILD_FORKED_WHILE_A_THREAD_IS_INSIDE_A_TRANSACTION = """
import os, sys, threading, time
import greenprint as gp

main = sys.argv[1]
with gp.track("main", ledger=main, sample_interval_s=0.01, flush_interval_s=0.01) as run:
    run.log(before=1.0)
    store = run.ledger._store
    inside = threading.Event()
    left = []

    def long(conn):  # another thread inside SQLite (a report's read) for 0.5 s
        inside.set()
        time.sleep(0.5)
        left.append(time.monotonic())  # its last moment inside

    thread = threading.Thread(target=store.transaction, args=(long,), kwargs={"write": False})
    thread.start()
    inside.wait()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child logs to the run it inherited, and tracks a run of its own
        run.log(from_child=1.0)
        with gp.track("child", ledger=main) as child:
            child.log(x=1.0)
        os._exit(0)
    forked = time.monotonic()
    _, status = os.waitpid(pid, 0)
    thread.join()
print(os.waitstatus_to_exitcode(status), forked > left[0], f"{forked - t0:.2f}")
"""


def test_a_child_forked_while_a_thread_reads_logs_to_its_run_and_the_fork_waited(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    done = _run(CHILD_FORKED_WHILE_A_THREAD_IS_INSIDE_A_TRANSACTION, str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    code, after_the_read, waited = done.stdout.split()
    assert code == "0", done.stderr
    assert after_the_read == "True"  # the fork waited for the read to end
    assert float(waited) < 5.0  # and no longer
    with gp.Ledger(db, create=False) as led:
        runs = {r.name: r for r in led.runs()}
    assert [p.value for p in runs["main"].metrics if p.name == "from_child"] == [1.0]
    assert runs["child"].status == "finished"
    assert [p.value for p in runs["child"].metrics] == [1.0]
