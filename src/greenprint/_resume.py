"""A training started again in a new process is one training: its earlier attempts are its parts.

A training resumed from a checkpoint (the Lightning and Hugging Face integrations), an Optuna
trial run again after a kill, or a job a scheduler started again (a SLURM requeue,
``torchrun --max-restarts``: :func:`link_restarted`) ran in two or more processes one after
another. The attempt that ends it stays what it is, and each earlier attempt's run becomes a
``part`` of it, ``contained`` false (it ran outside the later one's measurement): the price tag
adds its cost once, and the study counts one trial, read from the last attempt.

Below tracking and the integrations: it imports neither (a :class:`~greenprint.Run` is passed
in, typed ``Any``: importing ``tracking`` even for type checking would close a circle).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Mapping
from typing import Any

from greenprint._exceptions import GreenprintError
from greenprint._jobs import node_host, restart_counts
from greenprint._records import CUT_SHORT_STATUSES

__all__ = [
    "continue_from",
    "interrupted_at_heartbeat",
    "link_restarted",
    "record_link",
]

logger = logging.getLogger(__name__)


def interrupted_at_heartbeat(run: Any, error: str) -> dict[str, Any]:
    """The fields that end ``run``, whose process died without a final write, ``interrupted``.

    Ended at its last heartbeat (its start if it never beat), with ``error`` saying what
    resumed it: a crashed training resumed from its checkpoint, a killed Ray driver's sweep or
    trial attempt that ``Tuner.restore`` ran again. Its cost stays what it last flushed.
    """
    return {
        "status": "interrupted",
        "ended_at": run.heartbeat_at or run.started_at,
        "error": error,
    }


def continue_from(
    run: Any,
    earlier_id: object,
    *,
    how: str,
    resumed: str = "resumed it from a checkpoint",
    gone: bool = False,
) -> None:
    """Make the run of an earlier attempt of this training, which ``run`` resumes, its part.

    A training resumed from a checkpoint in a new process (after a crash, a kill, a Ctrl-C) is
    one training: ``run``, the attempt that ends it, stays what it is, and the earlier
    attempt's run becomes a ``part`` of it with its status, error and cost. An earlier attempt
    resumed already by one that failed before a checkpoint of its own: that one becomes the
    part (it holds the first); by one that finished or is running (two trainings went on from
    one checkpoint): nothing changes. It ran before ``run``, outside its measurement, so it is
    recorded ``contained`` false and the price tag adds its cost once. An earlier run whose
    process died without a final write (read ``lost``) ends ``interrupted``. One that is not in
    ``run``'s ledger (another ledger, one deleted), is of another study, or is ``run`` or its
    parent already: nothing changes, and a debug log says why (never an error: the training
    goes on).

    Args:
        run: the running run of the resumed training.
        earlier_id: the earlier attempt's run id, as the checkpoint recorded it.
        how: how the training resumed, for the interrupted run's error
            (``"trainer.fit(ckpt_path=...)"``).
        resumed: what ``how`` did with the earlier attempt, for that error (an Optuna trial
            retried after a kill "ran it again", from the start).
        gone: the earlier attempt's process is known to have ended (a scheduler started the
            job again, which it does once every process of the job ended): a run still read
            ``running`` (its heartbeat, from another host, not stale yet) ends ``interrupted``
            at its last heartbeat, as a ``lost`` one does.
    """
    ledger = run.ledger
    if not isinstance(earlier_id, str) or not earlier_id or ledger is None or not run.id:
        logger.debug("greenprint: no earlier run to continue from (%r)", earlier_id)
        return
    try:
        earlier = ledger.run(earlier_id)
    except GreenprintError as e:  # another ledger's run, or a deleted one: as a new training
        logger.debug("greenprint: the run the checkpoint names is not in the ledger: %s", e)
        return
    # the run a checkpoint names may have been resumed already: by an attempt that ended
    # before a checkpoint of its own (failed, killed), which this one resumes in its place,
    # or by another training that went on from the checkpoint (finished, or running now)
    seen = {run.id}
    while earlier.role == "part" and earlier.contained is False and earlier.parent_id:
        if earlier.parent_id in seen or earlier.id in seen:
            break
        seen.add(earlier.id)
        try:
            above = ledger.run(earlier.parent_id)
        except GreenprintError:
            break
        if above.study != run.study:
            break
        if above.status not in CUT_SHORT_STATUSES:
            logger.debug(
                "greenprint: run %s was resumed by run %s already (%s): run %s is a training "
                "of its own",
                earlier.id[:8],
                above.id[:8],
                above.status,
                run.id[:8],
            )
            return
        earlier = above
    linked = earlier.parent_id == run.id or run.parent_id == earlier.id
    if earlier.id == run.id or earlier.study != run.study or linked:
        logger.debug(
            "greenprint: run %s is not an earlier attempt of run %s (same run, another study, "
            "or linked already)",
            earlier.id[:8],
            run.id[:8],
        )
        return
    how = f"{how} {resumed}"
    ended = _ended_fields(earlier, how, gone=gone)
    wrapped = _wrapping_attempt(ledger, earlier, run.parent_id)
    if wrapped is not None:
        # the training ran inside the user's own run both times (``with gp.track("lr=0.1"):
        # trainer.fit(...)``): that earlier run, which holds only the crashed training, is the
        # earlier attempt, a part of the run that wraps this one (not a failed trial of its own
        # beside it); the crashed training stays inside it
        moved, fields = wrapped, {"parent_id": run.parent_id, "role": "part", "contained": False}
        fields.update(_ended_fields(wrapped, how, gone=gone))
        if ended:
            record_link(ledger, earlier.id, ended, run.id)
    else:
        moved, fields = earlier, {"parent_id": run.id, "role": "part", "contained": False}
        fields.update(ended)
    record_link(ledger, moved.id, fields, run.id)


def _ended_fields(earlier: Any, how: str, *, gone: bool = False) -> dict[str, Any]:
    """The fields ending an earlier attempt whose process died without a final write (``lost``).

    ``interrupted`` at its last heartbeat, with an error that says so; none for any other status
    (but ``running`` when ``gone``: see :func:`continue_from`).
    """
    if earlier.status != "lost" and not (gone and earlier.status == "running"):
        return {}
    return interrupted_at_heartbeat(earlier, f"its process ended without a final write; {how}")


def record_link(ledger: Any, run_id: str, fields: dict[str, Any], resumed_by: str) -> None:
    """Write ``fields`` (the link) into run ``run_id``; a ledger that refuses is a warning."""
    try:
        ledger.flush(run_id, fields=fields)
    except GreenprintError as e:
        logger.warning(
            "greenprint: could not record run %s as resumed by run %s: %s",
            run_id[:8],
            resumed_by[:8],
            e,
        )


def _wrapping_attempt(ledger: Any, earlier: Any, parent_id: str | None) -> Any | None:
    """The user's run that wrapped only the earlier training, when the resumed one is wrapped.

    ``earlier`` (the crashed training's run) is the only child of a run that did not finish
    (failed, interrupted, lost): the run a script opened around its ``fit`` or ``train``. The
    resumed training is inside a run of its own (``parent_id``) beside it (both roots, or both
    in one sweep). Then that wrapper is the earlier attempt of ``parent_id``'s run. A wrapper
    already made a part of a wrapper that did not finish either (a training that crashed twice
    before its next checkpoint) is climbed to that one. ``None`` otherwise: a wrapper that holds
    other runs (a sweep), one that finished, a resumed training not wrapped.
    """
    if parent_id is None or earlier.parent_id is None or earlier.parent_id == parent_id:
        return None
    try:
        outer = ledger.run(earlier.parent_id)
        new_outer = ledger.run(parent_id)
        inside = ledger.runs(study=outer.study, parent_id=outer.id)
        if [r.id for r in inside] != [earlier.id] or outer.status not in CUT_SHORT_STATUSES:
            return None
        seen = {outer.id}
        while (
            outer.role == "part"
            and outer.contained is False
            and outer.parent_id not in (None, parent_id)
        ):
            above = ledger.run(outer.parent_id)
            if above.status not in CUT_SHORT_STATUSES or above.id in seen:
                return None
            seen.add(above.id)
            outer = above
    except GreenprintError as e:
        logger.debug("greenprint: the run around the earlier training was not read: %s", e)
        return None
    if outer.parent_id != new_outer.parent_id or outer.study != new_outer.study:
        return None
    return outer


#: The recorded environment variables that name a process of a job: the same in each attempt.
_PROCESS_VARIABLES = ("SLURM_NODEID", "SLURM_LOCALID", "SLURM_PROCID", "GROUP_RANK", "LOCAL_RANK")


def link_restarted(
    run: Any, *, job_id: str | None = None, environ: Mapping[str, str] | None = None
) -> None:
    """Make the earlier attempt of a job a scheduler started again a part of ``run``.

    For a run with no parent (the command's run of ``greenprint run``, a script's outermost
    ``gp.track``) in a SLURM job requeued (``SLURM_RESTART_COUNT`` of 1 or more) or among the
    workers ``torchrun`` restarted (``TORCHELASTIC_RESTART_COUNT`` of 1 or more). Its earlier
    attempt is the latest top-level run of ``run``'s study in its ledger with ``run``'s name
    that was cut short (failed, interrupted, lost; or still read running, which it is not: a
    scheduler starts a job again once its processes ended), recorded in the same job
    (``SLURM_JOB_ID``, else ``TORCHELASTIC_RUN_ID``, on the same host when that is ``none``) by
    the same process of it (node and local rank, as SLURM and ``torchrun`` number them) in an
    earlier attempt (fewer restarts), with the same params where both have some at ``run``'s
    start (a batch script that runs ``train.py --lr 0.1`` then ``train.py --lr 0.01``,
    requeued in its second step: its next first step is not that step's restart). It becomes
    a part of ``run`` (:func:`continue_from`): one training, its cost added once.

    Nothing is read outside a restart, and only the study's top-level runs that were cut
    short. Two attempts recorded under one job key (a ``GREENPRINT_JOB_ID`` set by hand) are
    left to the reading of a job, which reads its later attempt as the restart of the earlier.
    Never raises: a ledger that cannot be read is logged at debug level and the run goes on.

    Args:
        run: the run starting now, written to its ledger already.
        job_id: ``run``'s job key (``None`` outside a distributed job).
        environ: the environment (default: ``os.environ``).
    """
    env = os.environ if environ is None else environ
    attempt = restart_counts(env)
    ledger = run.ledger
    if not any(attempt) or ledger is None or not run.id or run.parent_id is not None:
        return
    job = _scheduler_job(env)
    if job is None:
        return
    try:
        cut_short = ledger.runs(
            study=run.study, status=(*CUT_SHORT_STATUSES, "running"), parent_id=None
        )
    except GreenprintError as e:
        logger.debug("greenprint: the earlier attempt of run %s was not read: %s", run.id[:8], e)
        return
    process = [env.get(name) for name in _PROCESS_VARIABLES]
    params = _plain(run.params)
    earlier = [
        r
        for r in cut_short
        if r.id != run.id
        and r.name == run.name
        and _scheduler_job(r.env or {}, host=r.host) == job
        and [(r.env or {}).get(name) for name in _PROCESS_VARIABLES] == process
        and restart_counts(r.env or {}) < attempt
        and (not params or not r.params or _plain(r.params) == params)
    ]
    requeues, restarts = attempt
    if requeues:
        how = f"SLURM requeue (SLURM_RESTART_COUNT={requeues})"
    else:
        how = f"torchrun restart (TORCHELASTIC_RESTART_COUNT={restarts})"
    if not earlier:
        # A ledger per node, the job started again on another node (SLURM seldom requeues a
        # job where it ran): the earlier attempt is in the other node's ledger, and once the
        # two are merged the training reads as two trials, the attempt cut short one of them.
        logger.warning(
            "greenprint: run %s (%r, study %r) is a %s of job %s, but no earlier attempt of it "
            "is in ledger %s (a ledger per node, the job started again on another node?): it "
            "reads as a training of its own; once the ledgers are merged, make that attempt its "
            "part: greenprint ledger set-role part EARLIER_ID --part-of %s --ledger MERGED "
            "(greenprint ledger ls --ledger MERGED --study %s lists it)",
            run.id[:8],
            run.name,
            run.study,
            how,
            ":".join(part for part in job if part),
            ledger.url,
            run.id[:8],
            shlex.quote(run.study),
        )
        return
    last = max(earlier, key=lambda r: (r.started_at, r.id))
    if job_id is not None and last.job_id == job_id:
        logger.debug(
            "greenprint: run %s and its earlier attempt %s are of one job key %s: read as one job",
            run.id[:8],
            last.id[:8],
            job_id,
        )
        return
    continue_from(run, last.id, how=how, resumed="ran it again", gone=True)


def _plain(params: Mapping[str, Any] | None) -> Any:
    """Params as the ledger gives them back (JSON), to compare a live run's with a record's."""
    return json.loads(json.dumps(params or {}, sort_keys=True, default=str))


def _scheduler_job(env: Mapping[str, str], *, host: str | None = None) -> tuple[str, ...] | None:
    """The scheduler's job a process was in, as a key that each attempt shares; ``None``: none.

    SLURM's job id (an array task has its own), else ``torchrun``'s run id (its default
    ``none``, with the host: ``torchrun`` restarts the workers it started on its own host).
    """
    if env.get("SLURM_JOB_ID"):
        return ("slurm", env["SLURM_JOB_ID"])
    elastic = env.get("TORCHELASTIC_RUN_ID")
    if elastic:
        here = node_host(env) if host is None else host
        return ("torchrun", elastic, here if elastic == "none" else "")
    return None
