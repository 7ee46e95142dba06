"""Names a public package exports lazily (PEP 562): imported from their module on first use.

Each public package that keeps heavy or optional code out of its own import lists those names in
one table, ``name -> module that defines it``, and takes its module ``__getattr__`` and
``__dir__`` from :func:`exports`::

    _LAZY = {"FPOResult": "greenprint.fpo._result", "count_fpo": ("greenprint.fpo._api", True)}
    __getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY, needs=_need_torch)

A name is imported the first time it is read (``greenprint.Ledger``, ``from greenprint import
Ledger``), given its public home (:func:`greenprint._public.publish_value`) and stored in the
package namespace, so later reads are plain attribute reads and ``isinstance``/``except`` see
the one class. ``dir()`` lists the names before they load. A ``(module, True)`` entry needs an
optional dependency: ``needs()`` runs first and raises
:class:`~greenprint.MissingDependencyError` naming the extra. For type checkers the package
imports the same names under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from greenprint import _public

__all__ = ["Target", "exports"]

#: where a lazily exported name is defined: a module, or ``(module, needs an optional dependency)``
Target = str | tuple[str, bool]


def exports(
    package: str,
    namespace: MutableMapping[str, Any],
    table: Mapping[str, Target],
    *,
    needs: Callable[[], object] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``, serving the names of ``table``.

    Args:
        package: the package's ``__name__`` (the public home its names are given).
        namespace: the package's ``globals()``; a loaded name is stored there.
        table: ``name -> module`` (or ``(module, needs)``) of every lazily exported name.
        needs: called before importing a ``(module, True)`` name; raises when the optional
            dependency is missing (``MissingDependencyError`` naming the extra).

    Returns:
        ``(__getattr__, __dir__)``: ``__getattr__`` raises ``AttributeError`` for names not in
        ``table``; ``__dir__`` lists the namespace and ``__all__``, loaded or not.
    """

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, needs_extra = (target, False) if isinstance(target, str) else target
        if needs_extra and needs is not None:
            needs()
        value = _public.publish_value(package, getattr(importlib.import_module(module), name))
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | set(table))

    return __getattr__, __dir__
