"""Every public package's surface, in one place.

For each public package: ``__all__`` is sorted and exactly its public names; every class and
function it exports has a public home (``greenprint.InvalidPUEError``, not
``greenprint._exceptions.InvalidPUEError``) from which it can be imported, so tracebacks, reprs and
pickles name the public path; importing it loads nothing heavy; its docstring examples run.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import pickle
import re
import subprocess
import sys
import traceback
import types

import pytest

import greenprint as gp
from greenprint._imports import is_available
from greenprint._public import is_private

#: every public package or module with an ``__all__``
PUBLIC = [
    "greenprint",
    "greenprint.analysis",
    "greenprint.carbon",
    "greenprint.cli",
    "greenprint.demo",
    "greenprint.fpo",
    "greenprint.fpo.rules",
    "greenprint.greener",
    "greenprint.hardware",
    "greenprint.ledger",
    "greenprint.meters",
    "greenprint.prometheus",
    "greenprint.report",
    "greenprint.testing",
    "greenprint.tracking",
]
#: modules with code of their own (their namespace holds helpers): only ``__all__`` is checked
WITH_CODE = {"greenprint.cli", "greenprint.prometheus", "greenprint.tracking"}
#: names a package namespace holds that are not its API
NOT_API = {"annotations", "TYPE_CHECKING", "Any"}
HAS_TORCH = is_available("torch")


def _needs_torch(package: str, name: str) -> bool:
    module = importlib.import_module(package)
    lazy = getattr(module, "_LAZY", {}).get(name)
    return isinstance(lazy, tuple) and lazy[1]


def _exports(package: str) -> list[tuple[str, object]]:
    module = importlib.import_module(package)
    return [
        (name, getattr(module, name))
        for name in module.__all__
        if HAS_TORCH or not _needs_torch(package, name)
    ]


@pytest.mark.parametrize("package", PUBLIC)
def test_all_is_sorted_public_and_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    assert [n for n in module.__all__ if n.startswith("_") and n != "__version__"] == []
    for name, value in _exports(package):
        assert value is not None, name


@pytest.mark.parametrize("package", [p for p in PUBLIC if p not in WITH_CODE])
def test_all_is_exactly_the_public_names(package):
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - NOT_API
    assert public | set(getattr(module, "_LAZY", {})) == set(module.__all__) - {"__version__"}


@pytest.mark.parametrize("package", PUBLIC)
def test_every_export_has_a_public_home_it_can_be_imported_from(package):
    for name, value in _exports(package):
        if not isinstance(value, (type, types.FunctionType)):
            continue  # constants, type aliases
        assert not is_private(value.__module__), f"{package}.{name}: {value.__module__}"
        home = importlib.import_module(value.__module__)
        assert getattr(home, value.__name__) is value, f"{package}.{name}"


def test_the_lazy_names_get_their_public_home_on_first_use():
    code = (
        "import greenprint.analysis as a, greenprint as gp;"
        "print(a.run_learning_curve.__module__, gp.Ledger.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["greenprint.analysis", "greenprint.ledger"]


def _exceptions() -> list[type[BaseException]]:
    return [
        value
        for _, value in _exports("greenprint")
        if isinstance(value, type) and issubclass(value, BaseException)
    ]


def _instance(cls: type[BaseException]) -> BaseException:
    if cls is gp.MissingDependencyError:
        return cls("matplotlib", "report", "plots in reports")
    if cls is gp.UnknownRegionError:
        return cls("unknown region 'DEX'", region="DEX", suggestions=("DE", "DK"))
    if cls is gp.MergeConflictError:
        return cls("run a0000002 differs", run_ids=("a0000002",))
    return cls("what went wrong")


def test_every_exception_is_exported_at_the_top_level_and_in_the_tree():
    from greenprint import _exceptions

    for name in _exceptions.__all__:
        assert name in gp.__all__, f"greenprint.{name} is not exported"
        cls = getattr(_exceptions, name)
        assert issubclass(cls, gp.GreenprintError) and cls.__doc__, name
        tree_line = rf"^    (?:[│ ]   )*(?:[├└]── )?{name}\b"
        assert re.search(tree_line, _exceptions.__doc__, re.M), f"{name} is not in the tree"


@pytest.mark.parametrize("cls", _exceptions(), ids=lambda c: c.__name__)
def test_exceptions_read_and_pickle_by_their_public_name(cls):
    assert repr(cls) == f"<class 'greenprint.{cls.__name__}'>"
    err = _instance(cls)
    try:
        raise err
    except cls:
        text = "".join(traceback.format_exception(*sys.exc_info()))
    assert f"\ngreenprint.{cls.__name__}: " in text
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls and str(copy) == str(err) and copy.args == err.args
    assert vars(copy) == vars(err)


HEAVY = {
    "import greenprint.report, greenprint.demo, greenprint.cli._report, greenprint.cli._demo": [
        "matplotlib",
        "torch",
        "rich",
        "sklearn",
    ],
    "import greenprint.carbon": [
        "numpy",
        "sqlalchemy",
        "difflib",
        "pycountry",
        "codecarbon",
        "rich",
    ],
    "import greenprint.analysis": [
        "torch",
        "sqlalchemy",
        "matplotlib",
        "rich",
        "pynvml",
        "scipy",
        "greenprint.tracking",
        "greenprint.ledger",
        "greenprint._studies",
    ],
    "import greenprint.ledger; from greenprint.ledger import Ledger": ["sqlalchemy", "psycopg"],
    "import greenprint, greenprint.hardware, greenprint.meters": ["torch", "sqlalchemy", "pynvml"],
}


@pytest.mark.parametrize("statement", list(HEAVY))
def test_importing_loads_nothing_heavy(statement):
    code = (
        f"import json, sys; {statement}; "
        f"print(json.dumps([m for m in {HEAVY[statement]!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


DOCTESTED = [
    "greenprint._imports",
    "greenprint._provenance",
    "greenprint.analysis._evp",
    "greenprint.analysis._pareto",
    "greenprint.greener._pruner",
    "greenprint.greener._result",
    "greenprint.greener._whatif",
    "greenprint.hardware",
    "greenprint.meters._amd_smi",
    "greenprint.meters._gpu_lines",
    "greenprint.meters._gpu_meter",
    "greenprint.meters._gpu_tdp",
    "greenprint.meters._nvml_devices",
    "greenprint.meters._tdp",
    "greenprint.testing._amdsmi",
    "greenprint.testing._nvml",
]


def _defined_in(cls: type, module: types.ModuleType) -> bool:
    """Whether ``cls`` was defined in ``module`` (its ``__module__`` may name a public home)."""
    for member in vars(cls).values():
        fn = member.fget if isinstance(member, property) else member
        if getattr(fn, "__globals__", None) is vars(module):
            return True
    return False


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    tests = finder.find(module)
    for value in vars(module).values():  # what was given a public home is not found above
        if value.__module__ == name if hasattr(value, "__module__") else True:
            continue
        if (inspect.isfunction(value) and value.__globals__ is vars(module)) or (
            inspect.isclass(value) and _defined_in(value, module)
        ):
            tests += finder.find(value, value.__name__, module=module, globs=vars(module))
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_design_names_are_exported():
    import greenprint.analysis as analysis

    for name in ("price_tag", "expected_max_performance", "pareto_front", "hypervolume"):
        assert name in analysis.__all__
    for name in ("track", "Run", "count_fpo", "FPOCounter", "training_fpo", "Ledger"):
        assert name in gp.__all__
