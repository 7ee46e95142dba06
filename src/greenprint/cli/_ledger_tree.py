"""``greenprint ledger ls --tree``: the runs as their study's report reads them, nested.

A study of 4 trials with 3 folds each and a sweep above them is 20 rows in ``ledger ls``, in
start order, with nothing to say which fold belongs to which trial or which run the report
counts as a trial. ``--tree`` lists each run under the run the report reads it under (its
recorded parent, or the one the report infers: a pool worker's run under the run open where
the worker was started, a distributed job's rank under its node's meter), depth first, each
level in start order, with the role the report gives it and whether that role was given or
inferred.

Pure Python (no numpy): the roles are :func:`greenprint._study_roles.resolve_roles`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

__all__ = ["depth_first"]

_T = TypeVar("_T")


def depth_first(
    ids: Sequence[str], items: Sequence[_T], parent_of: Mapping[str, str | None]
) -> list[tuple[int, _T]]:
    """The items in tree order: each root, then the runs under it, depth first.

    Args:
        ids: the run id of each item.
        items: what is listed for each run (in the order of ``ids``: the ledger's, by start).
        parent_of: run id -> the id of the run it is listed under (``None``: a root). A parent
            not among ``ids`` (a run filtered out, or in another study) makes a root.

    Returns:
        ``(depth, item)`` for every item exactly once: roots at depth 0 in the order given,
        each followed by its children (in the order given) and theirs. Runs on a cycle of
        parents (a hand-edited ledger) are listed once each, from the first of them given.
    """
    position = {run_id: k for k, run_id in enumerate(ids)}
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for k, run_id in enumerate(ids):
        parent = parent_of.get(run_id)
        above = position.get(parent) if parent is not None else None
        if above is None or above == k:
            roots.append(k)
        else:
            children.setdefault(above, []).append(k)
    out: list[tuple[int, _T]] = []
    listed = [False] * len(ids)

    def walk(start: int) -> None:
        stack = [(start, 0)]
        while stack:
            k, depth = stack.pop()
            if listed[k]:
                continue
            listed[k] = True
            out.append((depth, items[k]))
            stack.extend((child, depth + 1) for child in reversed(children.get(k, ())))

    for k in roots:
        walk(k)
    for k in range(len(ids)):  # on a cycle: no root above them
        if not listed[k]:
            walk(k)
    return out
