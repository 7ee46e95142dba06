"""The package's import graph has no circles, and the layering holds.

DESIGN.md: lower floors never import higher ones. A static walk of ``src/greenprint`` in which
every import statement is an edge: module-level ones, those under ``if TYPE_CHECKING:`` (a circle
"only for a type" is still a circle: the two circles issue 17 untied were of that kind) and
those inside functions (the lazy ones that keep ``import greenprint`` light: lazy is not a
licence to import upwards). A function-level import whose comment says it avoids an import
cycle is a circle in disguise and fails too. The one dynamic import upwards is
``greenprint.analysis.run_learning_curve``, loaded by name on first use (see docs/analysis.md).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint
from _clean_env import clean_env

SRC = Path(greenprint.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(
    module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The greenprint modules an import statement loads (the exact module, not its parents)."""
    found = set()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _resolve(module, path, node)
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [n if n in known else base for n in names]
    for name in names:
        while name and name not in known:  # ``import greenprint.x.y`` of a non-module name
            name = name.rpartition(".")[0]
        if name.startswith("greenprint"):
            found.add(name)
    return found


def _walk(module: str, path: Path, known: set[str]) -> tuple[set[str], list[str]]:
    """Every greenprint module one file imports, and its function-level 'avoids a cycle' imports."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    edges: set[str] = set()
    disguised: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                edges.update(_targets(module, path, child, known))
                text = " ".join(lines[child.lineno - 1 : child.end_lineno or child.lineno])
                # what a comment says (not a module's name: greenprint._lifecycle)
                said = " ".join(
                    line.partition("#")[2]
                    for line in lines[child.lineno - 1 : child.end_lineno or child.lineno]
                ).lower()
                if in_function and ("cycle" in said or "circular" in said):
                    disguised.append(f"{module}:{child.lineno}: {text.strip()}")
            inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, in_function or inner)

    visit(ast.parse(source), False)
    edges.discard(module)
    return edges, disguised


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    disguised: list[str] = []
    for name, path in modules.items():
        graph[name], found = _walk(name, path, known)
        disguised += found
    return graph, disguised


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_the_walk_sees_the_package():
    graph, _ = _graph()
    assert "greenprint.tracking" in graph and "greenprint.meters._set" in graph
    assert "greenprint.meters._discovery" in graph["greenprint.meters._set"]
    assert "greenprint._lifecycle" in graph["greenprint.tracking"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_no_function_level_import_that_dodges_a_cycle():
    _, disguised = _graph()
    assert disguised == []


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_lower_floors_never_import_the_tracker():
    graph, _ = _graph()

    def reaches(start: str) -> set[str]:
        return _reaches(graph, start)

    for floor in ("greenprint._lifecycle", "greenprint.hardware", "greenprint.meters"):
        assert "greenprint.tracking" not in reaches(floor), floor
    # analysis reads runs, never starts them; its __init__ names run_learning_curve (which lives
    # in greenprint._studies, a floor up) for type checkers only and loads it on first use
    upper = ("greenprint.tracking", "greenprint.ledger", "greenprint._studies")
    for module in [m for m in graph if m.startswith("greenprint.analysis._")]:
        assert not [m for m in reaches(module) if m.startswith(upper)], module
    assert "greenprint.hardware" not in reaches("greenprint.meters._estimate")


def test_the_ledger_never_imports_the_analysis_or_the_report():
    """The ledger is a floor below the analysis and the report, which read it (DESIGN.md): no
    module of ``greenprint.ledger`` imports them, directly or through another module. A study
    budget's read (``greenprint.ledger._study_cost``) applies the price tag's rule with the run
    forest's modules (``greenprint._forest*``), which sit below both; it imported
    ``greenprint.analysis._beyond`` and ``_common``, and through the forest ``_stretches``."""
    graph, _ = _graph()
    upper = ("greenprint.analysis", "greenprint.report")
    ledger = [m for m in graph if m == "greenprint.ledger" or m.startswith("greenprint.ledger.")]
    assert "greenprint.ledger._study_cost" in ledger
    found = {m: sorted(n for n in _reaches(graph, m) if n.startswith(upper)) for m in ledger}
    assert {m: up for m, up in found.items() if up} == {}
    for module in [m for m in graph if m.startswith("greenprint._forest")]:
        assert not [m for m in _reaches(graph, module) if m.startswith(upper)], module


def test_a_study_budgets_read_loads_no_analysis_or_report(tmp_path: Path):
    """Reading a study's cost from the ledger, with a worker that ran on after its main run was
    stopped (the read's whole rule: the run forest, the worker's energy split at that end by its
    power samples), in a fresh process, loads no module of ``greenprint.analysis`` or
    ``greenprint.report`` (it loaded all 16 of the analysis package's: a budgeted run's sampler
    thread imported the price tag), on either store; and gives the price tag's total."""
    from _hand_built import T0, measured_run
    from greenprint.analysis import price_tag

    j = 1 / 3.6e6  # kWh per joule
    path = tmp_path / "g.db"
    with greenprint.Ledger(path) as led:
        for name, parent, spent, span, pid in (
            ("main", None, 61 * j, (0, 10), 100),
            ("worker", "main", 40 * j, (2, 16), 101),
        ):
            fields = {"status": "interrupted"} if parent is None else {"contained": True}
            record = measured_run(name, parent, spent, span, pid=pid, **fields)
            led.start_run(record)
            samples = [  # 2 W up to the main run's end, 4 W after: 16 J and 24 J
                greenprint.PowerSample(t0=T0 + t, t1=T0 + t + 1, cpu_w=2.0 if t < 10 else 4.0)
                for t in range(*span)
            ]
            led.flush(record.id, samples=samples if parent else [])
        tag = price_tag(led.runs(study="ddp"), samples_of=led.samples)
    assert tag.total.energy_kwh == pytest.approx((61 + 24) * j, rel=1e-12)
    code = (
        "import json, sys\nimport greenprint.ledger\n"
        "from greenprint.ledger._sql import SQLStore\n"
        "from greenprint.ledger._study_cost import read_study_cost, study_cost\n"
        "from greenprint.ledger._target import resolve_target\n"
        "with greenprint.ledger.Ledger('g.db') as led:\n"
        "    native = study_cost(led, 'ddp')\n"
        "store = SQLStore(resolve_target('g.db'), create=False)\n"
        "sql = read_study_cost(store, 'ddp')\nstore.close()\n"
        "upper = ('greenprint.analysis', 'greenprint.report')\n"
        "print(json.dumps({'kwh': [native.energy_kwh, sql.energy_kwh],\n"
        "    'loaded': sorted(m for m in sys.modules if m.startswith(upper)),\n"
        "    'rule': 'greenprint._forest_beyond' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["loaded"] == []
    assert got["rule"]  # the read applied the rule, the worker split by its samples
    assert got["kwh"] == [pytest.approx(tag.total.energy_kwh, rel=1e-12)] * 2


def test_greenprint_fpo_refuses_a_malformed_shape_before_importing_torch(tmp_path: Path):
    """``greenprint fpo models:net --input-shape 1;3`` (a typo) is one error line and exit
    status 2 without importing torch: it imported torch first, ~2 s of CPU before the
    shape's error (the suite's bad-shape checks paid it each time)."""
    code = (
        "import sys\nfrom greenprint.cli import main\n"
        "rc = main(['fpo', 'models:net', '--input-shape', '1,3', '--input-shape', '1;3'])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.splitlines() == [
        "greenprint: error: bad shape '1;3': expected comma-separated integers like 1,3,224,224"
    ]


def test_a_disguised_cycle_is_what_a_comment_says_not_a_module_name(tmp_path):
    """``from greenprint._lifecycle import registry`` in a function is no 'cycle' comment."""
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n"
        "    from greenprint._lifecycle import registry\n"
        "    from greenprint.tracking import Run  # here: avoids an import cycle\n"
    )
    known = set(_modules())
    _, disguised = _walk("greenprint.m", source, known)
    assert disguised == [
        "greenprint.m:3: from greenprint.tracking import Run  # here: avoids an import cycle"
    ]
