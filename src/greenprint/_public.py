"""Public names for re-exported classes and functions (tracebacks, reprs and pickles show them).

A class defined in a private module and re-exported by a package would show its private home:
``greenprint._exceptions.InvalidPUEError``. Each public package calls :func:`publish` on its
``__all__`` after importing them, as httpx does, so the same class reads
``greenprint.InvalidPUEError``; ``pickle`` then stores the public path too, which is where the
name is importable from. An object already at a public home keeps it (the first public package
that exports it wins; packages import their lower floors first, so that is the lowest one).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["is_private", "publish", "publish_value"]

T = TypeVar("T")


def is_private(module: str) -> bool:
    """True when any part of the dotted ``module`` path starts with an underscore."""
    return any(part.startswith("_") for part in module.split("."))


def publish_value(module: str, value: T) -> T:
    """Give ``value`` (a class or function) the public ``module`` as home, if its home is private.

    Returns:
        ``value`` itself, so a lazy ``__getattr__`` can ``return publish_value(__name__, v)``.
    """
    if isinstance(value, (type, types.FunctionType)) and is_private(value.__module__):
        value.__module__ = module
    return value


def publish(module: str, namespace: Mapping[str, Any], names: Iterable[str] | None = None) -> None:
    """Call :func:`publish_value` on each of ``names`` (default ``namespace["__all__"]``)."""
    for name in namespace["__all__"] if names is None else names:
        if name in namespace:
            publish_value(module, namespace[name])
