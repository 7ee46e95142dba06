"""Process-wide switches of torch the FPO counter sets while it counts, and puts back.

A warnings filter for torch's warning about global module hooks under ``torch.compile``, and
the switch that makes eager ``flex_attention`` run its op (so the counter sees it). Each is
undone on exit without touching what the user's code changed meanwhile.
"""

from __future__ import annotations

import re
import sys
import warnings
from typing import Any, cast

# torch warns, for every compiled model called while global module hooks exist, that the hooks
# fire once more for the compiled wrapper: true of the counter's hooks, which only track the
# module stack, so the warning says nothing to a user counting FPO.
_COMPILE_HOOKS_WARNING = r"Using `torch.compile\(module\)` when there are global hooks"


def _quiet_compile_hooks_warning() -> Any:
    """Add a filter ignoring torch's warning about global hooks; return it (None if present).

    Only this one entry is added, and :func:`_remove_filter` removes only it: the filters and
    ``warnings.showwarning`` the user's code sets while counting stay as that code left them
    (``warnings.catch_warnings`` would restore the whole state of before the count).
    """
    entry = ("ignore", re.compile(_COMPILE_HOOKS_WARNING, re.I), Warning, None, 0)
    if entry in warnings.filters:  # the user's own: theirs to keep
        return None
    warnings.filterwarnings("ignore", message=_COMPILE_HOOKS_WARNING)
    return warnings.filters[0]


#: torch's switch that makes ``flex_attention`` called outside ``torch.compile`` run its
#: higher-order op eagerly instead of compiling a wrapper around it (which refuses to trace
#: under a dispatch mode: "torch.compile with fullgraph=True found no compiled frames").
_FLEX_EAGER = "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG"


def _eager_flex_attention() -> tuple[Any, Any] | None:
    """Make eager ``flex_attention`` run its op while counting: (its module, the old value).

    The op then reaches the counter, which counts its dense implementation (see
    ``_higher_order``): what eager ``flex_attention`` computes on a CPU. ``None`` when the
    module was not imported (no model here uses it) or has no such switch.
    """
    module = sys.modules.get("torch.nn.attention.flex_attention")
    if module is None or not hasattr(module, _FLEX_EAGER):
        return None
    old = getattr(module, _FLEX_EAGER)
    setattr(module, _FLEX_EAGER, True)
    return module, old


def _restore_flex_attention(saved: tuple[Any, Any] | None) -> None:
    """Put back what :func:`_eager_flex_attention` changed."""
    if saved is not None:
        module, old = saved
        setattr(module, _FLEX_EAGER, old)


def _remove_filter(entry: Any) -> None:
    """Remove ``entry`` (the very object) from ``warnings.filters``, if it is still there."""
    if entry is None:
        return
    filters = cast(list[Any], warnings.filters)  # a list (typeshed says Sequence)
    for i, item in enumerate(filters):
        if item is entry:
            del filters[i]
            mutated = getattr(warnings, "_filters_mutated", None)  # clears the "once" caches
            if callable(mutated):
                mutated()
            return
