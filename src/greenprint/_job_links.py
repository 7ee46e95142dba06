"""A distributed job's runs linked into one tree, and the status its price tag reads it with.

The runs of a job (:mod:`greenprint._jobs`: the job key, node and local ranks, node meters)
are recorded by their own processes, on their own hosts, each as a root or under the run open
where it started. :func:`link_jobs` links them as the price tag counts them: a rank under the
node meter on its host (a peer: its energy inside the meter's machine reading), a second node
meter of a host nested in the first, the nodes under the job's head; :func:`job_status` is the
job's status (a node that failed fails the job) and :func:`job_notes` what the price tag says
of it. Pure Python over the runs' recorded fields: no numpy, no ledger.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

from greenprint._format import and_list
from greenprint._liveness import WRITER_KEY
from greenprint._records import CUT_SHORT_STATUSES

__all__ = ["EDGE_KINDS", "job_notes", "job_status", "link_jobs"]


#: How a run's measurement relates to its parent's (see :func:`link_jobs`).
#: ``"nested"``: inside it (cost and FPO); ``"peer"``: a rank on a node metered by its parent
#: (energy, CO2-eq and time inside, FPO its own); ``"remote"``: outside it (everything adds).
EDGE_KINDS = ("nested", "peer", "remote")


def _end(run: Any) -> float:
    if run.ended_at is not None:
        return float(run.ended_at)
    return max(run.started_at + run.duration_s, run.heartbeat_at or run.started_at)


def _overlap_s(a: Any, b: Any) -> float:
    return min(_end(a), _end(b)) - max(a.started_at, b.started_at)


def link_jobs(
    runs: Sequence[Any],
    parents: list[int | None],
    kinds: list[str],
    *,
    statuses: dict[int, str] | None = None,
) -> list[str]:
    """Link the runs of each job into one tree, in place; returns notes for the price tag.

    ``parents[p]`` is the position of run ``p``'s parent (``None``: a root) and ``kinds[p]`` the
    edge's kind. Only a job's runs that are roots or whose parent edge is ``"remote"`` are
    linked; a run nested in another keeps its parent. Per host, a rank that is not a node meter
    becomes a ``"peer"`` of the node meter on its host that overlaps it most in time (its energy
    is inside the meter's machine reading); a second node meter overlapping an earlier one on the
    same host (the double-count hazard) is ``"nested"`` in it, so the machine counts once, and a
    note says so. The job's remaining roots become ``"remote"`` children of its head, the lowest
    (node rank, local rank, start): the job's root sums its nodes.

    A training's head stands for the training, one job of several processes: it reads the
    job's status (:func:`job_status`), that of its own run and of the other runs of its
    training's last attempt (its nodes and ranks, linked to it by the job or by id; not the
    runs nested in them, nor the attempts a restart took over from). A head that finished while
    another node of its training failed is a failed training, as ``torchrun`` and SLURM end
    such a job, with a note naming the run that failed; where it is not the head's own, that
    status is put in ``statuses`` (head position -> status) when given. The ranks of a search's
    trials that metered the node (read as one trial, with a note) keep their head's status.
    """
    explicit = list(parents)
    heads: list[tuple[int, list[int]]] = []  # each training's head and its last attempt's runs
    before: set[int] = set()  # the runs of attempts a restart took over from
    groups: dict[str, list[int]] = {}
    for pos, run in enumerate(runs):
        job = getattr(run, "job_id", None)
        if job is not None and (parents[pos] is None or kinds[pos] == "remote"):
            groups.setdefault(job, []).append(pos)
    notes: list[str] = []
    for job, members in groups.items():
        if len(members) < 2:
            continue
        searched, metered = _search_trials(runs, members)
        if metered:
            notes.append(
                f"job {job}: its processes ran {metered} runs given role 'trial', one after "
                "another in a process, but some of them metered the node (the whole machine, "
                "the other processes' runs included): read as one job, its runs as the parts "
                "of one trial; give each trial node_meter=False to read them as trials"
            )
        elif searched:
            # the job's processes each ran a search's trials one after another (Optuna
            # workers started by `srun -n 3 python search.py`): each is a trial of its own
            notes.append(
                f"job {job}: its processes ran {len(searched)} runs given role 'trial', one "
                "after another in a process: read as the trials of a search its processes "
                "ran, each its own trial, not as the ranks of one training"
            )
            members = [p for p in members if p not in searched]
        by_host: dict[str, list[int]] = {}
        for pos in members:
            by_host.setdefault(runs[pos].host, []).append(pos)
        for host, here in by_host.items():
            meters: list[int] = []
            for pos in sorted(
                (p for p in here if runs[p].node_meter),
                key=lambda p: (runs[p].started_at, runs[p].id),
            ):
                earlier = [m for m in meters if _overlap_s(runs[m], runs[pos]) > 0]
                if earlier:
                    parents[pos], kinds[pos] = earlier[0], "nested"
                    notes.append(
                        f"job {job}: runs {runs[earlier[0]].id[:8]} and {runs[pos].id[:8]} both "
                        f"metered host {host} at the same time; the machine is counted once"
                    )
                else:
                    meters.append(pos)
            if not meters:
                continue  # a shared node: every rank counts its own process
            for pos in here:
                if runs[pos].node_meter:
                    continue
                best = max(meters, key=lambda m: (_overlap_s(runs[m], runs[pos]), -m))
                parents[pos], kinds[pos] = best, "peer"
        loose = [p for p in members if parents[p] is None]
        if len(loose) < 2:
            if loose and not metered:  # one node's ranks under its meter, or nodes linked by id
                heads.append((loose[0], loose))
            continue
        # a search's trials that metered the node stay one job (the note above says why)
        trainings = [(loose, loose)] if metered else _trainings(runs, loose)
        for training, last in trainings:
            head = min(last, key=lambda p: _head_order(runs[p]))
            for pos in training:
                if pos != head:
                    parents[pos], kinds[pos] = head, "remote"
            if not metered:
                heads.append((head, last))
                before.update(p for p in training if p not in last)
        if len(trainings) > 1:
            notes.append(
                f"job {job}: its processes ran {len(trainings)} trainings one after another: "
                "each read as a trial of its own, its ranks' runs as its parts (a run after a "
                "failed or interrupted one with the same params is read as its restart)"
            )
    heads.extend(_link_spawned(runs, parents, kinds))
    notes.extend(_read_statuses(runs, parents, kinds, explicit, heads, before, statuses))
    return notes


def _read_statuses(
    runs: Sequence[Any],
    parents: Sequence[int | None],
    kinds: Sequence[str],
    explicit: Sequence[int | None],
    heads: Sequence[tuple[int, Sequence[int]]],
    before: set[int],
    out: dict[int, str] | None,
) -> list[str]:
    """Each training head's job status where it is not its own (into ``out``), with notes.

    A head's training is its last attempt's runs (``heads``) and the runs of its job linked
    below them: by the job (``parents`` differs from ``explicit``), as a peer rank, or as a
    run outside its parent's measurement (another node given the head's id); never a run
    nested in another (a fold inside a rank), nor one of ``before`` (an attempt a restart
    took over from, which ended as it ended).
    """
    if not heads or not hasattr(runs[heads[0][0]], "status"):
        return []  # a study budget's partial records: no status, none asked for
    below: dict[int, list[int]] = {}
    for pos, parent in enumerate(parents):
        if parent is not None:
            below.setdefault(parent, []).append(pos)
    notes: list[str] = []
    for head, last in heads:
        job = runs[head].job_id
        training = list(last)
        seen = set(training)
        for at in training:  # grows while read: the runs linked below each
            for pos in below.get(at, ()):
                linked = kinds[pos] in ("peer", "remote") or parents[pos] != explicit[pos]
                if pos not in seen and pos not in before and linked and runs[pos].job_id == job:
                    seen.add(pos)
                    training.append(pos)
        status = job_status(runs[p].status for p in training)
        own = runs[head].status
        if status == own:
            continue
        if out is not None:
            out[head] = status
        ended = sorted(
            (p for p in training if runs[p].status == status),
            key=lambda p: (runs[p].started_at, runs[p].id),
        )
        notes.append(_status_note(job, runs, head, ended, status))
    return notes


def _status_note(
    job: str, runs: Sequence[Any], head: int, ended: Sequence[int], status: str
) -> str:
    """The note on a training read with another status than its head's own (see link_jobs)."""
    named = []
    for pos in ended[:3]:
        run = runs[pos]
        where = f" on host {run.host}" if run.host else ""
        error = (getattr(run, "error", None) or "").strip().splitlines()
        why = f": {error[0].strip()[:120]}" if error and status != "lost" else ""
        named.append(f"{run.name!r} ({run.id[:8]}{where}{why})")
    more = f" and {len(ended) - 3} more" if len(ended) > 3 else ""
    one = len(ended) == 1
    verb = {
        "running": "is still running" if one else "are still running",
        "lost": "was lost" if one else "were lost",
        "pruned": "was pruned" if one else "were pruned",
    }.get(status, status)
    top = runs[head]
    return (
        f"job {job}: its {'run' if one else 'runs'} {', '.join(named)}{more} {verb} while "
        f"its head {top.name!r} ({top.id[:8]}) {top.status}: the job, one training (or "
        f"search), reads {status} (its head counted as {status}, with the whole job's cost)"
    )


def _trainings(runs: Sequence[Any], loose: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """A job's top-level runs grouped by training, in start order, with its last attempt's runs.

    The runs of one training run at the same time (its ranks, its nodes): runs whose spans
    overlap, directly or through others, are one attempt, which holds one run per process (a
    process runs one training at a time: a rank that starts its next training while another
    rank is still closing the last one starts the next attempt). A job whose processes ran two
    trainings one after another (a script that loops over two learning rates under
    ``torchrun``) has two. A later attempt with the same params as the one before it (params
    naming a rank left out) after that one was cut short (failed, interrupted, lost) is that
    training again (a restart, a resumed training), not another: its runs join the training,
    which is read from its last attempt (its head, status and score), the attempts before it
    adding their cost. After one that finished (or with other params) it is a training of its
    own: ranks without params that ran two trainings one after another (a sweep inside the job,
    seeds, a fit then its test) ran two.
    """
    ordered = sorted(loose, key=lambda p: (runs[p].started_at, runs[p].id))
    unflushed = [p for p in ordered if _unflushed(runs[p])]
    if unflushed:  # placed once the attempts of the runs with a span are known
        later = set(unflushed)
        ordered = [p for p in ordered if p not in later]
    groups: list[list[int]] = []
    reaches: list[float] = []  # each group's latest end
    held: list[set[tuple[Any, ...]]] = []  # each group's processes
    for pos in ordered:
        process = _writer(runs[pos])
        into = next(
            (
                g
                for g in range(len(groups) - 1, -1, -1)
                if runs[pos].started_at < reaches[g] and process not in held[g]
            ),
            None,
        )
        if into is None:
            groups.append([])
            reaches.append(-float("inf"))
            held.append(set())
            into = len(groups) - 1
        groups[into].append(pos)
        reaches[into] = max(reaches[into], _end(runs[pos]))
        held[into].add(process)
    if unflushed:
        groups = _place_unflushed(runs, groups, reaches, unflushed)
    merged: list[tuple[list[int], list[int]]] = []
    key_of_last: str | None = None
    for group in groups:
        key = _training_params(runs[min(group, key=lambda p: _head_order(runs[p]))])
        last = merged[-1][1] if merged else []
        ended = {getattr(runs[p], "status", None) for p in last}  # (partial: unknown)
        if merged and key == key_of_last and ended <= set(CUT_SHORT_STATUSES):
            # a restart: the training read from its new attempt, the one before adding its cost
            merged[-1] = (merged[-1][0] + group, group)
        elif (
            merged
            and key == key_of_last
            and _writers(runs, group).isdisjoint(_writers(runs, merged[-1][0]))
        ):
            # other processes' runs of the same params that did not overlap the training's (a
            # node whose ranks started after another node's had ended, nothing holding them
            # together): its other ranks, not a training run again by its processes
            merged[-1] = (merged[-1][0] + group, merged[-1][1] + group)
        else:
            merged.append((group, group))
        key_of_last = key
    return merged


def _search_trials(runs: Sequence[Any], members: Sequence[int]) -> tuple[set[int], int]:
    """A job's runs that are the trials of a search its processes ran, not ranks of a training.

    Runs given role ``trial`` are such trials when one process (a host, node rank and local
    rank) ran two or more of them (a search's worker runs one trial after another: each Optuna
    trial of ``srun -n 3 python search.py``), and no two of them that ran at the same time in
    two processes share their params: those are the ranks of one training of the search, each
    tracked as the trial (``trainer.hyperparameter_search`` over two nodes, a run per node).
    Params that name the process (its rank, its device: ``--local_rank`` that
    ``torch.distributed.launch`` passes, logged with the script's arguments) are left out of
    that comparison.
    When one of them metered the node, its machine reading holds the other processes' trials,
    whose energy then counts once only inside it: none is taken out.

    Returns:
        The positions of the trials (none when one metered the node), and the number of such
        trials when one metered the node (else 0).
    """
    trials = [p for p in members if getattr(runs[p], "role", None) == "trial"]
    per_process: dict[tuple[Any, ...], int] = {}
    for p in trials:
        per_process[_process(runs[p])] = per_process.get(_process(runs[p]), 0) + 1
    if not per_process or max(per_process.values()) < 2:
        return set(), 0
    alike: dict[str, list[int]] = {}
    for p in trials:
        alike.setdefault(_training_params(runs[p]), []).append(p)
    for same in alike.values():
        live: list[int] = []  # those started earlier and not ended yet
        for p in sorted(same, key=lambda p: runs[p].started_at):
            live = [q for q in live if _overlap_s(runs[q], runs[p]) > 0]
            if any(_process(runs[q]) != _process(runs[p]) for q in live):
                return set(), 0  # one training's ranks, a trial each: one trial
            live.append(p)
    if _meter_overlaps(runs, members, [p for p in trials if runs[p].node_meter]):
        return set(), len(trials)
    return set(trials), 0


def _meter_overlaps(runs: Sequence[Any], members: Sequence[int], meters: Sequence[int]) -> bool:
    """Whether a trial that metered its node ran at the same time as another run of the job there.

    Only then does its machine reading hold another process's run. Trials that metered the
    node one after another (``GREENPRINT_JOB_ID`` exported in a batch script that then runs
    ``python trial.py`` three times: each process a node meter with no rank) each read their
    own stretch of the machine: they were read as the parts of one trial, a failed one among
    them counted as finished.
    """
    if not meters:
        return False
    metering = set(meters)
    by_host: dict[Any, list[int]] = {}
    for p in members:
        by_host.setdefault(runs[p].host, []).append(p)
    for here in by_host.values():
        if metering.isdisjoint(here):
            continue
        active: list[tuple[float, int]] = []  # (end, position) of the runs still going
        for p in sorted(here, key=lambda q: runs[q].started_at):
            start = runs[p].started_at
            while active and active[0][0] <= start:
                heapq.heappop(active)
            if active and (p in metering or any(q in metering for _, q in active)):
                return True
            heapq.heappush(active, (_end(runs[p]), p))
    return False


#: Params that name a rank's process, not its training (compared without them, see below).
_RANK_PARAMS = frozenset(
    {
        "rank",
        "local_rank",
        "global_rank",
        "node_rank",
        "world_rank",
        "process_index",
        "local_process_index",
        "device",
    }
)


def _training_params(run: Any) -> str:
    """A run's params without those naming its process (its rank, its device), as a key.

    The ranks of one training log the same params but these: ``vars(args)`` of a script started
    by ``python -m torch.distributed.launch`` holds ``local_rank``, different in each.
    """
    params = getattr(run, "params", None) or {}  # a study budget's partial record has none
    return repr(
        sorted(
            (k, v)
            for k, v in params.items()
            if str(k).lower().lstrip("-").replace("-", "_") not in _RANK_PARAMS
        )
    )


def _process(run: Any) -> tuple[Any, ...]:
    """The process of a job a run was in: its host, node rank and local rank."""
    return (run.host, run.node_rank, run.local_rank)


def _writers(runs: Sequence[Any], positions: Sequence[int]) -> set[tuple[Any, ...]]:
    """The processes that wrote the runs at ``positions`` (see :func:`_writer`)."""
    return {_writer(runs[p]) for p in positions}


def _unflushed(run: Any) -> bool:
    """A run lost before its first flush: it recorded its start only, no span of its own.

    (A study's cost read in SQL passes runs without a status: none is.)
    """
    return (
        getattr(run, "status", None) == "lost"
        and run.ended_at is None
        and _end(run) <= run.started_at
    )


def _place_unflushed(
    runs: Sequence[Any], groups: list[list[int]], reaches: list[float], unflushed: list[int]
) -> list[list[int]]:
    """The attempts with each run lost before its first flush in the one it was part of.

    Such a run (a node killed while it loaded its model) lived an unknown while after its start,
    up to its first flush (``flush_interval_s``): it overlapped nothing by its record, and read
    as an attempt of its own before the attempt it belonged to, which then read as a restart
    that finished. It joins the attempt that could have run beside it (one that started before
    its first flush was due and had not ended at its start) whose processes do not already
    include its process (host, node rank, local rank: a restart gives that process a new run),
    the one that started nearest to it; with none, it stays an attempt of its own. Returns the
    attempts in order of their first start.
    """
    firsts = [min(runs[p].started_at for p in group) for group in groups]
    places = [{_process(runs[p]) for p in group} for group in groups]
    alone: list[list[int]] = []
    for pos in unflushed:
        run = runs[pos]
        due = run.started_at + max(float(getattr(run, "flush_interval_s", 0.0) or 0.0), 0.0)
        fits = [
            g
            for g in range(len(groups))
            if firsts[g] <= due and reaches[g] >= run.started_at
            and _process(run) not in places[g]
        ]  # fmt: skip
        if not fits:
            alone.append([pos])
            continue
        into = min(fits, key=lambda g: abs(firsts[g] - run.started_at))
        groups[into].append(pos)
        places[into].add(_process(run))
    placed = groups + alone
    return sorted(placed, key=lambda group: min(runs[p].started_at for p in group))


def _writer(run: Any) -> tuple[Any, ...]:
    """The process that wrote a run, as a key.

    Its host and ``provenance["writer"]`` (pid, start tick, boot), else its host, node rank and
    local rank (records without one).
    """
    writer = (getattr(run, "provenance", None) or {}).get(WRITER_KEY)
    return (run.host, writer) if writer else _process(run)


def _head_order(run: Any) -> tuple[Any, ...]:
    """A job's head first: the lowest node rank, then local rank, then the earliest start."""
    return (
        run.node_rank is None,
        run.node_rank or 0,
        run.local_rank is None,
        run.local_rank or 0,
        run.started_at,
        run.id,
    )


def _link_spawned(
    runs: Sequence[Any], parents: list[int | None], kinds: list[str]
) -> list[tuple[int, list[int]]]:
    """Each job's ranks under their head, where a run outside the job holds other runs too.

    A script under ``greenprint run`` (or in a sweep's run) that spawns one training after
    another: each training's ranks are children of that run, beside the other trainings'.
    Linked under its head (an ``"remote"`` link: each rank measured its own process), each
    training is one child of the run, as a job's roots are one tree under its head. The ranks
    of one job alone in a run stay its children: that run is their training.

    Returns:
        Each training linked so: its head and its ranks' positions.
    """
    held: dict[int, dict[str, list[int]]] = {}
    counts: dict[int, int] = {}
    for pos, run in enumerate(runs):
        parent = parents[pos]
        if parent is None:
            continue
        counts[parent] = counts.get(parent, 0) + 1
        job = getattr(run, "job_id", None)
        outside = getattr(runs[parent], "job_id", None) != job  # its parent is not of its job
        if job is not None and kinds[pos] == "nested" and outside:
            held.setdefault(parent, {}).setdefault(job, []).append(pos)
    linked: list[tuple[int, list[int]]] = []
    for parent, jobs in held.items():
        for here in jobs.values():
            if len(here) < 2 or len(here) == counts[parent]:
                continue
            head = min(here, key=lambda p: _head_order(runs[p]))
            for pos in here:
                if pos != head:
                    parents[pos], kinds[pos] = head, "remote"
            linked.append((head, here))
    return linked


#: A job's status from its runs': the first of these that any run has, else ``finished``.
_JOB_STATUS_ORDER = ("lost", "failed", "interrupted", "running", "pruned")


def job_status(statuses: Iterable[str]) -> str:
    """A job's status from its runs' (derived statuses: a silent run is ``lost``).

    One lost node makes the job ``lost`` (its cost so far is counted); else one failed run makes
    it ``failed``, then ``interrupted``, ``running`` and ``pruned``; else ``finished``.
    """
    seen = set(statuses)
    return next((s for s in _JOB_STATUS_ORDER if s in seen), "finished")


def job_notes(runs: Sequence[Any]) -> list[str]:
    """Notes for a price tag: each job with a lost run (a node whose process is gone)."""
    lost: dict[str, list[str]] = {}
    for run in runs:
        job = getattr(run, "job_id", None)
        if job is not None and run.status == "lost":
            lost.setdefault(job, []).append(f"{run.id[:8]} on {run.host or 'an unknown host'}")
    notes = []
    for job, where in lost.items():
        # "run a on h ended unrecorded (its process is gone, ...)", "runs a on h and b on h ..."
        which, why, its = (
            ("run", "its process is gone, or its heartbeat stopped", "its")
            if len(where) == 1
            else ("runs", "their processes are gone, or their heartbeats stopped", "their")
        )
        notes.append(
            f"job {job} is lost: {which} {and_list(where)} ended unrecorded ({why}); {its} "
            "cost until the last heartbeat is counted"
        )
    return notes
