"""The analysis package's public surface."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import greenprint.analysis as analysis


def test_all_is_sorted_and_exactly_the_public_names():
    assert analysis.__all__ == sorted(analysis.__all__)
    public = {
        name
        for name, value in vars(analysis).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in ("annotations",)
    }
    assert public == set(analysis.__all__)
    for name in ("price_tag", "expected_max_performance", "pareto_front", "hypervolume"):
        assert name in analysis.__all__  # DESIGN.md's names


def test_analysis_needs_only_numpy():
    code = (
        "import json, sys; import greenprint.analysis;"
        "heavy = ['torch', 'sqlalchemy', 'matplotlib', 'rich', 'pynvml', 'scipy',"
        " 'greenprint.tracking', 'greenprint.ledger'];"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_docstring_examples_run():
    import doctest

    from greenprint.analysis import _evp, _pareto

    for module in (_evp, _pareto):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0
