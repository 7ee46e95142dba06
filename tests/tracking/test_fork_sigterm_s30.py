"""SIGTERM sent to a forked child of a tracked process, before the child has run.

``with Pool(2) as pool: pool.map(...)`` inside a run hung at the pool's end (the suite's CI,
1 script in 30 to 75 at load 3 on 2 cores): ``terminate()`` sends each worker SIGTERM, and a
worker not yet scheduled since its fork lost it. Its disposition was greenprint's Python
handler, inherited from the parent; CPython's C handler noted the signal on the child's return
from ``fork``, and the child's interpreter then cleared the signals noted before it began (the
parent's, it assumes). The worker lived on, waiting on the pool's queue, and the pool waited
for it. On one CPU the parent runs first after a fork, so that every SIGTERM sent at once
lands before the child runs: 0 of 20 children died of it before the fix, 20 of 20 after.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _clean_env import clean_env
from _report_cli import empty_home

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="os.fork, sched_setaffinity, POSIX signals"
)

#: Twenty children forked inside a run and sent SIGTERM at once, on one CPU; then a child that
#: starts a run of its own, and is sent SIGTERM while it runs.
SCRIPT = """
import json, os, signal, time
import greenprint as gp

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
killed = 0
with gp.track("parent", study="s", ledger="greenprint.db"):
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        with gp.track("child", study="s", ledger="greenprint.db"):
            os.write(write, b"x")
            time.sleep(5)
        os._exit(0)
    os.read(read, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
child = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
print(json.dumps({"killed": killed, "child": child}))
"""


def test_a_forked_child_sent_sigterm_before_it_ran_dies_of_it(tmp_path_factory):
    import greenprint as gp

    home = empty_home(tmp_path_factory, "fork-sigterm")
    (home / "script.py").write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "script.py"],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert found["killed"] == 20
    # a child's own run still has greenprint's handler: ended interrupted, then the default
    assert found["child"] == 15
    runs = {r.name: r for r in gp.Ledger(home / "greenprint.db", create=False).runs()}
    assert runs["parent"].status == "finished"
    assert runs["child"].status == "interrupted"
    assert runs["child"].error == "SIGTERM"
