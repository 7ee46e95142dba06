"""The one PEP 562 lazy-export helper (``greenprint._lazy``) every public package uses.

A package built for each test in a temporary directory, so what is imported and when is seen from
outside; the real packages' surfaces are checked in tests/test_exports.py.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import greenprint as gp
from greenprint import MissingDependencyError

PACKAGES = [
    "greenprint",
    "greenprint.analysis",
    "greenprint.fpo",
    "greenprint.greener",
    "greenprint.meters",
]


def _fresh(code: str) -> list[str]:
    """What ``code`` prints in a fresh interpreter, split into words."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.fixture
def lazypkg(tmp_path, monkeypatch):
    """A package ``lazypkg`` exporting ``Thing`` (from ``lazypkg._thing``) and ``extra``
    (needing a dependency that is missing) lazily, and ``eager`` eagerly."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        textwrap.dedent(
            """
            from greenprint import _imports, _lazy

            eager = 1
            _LAZY = {"Thing": "lazypkg._thing", "extra": ("lazypkg._extra", True)}
            __all__ = ["Thing", "eager", "extra"]


            def _need() -> None:
                _imports.require("no_such_module_gp", extra="torch", purpose="the extra thing")


            __getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY, needs=_need)
            """
        )
    )
    (root / "_thing.py").write_text("class Thing:\n    pass\n")
    (root / "_extra.py").write_text("def extra():\n    return 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("lazypkg")
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def test_a_name_loads_on_first_use_gets_its_public_home_and_stays(lazypkg):
    assert "lazypkg._thing" not in sys.modules
    assert "Thing" not in vars(lazypkg)
    thing = lazypkg.Thing
    assert "lazypkg._thing" in sys.modules
    assert thing.__module__ == "lazypkg"  # public home: reprs and pickles name the package
    assert vars(lazypkg)["Thing"] is thing  # stored: later reads skip __getattr__
    from lazypkg import Thing

    assert Thing is thing
    assert isinstance(Thing(), sys.modules["lazypkg._thing"].Thing)


def test_dir_lists_lazy_names_before_they_load(lazypkg):
    names = dir(lazypkg)
    assert {"Thing", "eager", "extra", "__name__"} <= set(names)
    assert names == sorted(names)
    assert "lazypkg._thing" not in sys.modules


def test_an_unknown_name_is_an_attribute_error(lazypkg):
    with pytest.raises(AttributeError, match=r"module 'lazypkg' has no attribute 'nope'"):
        lazypkg.nope  # noqa: B018
    with pytest.raises(ImportError):
        from lazypkg import nope  # noqa: F401
    assert not hasattr(lazypkg, "nope")


def test_a_name_needing_a_missing_dependency_names_the_extra(lazypkg):
    with pytest.raises(MissingDependencyError, match=r"greenprint\[torch\]"):
        lazypkg.extra  # noqa: B018
    assert "lazypkg._extra" not in sys.modules  # the check runs before the import


def test_budget_is_lazy_yet_one_class():
    code = (
        "import sys, greenprint as gp; loaded = 'greenprint._budget' in sys.modules;"
        "from greenprint import Budget; from greenprint._budget import Budget as B;"
        "print(loaded, Budget is B is gp.Budget, Budget.__module__, 'logging' in sys.modules)"
    )
    assert _fresh(code) == ["False", "True", "greenprint", "True"]
    with pytest.raises(gp.BudgetExceeded):
        raise gp.BudgetExceeded("over budget")
    assert issubclass(gp.BudgetExceeded, gp.GreenprintError)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_dir_lists_its_whole_surface(package):
    module = importlib.import_module(package)
    names = dir(module)
    assert set(module.__all__) <= set(names)
    assert set(module._LAZY) <= set(names)
    assert names == sorted(names)


def test_needing_torch_without_it_is_one_missing_dependency():
    # a fresh interpreter in which torch cannot be imported (None in sys.modules): greenprint.fpo
    # marks the counter as needing torch; the real check names the extra, the rest still loads
    code = (
        "import sys; sys.modules['torch'] = None; import greenprint.fpo as fpo\n"
        "try:\n    fpo.count_fpo\nexcept ImportError as e:\n"
        "    print(type(e).__name__, 'greenprint[torch]' in str(e), fpo.FPOResult.__module__)"
    )
    assert _fresh(code) == ["MissingDependencyError", "True", "greenprint.fpo"]
