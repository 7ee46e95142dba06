"""Roles given afterwards: :class:`LedgerRoles`, the ``set_role`` of :class:`~greenprint.Ledger`.

Split out of :mod:`greenprint.ledger._store`: a study already run is given the roles nobody
gave its runs (``greenprint ledger set-role``), each run checked before any is written, all of
them written in one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._records import RUN_ROLES, RunRecord, check_role
from greenprint.ledger._batch import update_runs
from greenprint.ledger._fields import ROLE_GIVEN_AT, encode_field

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._sqlite import SQLiteStore

__all__ = ["LedgerRoles"]


class LedgerRoles:
    """:meth:`set_role`: a mixin of :class:`~greenprint.Ledger`, whose reads it uses."""

    if TYPE_CHECKING:  # Ledger's

        @property
        def url(self) -> str: ...
        def run(self, run_id: str) -> RunRecord: ...
        def _live(self) -> SQLStore | SQLiteStore: ...

    def set_role(self, role: str, *run_ids: str, part_of: str | None = None) -> list[RunRecord]:
        """Give runs that have ended their role afterwards, as ``role=`` would have when they ran.

        For a study already run, without running it again: a report infers the roles nobody
        gave, and its notes name the runs it read one way that may be another (a baseline
        named like one, read as a trial; a hand-written learning curve read as a search).
        ``part_of`` makes the runs parts of that run, measured apart from it
        (``contained`` false: the price tag adds their cost to that run's once): the failed
        attempt of a configuration that was run again, or a fold tracked as a run of its own.
        A part's runs are read as its parts (``greenprint ledger set-role`` refuses to make a
        part of a run holding runs read as trials; this does not check it).
        ``greenprint ledger set-role ROLE RUN_ID... [--part-of RUN_ID]`` calls it.

        Args:
            role: one of :data:`~greenprint.RUN_ROLES`.
            *run_ids: the runs (full ids or unique prefixes of at least 4 characters).
            part_of: the run they become parts of (``role`` must be ``"part"``).

        Each run's provenance records when its role was given (``role_given_at``, UTC), so
        that merging a node's file given a role and a ledger given another keeps the later.

        Returns:
            The runs as stored afterwards, in the order given.

        Raises:
            UnknownRunError: no such run (in ``run_ids`` or ``part_of``).
            ConfigError: an unknown role; no run, or one given twice; ``part_of`` with a role
                other than ``"part"``, or a ``"part"`` of no run; a run still running (its
                tracker writes its role: give it with ``run.set(role=...)``); ``part_of`` a run
                of another study, one of the runs or a run inside one; a run measured inside
                the parent it has (its cost would count twice) given another parent. Every run
                is checked before any is written: on an error nothing is.
            LedgerError: the ledger cannot be written; the runs are written in one transaction,
                so none is changed.
        """
        if not run_ids:
            raise ConfigError("set_role needs at least one run id")
        records = [self.run(run_id) for run_id in run_ids]
        seen: set[str] = set()
        for record in records:
            if record.id in seen:
                raise ConfigError(
                    f"a run is given twice: run {record.id[:8]} ({record.name!r}); give each run "
                    "once"
                )
            seen.add(record.id)
        parent = self.run(part_of) if part_of is not None else None
        changes = [(r, self._check_role(r, role, parent)) for r in records]
        # when: a node's file and the merged ledger may each be given a role; a merge keeps the
        # one given last (ledger merge, ROLE_GIVEN_AT)
        given_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
        changes = [
            (r, {**f, "provenance": {**r.provenance, ROLE_GIVEN_AT: given_at}}) for r, f in changes
        ]
        encoded = [(r.id, {n: encode_field(n, v) for n, v in f.items()}) for r, f in changes]
        update_runs(self._live(), encoded, where=self.url)  # one transaction: all or none
        return [dataclasses.replace(r, **fields) for r, fields in changes]

    def _check_role(self, record: RunRecord, role: str, parent: RunRecord | None) -> dict[str, Any]:
        """The fields :meth:`set_role` writes, checked (its errors); nothing written here."""
        checked = check_role(role)
        if checked is None:
            raise ConfigError(f"a role is needed; roles: {', '.join(RUN_ROLES)}")
        name = f"run {record.id[:8]} ({record.name!r})"
        if record.status == "running":
            raise ConfigError(
                f"{name} is still running: its tracker writes its role; give it with "
                "run.set(role=...) in its script, or here once it has ended"
            )
        fields: dict[str, Any] = {"role": checked}
        if parent is not None:
            if checked != "part":
                raise ConfigError(f"--part-of gives role 'part', not {checked!r}")
            fields.update(self._part_of(record, parent))
        elif checked == "part" and record.parent_id is None:
            raise ConfigError(
                f"{name} has no parent: a part belongs to a run; give the run it is a part of "
                "(part_of=, --part-of)"
            )
        return fields

    def _part_of(self, record: RunRecord, parent: RunRecord) -> dict[str, Any]:
        """The fields that make ``record`` a part of ``parent`` (checked: see set_role)."""
        name = f"run {record.id[:8]} ({record.name!r})"
        if parent.study != record.study:
            raise ConfigError(
                f"{name} is of study {record.study!r}, run {parent.id[:8]} of study "
                f"{parent.study!r}: a part belongs to a run of its own study"
            )
        if parent.id == record.parent_id:
            return {}  # its parent already: as it was measured
        above: RunRecord | None = parent
        seen: set[str] = set()
        while above is not None and above.id not in seen:
            if above.id == record.id:
                raise ConfigError(
                    f"run {parent.id[:8]} is {name} or inside it: a run cannot be a part of itself"
                )
            seen.add(above.id)
            above = self.run(above.parent_id) if above.parent_id else None
        if record.parent_id is not None and record.contained is not False:
            raise ConfigError(
                f"{name} was measured inside its parent run {record.parent_id[:8]}: its cost is "
                "in that run's, so it cannot become a part of another"
            )
        return {"parent_id": parent.id, "contained": False}
