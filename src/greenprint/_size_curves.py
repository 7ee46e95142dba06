"""A learning curve written by hand, read from runs given no role (their sizes).

Runs given no role, of one configuration, that differ only by their training-set size
(``dataset_size``, and a ``fraction`` of the data), beside a search at one size (its trials given
their role or not), are a learning curve: role ``learning-curve`` (:func:`size_curves`, read by
:func:`~greenprint._study_roles.resolve_roles`; the note is
:attr:`~greenprint._study_roles.StudyRoles.learning_curve`'s).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from greenprint._forest import RunForest
from greenprint._run_params import (
    _named_role,
    _repeat_value,
    _split_repeats,
    _vary_params,
    is_repeat_param,
)

__all__ = ["size_curves"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _may_share_a_group(forest: RunForest, pos: int, sized: Sequence[int]) -> bool:
    """Whether ``pos`` may share a group of :func:`size_curves` with another run of ``sized``.

    One of its parent's runs at another size has its params but one number (and but seeds or
    folds): a necessary condition, checked by one scan.
    """
    runs, parents = forest.runs, forest.parents
    mine = dict(_split_repeats(runs[pos].params)[0])
    size, parent = runs[pos].dataset_size, parents[pos]
    for q in sized:
        if parents[q] != parent or runs[q].dataset_size == size:
            continue
        found, other = 0, 0
        for key, value in runs[q].params.items():
            if key in mine:
                found += 1
                if mine[key] != value:
                    other += 1
                    if other > 1 or not (_is_number(value) and _is_number(mine[key])):
                        break
            elif not (is_repeat_param(key) and _repeat_value(value)):
                break
        else:
            if found == len(mine):
                return True
    return False


def size_curves(
    forest: RunForest, role: Sequence[str], inferred: Sequence[bool]
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Trials that run one configuration at several training-set sizes: a learning curve.

    Returns ``(curve, unread)``: the positions read as a learning curve (role
    ``learning-curve``), and the groups of such trials left trials, for the note
    (:attr:`StudyRoles.size_curves`). A group is two runs or more given no role (a role given
    is kept: a study given roles reads as given) read as trials, of one parent, not named like
    a baseline or the final run (:func:`_named_role`), each with a ``dataset_size``, two sizes
    or more among them, and the same params but a seed or fold (:func:`is_repeat_param`) and
    at most one number proportional to the size (a ``fraction`` of the data, ``n_samples``:
    within 5%): a learning curve written by hand, ``gp.track(f"lc-{f}", params={**best,
    "fraction": f}, dataset_size=int(n * f))``. It is read as one when it is the only group
    and the other trials (the same, not named like a baseline or final run, given role
    ``trial`` or not: an integration's search, Optuna's or scikit-learn's, beside a curve
    written by hand) hold a search: two or more that vary a configuration, all at one size (or
    none given). A search that varies
    the size itself (other trials at two sizes or more: the size is one of its params) stays
    trials, with no note; so does a group's run at the search's size with the search's param
    names (it may be the search's own trial of that configuration). Two groups or more (a grid
    over the size and another param, or learning curves of several models), or one beside no
    search (a search over the size only), stay trials, and the note says so.
    """
    runs, parents = forest.runs, forest.parents
    column = forest.column("dataset_size")
    trials = [p for p, r in enumerate(role) if r == "trial"]
    if len({column[p] for p in trials if column[p]}) < 2:
        return (), ()  # most studies: no size, or one (a search that records its data's)
    trials = [p for p in trials if _named_role(runs[p].name) is None]
    # a curve is read among the runs given no role only: a trial given its role stays one
    sized = [p for p in trials if (column[p] or 0) > 0 and inferred[p]]
    if len({column[p] for p in sized}) < 2:
        return (), ()  # the other sizes were a baseline's or the final run's
    # The trials left out of every group must be at one size: a run at another size than most
    # (the search's) and one at that size, each with no run it could share a group with, mean
    # a search over the size (100,000 trials of one drawing sizes: two scans, not the passes)
    mode = Counter(column[p] for p in sized).most_common(1)[0][0]
    first = [next((p for p in sized if (column[p] == mode) is at), None) for at in (False, True)]
    if all(p is not None and not _may_share_a_group(forest, p, sized) for p in first):
        return (), ()
    # each run's configuration once, as text (keys of text, not tuples: fewer objects for the
    # collector to scan, a third of the time)
    configurations = {
        p: [(k, f"{k}\0{v!r}") for k, v in _split_repeats(runs[p].params)[0]] for p in sized
    }
    values: dict[str, set[str]] = {}
    for p in sized:
        for k, v in runs[p].params.items():
            if _is_number(v) and not is_repeat_param(k):
                values.setdefault(k, set()).add(repr(v))
    # a number that takes one value is never proportional to two sizes
    numbers = sorted(k for k, seen in values.items() if len(seen) > 1)
    found: set[tuple[int, ...]] = set()
    for held in (None, *numbers):  # the params but none, or but one number
        buckets: dict[str, list[int]] = {}
        for p in sized:
            if held is not None and not _is_number(runs[p].params.get(held)):
                continue
            key = "\0\0".join([str(parents[p])] + [t for k, t in configurations[p] if k != held])
            buckets.setdefault(key, []).append(p)
        for members in buckets.values():
            if len(members) < 2:
                continue
            sizes = [runs[p].dataset_size or 0 for p in members]
            if len(set(sizes)) < 2:
                continue
            if held is not None:
                ratios = [runs[p].params[held] / s for p, s in zip(members, sizes, strict=True)]
                if min(ratios) <= 0 or max(ratios) > 1.05 * min(ratios):
                    continue  # a param that varies otherwise: no learning curve
            found.add(tuple(sorted(members, key=lambda p: (runs[p].started_at, p))))
    if not found:
        return (), ()
    groups = sorted(found)
    grouped = {p for g in groups for p in g}
    rest = [runs[p] for p in trials if p not in grouped]
    rest_sizes = {r.dataset_size for r in rest if r.dataset_size}
    if len(rest_sizes) > 1:
        return (), ()  # the search varies the size itself: its trials
    search = len(rest) >= 2 and _vary_params(rest)
    if len(groups) == 1:
        curve = list(groups[0])
        if rest_sizes:  # a run at the search's size with its param names may be its trial
            size = next(iter(rest_sizes))
            names = {frozenset(k for k, _ in _split_repeats(r.params)[0]) for r in rest}
            curve = [
                p
                for p in curve
                if runs[p].dataset_size != size
                or frozenset(k for k, _ in _split_repeats(runs[p].params)[0]) not in names
            ]
            rest += [runs[p] for p in groups[0] if p not in curve]
            search = len(rest) >= 2 and _vary_params(rest)
        if len({runs[p].dataset_size for p in curve}) >= 2 and search:
            return tuple(curve), ()
    # left trials: said so beside a search, or when no other trial is there (the study's
    # trials but its baselines and final run differ by the size only), else nothing tells
    return (), (tuple(groups) if search or not rest else ())
