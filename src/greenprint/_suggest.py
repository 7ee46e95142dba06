"""Suggestions for names typed wrong: "did you mean 'study'?", the nearest first.

One place for the rule (:func:`difflib.get_close_matches`, cutoff 0.6, case ignored), used for
run options (:class:`~greenprint.Run`, :func:`~greenprint.track`, the integrations' callbacks)
and study names (:meth:`~greenprint.Ledger.runs`). ``difflib`` is imported when a name is wrong
only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["did_you_mean", "nearest", "suggestion"]


def nearest(name: str, known: Collection[str], *, n: int = 1) -> list[str]:
    """The names of ``known`` closest to ``name``, best first (empty when none is close).

    Case does not count in the comparison (``cifar-sweep`` finds ``CIFAR-Sweep``); the names
    returned are spelt as in ``known``.
    """
    import difflib

    spelt: dict[str, list[str]] = {}
    for each in sorted(known):
        spelt.setdefault(each.casefold(), []).append(each)
    close = difflib.get_close_matches(name.casefold(), list(spelt), n=n, cutoff=0.6)
    return [each for folded in close for each in spelt[folded]][:n]


def did_you_mean(unknown: Collection[str], known: Collection[str]) -> str:
    """``"; did you mean 'ledger'?"`` for names typed wrong (empty when none is close).

    Args:
        unknown: the names given that are not known.
        known: the names that are.

    Returns:
        The clause, one suggestion per unknown name that has a close one, or ``""``.
    """
    return suggestion([match for name in sorted(unknown) for match in nearest(name, known)])


def suggestion(close: Sequence[str]) -> str:
    """``"; did you mean 'a' or 'b'?"``: the clause naming ``close`` (``""`` when empty)."""
    return "; did you mean " + " or ".join(map(repr, close)) + "?" if close else ""
