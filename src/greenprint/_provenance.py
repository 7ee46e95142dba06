"""Where a figure came from, as data: :class:`Provenance`.

Every figure greenprint records says where it came from: a hardware counter, an estimate (with
which TDP), a table row (region and year), a setting. Code that asks "is this an estimate?" or
"which table row?" reads the fields of a :class:`Provenance`; its ``str()`` is the display string
the ledger stores and the report shows (``"rapl:package-0"``,
``"estimate:tdp:Intel Xeon Gold 6148 (2 x 150 W)"``, ``"table:DE:2023 (Our World in Data ...)"``).
:meth:`Provenance.parse` reads such a string back, from this version's ledgers and older ones:
``str(Provenance.parse(text)) == text`` for every string.

Example:
    >>> p = Provenance.parse("estimate:tdp:AMD EPYC 7763 (280 W)")
    >>> p.kind, p.source, p.detail, p.is_estimate
    ('estimate', 'tdp:AMD EPYC 7763', '280 W', True)
    >>> str(Provenance("table", "AMD EPYC 7763"))
    'table:AMD EPYC 7763'
    >>> Provenance.parse("rapl:package-0").kind
    'measured'
    >>> Provenance.parse("env:GREENPRINT_REGION -> table:DE:2023 (OWID 2024)").root
    Provenance(kind='table', source='DE:2023', detail='OWID 2024')
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

__all__ = [
    "FPO_ASSUMPTIONS_KEY",
    "FPO_KEY",
    "MEASURED_SOURCES",
    "METRIC_DIRECTIONS_KEY",
    "OBJECTIVES_KEY",
    "Provenance",
    "ProvenanceKind",
    "distinct_provenances",
    "fpo_assumptions_of",
    "fpo_assumptions_text",
    "fpo_lower_bound",
    "is_fpo_lower_bound",
    "merge_fpo_assumptions",
    "metric_directions_of",
    "metric_directions_text",
    "objectives_of",
    "objectives_text",
    "parse_metric_directions",
    "parse_objectives",
    "recorded_objectives",
]

ProvenanceKind = Literal[
    "measured",
    "estimate",
    "table",
    "configured",
    "default",
    "argument",
    "env",
    "file",
    "preset",
    "csv",
    "other",
]

#: Kinds written as a prefix of the display string (``"estimate:..."``, ``"table:..."``).
_PREFIXED: frozenset[str] = frozenset(
    {"estimate", "table", "configured", "default", "argument", "env", "file", "preset", "csv"}
)
#: First labels of hardware counters: their display string has no kind prefix (``"rapl:..."``).
MEASURED_SOURCES: frozenset[str] = frozenset({"rapl", "nvml", "amdsmi", "hwmon", "powermetrics"})


@dataclass(frozen=True)
class Provenance:
    """Where a figure came from.

    Attributes:
        kind: what sort of source: ``"measured"`` (a hardware counter), ``"estimate"`` (a
            model: TDP x utilisation, W/GB, mean power), ``"table"`` (a row of a shipped
            table), ``"configured"``, ``"default"``, ``"argument"``, ``"env"``, ``"file"``,
            ``"preset"``, ``"csv"``, or ``"other"`` (anything else, e.g. a test meter).
        source: which one: ``"rapl:package-0"``, ``"tdp:AMD EPYC 7763"``, ``"DE:2023"``, the
            table row of a TDP (``"AMD EPYC 7763"``)...
        detail: the parenthesised note of the display string, without the outer parentheses
            (``"280 W"``), or ``""``.
    """

    kind: ProvenanceKind
    source: str = ""
    detail: str = ""

    @property
    def is_estimate(self) -> bool:
        """True when the figure is modelled rather than read from a counter or a table."""
        return self.kind == "estimate"

    @property
    def is_measured(self) -> bool:
        """True when the figure was read from a hardware counter (RAPL, NVML)."""
        return self.kind == "measured"

    def __str__(self) -> str:
        if self.kind in _PREFIXED:
            head = f"{self.kind}:{self.source}" if self.source else self.kind
        else:
            head = self.source
        return f"{head} ({self.detail})" if self.detail else head

    @property
    def root(self) -> Provenance:
        """Where a chain of settings ends: the provenance after the last ``" -> "``.

        ``"env:GREENPRINT_REGION -> table:DE:2023 (OWID)"`` was set by an environment variable
        and comes from a table row: its root is ``Provenance("table", "DE:2023", "OWID")``. A
        provenance with no chain is its own root.
        """
        head = str(Provenance(self.kind, self.source))
        if " -> " not in head:
            return self
        last = Provenance.parse(head.rsplit(" -> ", 1)[1])
        return Provenance(last.kind, last.source, self.detail)

    def with_note(self, note: str) -> Provenance:
        """The same provenance with ``note`` appended to its display string in parentheses.

        ``Provenance("estimate", "x", "240 W").with_note("rapl failed: ...")`` displays as
        ``"estimate:x (240 W) (rapl failed: ...)"``.
        """
        if not self.detail:
            return Provenance(self.kind, self.source, note)
        return Provenance(self.kind, self.source, f"{self.detail}) ({note}")

    @classmethod
    def parse(cls, text: str | Provenance | None) -> Provenance:
        """Read a provenance display string (as stored in the ledger) back into fields.

        Never raises: a string it does not recognise is ``kind="other"`` with the whole
        string as ``source``, and ``None`` or ``""`` is ``Provenance("other")``.
        """
        if isinstance(text, Provenance):
            return text
        if not text:
            return cls("other")
        if cls is Provenance:  # a study's runs repeat a handful of strings 100,000 times
            return _parse_cached(text)
        return cls._parse_text(text)

    @classmethod
    def _parse_text(cls, text: str) -> Provenance:
        head, detail = text, ""
        cut = text.find(" (")
        if cut >= 0 and text.endswith(")") and len(text) - cut > 3:
            head, detail = text[:cut], text[cut + 2 : -1]
        first, sep, rest = head.partition(":")
        if first in _PREFIXED and (rest if sep else True):
            kind = cast(ProvenanceKind, first)
            parsed = cls(kind, rest, detail)
        elif first in MEASURED_SOURCES:
            parsed = cls("measured", head, detail)
        else:
            parsed = cls("other", head, detail)
        if str(parsed) != text:  # an odd string (e.g. "estimate:"): keep it whole
            return cls("other", text)
        return parsed


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str) -> Provenance:
    """:meth:`Provenance.parse` of a string, memoised (provenances are frozen, so shared)."""
    return Provenance._parse_text(text)


#: The key of a run's provenance that says where its FPO came from, when a rule of reading them
#: applies: ``"counted; lower bound: ..."`` for FPO counted with ops the counter could not count
#: in full (:func:`fpo_lower_bound`).
FPO_KEY = "fpo"
_LOWER_BOUND = "counted; lower bound"
_NAMED_OPS = 5


def _ops_text(ops: Mapping[str, int], what: str) -> str:
    names = sorted(ops)
    shown = ", ".join(names[:_NAMED_OPS])
    more = f" and {len(names) - _NAMED_OPS} more" if len(names) > _NAMED_OPS else ""
    return f"{len(names)} op{'' if len(names) == 1 else 's'} {what}: {shown}{more}"


def fpo_lower_bound(unknown_ops: Mapping[str, int], complex_ops: Mapping[str, int]) -> str | None:
    """The provenance of counted FPO that are a lower bound, or ``None`` when they are exact.

    FPO counted with ops that have no rule (``FPOResult.unknown_ops``, not in the total) or
    on complex tensors (``FPOResult.complex_ops``, counted as if real) are fewer than were done.

    Example:
        >>> fpo_lower_bound({"aten.foo": 2, "aten.bar": 1}, {})
        'counted; lower bound: 2 ops without a rule: aten.bar, aten.foo'
        >>> fpo_lower_bound({}, {}) is None
        True
    """
    parts = []
    if unknown_ops:
        parts.append(_ops_text(unknown_ops, "without a rule"))
    if complex_ops:
        parts.append(_ops_text(complex_ops, "on complex tensors counted as real"))
    return f"{_LOWER_BOUND}: " + "; ".join(parts) if parts else None


def is_fpo_lower_bound(provenance: Mapping[str, str]) -> bool:
    """Whether a run's provenance says its FPO are a lower bound (:func:`fpo_lower_bound`)."""
    note = provenance.get(FPO_KEY)
    return isinstance(note, str) and note.startswith(_LOWER_BOUND)


#: The key of a run's provenance that says what its counted FPO assumed that the ops' shapes do
#: not say (:attr:`FPOResult.assumptions <greenprint.FPOResult>`), as ``name=value`` pairs
#: sorted by name and joined by ``"; "``: ``"fft_library=mkl"`` for FFTs counted as MKL computes
#: them (a count on a torch build with pocketfft differs there). Absent when the count assumed
#: nothing (:func:`fpo_assumptions_text`, read back by :func:`fpo_assumptions_of`).
FPO_ASSUMPTIONS_KEY = "fpo_assumptions"


def merge_fpo_assumptions(*assumptions: Mapping[str, str]) -> dict[str, str]:
    """What several FPO counts assumed together: every name, each name's values ``+``-joined.

    A name that two counts assumed differently is both (``"mkl"`` and ``"cufft"``:
    ``"cufft+mkl"``, as :class:`~greenprint.FPOCounter` writes an FFT library when both ran);
    a value that is already such a join is split first, so a merge is idempotent.

    Example:
        >>> merge_fpo_assumptions({"fft_library": "mkl"}, {"fft_library": "cufft"}, {"b": "x"})
        {'b': 'x', 'fft_library': 'cufft+mkl'}
        >>> merge_fpo_assumptions({"fft_library": "cufft+mkl"}, {"fft_library": "mkl"})
        {'fft_library': 'cufft+mkl'}
    """
    values: dict[str, set[str]] = {}
    for one in assumptions:
        for name, value in one.items():
            values.setdefault(str(name), set()).update(p for p in str(value).split("+") if p)
    return {name: "+".join(sorted(values[name])) for name in sorted(values) if values[name]}


def fpo_assumptions_text(assumptions: Mapping[str, str]) -> str | None:
    """The :data:`FPO_ASSUMPTIONS_KEY` provenance of a count's assumptions (``None``: none).

    Example:
        >>> fpo_assumptions_text({"fft_library": "mkl", "cudnn_grid_sampler": "cudnn"})
        'cudnn_grid_sampler=cudnn; fft_library=mkl'
        >>> fpo_assumptions_text({}) is None
        True
    """
    if not assumptions:
        return None
    # the separators kept out of names and values, so that fpo_assumptions_of reads them back
    return "; ".join(
        f"{str(name).replace('=', '-').replace(';', ',')}={str(value).replace(';', ',')}"
        for name, value in sorted(assumptions.items())
    )


def fpo_assumptions_of(provenance: Mapping[str, Any]) -> dict[str, str]:
    """What a run's counted FPO assumed, name -> value, from its provenance (``{}``: nothing).

    Example:
        >>> fpo_assumptions_of({"fpo_assumptions": "fft_library=cufft+mkl"})
        {'fft_library': 'cufft+mkl'}
    """
    text = provenance.get(FPO_ASSUMPTIONS_KEY)
    if not isinstance(text, str) or not text:
        return {}
    found = {}
    for item in text.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep and name:
            found[name] = value
    return found


#: The key of a search trial's provenance that says how its cost was found (scikit-learn's
#: integration: the sum of its measured folds, or a share of its search's measured cost).
TRIAL_KEY = "trial"
#: How :data:`TRIAL_KEY`'s text begins for a run whose cost is a share of its search's
#: (``track_search(..., method="apportion")``): estimated, not metered run by run.
APPORTIONED = "apportioned:"


def is_apportioned(provenance: Mapping[str, Any]) -> bool:
    """Whether a run's cost is a share of its search's measured cost (see :data:`APPORTIONED`)."""
    note = provenance.get(TRIAL_KEY)
    return isinstance(note, str) and note.startswith(APPORTIONED)


#: The key of a trial's provenance that names the objectives of the search that ran it, each
#: with its direction (``"values_0: maximize; values_1: minimize"``): a search's own ranking
#: (an Optuna study's ``directions``), which the report names beside the metric it ranks by.
OBJECTIVES_KEY = "objectives"


def objectives_text(objectives: Sequence[tuple[str, str]]) -> str:
    """The :data:`OBJECTIVES_KEY` provenance of ``(metric, direction)`` pairs.

    Example:
        >>> objectives_text([("values_0", "maximize"), ("values_1", "minimize")])
        'values_0: maximize; values_1: minimize'
    """
    return "; ".join(f"{name}: {direction}" for name, direction in objectives)


def objectives_of(provenance: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``(metric, direction)`` pairs a run's provenance records (``()``: none, or unread).

    Example:
        >>> objectives_of({"objectives": "values_0: maximize; values_1: minimize"})
        (('values_0', 'maximize'), ('values_1', 'minimize'))
    """
    return parse_objectives(provenance.get(OBJECTIVES_KEY))


def recorded_objectives(
    provenances: Iterable[Mapping[str, str]],
) -> Counter[tuple[tuple[str, str], ...]]:
    """How many of ``provenances`` record each search's objectives (:func:`objectives_of`).

    Runs read from a ledger share one provenance object per distinct text: each object is read
    once. The report's two readings (the direction a search minimised a metric in, the note on
    what it optimised) both count with this.

    Example:
        >>> same = {"objectives": "value: minimize"}
        >>> recorded_objectives([same, same, {"objectives": "acc: maximize"}, {}])
        Counter({(('value', 'minimize'),): 2, (('acc', 'maximize'),): 1})
    """
    found: Counter[tuple[tuple[str, str], ...]] = Counter()
    for provenance, count in distinct_provenances(provenances):
        if objectives := objectives_of(provenance):
            found[objectives] += count
    return found


def distinct_provenances(
    provenances: Iterable[Mapping[str, str]],
) -> list[tuple[Mapping[str, str], int]]:
    """Each distinct provenance object among ``provenances``, with how many times it comes.

    Runs read from a ledger share one provenance object per distinct text: a check of each
    object reads a 100,000-run study's few instead of 100,000 (told apart by identity, in C).

    Example:
        >>> same = {"objectives": "value: minimize"}
        >>> distinct_provenances([same, same, {}])
        [({'objectives': 'value: minimize'}, 2), ({}, 1)]
    """
    held = list(provenances)  # keeps each object, so no id below is reused while counting
    objects = dict(zip(map(id, held), held, strict=True))
    return [(objects[key], count) for key, count in Counter(map(id, held)).items()]


def parse_objectives(text: object) -> tuple[tuple[str, str], ...]:
    """The ``(metric, direction)`` pairs of an :data:`OBJECTIVES_KEY` text (``()``: not one).

    Example:
        >>> parse_objectives("value: minimize")
        (('value', 'minimize'),)
    """
    if not isinstance(text, str) or not text:
        return ()
    pairs = []
    for item in text.split("; "):
        name, _, direction = item.rpartition(": ")
        if not name or direction not in ("maximize", "minimize"):
            return ()
        pairs.append((name, direction))
    return tuple(pairs)


#: The key of a trial's provenance that records which way each metric it logged is better, where
#: the code that logged them knows it, each with what said so: ``"mean_test_rmse: maximize
#: (scikit-learn's scorer neg_root_mean_squared_error, the error negated)"`` (greenprint's
#: scikit-learn integration: every scorer is greater-is-better, whatever the name a user gives
#: it). No objective of the search (:data:`OBJECTIVES_KEY`): ranking by such a metric takes its
#: recorded direction before the one its name says, and the search is not called one of
#: several objectives for it.
METRIC_DIRECTIONS_KEY = "metric_directions"

#: One item of a metric_directions text: ``name: direction``, or ``name: direction (why)``.
_DIRECTION_ITEM = re.compile(
    r"(?P<name>.+?): (?P<direction>maximize|minimize)(?: \((?P<why>.*)\))?"
)


def metric_directions_text(directions: Sequence[tuple[str, str, str]]) -> str:
    """The :data:`METRIC_DIRECTIONS_KEY` provenance of ``(metric, direction, why)`` triples.

    ``why`` (what says so, ``""``: nothing said) is kept on one item: a ``";"`` in it is
    written ``","``.

    Example:
        >>> metric_directions_text([("mean_test_rmse", "maximize", "a negated error")])
        'mean_test_rmse: maximize (a negated error)'
    """
    items = []
    for name, direction, why in directions:
        why = " ".join(why.replace(";", ",").split())
        items.append(f"{name}: {direction} ({why})" if why else f"{name}: {direction}")
    return "; ".join(items)


@functools.lru_cache(maxsize=256)
def parse_metric_directions(text: object) -> tuple[tuple[str, str, str], ...]:
    """The ``(metric, direction, why)`` triples of a :data:`METRIC_DIRECTIONS_KEY` text.

    An item that does not read as one is left out (``()``: none did, or not a text).

    Example:
        >>> parse_metric_directions("mean_test_rmse: maximize (a negated error); score: maximize")
        (('mean_test_rmse', 'maximize', 'a negated error'), ('score', 'maximize', ''))
    """
    if not isinstance(text, str) or not text:
        return ()
    found = []
    for item in text.split("; "):
        if (match := _DIRECTION_ITEM.fullmatch(item)) is not None:
            found.append((match["name"], match["direction"], match["why"] or ""))
    return tuple(found)


def metric_directions_of(provenance: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Each metric a run's provenance records a direction of: ``(direction, why)`` by name.

    Example:
        >>> metric_directions_of({"metric_directions": "loss: minimize (a test)"})
        {'loss': ('minimize', 'a test')}
    """
    text = provenance.get(METRIC_DIRECTIONS_KEY)
    if not isinstance(text, str):
        return {}
    return {name: (direction, why) for name, direction, why in parse_metric_directions(text)}
