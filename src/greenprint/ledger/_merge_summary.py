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
        roles_kept: of the ``unchanged``, runs whose role was given afterwards in the target
            (``ledger set-role``, with ``--part-of`` their parent too) while the input holds the
            role they ran with (or one given earlier): the target's is kept.
        roles_taken: of the ``updated``, runs given their role in an input after the target's
            was (``ledger set-role`` on a node's file after a merge): the input's is taken.
    """

    added: int
    updated: int
    unchanged: int
    metrics: int
    samples: int
    roles_kept: int = 0
    roles_taken: int = 0
