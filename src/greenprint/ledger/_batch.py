"""Fields of several runs written in one transaction: every run changed, or none.

``Ledger.flush`` writes one run per transaction; :meth:`Ledger.set_role` gives roles to several
runs at once, and a failure half-way (a run deleted meanwhile, a database trigger, the disk full)
must leave none of them changed. Both stores run a function in one transaction
(``transaction(fn, write=True)``, rolled back when ``fn`` raises); this writes through it with
the statement each store's own ``update_run`` issues.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import UnknownRunError

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._sqlite import SQLiteStore

__all__ = ["update_runs"]

_Changes = Sequence[tuple[str, Mapping[str, Any]]]


def update_runs(
    store: SQLStore | SQLiteStore,
    changes: _Changes,
    *,
    where: str,
) -> None:
    """Set each run's fields, all in one transaction.

    Args:
        store: the ledger's store.
        changes: ``(run id, {column: stored value})`` pairs, values as ``encode_field`` returns
            them; a pair with no fields only checks that the run exists.
        where: the ledger as its messages name it.

    Raises:
        UnknownRunError: a run is not in the ledger (any more); nothing is written.
        LedgerError: the ledger cannot be written; nothing is written.
    """
    from greenprint.ledger._sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        store.transaction(lambda conn: _sqlite_updates(conn, changes, where), write=True)
    else:
        store.transaction(lambda conn: _sql_updates(conn, changes, where), write=True)


def _gone(run_id: str, where: str) -> UnknownRunError:
    return UnknownRunError(f"no run with id {run_id!r} in ledger {where} (any more): none changed")


def _sqlite_updates(conn: Any, changes: _Changes, where: str) -> None:
    from greenprint.ledger._sqlite import _bound, _columns

    for run_id, values in changes:
        names = _columns(values)
        if not names:
            if conn.execute("SELECT id FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise _gone(run_id, where)
            continue
        statement = f"UPDATE runs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
        params = [_bound(n, values[n]) for n in names] + [run_id]
        if conn.execute(statement, params).rowcount == 0:
            raise _gone(run_id, where)


def _sql_updates(conn: Any, changes: _Changes, where: str) -> None:
    import sqlalchemy as sa

    from greenprint.ledger._schema import runs as runs_t

    for run_id, values in changes:
        if not values:
            if conn.execute(sa.select(runs_t.c.id).where(runs_t.c.id == run_id)).first() is None:
                raise _gone(run_id, where)
            continue
        result = conn.execute(runs_t.update().where(runs_t.c.id == run_id).values(**values))
        if result.rowcount == 0:
            raise _gone(run_id, where)
