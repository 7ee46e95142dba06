"""The ledger: every run of every study, in SQLite or PostgreSQL, safe against crashes.

``import greenprint.ledger`` is light. A SQLite ledger is opened, read and written with the
standard library's ``sqlite3``; SQLAlchemy is imported only for a PostgreSQL URL (with psycopg)
or to migrate an older SQLite ledger.

Example:
    >>> import greenprint as gp
    >>> led = gp.Ledger(":memory:")
    >>> led.start_run(gp.RunRecord(id="5e1f0a7b", name="baseline", study="demo"))
    >>> led.run("5e1f").name
    'baseline'
"""

from __future__ import annotations

from greenprint import _public
from greenprint._exceptions import MergeConflictError
from greenprint.ledger._base import STALE_GRACE_S, BaseLedger
from greenprint.ledger._merge_summary import MergeSummary
from greenprint.ledger._store import Ledger, get_ledger

__all__ = [
    "BaseLedger",
    "Ledger",
    "MergeConflictError",
    "MergeSummary",
    "STALE_GRACE_S",
    "get_ledger",
]

_public.publish(__name__, globals())
