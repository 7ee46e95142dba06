"""A PostgreSQL migration waits a bounded time for the tables it changes, and says who holds them.

A migration changes tables (schema 6: ``DROP TRIGGER ... ON metrics``, ``ALTER TABLE
metric_marks``), which takes their ``ACCESS EXCLUSIVE`` lock. A session that has read them in a
transaction it leaves open (a notebook's SQLAlchemy connection, ``psql`` after ``BEGIN``, a
dashboard: *idle in transaction*) holds a lock that conflicts: the migration waited for it with
no limit, and every reader and writer of the ledger queued behind the migration's request, the
runs of the previous greenprint included (measured: all of them waiting until that session
ended, 30 s in the test, for ever in a team's database).

Here each try waits :data:`LOCK_WAIT_S` for a table at most (``SET LOCAL lock_timeout``, set
once the advisory lock that serialises migrations is held: a migration that waits for another
migration waits as before); the queue behind it then moves on, and the migration is tried again
until :data:`MIGRATION_WAIT_S`, saying once which sessions hold the tables; then it gives up with
their description, the ledger left unchanged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = [
    "LOCK_NOT_AVAILABLE",
    "LOCK_WAIT_S",
    "MIGRATION_WAIT_S",
    "TablesHeld",
    "bound_lock_waits",
    "holders",
]

#: How long one try of a migration waits for a table, s.
LOCK_WAIT_S = 2.0
#: How long a migration is tried again while other sessions hold its tables, s.
MIGRATION_WAIT_S = 120.0
#: PostgreSQL's SQLSTATE of a lock wait past ``lock_timeout``.
LOCK_NOT_AVAILABLE = "55P03"

# greenprint's tables, as the connection's search path finds them (NULL when one is missing)
_HOLDERS = """
SELECT DISTINCT a.pid, a.usename, a.application_name, a.state, a.xact_start,
    left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 60)
FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.granted AND a.pid <> pg_backend_pid() AND l.relation = ANY (ARRAY[
    to_regclass('runs'), to_regclass('metrics'), to_regclass('metric_marks'),
    to_regclass('samples')])
ORDER BY a.xact_start NULLS LAST, a.pid
LIMIT 3
"""


class TablesHeld(Exception):
    """A try of a migration waited :data:`LOCK_WAIT_S` for a table another session holds."""

    def __init__(self, from_version: int) -> None:
        super().__init__(from_version)
        self.from_version = from_version


def bound_lock_waits(conn: sa.engine.Connection) -> None:
    """Make every lock wait of the rest of this transaction last :data:`LOCK_WAIT_S` at most."""
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'")


def holders(engine: sa.engine.Engine) -> str:
    """The sessions holding a lock on greenprint's tables, for a message.

    Returns:
        e.g. ``"session 10529 (user postgres, idle in transaction since 12:40:01 UTC:
        'SELECT count(*) FROM metrics')"``; ``"another session"`` when none is seen now (it
        ended, or the role may not see it).
    """
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(_HOLDERS).all()
    except sa.exc.DBAPIError:  # the reason is the wait itself, said anyway
        return "another session"
    return "; ".join(_described(row) for row in rows) or "another session"


def _described(row: Any) -> str:
    pid, user, application, state, since, query = row
    parts = [f"user {user}"] if user else []
    if application:
        parts.append(f"application {application!r}")
    what = state or "state unknown"
    if since is not None:
        what += f" since {since.astimezone(tz=None).strftime('%H:%M:%S %Z').strip()}"
    if query:
        what += f": {query!r}"
    parts.append(what)
    return f"session {pid} ({', '.join(parts)})"
