"""The FPO rules registry: one formula per aten op, registered with one decorator.

``RULES`` maps an op name (``"aten.mm"``, or one overload such as ``"aten.add.Tensor"``) to a
:class:`Rule`. Importing this module loads every built-in rule family; it needs no torch. A rule
receives shapes, not tensors (see :func:`register_rule`), so it is plain arithmetic that can be
unit-tested without running anything.

Example:
    >>> from greenprint.fpo.rules import RULES, register_rule
    >>> RULES["aten.mm"].fn((2, 3), (3, 4), out_shape=(2, 4))
    (48, 0)
"""

from __future__ import annotations

from greenprint import _public
from greenprint.fpo import (
    _rules_attention,
    _rules_batch_norm,
    _rules_decomp,
    _rules_distance,
    _rules_embedding,
    _rules_extra,
    _rules_grid_sample,
    _rules_interp,
    _rules_interp_aa,
    _rules_linalg,
    _rules_loss,
    _rules_misc,
    _rules_nn,
    _rules_norm,
    _rules_optim,
    _rules_pointwise,
    _rules_pool,
    _rules_quant,
    _rules_quantized,
    _rules_rnn,
    _rules_sdpa,
    _rules_spectral,
)
from greenprint.fpo._registry import (
    RULES,
    Rule,
    RuleFn,
    first_shape,
    make_rule,
    numel,
    op_name,
    register_rule,
    zero,
)

__all__ = [
    "RULES",
    "Rule",
    "RuleFn",
    "first_shape",
    "make_rule",
    "numel",
    "op_name",
    "register_rule",
    "zero",
]

_public.publish(__name__, globals())

_FAMILIES = (
    _rules_attention,
    _rules_batch_norm,
    _rules_decomp,
    _rules_distance,
    _rules_embedding,
    _rules_extra,
    _rules_grid_sample,
    _rules_interp,
    _rules_interp_aa,
    _rules_linalg,
    _rules_loss,
    _rules_misc,
    _rules_nn,
    _rules_norm,
    _rules_optim,
    _rules_pointwise,
    _rules_pool,
    _rules_quant,
    _rules_quantized,
    _rules_rnn,
    _rules_sdpa,
    _rules_spectral,
)  # loaded for effect
