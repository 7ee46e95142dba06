"""What a database must hold to be opened as a ledger, and how long a busy one is waited for.

Shared by :class:`~greenprint.ledger._sqlite.SQLiteStore` and
:class:`~greenprint.ledger._sql.SQLStore`, so that both refuse the same databases with the same
messages. Pure Python (no SQLAlchemy).
"""

from __future__ import annotations

from greenprint._exceptions import NotALedgerError, SchemaVersionError
from greenprint.ledger._fields import SCHEMA_VERSION

__all__ = ["BUSY_TIMEOUT_S", "RETRY_DEADLINE_S", "check_layout"]

#: How long SQLite waits on a locked file before a statement fails, s.
BUSY_TIMEOUT_S = 30.0
#: How long a transaction is retried while the database stays busy, s.
RETRY_DEADLINE_S = 120.0


def check_layout(tables: set[str], version: int | None, *, where: str) -> int:
    """The schema version of a database that holds a ledger; raise if it holds none.

    Args:
        tables: the names of the database's tables.
        version: the version its ``schema_version`` table records (``None``: no such table,
            or one without a ``version`` column).
        where: the ledger's location as shown to the user.

    Returns:
        ``version``, at most :data:`~greenprint.ledger._fields.SCHEMA_VERSION`.

    Raises:
        NotALedgerError: tables but no greenprint schema (the database is left untouched).
        SchemaVersionError: a newer schema than this greenprint writes.
    """
    if version is None or "runs" not in tables:
        raise NotALedgerError(
            f"{where} is not a greenprint ledger (it has tables but no greenprint schema: "
            f"{', '.join(sorted(tables)[:5])}); left untouched"
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"ledger {where} has schema version {version}, newer than this greenprint "
            f"(schema {SCHEMA_VERSION}); upgrade greenprint: pip install --upgrade greenprint"
        )
    return version
