"""Every optional import goes through ``greenprint._imports.require``: a missing module gives one
MissingDependencyError (an ImportError) that names the extra to install.

Each place is tested with the module made unimportable (``sys.modules[name] = None``, which is
what ``import`` reads as "not installed"), in a fresh interpreter so nothing is cached.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import pytest

import greenprint as gp
from greenprint._imports import ensure, is_available, require


def _probe(missing: str, code: str) -> dict:
    """Run ``code`` with ``missing`` unimportable; it sets ``out`` (a dict), printed as JSON."""
    script = (
        f"import sys, json\nsys.modules[{missing!r}] = None\nout = {{}}\n"
        + textwrap.dedent(code)
        + "\nprint(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CATCH = """
def catch(fn):
    import greenprint as gp
    try:
        fn()
    except gp.MissingDependencyError as e:
        return {"error": str(e), "extra": e.extra, "import_error": isinstance(e, ImportError)}
    return {"error": None}
"""


def test_require_returns_the_module_and_names_the_extra_when_missing(monkeypatch):
    assert require("json", extra=None, purpose="x").__name__ == "json"
    # both entries: an earlier test may have imported matplotlib.figure already
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(gp.MissingDependencyError) as info:
        require("matplotlib.figure", extra="report", purpose="plots in reports")
    err = info.value
    assert str(err) == (
        "plots in reports needs matplotlib, which is not installed: "
        "pip install 'greenprint[report]'"
    )
    assert isinstance(err, ImportError) and isinstance(err.__cause__, ImportError)
    assert (err.package, err.extra, err.install) == (
        "matplotlib",
        "report",
        "pip install 'greenprint[report]'",
    )
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is gp.MissingDependencyError and str(copy) == str(err)


def test_ensure_checks_without_importing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert not is_available("sklearn") and is_available("json")
    ensure("json", extra=None, purpose="x")
    with pytest.raises(gp.MissingDependencyError, match=r"pip install 'greenprint\[demo\]'"):
        ensure("sklearn", extra="demo", purpose="greenprint demo", package="scikit-learn")


def test_a_core_dependency_names_the_package():
    err = gp.MissingDependencyError("nvidia-ml-py", None, "GPU energy")
    assert str(err).endswith("pip install nvidia-ml-py")


def test_report_plots_without_matplotlib():
    out = _probe(
        "matplotlib",
        CATCH
        + """
from greenprint.report._plots import PLOTS_HINT, FigureRenderer, _import_matplotlib
out = catch(_import_matplotlib)
renderer = FigureRenderer()
out["unavailable"] = renderer.unavailable == PLOTS_HINT
""",
    )
    assert out["extra"] == "report" and out["import_error"] and out["unavailable"]
    assert "pip install 'greenprint[report]'" in out["error"]


def test_nvml_without_pynvml_gives_a_status_with_the_fix(monkeypatch):
    from greenprint.meters import _nvml

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(_nvml, "_driver_present", lambda: True)
    with pytest.raises(_nvml.NvmlUnavailable) as info:
        _nvml.load_nvml()
    status = info.value.status
    assert not status.usable
    assert status.reason.startswith("pynvml is not importable (")
    assert status.fix == "pip install nvidia-ml-py"


def test_postgres_ledger_without_psycopg():
    out = _probe(
        "psycopg",
        CATCH
        + """
import greenprint as gp
out = catch(lambda: gp.Ledger("postgresql+psycopg://user@127.0.0.1:1/none"))
""",
    )
    assert out["extra"] == "postgres" and out["import_error"]
    assert out["error"].startswith("a PostgreSQL ledger needs psycopg")


def test_fpo_without_torch():
    out = _probe(
        "torch",
        CATCH
        + """
import greenprint.fpo
out = catch(lambda: greenprint.fpo.count_fpo)
""",
    )
    assert out["extra"] == "torch" and "pip install 'greenprint[torch]'" in out["error"]


def test_the_fpo_command_without_torch_is_one_line_and_exit_2():
    out = _probe(
        "torch",
        """
import contextlib, io
from greenprint.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    out["rc"] = main(["fpo", "mod:factory", "--input-shape", "1,2"])
out["stderr"] = err.getvalue()
""",
    )
    assert out["rc"] == 2
    assert out["stderr"] == (
        "greenprint: error: greenprint fpo needs torch, which is not installed: "
        "pip install 'greenprint[torch]'\n"
    )


def test_demo_without_rich_falls_back_to_plain_lines():
    out = _probe(
        "rich",
        """
from greenprint.demo._display import PlainDisplay, make_display
out["plain"] = isinstance(make_display(quiet=False), PlainDisplay)
""",
    )
    assert out["plain"]


def test_demo_without_scikit_learn(tmp_path):
    out = _probe(
        "sklearn",
        CATCH
        + f"""
from greenprint.demo import run_demo
out = catch(lambda: run_demo({str(tmp_path)!r}, quiet=True))
""",
    )
    assert out["extra"] == "demo"
    assert out["error"] == (
        "greenprint demo needs scikit-learn, which is not installed: pip install 'greenprint[demo]'"
    )
