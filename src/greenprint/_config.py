"""User configuration: environment variables and ``greenprint.toml`` / ``[tool.greenprint]``.

Resolution order for every setting (highest first):

1. an explicit argument (``gp.track(region=...)``, ``--region``) -- handled by the caller;
2. an environment variable: ``GREENPRINT_REGION``, ``GREENPRINT_INTENSITY``, ``GREENPRINT_PUE``,
   ``GREENPRINT_LEDGER``, ``GREENPRINT_STUDY``, ``GREENPRINT_CPU_TDP_W``;
3. the nearest ``greenprint.toml`` (top-level keys) or ``pyproject.toml`` (``[tool.greenprint]``)
   found from the working directory upwards;
4. the built-in default (flagged as such where it matters, e.g. the world-average intensity).

Keys: ``region`` (str), ``intensity`` (g CO2-eq/kWh as a number, or a path to an hourly CSV),
``pue`` (number or preset name), ``ledger`` (path or URL), ``study`` (str), ``cpu_tdp_w`` (W: the
CPU power at full load the estimate uses when no RAPL counter can be read, for the CPUs this
machine or VM sees; overrides the TDP table and the per-core default).

Types in a config file: ``region``, ``ledger`` and ``study`` are TOML strings; ``intensity``,
``pue`` and ``cpu_tdp_w`` are TOML numbers (integer or float) or strings (a number written as
text, a CSV path, a preset name). Any other type (a boolean, a table, an array, a date) raises
:class:`~greenprint.ConfigError` naming the file, the key and the type found, so ``[ledger]``
by mistake never becomes a ledger file named ``{'a': 1}``. Values are handed on as text; what
they mean (a number in range, an existing preset, region or file) is checked by the setting's
own validator when a run is created.

An unknown top-level key (``regoin = "DE"``) is not an error, since a newer greenprint may know
it, but it is not silent either: one warning per file and key is logged, with the nearest known
key when there is one.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenprint._exceptions import ConfigError

__all__ = ["KEYS", "Config", "load_config"]

KEYS = ("region", "intensity", "pue", "ledger", "study", "cpu_tdp_w")
DEFAULT_LEDGER = "greenprint.db"

logger = logging.getLogger(__name__)

#: What each key accepts in a config file, as (Python types that tomllib returns, description).
_TEXT: tuple[type, ...] = (str,)
_NUMBER_OR_TEXT: tuple[type, ...] = (int, float, str)
_ACCEPTED: dict[str, tuple[tuple[type, ...], str]] = {
    "region": (_TEXT, 'a string (a region code such as "DE")'),
    "intensity": (_NUMBER_OR_TEXT, "a number of g CO2-eq/kWh or a string (a CSV path)"),
    "pue": (_NUMBER_OR_TEXT, "a number or a string (a preset name)"),
    "ledger": (_TEXT, "a string (a path or URL)"),
    "study": (_TEXT, "a string"),
    "cpu_tdp_w": (_NUMBER_OR_TEXT, "a number of W"),
}

#: (file, key) pairs already warned about as unknown, so a run reading its settings several
#: times warns once.
_WARNED: set[tuple[Path, str]] = set()


def _toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if isinstance(value, (datetime.date, datetime.time)):
        return "date/time"
    return type(value).__name__  # pragma: no cover - tomllib returns nothing else


def _text_of(path: Path, key: str, value: object) -> str:
    """A config file's value as text, refusing the TOML types the key does not accept.

    Raises:
        ConfigError: the value's type is not one the key accepts (names the file and key).
    """
    types, described = _ACCEPTED[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ConfigError(
            f"{path}: {key} must be {described}, not a TOML {_toml_type(value)} ({value!r})"
        )
    return value if isinstance(value, str) else repr(value)


def _warn_unknown(path: Path, table: Mapping[str, Any]) -> None:
    for key in table:
        if key in _ACCEPTED or (path, key) in _WARNED:
            continue
        _WARNED.add((path, key))
        import difflib

        near = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        logger.warning(
            "greenprint: unknown setting %r in %s is ignored (known: %s)%s",
            key,
            path,
            ", ".join(KEYS),
            hint,
        )


@dataclass(frozen=True)
class Config:
    """Settings found in the environment and config files.

    Attributes:
        values: setting name -> value as a string (numbers stay strings; callers validate).
        sources: setting name -> where it came from, e.g. ``"env:GREENPRINT_REGION"`` or
            ``"file:/path/greenprint.toml"``.
    """

    values: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """The value of a setting, or ``None`` if it is not set."""
        return self.values.get(key)

    @property
    def ledger(self) -> str:
        """The ledger path or URL to use when none is given (``./greenprint.db`` by default).

        A relative path set in a config file is relative to that file's folder (as a relative
        intensity CSV there is), so one project file names one ledger from every folder; one
        from ``GREENPRINT_LEDGER`` is relative to the working directory.
        """
        value = self.values.get("ledger")
        if value is None:
            return DEFAULT_LEDGER
        source = self.sources.get("ledger", "")
        if not source.startswith("file:") or ":" in value or value.startswith("~"):
            return value  # the environment's, a URL (sqlite:///..., postgresql://...), ~/...
        if os.path.isabs(value):
            return value
        return str(Path(source[len("file:") :]).parent / value)


def _find_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest config file from ``start`` upwards, with its table, or ``None``.

    Never raises for the file system: a folder the user cannot search (a working directory
    inherited from root, ``sudo -u user`` in ``/root/x``) is passed over and logged at debug,
    since nothing says a config file is there; a config file that is there but cannot be read
    is passed over with a warning, since its settings (region, ledger) would silently not apply.
    A file that is read but is not valid TOML still raises :class:`ConfigError`.
    """
    for directory in (start, *start.parents):
        candidate = directory / "greenprint.toml"
        if _is_file(candidate):
            table = _read_toml_or_warn(candidate)
            if table is not None:
                return candidate, table
        pyproject = directory / "pyproject.toml"
        if _is_file(pyproject):
            table = _read_toml_or_warn(pyproject)
            section = table.get("tool", {}).get("greenprint") if table is not None else None
            if isinstance(section, dict):
                return pyproject, section
    return None


#: errno values of a path that is simply not there (``Path.is_file``'s own list).
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP, errno.ENAMETOOLONG)


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; ``False`` (logged at debug) when it cannot be known."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError as e:
        if e.errno not in _ABSENT:
            logger.debug("greenprint: config file %s not looked at: %s", path, e)
        return False
    except ValueError:  # a NUL byte in the path
        return False


#: Config files already warned about as unreadable, so a run reading its settings several
#: times warns once.
_WARNED_UNREADABLE: set[Path] = set()


def _read_toml_or_warn(path: Path) -> dict[str, Any] | None:
    """:func:`_read_toml`, or ``None`` with one warning when the file cannot be opened."""
    try:
        return _read_toml(path)
    except OSError as e:  # it exists, but cannot be opened or read (permission, I/O error)
        if path not in _WARNED_UNREADABLE:
            _WARNED_UNREADABLE.add(path)
            logger.warning(
                "greenprint: cannot read config file %s (%s); its settings are not used",
                path,
                e.strerror or e,
            )
        return None


#: Parsed config files by path, with the (mtime, size) they were parsed at: a run reads its
#: settings several times, and a large ``pyproject.toml`` costs milliseconds to parse.
_PARSED: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML of ``path``.

    Raises:
        OSError: the file cannot be opened or read.
        ConfigError: it is not valid TOML (or not UTF-8).
    """
    # imported here: a directory without a config file never pays for tomllib (~1.5 ms of CPU)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        cached = _PARSED.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    _PARSED[path] = (stamp, table)
    return table


def _cwd() -> Path | None:
    """The working directory, or ``None`` (logged at debug) when it was deleted."""
    try:
        return Path.cwd()
    except OSError as e:
        logger.debug("greenprint: no config file looked for: the working directory: %s", e)
        return None


def load_config(
    cwd: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the settings from the environment and the nearest config file.

    Args:
        cwd: where to start looking for ``greenprint.toml``/``pyproject.toml`` (default: the
            working directory).
        environ: environment mapping (default: ``os.environ``).

    Returns:
        The merged :class:`Config`; environment variables win over files.

    Raises:
        ConfigError: a config file exists but is not valid TOML, or a key has a value of a type
            it does not accept (the message names the file, the key and the type).
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    start = Path(cwd) if cwd is not None else _cwd()
    found = _find_file(start) if start is not None else None
    if found is not None:
        path, table = found
        _warn_unknown(path, table)
        for key in KEYS:
            if key in table:
                values[key] = _text_of(path, key, table[key])
                sources[key] = f"file:{path}"
    for key in KEYS:
        var = f"GREENPRINT_{key.upper()}"
        if env.get(var):
            values[key] = env[var]
            sources[key] = f"env:{var}"
    return Config(values=values, sources=sources)
