"""A PostgreSQL connection taken from the pool is pinged first, waiting a bounded time.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` and waits for the answer for ever: a server
that stops answering while its socket stays open (a ``SIGSTOP``-ed or swapped-out postmaster, a
stuck host behind a TCP connection) hung the next run's start, and the study with it, with no
limit (``connect_timeout`` bounds new connections only; 10 minutes measured, then killed). Here
the ping waits ``connect_timeout`` at most (the URL's, else
:data:`greenprint.ledger._sql.CONNECT_TIMEOUT_S`) and then fails as a connection that timed
out does: ``timeout expired``, a failure of the ledger the run's fallback takes
(:mod:`greenprint._run_fallback`). The connection is dropped (the pool takes a new one next).
"""

from __future__ import annotations

import select
import time
from typing import Any

import sqlalchemy as sa

__all__ = ["bounded_ping"]


def bounded_ping(engine: sa.engine.Engine, url: sa.engine.URL, default_s: float) -> None:
    """Ping each pooled connection of ``engine`` as it is taken, waiting a bounded time.

    Replaces ``pool_pre_ping``: a fresh connection is not pinged (it has just answered). The
    wait is ``url``'s ``connect_timeout``, else ``default_s``.
    """
    timeout_s = _connect_timeout_s(url, default_s)

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop("greenprint_fresh", False):
            return
        _ping_within(dbapi_conn, timeout_s)

    @sa.event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info["greenprint_fresh"] = True


def _connect_timeout_s(url: sa.engine.URL, default_s: float) -> float:
    """``url``'s ``connect_timeout`` in seconds, else ``default_s``."""
    given = url.query.get("connect_timeout")
    try:
        seconds = float(given) if isinstance(given, str) else default_s
    except ValueError:  # libpq refuses it as the connection opens, saying why
        return default_s
    return seconds if seconds > 0 else float("inf")  # 0: libpq's "wait for ever"


def _ping_within(conn: Any, timeout_s: float) -> None:
    """``SELECT 1`` on psycopg connection ``conn``, its answer awaited ``timeout_s`` at most.

    Raises:
        psycopg.OperationalError: no answer in time (``timeout expired``), or the connection
            is broken (the pool drops it and takes a new one: a server restarted meanwhile).
    """
    import psycopg
    from psycopg import pq

    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK or conn.closed:
        raise sa.exc.DisconnectionError("the connection is closed")
    deadline = time.monotonic() + timeout_s
    try:
        if _answered(pgconn, deadline):
            return
    except psycopg.OperationalError as e:  # the socket closed: a server restarted, a cut
        raise sa.exc.DisconnectionError(str(e)) from e
    raise psycopg.OperationalError("timeout expired")


def _answered(pgconn: Any, deadline: float) -> bool:
    """Send ``SELECT 1`` and read its answer; whether it came before ``deadline``.

    Raises:
        psycopg.OperationalError: the connection is broken.
        sqlalchemy.exc.DisconnectionError: the server answered with an error.
    """
    from psycopg import pq

    pgconn.send_query(b"SELECT 1")
    while pgconn.flush():  # a non-blocking connection: the query may not be sent at once
        if not _wait(pgconn.socket, deadline, write=True):
            return False
    failed = False
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                if failed:
                    raise sa.exc.DisconnectionError("the ping failed")
                return True
            failed = failed or result.status != pq.ExecStatus.TUPLES_OK
        if not _wait(pgconn.socket, deadline, write=False):
            return False


def _wait(socket: int, deadline: float, *, write: bool) -> bool:
    """Whether ``socket`` is ready (to write, or to read) before ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    wait_s = None if left == float("inf") else left  # connect_timeout=0: for ever, as libpq
    if hasattr(select, "poll"):  # any descriptor number (select's stop at 1024)
        poller = select.poll()
        poller.register(socket, select.POLLOUT if write else select.POLLIN)
        return bool(poller.poll(None if wait_s is None else wait_s * 1000))
    ready = select.select(*([], [socket]) if write else ([socket], []), [], wait_s)
    return bool(ready[1] if write else ready[0])
