"""Checks of user input shared by every setting: one number validator, one number-or-name parser.

:func:`finite_number` checks every setting that is a number in a range (grid intensity, PUE,
``cpu_tdp_w``, budgets, sample and flush intervals) and words every refusal alike::

    PUE must be a finite number with 1 <= x <= 3, got 7.0
    cpu_tdp_w must be a finite number of W with 0 < x <= 5600, got '-5' (env:GREENPRINT_CPU_TDP_W)

:func:`number_or_name` splits a setting that is either a number or a name (``pue``: a number or
a preset; ``intensity``: a number or the path of an hourly CSV; ``cpu_tdp_w`` from a file or the
environment: a number written as text). The other helpers check the plain types of API arguments.
Every check raises :class:`~greenprint.ConfigError` (or the subclass the caller names), never a
bare ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from typing import Any

from greenprint._exceptions import ConfigError

__all__ = [
    "FPO_MAX",
    "INT64_MAX",
    "check_fpo",
    "describe_range",
    "finite_number",
    "mapping_of_names",
    "non_negative_int",
    "number_or_name",
    "optional_text",
    "storable_text",
    "stored_count",
]


def _is_number(value: object) -> bool:
    """A real number that is not a bool (``True`` is an int to Python, never a PUE to a user)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number_or_name(value: object) -> float | str:
    """Split a setting that is either a number or a name.

    Args:
        value: a number, or text: text that ``float()`` reads (``" 1.2 "``, ``"nan"``, ``"1e3"``)
            is a number, anything else a name (returned stripped).

    Returns:
        The number as a float (not checked for range or finiteness: :func:`finite_number` does
        that), or the stripped name.

    Raises:
        ConfigError: ``value`` is neither a number nor text (a bool, a list, ``None``...).
    """
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if not isinstance(value, str):
        raise ConfigError(f"expected a number or a name, got {value!r}")
    stripped = value.strip()
    try:
        return float(stripped)
    except ValueError:
        return stripped


def describe_range(
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> str:
    """The range as inequalities: ``"0 < x <= 2000"``, ``"x > 0"``, ``"x >= 0.5"``."""
    below = "<" if low_open else "<="
    above = "<" if high_open else "<="
    if low is not None and high is not None:
        return f"{low:g} {below} x {above} {high:g}"
    if low is not None:
        return f"x {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"x {above} {high:g}"
    return "any value"


def finite_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    unit: str = "",
    source: str | None = None,
    text: bool = True,
    alternative: str = "",
    error: type[ConfigError] = ConfigError,
) -> float:
    """Check that ``value`` is a finite number in a range and return it as a float.

    The message is the same for every setting: ``"{name} must be a finite number[ of {unit}]
    with {range}, got {value!r}[ ({source})]"``.

    Args:
        name: how to name the value in the message (``"PUE"``, ``"cpu_tdp_w"``).
        value: the value given: a real number (not a bool) or, with ``text``, a string holding
            one.
        low: the lower bound, or ``None`` for none.
        high: the upper bound, or ``None`` for none.
        low_open: the lower bound itself is refused (``x > low``).
        high_open: the upper bound itself is refused (``x < high``).
        unit: the unit, for the message (``"W"``, ``"g CO2-eq/kWh"``, ``"s"``).
        source: where the value came from (``"env:GREENPRINT_PUE"``), for the message.
        text: accept a string holding a number (settings from files and the environment are
            text); ``False`` for API arguments, whose type is a number.
        alternative: what else the setting accepts, added to the message when ``value`` is not
            a number at all (``"or a preset name"``).
        error: the :class:`~greenprint.ConfigError` subclass to raise.

    Returns:
        The number.

    Raises:
        ConfigError: (or ``error``) not a number, NaN, infinite, or outside the range.
    """
    allowed = "a finite number" + (f" of {unit}" if unit else "")
    bounds = describe_range(low=low, high=high, low_open=low_open, high_open=high_open)
    if bounds != "any value":
        allowed += f" with {bounds}"
    where = f" ({source})" if source else ""
    number = (
        number_or_name(value) if _is_number(value) or (text and isinstance(value, str)) else None
    )
    if not isinstance(number, float):
        extra = f" {alternative}" if alternative else ""
        raise error(f"{name} must be {allowed}{extra}, got {value!r}{where}")
    in_range = math.isfinite(number)
    if in_range and low is not None:
        in_range = number > low if low_open else number >= low
    if in_range and high is not None:
        in_range = number < high if high_open else number <= high
    if not in_range:
        raise error(f"{name} must be {allowed}, got {value!r}{where}")
    return number


def non_negative_int(name: str, value: object) -> int:
    """Check a count (``dataset_size``, ``fpo``, ``param_count``) and return it as an int.

    Raises:
        ConfigError: a bool, a float, text, or a negative integer.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


#: The largest integer the ledger stores in an integer column (``dataset_size``, ``param_count``,
#: ranks, a metric's step: 64 bits); the FPO, stored as text, has its own bound (:data:`FPO_MAX`).
INT64_MAX = 2**63 - 1


def stored_count(name: str, value: object) -> int:
    """:func:`non_negative_int`, within 64 bits: a count the ledger can store.

    Checked where the count is given (``gp.track(dataset_size=)``, ``run.set``), not when the
    run is written, so a count too large to store is refused at once and the run is recorded.

    Raises:
        ConfigError: as :func:`non_negative_int`, or a count above :data:`INT64_MAX`.
    """
    count = non_negative_int(name, value)
    if count > INT64_MAX:
        raise ConfigError(
            f"{name} must be at most 2**63 - 1 (the ledger stores it in 64 bits), not an "
            f"integer of {len(str(count))} digits"
        )
    return count


#: The largest FPO a run may record: the largest float (about 1.8e308). Every figure of the
#: analyses and reports is a float, an integer above it has none, and no computation ever counted
#: that many operations (the largest trainings count about 1e26).
FPO_MAX = int(sys.float_info.max)


def check_fpo(name: str, value: int) -> int:
    """The one check of an FPO's size: ``run.set(fpo=)``, ``run.add_fpo``, a stored RunRecord.

    Args:
        name: what the value is, for the message (``"fpo"``).
        value: an integer (its type checked by the caller).

    Returns:
        ``value``.

    Raises:
        ConfigError: ``abs(value)`` is above :data:`FPO_MAX` (the message gives its size).
    """
    if abs(value) > FPO_MAX:
        raise ConfigError(
            f"{name} must be at most {float(FPO_MAX):.3g} (the largest float: no computation "
            f"counts more operations), got an integer of {len(str(abs(value)))} digits"
        )
    return value


def optional_text(name: str, value: object) -> str | None:
    """Check a name-like argument (``name``, ``study``, ``command``): text or ``None``.

    Raises:
        ConfigError: anything but a string or ``None``, or a string the ledger cannot store
            (see :func:`storable_text`).
    """
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {type(value).__name__} ({value!r})")
    return value if value is None else storable_text(name, value)


def storable_text(name: str, value: str) -> str:
    r"""``value`` itself when every ledger can store it: UTF-8 text without a NUL character.

    A lone surrogate cannot be encoded: Python puts one in a file name or argument that is not
    valid UTF-8 (``os.fsdecode``, ``sys.argv``: "surrogateescape"). PostgreSQL's text cannot
    hold a NUL (``"\x00"``), and a SQLite ledger is merged into PostgreSQL as it is. Refused
    where it is given, either would otherwise keep every write of the run from landing (the
    run read ``lost``).

    Raises:
        ConfigError: ``value`` holds a lone surrogate or a NUL character.
    """
    if "\x00" in value:
        raise ConfigError(
            f"{name} {value!r:.60} holds a NUL character ('\\x00'), which a PostgreSQL ledger "
            "cannot store"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(
            f"{name} {value!r:.60} holds {value[e.start]!r}, a lone surrogate UTF-8 cannot "
            "store (a file name or argument that is not UTF-8?); give it as valid text, e.g. "
            "os.fsencode(text).decode('utf-8', 'replace')"
        ) from None
    return value


def _fields_of(config: object) -> object:
    """A configuration object's fields as a dict (``config`` itself if it has none we read).

    Its own ``model_dump()`` or ``to_dict()`` first (Hugging Face's ``TrainingArguments.to_dict``
    masks its tokens), then a dataclass's fields, then an ``argparse.Namespace``'s.
    """
    import dataclasses

    if isinstance(config, type):
        return config
    for method in ("model_dump", "to_dict"):
        dump = getattr(config, method, None)
        if callable(dump):
            try:
                return dump()
            except Exception:  # not the method we hoped for: read as the other kinds
                break
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        try:
            return dataclasses.asdict(config)
        except Exception:  # a field deepcopy cannot copy: its fields as they are
            return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if type(config).__name__ == "Namespace" and type(config).__module__ == "argparse":
        return dict(vars(config))
    return config


def mapping_of_names(name: str, value: object) -> dict[str, Any]:
    """Check a mapping of names to values (``params``) and return a plain dict copy.

    The configurations scripts hold their hyper-parameters in are read as their fields: an
    ``argparse.Namespace`` (``vars()``), a dataclass instance (its fields, nested ones as
    dicts), and an object with ``model_dump()`` (pydantic) or ``to_dict()``. A mapping
    (``dict``, Hydra's ``DictConfig``) is copied as it is.

    Raises:
        ConfigError: none of those, or a key that is not a string.
    """
    if not isinstance(value, Mapping):
        value = _fields_of(value)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name} must be a mapping of names to values (a dict), "
            f"not {type(value).__name__} ({value!r})"
        )
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise ConfigError(f"{name} keys must be strings, not {bad[0]!r}")
    return dict(value)
