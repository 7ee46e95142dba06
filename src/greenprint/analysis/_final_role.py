"""What the price tag's ``by_role["final"]`` holds when it is more than the final run.

A study can hold several runs of role ``final``: a retrain of the user's beside the refit that
each scikit-learn search fits with its best parameters (``track_search`` gives the refit role
``final``, inside its sweep), or a retrain per model family. The price tag by role sums them
all in one entry, each once; the final run (one of them, or none: a run named by the caller,
the best trial when no final run finished) has its own cost in the price tag's sentence. So a
study of two searches and a retrain read "the final model cost 139 µWh" beside a "final model"
row of 3 runs and 328 µWh, with nothing saying why. :class:`FinalRoleRuns` splits that entry:
the final run with its parts, the refits inside searches and the other retrains, each with
their parts, adding up to ``by_role["final"]``; its :attr:`~FinalRoleRuns.label` names the row
and its :attr:`~FinalRoleRuns.text` reconciles the two figures in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import and_list, count_of, format_energy, run_id_if_named_alike
from greenprint.analysis._common import RunForest
from greenprint.analysis._cost_totals import CostTotals
from greenprint.analysis._roles import StudyRoles

__all__ = ["FinalRoleRuns", "final_role_groups", "listed_names", "named"]

#: How many runs' names a sentence lists in a group before "and N more".
_NAMES_LISTED = 3


@dataclass(frozen=True)
class FinalRoleRuns:
    """The runs of role ``final`` split into the final run, searches' refits and other retrains.

    ``final_run``, ``refits`` and ``retrains`` add up to ``whole`` (``by_role["final"]``): each
    run of role ``final`` counted once, with its parts. The price tag has one only when that
    entry holds a run of role ``final`` other than the final run.

    Attributes:
        whole: ``by_role["final"]``, every run of role ``final`` with its parts.
        final_run: the final run with its parts, or ``None`` when the final run is not of role
            ``final`` (named by the caller; the best trial when no final run finished).
        final_name: the final run's name (with its id where another run has that name).
        refits: the other runs of role ``final`` inside a sweep (a search's refit with its best
            parameters), with their parts, or ``None``.
        refit_ids: their ids, in the order given.
        refit_names: the names of the first three (with the id where another run has that
            name): the sentence lists them.
        retrains: the other runs of role ``final`` outside any sweep (a retrain not chosen as
            the final run: another model family's, or an earlier script's), or ``None``.
        retrain_ids: their ids, in the order given.
        retrain_names: the first three's names, as ``refit_names``.
    """

    whole: CostTotals
    final_run: CostTotals | None
    final_name: str
    refits: CostTotals | None = None
    refit_ids: tuple[str, ...] = ()
    refit_names: tuple[str, ...] = ()
    retrains: CostTotals | None = None
    retrain_ids: tuple[str, ...] = ()
    retrain_names: tuple[str, ...] = ()

    def _others(self) -> list[str]:
        """``["2 refits", "1 other retrain"]``: the runs beside the final run, counted."""
        out = [count_of(len(self.refit_ids), "refit")] if self.refit_ids else []
        if self.retrain_ids:
            other = "other retrain" if self.final_run is not None else "retrain"
            out.append(count_of(len(self.retrain_ids), other))
        return out

    @property
    def label(self) -> str:
        """The row's name in the price tag by role: ``"final + 2 refits"``.

        ``"final + 1 retrain"``; ``"final + 3 others"`` of refits and retrains (the sentence
        says which); ``"2 refits (role final)"`` when the final run is not among them. Short,
        so that the LaTeX table still fits one column of a two-column paper.
        """
        kinds = [
            (len(ids), noun)
            for ids, noun in ((self.refit_ids, "refit"), (self.retrain_ids, "retrain"))
            if ids
        ]
        count, noun = kinds[0] if len(kinds) == 1 else (sum(n for n, _ in kinds), "other")
        if self.final_run is None:
            return f"{count_of(count, noun)} (role final)"
        return f"final + {count_of(count, noun)}"

    @property
    def words(self) -> str:
        """The row as a sentence names it: ``"the final model and 2 refits"``."""
        if self.final_run is None:
            return and_list(self._others()) + " of role 'final'"
        return "the final model and " + and_list(self._others())

    @property
    def text(self) -> str:
        """One sentence that reconciles the row with the final run's own cost.

        ``"The price tag by role's row 'final + 2 refits' (3 runs, 328 µWh) holds every run of
        role 'final', each counted once: the final run retrain (139 µWh, the final model's
        cost) and 2 refits inside searches (189 µWh: ...), the models the searches (their
        sweeps) fitted again with the best parameters they found."``
        """
        whole = self.whole
        parts = whole.runs - len(self.refit_ids) - len(self.retrain_ids)
        parts -= 0 if self.final_run is None else 1
        runs = count_of(whole.runs, "run") + (", their parts included" if parts else "")
        head = (
            f"The price tag by role's row '{self.label}' ({runs}, "
            f"{format_energy(whole.energy_kwh)}) holds every run of role 'final', each "
            "counted once: "
        )
        said = []
        if self.final_run is not None:
            said.append(
                f"the final run {self.final_name} "
                f"({format_energy(self.final_run.energy_kwh)}, the final model's cost)"
            )
        if self.refits is not None:
            one = len(self.refit_ids) == 1
            listed = _listed(self.refit_names, len(self.refit_ids))
            said.append(
                f"{count_of(len(self.refit_ids), 'refit')} inside "
                f"{'a search' if one else 'searches'} "
                f"({format_energy(self.refits.energy_kwh)}: {listed}), "
                + (
                    "the model a search (its sweep) fitted again with the best parameters it found"
                    if one
                    else "the models the searches (their sweeps) fitted again with the best "
                    "parameters they found"
                )
            )
        if self.retrains is not None:
            other = "other retrain" if self.final_run is not None else "retrain"
            listed = _listed(self.retrain_names, len(self.retrain_ids))
            said.append(
                f"{count_of(len(self.retrain_ids), other)} "
                f"({format_energy(self.retrains.energy_kwh)}: {listed}), "
                "not chosen as the final run"
            )
        text = head + and_list(said)
        if self.final_run is None:
            text += f"; none of them is the final run, {self.final_name}"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the groups' costs, their run ids, the row's label and sentence."""
        return {
            "label": self.label,
            "final_run": None if self.final_run is None else self.final_run.to_dict(),
            "refits": None if self.refits is None else self.refits.to_dict(),
            "refit_run_ids": list(self.refit_ids),
            "retrains": None if self.retrains is None else self.retrains.to_dict(),
            "retrain_run_ids": list(self.retrain_ids),
            "text": self.text,
        }


def _listed(names: Sequence[str], count: int) -> str:
    """``"a, b and c"`` of ``count`` runs; past three, ``"a, b, c and 4 more"``."""
    if count <= _NAMES_LISTED:
        return and_list(list(names))
    return ", ".join(names[:_NAMES_LISTED]) + f" and {count - _NAMES_LISTED} more"


def final_role_groups(
    forest: RunForest, roles: StudyRoles, positions: Sequence[int], chosen: int | None
) -> dict[str, list[int]] | None:
    """The positions of ``by_role["final"]`` by group: the final run's, refits', retrains'.

    Args:
        forest: the study's runs.
        roles: their roles (``roles.owners``: a part's cost belongs to the run it is part of).
        positions: the positions whose cost counts under role ``final`` (parts included).
        chosen: the final run's position, or ``None`` when there is none.

    Returns:
        ``{"final_run": [...], "refits": [...], "retrains": [...]}`` (groups present only), or
        ``None`` when the entry is the final run's alone (with its parts), is empty, or no
        final run was chosen: the row needs no split.
    """
    owners = roles.owners
    if chosen is None or not positions or all(owners[p] == chosen for p in positions):
        return None
    groups: dict[str, list[int]] = {}
    for p in positions:
        owner = owners[p]
        if owner == chosen:
            key = "final_run"
        else:
            parent = forest.parents[owner]
            inside = parent is not None and roles.roles[parent] == "sweep"
            key = "refits" if inside else "retrains"
        groups.setdefault(key, []).append(p)
    return groups


def named(forest: RunForest, position: int) -> str:
    """A run's name, with its id where another run of the set has that name."""
    run = forest.runs[position]
    return run.name + run_id_if_named_alike(run.name, run.id, forest.column("name"))


def listed_names(forest: RunForest, positions: Sequence[int]) -> tuple[str, ...]:
    """The names of the first runs a sentence lists (:func:`named`)."""
    return tuple(named(forest, p) for p in positions[:_NAMES_LISTED])
