"""The one-way data flow, checked rather than hoped for: who may import what."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "larkps"
PURE = (
    "stats/aggregate",
    "stats/rollups/partial",
    "stats/rollups/streams",
    "stats/rollups/window",
    "stats/estimates",
    "stats/forecast",
    "stats/alarms",
    "stats/expected",
    "stats/hourly",
    "decide/throttle",
    "decide/advise",
    "decide/views",
    "decide/plan",
    "stats/achieved",
    "stats/calibration",
    "ingest/cadence",
    "jobnet/request",
    "jobnet/accounting",
    "jobnet/rules",
    "report/document",
    "report/explain",
    "units",
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


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
BINDINGS = {"classad2", "htcondor2"}
COMMANDS = {"subprocess"}
# Stages that may import the HTCondor bindings, and stages that may run commands.
BINDING_STAGES = {"publish", "apply", "jobnet"}
COMMAND_STAGES = {"apply", "jobnet"}
# Modules that start larkps's own child processes (sys.executable -m larkps...), not commands.
OWN_CHILDREN = {"larkps.ingest.writer", "larkps.publish.collector", "larkps.publish.schedd_history"}


def stage_of(module: str) -> str:
    """``larkps.stats.rollups.views`` -> ``stats``; ``larkps.model`` -> ``model``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "larkps"


def allowed_imports() -> dict[str, set[str]]:
    """The 'may import' column of docs/architecture.md's package table, per stage."""
    table: dict[str, set[str]] = {}
    for line in ARCHITECTURE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`").removesuffix("/").removesuffix(".py")
        may = cells[2].replace("`", "")
        table[name] = set() if may == "nothing" else {m.strip() for m in may.split(",")}
    return table


def every_module() -> dict[str, Path]:
    return {module_of(p): p for p in PACKAGE.rglob("*.py")}


def stage_imports(path: Path) -> set[str]:
    return {stage_of(i) for i in imports(path) if i.startswith("larkps.")}


def test_the_documented_table_covers_every_stage():
    table = allowed_imports()
    stages = {stage_of(m) for m in every_module()} - {"larkps"}
    assert stages <= set(table), f"not in docs/architecture.md: {sorted(stages - set(table))}"
    assert not set(table) - stages, f"documented but absent: {sorted(set(table) - stages)}"
    for stage, may in table.items():
        assert may <= set(table), f"{stage} may import unknown stages {may - set(table)}"


@pytest.mark.parametrize("module", sorted(every_module()), ids=str)
def test_each_module_imports_only_what_its_stage_may(module: str):
    path = every_module()[module]
    stage = stage_of(module)
    if stage == "larkps":
        return
    bad = stage_imports(path) - allowed_imports()[stage] - {stage}
    assert not bad, f"{module} ({stage}) imports {sorted(bad)}: see docs/architecture.md"


def test_data_flows_one_way_between_stages():
    table = allowed_imports()
    graph = {stage: may & set(table) for stage, may in table.items()}
    assert import_cycles(graph) == []


def test_only_publishing_and_the_appliers_import_htcondor():
    for module, path in every_module().items():
        found = {i for i in imports(path) if i.split(".")[0] in BINDINGS}
        assert not found or stage_of(module) in BINDING_STAGES, f"{module} imports {found}"


def test_only_the_appliers_run_commands():
    for module, path in every_module().items():
        found = {i for i in imports(path) if i.split(".")[0] in COMMANDS}
        if not found or stage_of(module) in COMMAND_STAGES:
            continue
        assert module in OWN_CHILDREN, f"{module} imports {found}"
        assert "sys.executable" in path.read_text(), f"{module} starts something not larkps"


def test_model_and_errors_import_nothing_internal():
    for name in ("model.py", "errors.py", "units.py"):
        internal = {i for i in imports(PACKAGE / name) if i.startswith("larkps")}
        assert not internal, f"{name} imports {internal}"


def public_names(stage: str) -> str:
    """A package's docstring and its ``__all__``: where its public names are listed."""
    init = PACKAGE / stage / "__init__.py"
    if not init.exists():
        return ""
    tree = ast.parse(init.read_text())
    listed = [
        ast.unparse(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == "__all__" for t in node.targets)
    ]
    return "\n".join([ast.get_docstring(tree) or "", *listed])


def cross_stage_names(path: Path, stage: str) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("larkps."):
            target = stage_of(node.module)
            if target != stage and (PACKAGE / target).is_dir():
                found += [(target, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("module", sorted(every_module()), ids=str)
def test_other_stages_use_only_a_package_public_names(module: str):
    path = every_module()[module]
    for target, name in cross_stage_names(path, stage_of(module)):
        assert not name.startswith("_"), f"{module} imports private {target} name {name}"
        doc = public_names(target)
        assert re.search(rf"\b{re.escape(name)}\b", doc), (
            f"{module} imports {name} from {target}, which larkps/{target}/__init__.py"
            " does not list as public"
        )


def test_every_package_says_what_it_does():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 5, f"{init} has no docstring saying what it does"


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
