"""User configuration: environment variables and ``greenprint.toml`` / ``[tool.greenprint]``.

Resolution order for every setting (highest first):

1. an explicit argument (``gp.track(region=...)``, ``--region``) -- handled by the caller;
2. an environment variable: ``GREENPRINT_REGION``, ``GREENPRINT_INTENSITY``, ``GREENPRINT_PUE``,
   ``GREENPRINT_LEDGER``, ``GREENPRINT_STUDY``;
3. the nearest ``greenprint.toml`` (top-level keys) or ``pyproject.toml`` (``[tool.greenprint]``)
   found from the working directory upwards;
4. the built-in default (flagged as such where it matters, e.g. the world-average intensity).

Keys: ``region`` (str), ``intensity`` (g CO2-eq/kWh as a number, or a path to an hourly CSV),
``pue`` (number or preset name), ``ledger`` (path or URL), ``study`` (str).
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

KEYS = ("region", "intensity", "pue", "ledger", "study")
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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e


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
