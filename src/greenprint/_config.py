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
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenprint._exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["KEYS", "Config", "load_config"]

KEYS = ("region", "intensity", "pue", "ledger", "study", "cpu_tdp_w")
DEFAULT_LEDGER = "greenprint.db"


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
        """The ledger path or URL to use when none is given (``./greenprint.db`` by default)."""
        return self.values.get("ledger", DEFAULT_LEDGER)


def _find_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    for directory in (start, *start.parents):
        candidate = directory / "greenprint.toml"
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("greenprint")
            if isinstance(table, dict):
                return pyproject, table
    return None


#: Parsed config files by path, with the (mtime, size) they were parsed at: a run reads its
#: settings several times, and a large ``pyproject.toml`` costs milliseconds to parse.
_PARSED: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        cached = _PARSED.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    _PARSED[path] = (stamp, table)
    return table


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
        ConfigError: a config file exists but is not valid TOML.
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    found = _find_file(Path(cwd) if cwd is not None else Path.cwd())
    if found is not None:
        path, table = found
        for key in KEYS:
            if key in table and table[key] is not None:
                values[key] = str(table[key])
                sources[key] = f"file:{path}"
    for key in KEYS:
        var = f"GREENPRINT_{key.upper()}"
        if env.get(var):
            values[key] = env[var]
            sources[key] = f"env:{var}"
    return Config(values=values, sources=sources)
