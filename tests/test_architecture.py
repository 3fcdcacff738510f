"""The one-way data flow, checked rather than hoped for: who may import what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "larkps"
PURE = (
    "aggregate",
    "throttle",
    "estimates",
    "forecast",
    "alarms",
    "rollups_pure",
    "units",
    "history",
    "achieved_parse",
    "calibration",
    "cadence",
    "expected",
    "stats_document",
    "explain",
)
IO_MODULES = {
    "requests",
    "aiohttp",
    "socket",
    "urllib.request",
    "http",
    "subprocess",
    "htcondor2",
    "classad2",
    "sqlite3",
}
CLOCK_CALLS = {"time", "now", "utcnow", "today", "monotonic"}


def modules(prefix: str) -> list[Path]:
    single = PACKAGE / f"{prefix}.py"
    package = PACKAGE / prefix
    found = [single] if single.exists() else []
    if package.is_dir():
        found += sorted(package.rglob("*.py"))
    return found


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def clock_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_CALLS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"time", "datetime", "date"}
        ):
            found.append(f"{node.func.value.id}.{node.func.attr}()")
    return found


@pytest.mark.parametrize("module", [m for p in PURE for m in modules(p)], ids=str)
def test_pure_modules_touch_no_network_clock_or_htcondor(module: Path):
    bad = {
        name for name in imports(module) if name in IO_MODULES or name.split(".")[0] in IO_MODULES
    }
    assert not bad, f"{module.name} imports {bad}"
    assert not clock_calls(module), f"{module.name} reads the clock"


# Modules that apply decisions through htcondor2 (thin appliers, not computation), and
# the reader of the schedd's job history.
HTCONDOR_APPLIERS = {"dagman.py", "achieved.py"}


def test_only_publish_and_appliers_import_htcondor():
    for path in PACKAGE.rglob("*.py"):
        bindings = {i for i in imports(path) if i.split(".")[0] in {"classad2", "htcondor2"}}
        if not bindings:
            continue
        top = path.relative_to(PACKAGE).parts[0]
        assert top.startswith("publish") or top == "commands" or path.name in HTCONDOR_APPLIERS, (
            f"{path} imports {bindings}"
        )


def test_model_and_errors_import_nothing_internal():
    for name in ("model.py", "errors.py", "units.py"):
        internal = {i for i in imports(PACKAGE / name) if i.startswith("larkps")}
        assert not internal, f"{name} imports {internal}"


def test_stages_never_import_the_shells():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "commands" or path.name in {"cli.py", "daemon.py", "__main__.py"}:
            continue
        shells = {
            i
            for i in imports(path)
            if i in {"larkps.cli", "larkps.daemon"} or i.startswith("larkps.commands")
        }
        assert not shells, f"{path} imports {shells}"


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(source: str, name: str, known: set[str]) -> set[str]:
    """The larkps modules module ``name`` imports anywhere: at the top, in functions,
    under ``TYPE_CHECKING``; ``from pkg import x`` counts as ``pkg.x`` where that is
    a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
    return (found & known) - {name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []
    for root in graph:
        if root in order:
            continue
        work = [(root, iter(sorted(graph[root])))]
        order[root] = low[root] = len(order)
        stack.append(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == order[node]:
                    group = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(group) > 1:
                        cycles.append(sorted(group))
            elif step not in order:
                order[step] = low[step] = len(order)
                stack.append(step)
                work.append((step, iter(sorted(graph[step]))))
            elif step in stack:
                low[node] = min(low[node], order[step])
    return cycles


def test_import_cycles_are_found_even_for_type_checking_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    known = {"larkps.x", "larkps.y", "larkps.z", "larkps.pkg", "larkps.pkg.w"}
    x = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from larkps.y import Y\n"
    y = "def f():\n    import larkps.z\n    from larkps.pkg import w, other\n"
    assert internal_imports(x, "larkps.x", known) == {"larkps.y"}
    assert internal_imports(y, "larkps.y", known) == {"larkps.z", "larkps.pkg.w", "larkps.pkg"}
    graph = {"larkps.x": {"larkps.y"}, "larkps.y": {"larkps.x"}, "larkps.z": set()}
    assert import_cycles(graph) == [["larkps.x", "larkps.y"]]


def test_no_import_cycles_in_the_package():
    paths = {module_of(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    graph = {name: internal_imports(path.read_text(), name, known) for name, path in paths.items()}
    assert import_cycles(graph) == []
