"""What a ledger merge did (light: no SQLAlchemy, so ``greenprint.ledger`` can export it)."""

from __future__ import annotations

import dataclasses

__all__ = ["MergeSummary"]


@dataclasses.dataclass(frozen=True)
class MergeSummary:
    """What a merge did.

    Attributes:
        added: runs new to the target, copied with their metrics and power samples.
        updated: runs the target held in an older state (``running``), replaced by their
            newer state.
        unchanged: runs the target already held as they are (or in a newer state).
        metrics: metric points written.
        samples: power samples written.
    """

    added: int
    updated: int
    unchanged: int
    metrics: int
    samples: int
