"""CPU thermal design power (TDP) from the shipped table, by fuzzy match of the model name.

The table (``meters/data/cpu_tdp.csv``, ~4,900 Intel, AMD and Apple models, W per socket) is
loaded on first use, never at import. See ``meters/data/SOURCES.md`` for its origin.

Matching rule (documented in ``docs/hardware.md``; both the query and the table names go through
:func:`normalise_cpu_model` first):

1. **exact**: the normalised query equals a normalised table name.
2. **tokens**: the query has a *model-number token* (at least three characters, one of them a
   digit: ``6148``, ``i7-8700``, ``7b13``; ``i7``, ``v4`` or the ``7`` of ``Ryzen 7`` alone are
   not enough), and some table names contain every query token. The name with the fewest extra
   tokens wins (``intel xeon e5-2683`` -> ``Intel Xeon E5-2683 v3``). A query word that no table
   name has (``Apple M1 Pro`` when only ``Apple M1`` is listed) means no match: a qualifier such
   as ``Pro`` or ``Max`` changes the TDP, so it is never dropped.

A tie between names with different TDPs is *no match* (never a guess); a tie between names with
the same TDP takes the first alphabetically. A query without a model-number token (``AMD EPYC``,
``Intel(R) Xeon(R) CPU @ 2.20GHz``, as many hypervisors report) names a whole family, whose TDPs
span 65-400 W, so it does not match and the per-core default applies.

A table TDP is the whole chip's. A VM sees a few vCPUs of a many-core chip whose model string it
passes on (``AMD EPYC 7763 64-Core Processor`` with 2 vCPUs): :func:`visible_share` scales the
TDP by the logical CPUs the machine sees over the chips' hardware threads, the chip's cores read
from the model string's ``NN-Core`` (the table, codecarbon's, has no core or thread counts).
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TDPMatch",
    "VisibleShare",
    "chip_cores",
    "light_key",
    "load_tdp_table",
    "match_cpu_tdp",
    "normalise_cpu_model",
    "visible_share",
]

#: The shipped table; a plain path next to this module (importlib.resources costs ~20 ms).
TDP_TABLE_PATH = Path(__file__).with_name("data") / "cpu_tdp.csv"
_MARKS = re.compile(r"\((?:r|tm|c)\)|[®™©]", re.IGNORECASE)
_NOISE = (
    re.compile(r"@.*$"),  # "CPU @ 2.40GHz", "@ 2.80GHz"
    re.compile(r"\([^)]*\)"),  # parenthesised notes
    re.compile(r"\b\d+(?:st|nd|rd|th)\s+gen(?:eration)?\b"),  # "11th Gen Intel..."
    re.compile(r"\b(?:with|w/)\s+radeon\b.*$"),  # "with Radeon Graphics"
    re.compile(r"\b[\w]+-cores?\b"),  # "64-Core", "Eight-Core", "64-Cores"
    re.compile(r"\b\d+(?:\.\d+)?\s*[gm]hz\b"),  # stray frequencies
    re.compile(r"\b(?:cpu|processor|genuine)\b"),
)


@dataclass(frozen=True)
class TDPMatch:
    """A table row matched to a CPU model string.

    Attributes:
        model: the table's model name, e.g. ``"Intel Xeon Gold 6148"``.
        tdp_w: its TDP per socket, in W.
        query: the normalised query that matched.
        rule: which rule matched: ``"exact"`` or ``"tokens"``.
    """

    model: str
    tdp_w: float
    query: str
    rule: str


def normalise_cpu_model(raw: str) -> str:
    """Strip vendor noise from a CPU model string and lower-case it.

    Removes ``(R)``, ``(TM)``, ``®``, ``™``, everything from ``@`` on (``CPU @ 2.40GHz``),
    parenthesised notes, ``Nth Gen``, ``with Radeon Graphics``, ``n-Core``, frequencies and the
    words ``CPU``, ``Processor`` and ``Genuine``.

    Example:
        >>> normalise_cpu_model("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz")
        'intel xeon gold 6148'
        >>> normalise_cpu_model("AMD EPYC 7763 64-Core Processor")
        'amd epyc 7763'
    """
    text = _MARKS.sub(" ", raw)  # before NFKC, which turns "™" into "TM"
    text = unicodedata.normalize("NFKC", text).replace("\u200b", "").casefold()
    text = _MARKS.sub(" ", text)
    for pattern in _NOISE:
        text = pattern.sub(" ", text)
    text = text.replace(",", " ")
    return " ".join(text.split())


def light_key(name: str) -> str:
    """Lower-case ``name``, commas to spaces, whitespace collapsed (enough for clean names)."""
    return " ".join(name.casefold().replace(",", " ").split())


_MODEL_TOKEN = re.compile(r"\S*\d\S*")


class _Table:
    __slots__ = ("keys", "names", "normalised", "tdps")

    def __init__(
        self,
        *,
        names: tuple[str, ...],
        tdps: tuple[float, ...],
        keys: tuple[str, ...],
        normalised: dict[str, int],
    ) -> None:
        self.names = names
        self.tdps = tdps
        self.keys = keys
        self.normalised = normalised


def load_tdp_table() -> tuple[tuple[str, float], ...]:
    """The shipped table as ``((model, tdp_w), ...)``, sorted by model name (loaded once)."""
    table = _load()
    return tuple(zip(table.names, table.tdps, strict=True))


@functools.lru_cache(maxsize=1)
def _load() -> _Table:
    with TDP_TABLE_PATH.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]  # model, tdp_w, key
    names = tuple(row[0] for row in rows)
    keys = tuple(row[2] or light_key(row[0]) for row in rows)
    normalised: dict[str, int] = {}
    for i, key in enumerate(keys):
        normalised.setdefault(key, i)
    return _Table(
        names=names,
        tdps=tuple(float(row[1]) for row in rows),
        keys=keys,
        normalised=normalised,
    )


@functools.lru_cache(maxsize=1)
def _folded_text() -> str:
    """The table file, case-folded (for :func:`_may_match_exactly`)."""
    return TDP_TABLE_PATH.read_text(encoding="utf-8").casefold()


def _may_match_exactly(query: str) -> bool:
    """``False`` only when no row's key can equal ``query``: then the table need not be loaded.

    A row's key is its ``key`` column, else ``light_key(model)`` (the case-folded model, commas as
    spaces, whitespace collapsed). So in the case-folded file, a row whose key is ``query`` holds
    the query's words, separated by whitespace, commas or CSV quotes, filling its whole first
    column or its whole ``key`` column: two regular-expression searches over the text (~0.4 ms)
    instead of parsing ~4,900 rows (~6 ms). Family names such as ``AMD EPYC``, which many cloud
    VMs report, are answered this way.
    """
    text = _folded_text()
    words = query.split()
    if not words or '""' in text:  # an escaped quote inside a name: take no shortcut
        return True
    body = r'[\s,"]+'.join(re.escape(word) for word in words)
    # the first column of a row (the file starts with its header line, so every row follows a
    # newline), then the key column; two searches, as one alternation is several times slower
    if re.search(rf'\n[\s,"]*{body}[\s,"]*,[^,\n]*,', text):
        return True
    return re.search(rf',[\s"]*{body}[\s"]*$', text, re.MULTILINE) is not None


@functools.lru_cache(maxsize=1)
def _model_token_index() -> dict[str, tuple[int, ...]]:
    """Model-number token -> rows holding it; built only when an exact match fails."""
    index: dict[str, list[int]] = {}
    for i, key in enumerate(_load().keys):
        for tok in _MODEL_TOKEN.findall(key):
            index.setdefault(tok, []).append(i)
    return {k: tuple(v) for k, v in index.items()}


def _pick(table: _Table, ranked: list[tuple[int, int]]) -> int | None:
    """The best-ranked row; on a tie, the first name if all tied rows share one TDP, else None."""
    if not ranked:
        return None
    best_key = max(key for key, _ in ranked)
    tied = sorted((i for key, i in ranked if key == best_key), key=lambda i: table.names[i])
    if len({table.tdps[i] for i in tied}) == 1:
        return tied[0]
    return None


@functools.lru_cache(maxsize=256)
def match_cpu_tdp(model: str) -> TDPMatch | None:
    """Find the TDP of a CPU model in the shipped table.

    Args:
        model: a model string as the OS reports it, e.g. ``/proc/cpuinfo``'s ``model name``
            (``"Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"``) or ``platform.processor()``.

    Returns:
        The match (TDP per socket in W), or ``None`` when the string names no model in the
        table, names only a family (``"AMD EPYC"``), or is ambiguous. See the module docstring
        for the rule.

    Example:
        >>> match_cpu_tdp("AMD EPYC 7763 64-Core Processor").tdp_w
        280.0
    """
    query = normalise_cpu_model(model)
    q_tokens = frozenset(query.split())
    model_tokens = _MODEL_TOKEN.findall(query)
    has_model_token = any(len(t) >= 3 for t in model_tokens)
    if not has_model_token and not _may_match_exactly(query):
        return None  # neither rule can match: no need to load the table
    table = _load()
    exact = table.normalised.get(query)
    if exact is not None:
        return TDPMatch(table.names[exact], table.tdps[exact], query, "exact")
    if not has_model_token:
        return None
    index = _model_token_index()
    candidates = set(index.get(model_tokens[0], ()))
    for tok in model_tokens[1:]:
        candidates.intersection_update(index.get(tok, ()))
    ranked = []
    for i in candidates:
        row_tokens = frozenset(table.keys[i].split())
        if q_tokens <= row_tokens:  # the row contains every query token
            ranked.append((-len(row_tokens - q_tokens), i))
    chosen = _pick(table, ranked)
    if chosen is None:
        return None
    return TDPMatch(table.names[chosen], table.tdps[chosen], query, "tokens")


_CORES = re.compile(r"\b(\d{1,3}|[a-z]+)[- ]cores?\b", re.IGNORECASE)
_CORE_WORDS = {
    "single": 1,
    "dual": 2,
    "triple": 3,
    "quad": 4,
    "six": 6,
    "hexa": 6,
    "eight": 8,
    "octa": 8,
    "ten": 10,
    "twelve": 12,
    "sixteen": 16,
}


def chip_cores(model: str) -> int | None:
    """One chip's cores as its model string gives them (``"64-Core"``, ``"Eight-Core"``).

    AMD writes them into its EPYC, Threadripper and Ryzen strings (``AMD EPYC 7763 64-Core
    Processor``); Intel's strings have none.

    Returns:
        The count, or ``None`` when the string gives none.

    Example:
        >>> chip_cores("AMD EPYC 7763 64-Core Processor"), chip_cores("Intel(R) Xeon(R) Gold 6148")
        (64, None)
    """
    for m in _CORES.finditer(model):  # "Intel Core 2 Quad-Core": the first that is a count
        word = m.group(1).lower()
        cores = int(word) if word.isdigit() else _CORE_WORDS.get(word)
        if cores:
            return cores
    return None


@dataclass(frozen=True)
class VisibleShare:
    """The part of its chips' hardware threads a machine sees (a VM's vCPUs).

    Attributes:
        fraction: visible logical CPUs over the chips' threads, in (0, 1).
        logical: the logical CPUs the machine sees.
        threads: the chips' hardware threads, all sockets: cores x threads per core x sockets.
        cores: one chip's cores (from the model string).
        per_core: threads per core, as the machine's own CPUs show (logical over physical).
    """

    fraction: float
    logical: int
    threads: int
    cores: int
    per_core: int

    @property
    def note(self) -> str:
        """``"2 of 128 threads (64 cores x 2)"``."""
        return f"{self.logical} of {self.threads} threads ({self.cores} cores x {self.per_core})"


def visible_share(model: str, *, sockets: int, logical: int, physical: int) -> VisibleShare | None:
    """What part of its chips' TDP a machine that sees ``logical`` CPUs of them draws, or ``None``.

    The chip's cores come from the model string (:func:`chip_cores`); its threads per core are
    the machine's own (logical over physical CPUs, at least 1: a VM showing one thread per core
    is counted so, which charges it more, never less). ``None`` when the string gives no core
    count, or the machine sees all the threads (bare metal), so the whole TDP applies.

    Args:
        model: the CPU model string (``"AMD EPYC 7763 64-Core Processor"``).
        sockets: CPU packages the machine reports.
        logical: logical CPUs it sees (vCPUs in a VM).
        physical: physical cores it sees.
    """
    cores = chip_cores(model)
    if cores is None or logical < 1:
        return None
    per_core = max(round(logical / physical), 1) if physical > 0 else 1
    threads = cores * per_core * max(sockets, 1)
    if logical >= threads:
        return None
    return VisibleShare(logical / threads, logical, threads, cores, per_core)
