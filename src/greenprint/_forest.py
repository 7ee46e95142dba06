"""The runs of a set arranged by nesting (:class:`RunForest`), and how a run's score is read.

How every command reads a study: the report and the analyses, ``greenprint ledger`` (ls,
export, set-role), a study's budget while it runs, the integrations that name a run's role.
Pure Python at import (numpy and the sums of runs that read one process at the same time,
``greenprint._forest_stretches``, are imported by the methods that add up costs), so that
reading a study's roles (:mod:`greenprint._study_roles`) and the metric its report ranks by
(:mod:`greenprint._metric_choice`) loads no numpy: ``greenprint ledger ls`` chooses its metric
with them. :mod:`greenprint.analysis._common` re-exports these names.

:class:`RunForest` (its fields, :meth:`~RunForest.build`, the links' rules, the public sums) is
here; its parts are modules of their own:

* :mod:`greenprint._forest_links`: how :meth:`~RunForest.build` links runs (the kind of each
  link, a reused or early worker pool's runs read under the run their process had open);
* :mod:`greenprint._forest_shares`: :class:`~greenprint._forest_shares.ForestShares`, the loop
  that sums a cost and shares a parent's reading out among children that ran at once;
* :mod:`greenprint._forest_threads`: :class:`~greenprint._forest_threads.ForestThreads`, runs
  that read one process at the same time;
* :mod:`greenprint._forest_known`: :class:`~greenprint._forest_known.ForestKnown`, the rule for
  an amount some runs did not record (which are unknown, which sums are complete);
* :mod:`greenprint._forest_sums`: what the sums hand back (:class:`KnownSums`,
  :class:`SharedSums`, :class:`ShareOut`, :class:`TimeGroup`) and :func:`run_end`;
* :mod:`greenprint._run_scores`: a run's score and the options that say how it is read.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from greenprint._exceptions import AnalysisError
from greenprint._forest_known import ForestKnown
from greenprint._forest_links import (
    _CONTAINED,
    _HOST,
    _JOB_ID,
    _PARENT_ID,
    _elsewhere,
    _index,
    _link_kind,
    _pool_workers,
    _post_order,
    _reused_workers,
)
from greenprint._forest_links import own_tree_writer as own_tree_writer  # analysis._common's
from greenprint._forest_shares import ForestShares
from greenprint._forest_sums import (
    _ROOTS,
    SHARED_COSTS,
    KnownSums,
    SharedSums,
    ShareOut,
    TimeGroup,
    _nonfinite,
    run_end,
)
from greenprint._forest_threads import ForestThreads
from greenprint._records import RunRecord
from greenprint._run_scores import (
    LOWER_IS_BETTER_WORDS,
    Mode,
    Reduce,
    check_choice,
    check_mode,
    infinite_last,
    json_float,
    lower_is_better,
    resolve_mode,
    run_score,
    score_of,
)
from greenprint._validate import FPO_MAX

__all__ = [
    "LOWER_IS_BETTER_WORDS",
    "KnownSums",
    "Mode",
    "Reduce",
    "RunForest",
    "SHARED_COSTS",
    "ShareOut",
    "SharedSums",
    "TimeGroup",
    "check_choice",
    "check_mode",
    "infinite_last",
    "json_float",
    "lower_is_better",
    "resolve_mode",
    "run_end",
    "run_score",
    "score_of",
]


@dataclass(frozen=True)
class RunForest(ForestShares, ForestThreads, ForestKnown):
    """The runs of a set arranged by nesting (``parent_id``), within that set only.

    A run whose parent is not in the set is a root. A run with no child in the set is a leaf: a
    trial, the unit of work of a study (a parent that only wraps trials is a container).

    Runs of one distributed job (``job_id``) are linked into one tree even without a
    ``parent_id`` (see :func:`greenprint._jobs.link_jobs`): the ranks of a node under its node
    meter, the job's nodes under its head. Each link has a kind: ``"nested"`` (the child's
    measurement is inside its parent's: the same process, or the parent's process tree on the
    same host; every link recorded before jobs existed), ``"peer"`` (a rank under its node's
    meter: energy, CO2-eq and time inside, FPO its own) or ``"remote"`` (a child on another host
    or outside the parent's process tree, ``contained`` false: its cost adds to its parent's).

    A run of another process recorded under a parent that had ended before it started (a
    reused worker pool's process, which took its parent from the environment it was started
    with) is read under the run its parent's process had open when it started (see
    :func:`~greenprint._forest_links._reused_workers`), with a note.

    Attributes:
        runs: the runs, in the order given.
        index: run id -> position in ``runs``.
        children: position -> positions of its children.
        roots: positions of the roots.
        order: positions ordered children before parents (post-order).
        parents: position -> its parent's position, or ``None`` for a root.
        kinds: position -> the kind of its link to its parent (``"nested"`` for a root).
        virtual: position -> whether that link comes from the job, not from ``parent_id``.
        notes: caveats found while linking jobs (two node meters on one host...) or reused
            workers' runs.
        job_statuses: position of a job's head -> its job's status, where that is not the
            head's own (:func:`greenprint._jobs.link_jobs`): a two-node training whose head
            finished and whose other node failed is one failed training. The study reads the
            head, its trial, with it (:meth:`column` ``"status"``).
    """

    runs: tuple[RunRecord, ...]
    index: Mapping[str, int]
    children: tuple[tuple[int, ...], ...]
    roots: tuple[int, ...]
    order: tuple[int, ...]
    parents: tuple[int | None, ...] = ()
    kinds: tuple[str, ...] = ()
    virtual: tuple[bool, ...] = ()
    notes: tuple[str, ...] = ()
    job_statuses: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def build(cls, runs: Iterable[RunRecord]) -> RunForest:
        """Arrange runs by nesting.

        Raises:
            AnalysisError: a run is not a RunRecord, two runs share an id, or parents form a cycle.
        """
        items = tuple(runs)
        count = len(items)
        index = _index(items)
        # Column by column in C where a run's fields decide alone, and no linking pass where no
        # run has a parent or a job (a 100,000-run search: 60 -> 31 ms CPU); the first run in
        # order that breaks a rule is still the one an error names.
        parent_ids = list(map(_PARENT_ID, items))
        parents: list[int | None] = (
            [None] * count
            if parent_ids.count(None) == count
            else [index.get(p) if p is not None else None for p in parent_ids]
        )
        notes: list[str] = []
        if parents.count(None) != count:
            notes.extend(_reused_workers(items, parents))
        notes.extend(_pool_workers(items, parents))
        jobs = list(map(_JOB_ID, items)).count(None) != count
        # runs of two hosts or more, some with a parent: a child given its parent by id on
        # another machine (gp.track(parent=...)) recorded no containment, and is outside it
        hosts = parents.count(None) != count and len(set(map(_HOST, items))) > 1
        if jobs or hosts or False in set(map(_CONTAINED, items)):
            kinds = [
                "nested"  # the common case, decided without a call (see _link_kind)
                if run.job_id is None
                and run.contained is not False
                and not (hosts and run.contained is None and parents[pos] is not None)
                else _link_kind(run, items, parents[pos])
                for pos, run in enumerate(items)
            ]
        else:
            kinds = ["nested"] * count
        explicit = list(parents)
        job_statuses: dict[int, str] = {}
        if jobs:  # link_jobs links only a job's runs
            from greenprint._jobs import link_jobs

            notes.extend(link_jobs(items, parents, kinds, statuses=job_statuses))
        kids: dict[int, list[int]] = {}  # position -> its children, for runs with any
        if parents.count(None) == count:  # no run has a parent in the set (a search of trials)
            roots = list(range(count))
        else:
            roots = []
            for pos, parent in enumerate(parents):
                if parent is None:
                    roots.append(pos)
                else:
                    kids.setdefault(parent, []).append(pos)
        order = _post_order(roots, kids) if kids else roots
        if len(order) != count:
            seen = set(order)
            stuck = next(items[p].id for p in range(count) if p not in seen)
            raise AnalysisError(f"the parents of run {stuck!r} form a cycle")
        children: list[tuple[int, ...]] = [()] * count
        for parent, below in kids.items():
            children[parent] = tuple(below)
        return cls(
            runs=items,
            index=index,
            children=tuple(children),
            roots=tuple(roots),
            order=tuple(order),
            parents=tuple(parents),
            kinds=tuple(kinds),
            virtual=(
                tuple(p != e for p, e in zip(parents, explicit, strict=True))
                if jobs
                else (False,) * count  # only link_jobs links a run its parent_id does not
            ),
            notes=tuple(dict.fromkeys(notes)),
            job_statuses=MappingProxyType(job_statuses),
        )

    @cached_property
    def inner_order(self) -> tuple[int, ...]:
        """Positions of the runs with children, children before parents (as in ``order``)."""
        children = self.children
        return tuple(p for p in self.order if children[p])

    def column(self, name: str) -> tuple[Any, ...]:
        """Field ``name`` of every run, in order (kept: the analyses of a report ask again).

        ``"status"`` is each run's status as the study reads it: its own, but a distributed
        job's head reads its job's (:attr:`job_statuses`: ``failed`` where another node's run
        failed). One pass over the runs (3 ms on 100,000), and every later ask is free.
        """
        columns = self._columns
        found = columns.get(name)
        if found is None:
            found = tuple(map(operator.attrgetter(name), self.runs))
            if name == "status" and self.job_statuses:
                statuses = list(found)
                for pos, status in self.job_statuses.items():
                    statuses[pos] = status
                found = tuple(statuses)
            columns[name] = found
        return found

    @cached_property
    def _columns(self) -> dict[str, tuple[Any, ...]]:
        return {}

    def is_leaf(self, pos: int) -> bool:
        """Whether the run at ``pos`` has no child in the set (it is a trial)."""
        return not self.children[pos]

    @property
    def leaves(self) -> tuple[int, ...]:
        """Positions of the trials (runs without children in the set), in the order given."""
        return tuple(p for p in range(len(self.runs)) if not self.children[p])

    def adds(self, pos: int, *, fpo: bool = False) -> bool:
        """Whether the run at ``pos`` adds to its parent's amount rather than being inside it.

        A ``"remote"`` link always adds; a ``"peer"`` link adds FPO (a rank's operations are its
        own) but not energy, CO2-eq or time (inside its node meter's machine reading).
        """
        kind = self.kinds[pos] if self.kinds else "nested"
        return kind == "remote" or (fpo and kind == "peer")

    def adds_far(self, pos: int, *, fpo: bool = False) -> bool:
        """Whether the run at ``pos`` adds to its parent and is outside the runs above it too.

        Its record says its measurement is outside its recorded parent's: ``contained`` false
        (another host, outside the parent's process tree), or no containment recorded by a run
        of no job (a run given its parent by id on another host: the only way such a run adds,
        see :func:`_link_kind`), or by a run of a job on another host than its recorded parent
        (a node given its trial's id: ``gp.track(parent=trial_id)``; a machine's meters
        measure nothing of another machine). What it spent is in no figure of any run above it
        (a remote worker of a trial nested in a sweep's process adds to the sweep too). A run
        that adds to its parent only because its job linked it there (a DDP rank read under its
        training's rank 0, recorded inside the sweep's process tree) is outside that run alone:
        it is inside the measurements above it. (:meth:`nested_sum`'s far rule.)
        """
        return self.adds(pos, fpo=fpo) and self._apart[pos]

    @cached_property
    def adds_to_the_total(self) -> tuple[bool, ...]:
        """Whether each run's own cost adds to the price tag's, by position.

        A root's does; a child's where it adds to its parent (:meth:`adds`: another host,
        another node of its job, a rank its job linked under its training's rank 0) and is
        outside every measurement above it too: it adds far (:meth:`adds_far`: another host,
        outside the parent's process tree), or its parent's cost adds to the total (a rank 1
        under a root rank 0). A rank its job linked under its rank 0 inside a sweep's process
        tree is in the sweep's reading: it does not. So the rows with no parent and those whose
        cost adds sum to the price tag's energy, CO2-eq and time where no parent recorded less
        than the runs inside it (the report's rows' ``contained`` false, and
        ``greenprint ledger export``'s).
        """
        parents = self.parents
        if "remote" not in self.kinds:  # no run adds energy to its parent: the roots alone
            return tuple(parent is None for parent in parents)
        adding = [False] * len(self.runs)
        apart = self._apart
        for pos in reversed(self.order):  # parents before children
            parent = parents[pos]
            adding[pos] = parent is None or (
                self.adds(pos) and (apart[pos] or adding[parent])  # adds far, or to an adder
            )
        return tuple(adding)

    @cached_property
    def _apart(self) -> tuple[bool, ...]:
        """Whether each run's own record puts it outside its recorded parent (:meth:`adds_far`)."""
        hosts, index = self.column("host"), self.index
        return tuple(
            contained is False
            or (contained is None and (job is None or _elsewhere(hosts, pos, index.get(recorded))))
            for pos, (contained, job, recorded) in enumerate(
                zip(
                    self.column("contained"),
                    self.column("job_id"),
                    self.column("parent_id"),
                    strict=True,
                )
            )
        )

    def outside(self, pos: int, inclusive: Sequence[Any], far: Sequence[Any] | None) -> Any:
        """The part of the run's inclusive amount at ``pos`` outside its own measurement.

        What its children that add to it spent (:meth:`adds`: another host, a rank its job
        linked under it), and what is far below the runs inside it (``far``: a remote worker
        of a trial that ran in the sweep's process), in no figure of the run's own. So
        ``inclusive[pos] - outside(pos, ...)`` is the amount its own measurement stands for:
        the larger of what it recorded and what the runs inside it spent (scaled where its
        concurrent children shared its measurement out).

        Args:
            pos: the run's position.
            inclusive: every run's inclusive amount (:attr:`SharedSums.inclusive`, or a price
                tag's with what ran on after its parent: :attr:`BeyondSums.inclusive`).
            far: the same sums' :attr:`SharedSums.far` (``None``: no run adds energy).

        Returns:
            The amount (0 when nothing adds below the run).
        """
        if far is None:
            return 0
        total: Any = 0
        for child in self.children[pos]:
            total += inclusive[child] if self.adds(child) else far[child]
        return total

    def nested_sum(
        self, values: Sequence[float | int | None], *, fpo: bool = False, shared: bool = False
    ) -> tuple[list[Any], list[Any]]:
        """Inclusive and exclusive amounts of a cost, without double counting.

        A parent's recorded cost contains its children's, except a child that adds to it (a run
        on another host or outside the parent's process tree; for FPO, a rank under its node
        meter too: see :meth:`adds`). The effective own amount of a run is ``max(own, sum of
        the inside children's inclusive amounts)`` (so children that add up to more than their
        parent recorded are never lost), its exclusive amount is that minus those children's,
        and its inclusive amount is its effective own amount plus the adding children's
        inclusive amounts. An unknown (``None``) amount counts as 0 of its own. Summing
        exclusive amounts over all runs equals summing inclusive amounts over the roots. Python
        arithmetic is used, so integer amounts (FPO) stay exact.

        With ``shared`` (energy, CO2-eq: amounts a meter reads for a whole process or machine
        over a run's span), children that ran at the same time share their parent's amount
        out instead: see :meth:`shared_sums`.

        Args:
            values: one amount per run (same order as ``runs``), ``None`` when unknown.
            fpo: the amounts are FPO (a peer rank's add to its node meter's).
            shared: share a parent's amount out over its concurrent children
                (:meth:`shared_sums`); not for FPO or durations.

        Returns:
            ``(inclusive, exclusive)`` lists, one entry per run.

        Raises:
            AnalysisError: an amount is an integer above the largest float (about 1.8e308;
                the message names the run). greenprint refuses to record such an FPO
                (:func:`~greenprint._validate.check_fpo`); one in a ledger was written by an
                older greenprint or by hand, and is corrupt (no computation counts that many
                operations). It is refused rather than read as unknown: a price tag that
                leaves it out would look complete and be wrong, and the fix is one SQL
                statement, which the message gives; nothing in the ledger is changed.
        """
        inclusive, exclusive, _, _ = self._sums(values, fpo=fpo, shared=shared)
        return inclusive, exclusive

    def recorded_sums(self, name: str) -> tuple[list[Any], list[Any] | None]:
        """:meth:`nested_sum` of a cost as its runs recorded it, nothing shared out, and ``far``.

        Where concurrent children share their parent's measurement out (:meth:`shared_sums`), a
        run inside a group counts a scaled amount, and its children with it: whether a parent
        recorded less than the runs inside it is a question of what each recorded, asked here.

        Returns:
            ``(inclusive, far)``: as :attr:`SharedSums.inclusive` and :attr:`SharedSums.far`
            without the sharing out (:meth:`outside` reads them).
        """
        inclusive, _, _, far = self._sums(self.column(name), fpo=False, shared=False)
        return inclusive, far

    def shared_sums(self, name: str) -> SharedSums:
        """:meth:`nested_sum` of a cost that concurrent children share out (computed once).

        For energy (``"energy_kwh"``) and CO2-eq (``"emissions_kg"``): a meter reads a whole
        process (or machine) over a run's span, and cannot tell its threads apart. Children
        that ran inside their parent *at the same time* (their spans overlap: ``started_at``
        to ``ended_at``, or a running run's last heartbeat) each record the whole process's
        amount over their span, so their sum counts the overlap more than once (trials of
        ``study.optimize(n_jobs=4)``). The rule, parent by parent, over the children inside
        it (:meth:`time_groups`):

        * A child that ran *alone* (no other child at any moment of its span; also one with
          no known span) measured the process alone: its amount is exact, and it keeps it.
        * Children that ran at the same time form *groups* (spans chained by overlaps). When
          all the children inside the parent add up to more than it recorded, and it recorded
          more than 0, the parent's measurement is the truth for the whole: the groups share
          out what it measured beyond its children that ran alone, ``own - kept``, and the
          parent's exclusive part is 0 (its time around its children cannot be told from
          theirs). One group takes all of it. Several groups take it in proportion to each
          group's energy over its span at its members' mean power (``sum of its amounts x
          length of its span / sum of its members' lengths``, between its largest amount and
          its sum), never more than a group measured nor less than its largest member did.
          Each member of a group is scaled by its group's factor, in proportion to what it
          measured (n equal trials that ran together get 1/n each), its descendants with it.
        * Floor: what the process spent over a group's span is at least what its largest
          member measured (that member read the whole process over part of it). A parent that
          measured less than that least (``own - kept`` below the sum of each group's largest
          amount: a meter that lagged, data that disagree) cannot be the truth: each group
          counts its largest amount, and the parent's sum (``kept`` plus those) is above its
          own reading; :attr:`ShareOut.floored` says so.

        * Threads of one process: children of one host that name the same process (a run of
          scope ``"process"`` records the pid and start time of the process its meters read,
          provenance ``"process"``) and ran at the same time (:meth:`thread_groups`) each read
          that whole process over their span. Their time is cut at every start and end into
          stretches; a stretch where ``k`` of them ran counts once, at the mean of their
          powers (a run's amount over its span's length) times its length, split equally
          among the ``k`` (:func:`stretch_shares`); a group counts at least what its largest
          member read. Exact at constant power: each counts that power times its own share of
          time, whatever the parent measured, and the parent keeps the rest (start-up under
          ``greenprint run``, the sampler's time...). When they count more than the parent
          measured beyond its other children (the power varied), each group of them is a group
          of the rule above, weighed at and capped at its count and floored at its largest
          member's amount. A parent that measured less than its children count (outlived, 0,
          or below the floor) keeps 0 of its own: :attr:`ShareOut.short`. The runs inside
          such a child (a trial's folds in its thread) count by what ran beside each of them:
          the rate at which the child counts, stretch by stretch, averaged over each one's own
          span (:attr:`ShareOut.profiles`, :meth:`_scale_down`). Other children (other
          processes, other hosts, machine scope, runs recorded before runs named their
          process) keep the rule above.
        * Threads with no run around them: top-level runs (no parent in the set) of one host
          that name the same process and ran at the same time (``study.optimize(n_jobs=2)``
          with greenprint's Optuna callback and no ``gp.track(..., role="sweep")`` around it)
          count each stretch of their time once in the same way (:func:`stretch_shares`, a
          group at least its largest member's amount), each scaled to its count with its
          descendants (:attr:`SharedSums.roots`). No run measured them all, so nothing caps
          them: at constant power they count that power times the union of their spans.
          Top-level runs in other processes or on other hosts, of machine scope, recorded
          before runs named their process, or that ran one after another keep what they
          measured, float for float.

        So the rule is exact when the process drew constant power over each group's span and
        the children fill their parent's life: what ran alone keeps its measurement, and each
        group gets the process's energy over its span. Nothing is counted twice: a parent's
        sum is never more than its children's, nor more than its own reading unless that is
        below the floor. Children that ran one after another keep :meth:`nested_sum`'s rule
        exactly (their sum wins, float for float), and so do those of a parent that ended
        before one of them did (:meth:`outlived`: it did not measure what that child spent
        after its end, so it is no truth for the whole). A running parent has not ended: a
        live report shares its last flushed reading, which may lag its children's by a flush
        interval (then the floor holds); figures settle when the runs end. Children that add
        to their parent (:meth:`adds`), and what adds to a run inside it, are outside the
        parent's measurement: never scaled, never compared with it. FPO (counted per run,
        exactly) and durations (run-seconds: parallel runs add up) are never shared.

        An amount that is not a finite number (infinite, NaN: a corrupt ledger, a hand-built
        record) is no measurement: it reads as NaN, every sum that contains it (its own, its
        ancestors', the totals) is NaN, nothing is shared out around it (its siblings keep
        what they measured), and :attr:`SharedSums.nonfinite` names it. (Plain arithmetic
        would hide it: ``max(1.0, nan)`` is ``1.0``, and an infinite child scaled its
        siblings to 0.)

        The lists are shared by every reader of the forest (price tag, EVP, Pareto, report):
        do not mutate them.

        Args:
            name: the RunRecord field, ``"energy_kwh"`` or ``"emissions_kg"``.

        Returns:
            The :class:`SharedSums`.
        """
        found = self._shared.get(name)
        if found is None:
            values = self.column(name)
            inclusive, exclusive, shares, far = self._sums(values, fpo=False, shared=True)
            roots = shares.pop(_ROOTS, None)
            found = self._shared[name] = SharedSums(
                inclusive,
                exclusive,
                {
                    p: (s.measured, s.shared)
                    if not s.threads
                    else (s.measured + s.threads_measured, s.shared + s.threads_shared)
                    for p, s in shares.items()
                },
                shares,
                _nonfinite(values),
                roots,
                far,
            )
        return found

    def cost_sums(self, name: str) -> list[Any]:
        """Each run's ``name`` with its descendants', by the price tag's rule for that cost.

        FPO: :attr:`fpo_sums`; energy and CO2-eq (:data:`SHARED_COSTS`): :meth:`shared_sums`;
        anything else (durations): :meth:`nested_sum`. Shared with the forest's other readers:
        do not mutate.
        """
        if name == "fpo":
            return self.fpo_sums.inclusive
        if name in SHARED_COSTS:
            return self.shared_sums(name).inclusive
        return self.nested_sum(self.column(name))[0]

    @cached_property
    def _shared(self) -> dict[str, SharedSums]:
        return {}

    @cached_property
    def _remote(self) -> bool:
        """Whether some run adds to its parent's energy (a ``"remote"`` link)."""
        return "remote" in self.kinds

    def _beyond_float(self, values: Sequence[float | int | None], *, fpo: bool) -> AnalysisError:
        """The error of the first run whose amount is an integer above the largest float."""
        pos, value = next(
            (p, v) for p, v in enumerate(values) if v is not None and abs(v) > FPO_MAX
        )
        run = self.runs[pos]
        said = (
            f"run {run.id} ({run.name!r}) records {'an FPO' if fpo else 'an amount'} of "
            f"{len(str(abs(int(value))))} digits, above the largest float "
            f"({float(FPO_MAX):.3g})"
        )
        if not fpo:  # pragma: no cover - only FPO are integers
            return AnalysisError(f"{said}: it cannot be analysed")
        return AnalysisError(
            f"{said}: no computation counts that many operations, the value is corrupt; make "
            f"it unknown (UPDATE runs SET fpo = NULL WHERE id = '{run.id}') and report again"
        )
