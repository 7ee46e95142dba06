"""Fields of several runs written in one transaction: every run changed, or none.

``Ledger.flush`` writes one run per transaction; :meth:`Ledger.set_role` gives roles to several
runs at once, and a failure half-way (a run deleted meanwhile, a database trigger, the disk full)
must leave none of them changed. Both stores run a function in one transaction
(``transaction(fn, write=True)``, rolled back when ``fn`` raises); this writes each run's fields
through it with the store's own ``update_fields``, which its ``update_run`` uses too.
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

    def do(conn: Any) -> None:
        for run_id, values in changes:
            if not store.update_fields(conn, run_id, values):  # raising rolls all back
                raise UnknownRunError(
                    f"no run with id {run_id!r} in ledger {where} (any more): none changed"
                )

    store.transaction(do, write=True)
