"""The roles of a set of runs (:class:`StudyRoles`) and a trial's score (:class:`TrialScore`).

:func:`~greenprint._study_roles.resolve_roles` builds a :class:`StudyRoles`; the class holds each
run's role, whether it was inferred, and what the report's note on roles says of them (runs named
like a baseline or the final run, a learning curve, reruns, repeats, retrains, steps, lost runs).
Re-exported by :mod:`greenprint._study_roles`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from greenprint import _role_findings as _findings
from greenprint._forest import RunForest, json_float
from greenprint._format import count_of, ended_tally
from greenprint._records import ROLE_NOUNS, RUN_ROLES, RunRecord
from greenprint._role_repeats import _of_them, _repeated_text
from greenprint._role_rules import _INFERENCE_RULES

__all__ = ["ScoreSource", "StudyRoles", "TrialScore"]

ScoreSource = Literal["own", "parts", "none"]


@dataclass(frozen=True, slots=True)  # slots: one per run of a 100,000-run study
class TrialScore:
    """A run's score and where it came from.

    Attributes:
        score: the score (NaN when it has none).
        source: ``"own"`` (its own logged value), ``"parts"`` (the mean of its parts' scores,
            e.g. the folds of a cross-validation) or ``"none"``.
        parts: the number of parts' scores averaged (a job's root: its ranks, every node's;
            0 unless ``source == "parts"``).
    """

    score: float
    source: ScoreSource
    parts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"score": json_float(self.score), "source": self.source, "parts": self.parts}


@dataclass(frozen=True, eq=False)
class StudyRoles:
    """The role of every run of a set, and whether it was inferred.

    Attributes:
        forest: the runs arranged by nesting (positions index every tuple here).
        roles: the role of the run at each position, one of :data:`~greenprint.RUN_ROLES`.
        inferred: whether that role was inferred (``False``: given when the run was tracked).
        owners: for each run, the position of the run its cost belongs to: itself, or for a
            part the nearest enclosing run that is not a part (its trial, baseline...).
        metric: the metric "logged no score" was judged by (``None``: any metric).
        overridden: how many runs were given a role inside a run that is not a sweep or a
            greener comparison (a trial, a part, a baseline, the final run or a learning-curve
            run) and are read as its parts (counted among the inferred).
        repeat_trials: positions of the inferred trials that hold child runs that differ by a
            param indexing a repetition only (``seed``, ``fold``...: :func:`is_repeat_param`),
            read as its repeats (its parts), not as trials of a sweep (:attr:`repeats` counts
            them).
        steps: positions of the runs read as steps of the study, not trials (role ``part``):
            a finished run with no params, no score and no child beside trials that have
            params (varying) and a score (a search script's data preparation or warm-up run).
        workers_cut_short: positions of the top-level runs read as sweeps that ran no trial (role
            ``sweep``): cut short with no params, no score and no child, named as a top-level
            sweep of the study holding trials (a search's worker that crashed as it started).
        lost_inside: positions of the top-level runs read as trials though they logged no score
            and hold a run: its one run, which was lost inside their measurement while they
            went on (``greenprint run`` around a script whose one run was killed), is their
            part (:func:`_holds_its_lost_run`).
        learning_curve: positions of the runs read as a learning curve (role
            ``learning-curve``, inferred): runs of one configuration that differ only by their
            training-set size, beside a search at one size
            (:func:`greenprint._size_curves.size_curves`).
        size_curves: groups of trials (positions) that run one configuration at several
            training-set sizes but stay trials, as nothing tells them from a search over the
            size (no search beside them, or two groups or more): the note says so.
    """

    forest: RunForest
    roles: tuple[str, ...]
    inferred: tuple[bool, ...]
    owners: tuple[int, ...]
    metric: str | None = None
    overridden: int = 0
    repeat_trials: tuple[int, ...] = ()
    steps: tuple[int, ...] = ()
    workers_cut_short: tuple[int, ...] = ()
    lost_inside: tuple[int, ...] = ()
    learning_curve: tuple[int, ...] = ()
    size_curves: tuple[tuple[int, ...], ...] = ()

    @property
    def repeats(self) -> int:
        """How many inferred trials hold their repeats as parts (:attr:`repeat_trials`)."""
        return len(self.repeat_trials)

    @property
    def runs(self) -> tuple[RunRecord, ...]:
        """The runs, in the order given."""
        return self.forest.runs

    def role_of(self, run_id: str) -> str:
        """The role of a run of the set, by id.

        Raises:
            KeyError: no run with that id in the set.
        """
        return self.roles[self.forest.index[run_id]]

    def as_dict(self) -> dict[str, tuple[str, bool]]:
        """``{run_id: (role, inferred)}`` for every run."""
        return {
            run.id: (role, inferred)
            for run, role, inferred in zip(self.forest.runs, self.roles, self.inferred, strict=True)
        }

    def positions(self, role: str) -> tuple[int, ...]:
        """Positions of the runs with ``role``, in the order given."""
        return self._positions.get(role, ())

    @cached_property
    def _positions(self) -> dict[str, tuple[int, ...]]:
        """Role -> positions of its runs: one pass over every role, kept (asked many times)."""
        found: dict[str, list[int]] = {}
        for p, r in enumerate(self.roles):
            found.setdefault(r, []).append(p)
        return {r: tuple(positions) for r, positions in found.items()}

    @property
    def trials(self) -> tuple[int, ...]:
        """Positions of the trials, in the order given."""
        return self.positions("trial")

    @property
    def counts(self) -> dict[str, int]:
        """Role -> number of runs, in the order of :data:`~greenprint.RUN_ROLES` (present only)."""
        return {r: n for r in RUN_ROLES if (n := self.roles.count(r))}

    @property
    def n_inferred(self) -> int:
        """How many runs had no role given (theirs was inferred)."""
        return sum(self.inferred)

    @property
    def note(self) -> str | None:
        """A sentence for the report when any role was inferred, else ``None``.

        It says how the trials holding their repeats are scored only in general (the scores
        are not known here): :meth:`note_with` counts them.
        """
        return self.note_with(None)

    def note_with(self, scores: Sequence[TrialScore] | None) -> str | None:
        """:attr:`note`, counting the trials that hold their repeats by score source.

        ``scores``: every run's, by position (:attr:`StudyTrials.scores`); ``None``: the note
        says how such a trial is scored only in general.
        """
        if not self.n_inferred:
            return None
        found: dict[str, int] = {}
        for role, inferred in zip(self.roles, self.inferred, strict=True):
            if inferred:
                found[role] = found.get(role, 0) + 1
        if self.overridden:  # every overridden run is a part, and counted as inferred
            found["part"] -= self.overridden
        plain = self.n_inferred - self.overridden
        texts = []
        if plain:
            listing = ", ".join(
                count_of(n, ROLE_NOUNS[r]) for r in RUN_ROLES if (n := found.get(r))
            )
            whose = (
                "every run" if plain == len(self.roles) else f"{plain} of {len(self.roles)} runs"
            )
            texts.append(
                f"roles inferred for {whose} ({listing}), as no role was given: "
                f"{_INFERENCE_RULES}; give roles with gp.track(..., role=...), or afterwards with "
                "greenprint ledger set-role ROLE RUN_ID..."
            )
        if self.overridden:
            read = (
                "it is read as that run's part, its cost inside that run's own"
                if self.overridden == 1
                else "they are read as its parts, their cost inside its own"
            )
            texts.append(
                f"{self.overridden} of {len(self.roles)} runs "
                f"{'was' if self.overridden == 1 else 'were'} given a role but ran inside a "
                f"trial (or a part, baseline, final or learning-curve run): {read} (e.g. a "
                "scikit-learn search inside an Optuna trial)"
            )
        if named := self.named_like:
            listing = ", ".join(
                f"{count_of(len(names), 'trial')} named like a {role} run "
                f"({', '.join(repr(n) for n in names[:3])}{', ...' if len(names) > 3 else ''})"
                for role, names in named.items()
            )
            one = sum(map(len, named.values())) == 1
            texts.append(
                f"{listing}: read as {'a trial' if one else 'trials'}, as no role was given; "
                f"if {'it is' if one else 'they are'} not, give {'it' if one else 'them'} "
                "role='baseline' or role='final' (gp.track(..., role=...), "
                "greenprint run --role, or afterwards greenprint ledger set-role)"
            )
        if sizes := self.sizes_only:
            texts.append(
                f"the {len(self.trials)} trials differ only by their training-set size "
                f"(dataset_size {min(sizes):,} to {max(sizes):,}): read as trials of a search; "
                "if they are a learning curve, give them role='learning-curve' "
                "(gp.track(..., role='learning-curve'), or afterwards greenprint ledger "
                "set-role learning-curve RUN_ID...)"
            )
        if self.learning_curve:
            texts.append(self._learning_curve_text())
        if self.size_curves and not self.sizes_only:
            texts.append(self._size_curves_text())
        if reruns := self.reruns:
            shown = ", ".join(f"{a[:8]} then {b[:8]}" for a, b in reruns[:3])
            more = ", ..." if len(reruns) > 3 else ""
            first, then = reruns[0]
            texts.append(
                f"{count_of(len(reruns), 'trial')} that did not finish had a later run of the "
                f"same name and params ({shown}{more}): read as trials of their own, each "
                "counted as the worst score; if one is an attempt of the later run (a script "
                "run again after a crash), make it its part: greenprint ledger set-role part "
                f"{first[:8]} --part-of {then[:8]}"
            )
        if repeated := self.repeated:
            texts.append(_repeated_text(repeated, self.forest))
        if folds := self.folds_as_trials:
            texts.append(_findings.folds_as_trials_text(self.forest, folds))
        if retrained := self.retrained:
            texts.append(self._retrained_text(retrained))
        if self.steps:
            names = ", ".join(repr(self.forest.runs[p].name) for p in self.steps[:3])
            texts.append(
                f"{count_of(len(self.steps), 'run')} with no params and no score beside trials "
                f"that have both ({names}{', ...' if len(self.steps) > 3 else ''}): read as "
                "steps of the study (data preparation, a warm-up), role part: counted in the "
                "totals, never a trial; if one is a trial, give it role='trial' "
                "(gp.track(..., role='trial'), or afterwards greenprint ledger set-role trial "
                f"{self.forest.runs[self.steps[0]].id[:8]})"
            )
        if cut := self.workers_cut_short:
            runs = self.forest.runs
            names = ", ".join(
                f"{runs[p].name!r} ({runs[p].id[:8]}, {runs[p].status})" for p in cut[:3]
            )
            texts.append(
                f"{count_of(len(cut), 'run')} cut short with no params, no score and no child, "
                f"named as a search's worker that ran trials ({names}"
                f"{', ...' if len(cut) > 3 else ''}): read as "
                f"{'a worker' if len(cut) == 1 else 'workers'} of the search that ran no trial, "
                "role sweep: counted in the totals (the search's overhead), never a trial; if "
                "one is a trial, give it role='trial' (afterwards: greenprint ledger set-role "
                f"trial {runs[cut[0]].id[:8]})"
            )
        if self.lost_inside:
            texts.append(self._lost_inside_text())
        if self.repeats:
            texts.append(self._repeats_text(scores))
        return "; ".join(texts)

    def _sizes_of(self, positions: Iterable[int]) -> str:
        """``"dataset_size 449 to 1,797"`` of the runs at ``positions``."""
        sizes = [self.forest.runs[p].dataset_size or 0 for p in positions]
        return f"dataset_size {min(sizes):,} to {max(sizes):,}"

    def _learning_curve_text(self) -> str:
        """The note on :attr:`learning_curve`: how they were read, and how to read them apart."""
        runs, curve = self.forest.runs, self.learning_curve
        names = ", ".join(repr(runs[p].name) for p in curve[:4]) + (
            ", ..." if len(curve) > 4 else ""
        )
        ids = " ".join(runs[p].id[:8] for p in curve)
        return (
            f"{len(curve)} runs ({names}) share one configuration and differ only by their "
            f"training-set size ({self._sizes_of(curve)}), beside trials that vary their "
            "configuration at one size (a search): read as a learning curve "
            "(role learning-curve, inferred): never a trial, nor the final run; if they are "
            f"trials of the search, give them role='trial' (greenprint ledger set-role trial {ids})"
        )

    def _size_curves_text(self) -> str:
        """The note on :attr:`size_curves`: read as trials, and how to give the role."""
        runs, groups = self.forest.runs, self.size_curves
        members = [p for g in groups for p in g]
        first = groups[0]
        example = ", ".join(repr(runs[p].name) for p in first[:3]) + (
            ", ..." if len(first) > 3 else ""
        )
        what = (
            "one configuration"
            if len(groups) == 1
            else f"{len(groups)} configurations (a grid over the size and another param, or "
            "a learning curve of each)"
        )
        why = (
            "nothing tells them from trials of a search over the size"
            if len(groups) == 1
            else "a search over the size reads the same"
        )
        return (
            f"{count_of(len(members), 'trial')} run {what} at several training-set sizes "
            f"({self._sizes_of(members)}; e.g. {example}): read as trials, as {why}; if they "
            "are a learning curve, give them role='learning-curve' (gp.track(..., "
            "role='learning-curve'), or afterwards greenprint ledger set-role learning-curve "
            "RUN_ID...)"
        )

    def _lost_inside_text(self) -> str:
        """The note on :attr:`lost_inside`: what happened, and how the runs are read."""
        runs, children = self.forest.runs, self.forest.children
        if len(self.lost_inside) == 1:
            pos = self.lost_inside[0]
            outer, lost = runs[pos], runs[children[pos][0]]
            ended = outer.status + (f": {outer.error}" if outer.error else "")
            return (
                f"run {outer.id[:8]} ({outer.name!r}, {ended}) is read as one trial, not a "
                f"sweep around one: the one run inside it, {lost.id[:8]} ({lost.name!r}), was "
                "lost (it stopped without recording its end: its process was killed) while "
                f"{outer.id[:8]}, which measured it, went on; the trial costs what "
                f"{outer.id[:8]} measured, and the lost run is its part"
            )
        ids = ", ".join(runs[p].id[:8] for p in self.lost_inside[:3])
        more = ", ..." if len(self.lost_inside) > 3 else ""
        return (
            f"{len(self.lost_inside)} runs ({ids}{more}) are each read as one trial, not a "
            "sweep around one: the one run inside each was lost (it stopped without recording "
            "its end: its process was killed) while the run around it, which measured it, "
            "went on; each trial costs what that run measured, and its lost run is its part"
        )

    def _repeats_text(self, scores: Sequence[TrialScore] | None) -> str:
        """The note on :attr:`repeat_trials`: how they were read, and how they are scored.

        With ``scores``, how many are scored by their parts' mean and how many by their own.
        """
        n = self.repeats
        held = "hold" if n > 1 else "holds"
        text = (
            f"{count_of(n, 'trial')} {held} child runs that differ only by a seed or fold "
            "param (seed, fold, random_state, *_seed...): read as repeats of "
            f"{'each' if n > 1 else 'the'} trial's configuration, its parts"
        )
        metric = repr(self.metric) if self.metric is not None else "a score"
        if scores is None:
            text += f" (a trial that logged no {metric} of its own is scored by its parts' mean)"
        else:
            sources = Counter(scores[p].source for p in self.repeat_trials)
            parts, own, none = sources["parts"], sources["own"], sources["none"]
            counted = []
            if parts:
                them = "it is" if n == 1 else ("each is" if parts == n else _of_them(parts, "is"))
                whose = "their" if 1 < parts < n else "its"
                counted.append(f"{them} scored by {whose} parts' mean")
            if own:
                them = "it is" if n == 1 else ("each is" if own == n else _of_them(own, "is"))
                its = "their" if 1 < own < n else "its"
                counted.append(f"{them} scored by {its} own logged {metric}")
            if none:
                them = "it has" if n == 1 else ("none has" if none == n else _of_them(none, "has"))
                # by how each ended: an interrupted or lost trial is not a failed one
                statuses = self.forest.column("status")
                how = ended_tally(
                    (statuses[p] for p in self.repeat_trials if scores[p].source == "none"),
                    finished="finished, no part scored",
                )
                counted.append(f"{them} no score ({how})")
            text += ": " + ", ".join(counted)
        return text + "; to rank each as a trial of its own, give those runs role='trial'"

    @cached_property
    def _inferred_trials(self) -> tuple[int, ...]:
        """Positions of the trials whose role was inferred, in the order given."""
        return tuple(p for p in self.trials if self.inferred[p])

    @cached_property
    def named_like(self) -> dict[str, list[str]]:
        """``{"baseline" | "final": names}`` of the inferred trials whose name says so.

        :func:`~greenprint._role_findings.named_like`: the runs stay trials, and the note
        says how to give roles.
        """
        return _findings.named_like(self.forest, self._inferred_trials)

    @cached_property
    def reruns(self) -> tuple[tuple[str, str], ...]:
        """Inferred trials that did not finish, each with the next trial of its name and params.

        ``(earlier, later)`` run ids (:func:`~greenprint._role_findings.reruns`).
        """
        return _findings.reruns(self.forest, self._inferred_trials)

    @cached_property
    def retrained(self) -> tuple[tuple[int, int], ...]:
        """Inferred trials that look like the final model retrained with a trial's params.

        ``(retrain, trial)`` positions, by the ranked :attr:`metric`
        (:func:`~greenprint._role_findings.retrained`); ``()`` when no metric ranks the study.
        """
        return _findings.retrained(self.forest, self._inferred_trials, self.metric)

    def _retrained_text(self, pairs: Sequence[tuple[int, int]]) -> str:
        """The note on :attr:`retrained`."""
        return _findings.retrained_text(self.forest, pairs, self.metric)

    @cached_property
    def repeated(self) -> tuple[tuple[int, ...], ...]:
        """Inferred trials that are one configuration run again with another seed or fold.

        Groups of positions, in start order (:func:`~greenprint._role_findings.repeated`).
        """
        return _findings.repeated(self.forest, self._inferred_trials)

    @cached_property
    def folds_as_trials(self) -> tuple[int, ...]:
        """Inferred sweeps with no params whose trials are named as one configuration's folds.

        Positions, in start order (:func:`~greenprint._role_findings.folds_as_trials`).
        """
        return _findings.folds_as_trials(self.forest, self.roles, self.inferred)

    @cached_property
    def sizes_only(self) -> tuple[int, ...]:
        """The training-set sizes of the trials, when they differ by those only, else ``()``.

        :func:`~greenprint._role_findings.sizes_only`: every trial inferred, and their params
        one value across them or proportional to the size.
        """
        return _findings.sizes_only(self.forest, self.trials, self.inferred)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts by role, how many were inferred, and the note."""
        return {
            "counts": self.counts,
            "inferred": self.n_inferred,
            "note": self.note,
        }
