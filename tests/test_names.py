"""One meaning per name: no top-level name is defined in two modules of larkps.

Every module is parsed with ``ast`` (nothing is imported). A definition is a
top-level class, function or assignment; private names (``_x``), ``__all__``,
``log`` and names bound by ``import`` (re-exports) are not definitions.

The embedded archive (``larkps.embedded``) is checked on its own: it is an
independent implementation of the archive's side of the wire, imports nothing
from the rest of larkps, and so serves as ground truth for the clients. Sharing a
name such as ``ARCHIVE_PATH`` or ``MAX_LINE`` with the client is the point of it,
and sharing the constant itself would make a client bug invisible.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import larkps

PACKAGE = Path(larkps.__file__).parent
EMBEDDED = "larkps.embedded"

# The same role in many modules, by design; each entry says why.
ALLOWED = {
    "main": "the entry point of each module run as `python -m` (cli, workers, embedded)",
    "register": "each larkps.cli.commands module adds its subcommands through register()",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """A module's top-level statements, with those under a top-level if/try."""
    found: list[ast.stmt] = []
    for node in body:
        found.append(node)
        if isinstance(node, ast.If):
            found += _statements(node.body) + _statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _statements(block)
    return found


def defined_names(tree: ast.Module) -> set[str]:
    """Top-level names a module defines (not imports), public ones only."""
    names: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_") and n not in ("__all__", "log")}


def parsed_modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def definitions(modules: dict[str, ast.Module]) -> dict[str, dict[str, list[str]]]:
    """Group ("embedded" or "larkps") -> name -> modules defining it."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, tree in modules.items():
        group = "embedded" if module.startswith(EMBEDDED) else "larkps"
        for name in defined_names(tree):
            found[group][name].append(module)
    return found


def duplicates(modules: dict[str, ast.Module]) -> dict[str, list[str]]:
    return {
        f"{group}: {name}": found
        for group, names in definitions(modules).items()
        for name, found in sorted(names.items())
        if len(found) > 1 and name not in ALLOWED
    }


def test_no_top_level_name_is_defined_in_two_modules():
    assert duplicates(parsed_modules()) == {}


def test_the_allow_list_is_still_needed():
    names = definitions(parsed_modules())["larkps"]
    assert {n for n in ALLOWED if len(names.get(n, [])) < 2} == set()


def test_the_embedded_archive_stands_alone():
    """The exemption above holds only while the archive imports no other larkps module."""
    outside = set()
    for path in (PACKAGE / "embedded").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("larkps") and not node.module.startswith(EMBEDDED):
                    outside.add(f"{module_name(path)} imports {node.module}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("larkps") and not alias.name.startswith(EMBEDDED):
                        outside.add(f"{module_name(path)} imports {alias.name}")
    assert outside == set()


def test_the_finder_sees_a_duplicate():
    """The detector itself, on made-up modules: definitions count, imports do not."""
    modules = {
        "larkps.one": ast.parse("class Quality:\n    pass\n_private = 1\nlog = None\n"),
        "larkps.two": ast.parse("from x import Quality as Q\nQuality: int = 3\nmain = 1\n"),
        "larkps.three": ast.parse("from larkps.one import Quality\nimport larkps.two\n_x = 2\n"),
        "larkps.four": ast.parse("_private = 2\nHOUR, DAY = 3600, 86400\ndef main(): pass\n"),
        "larkps.seven": ast.parse("try:\n    import y\nexcept ImportError:\n    DAY = 1\n"),
        "larkps.embedded.five": ast.parse("HOUR = 3600\nclass Quality: pass\n"),
    }
    assert duplicates(modules) == {
        "larkps: Quality": ["larkps.one", "larkps.two"],
        "larkps: DAY": ["larkps.four", "larkps.seven"],
    }
    modules["larkps.embedded.six"] = ast.parse("def HOUR(): pass\n")
    assert duplicates(modules)["embedded: HOUR"] == ["larkps.embedded.five", "larkps.embedded.six"]
