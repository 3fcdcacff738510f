"""Every default the example config and docs/configuration.md state is the code's.

A documented default is checked by loading a document with the key set to that
value and the same document without it: the two must give equal settings. The
example config is its own base document; docs rows get a minimal one.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from larkps.config.queries import ALL_EVENT_TYPES
from larkps.config.settings import Settings, settings_from_dict
from larkps.sources.search.specs import OPENSEARCH_INDICES, PSES_INDICES

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "larkps.example.toml"
DOCS = REPO / "docs" / "configuration.md"
KeyPath = tuple[str | int, ...]

# Keys of the example whose values are examples, not defaults (the header says so).
EXAMPLE_VALUES = (
    ("archives", 0, "name"),
    ("archives", 0, "kind"),
    ("archives", 0, "url"),
    ("sites",),
    ("throttle", "site_capacity"),
)


def comparable(settings: Settings) -> tuple[Settings, object]:
    """Settings without the SiteMap object (compared by its rules instead)."""
    return dataclasses.replace(settings, sites=None), settings.sites.rules  # type: ignore[arg-type]


def load(document: dict[str, Any]) -> tuple[Settings, object]:
    return comparable(settings_from_dict(copy.deepcopy(document), "<test>"))


def put(document: dict[str, Any], path: KeyPath, value: object) -> dict[str, Any]:
    out = copy.deepcopy(document)
    node: Any = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return out


def drop(document: dict[str, Any], path: KeyPath) -> dict[str, Any]:
    out = copy.deepcopy(document)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def leaves(node: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))
    else:
        yield path, node


def _exempt(path: KeyPath) -> bool:
    return any(path[: len(e)] == e for e in EXAMPLE_VALUES)


def test_every_key_set_in_the_example_holds_its_default():
    document = tomllib.loads(EXAMPLE.read_text())
    whole = load(document)
    checked = [path for path, _ in leaves(document) if not _exempt(path)]
    wrong = [p for p in checked if load(drop(document, p)) != whole]
    assert len(checked) > 60
    assert not wrong, f"example values that are not the code's defaults: {wrong}"


def test_the_example_lists_every_known_event_type():
    text = EXAMPLE.read_text()
    known = re.search(r"# Known: (.*?)\.\n", text, re.S)
    assert known is not None
    names = {n.strip(" #\n") for n in known.group(1).replace("\n#", " ").split(",")}
    assert names == set(ALL_EVENT_TYPES)
    assert "time-error-estimates" in tomllib.loads(text)["archives"][0]["event_types"]


HEADER = re.compile(r"^#?\s*(\[\[?)([a-z][a-z0-9_.-]*)\]\]?\s*(#.*)?$")
ASSIGNMENT = re.compile(r"^#\s*([a-z_]+)\s*=\s*(.*?)\s*(#.*)?$")
ARCHIVE = {"name": "a", "kind": "esmond", "url": "https://ps.example.org"}


def commented_defaults() -> Iterator[tuple[int, str, str, str, str]]:
    """(line number, table, archive kind, key, TOML value) of each "(default)" line."""
    table, kind = "", "esmond"
    for number, line in enumerate(EXAMPLE.read_text().splitlines(), start=1):
        header = HEADER.match(line)
        if header:
            table = header.group(2)
            kind = "esmond" if header.group(1) == "[[" else kind
            continue
        assignment = ASSIGNMENT.match(line)
        if assignment is None:
            continue
        key, value, note = assignment.groups()
        if key == "kind":
            kind = tomllib.loads(f"v = {value}")["v"]
        if note and "(default)" in note:
            yield number, table, kind, key, value


def context(table: str, kind: str) -> tuple[dict[str, Any], KeyPath]:
    """A document in which `table` exists, and the key path of that table."""
    parts = tuple(table.split("."))
    if parts[0] == "archives":
        archive = dict(ARCHIVE, kind=kind)
        if kind == "embedded":
            del archive["url"]
        if kind in ("opensearch", "ps-es"):
            archive["url"] = "https://es.example.org:9200"
        return {"archives": [archive]}, ("archives", 0, *parts[1:])
    document: dict[str, Any] = {"archives": [dict(ARCHIVE)]}
    if table == "publish.collector":
        document["publish"] = {"collector": {"pool": "cm.example.org:9618"}}
    return document, parts


def test_every_commented_out_default_in_the_example_is_the_code_default():
    found = list(commented_defaults())
    assert len(found) >= 17  # embedded 3, opensearch 5, ps-es 6, collector 3
    for number, table, kind, key, value in found:
        if table == "archives.search.indices":  # the config keeps overrides only
            specs = OPENSEARCH_INDICES if kind == "opensearch" else PSES_INDICES
            defaults = {spec.name: spec.default_index for spec in specs}
            assert defaults[key] == tomllib.loads(f"v = {value}")["v"], f"example line {number}"
            continue
        document, at = context(table, kind)
        given = put(document, (*at, key), tomllib.loads(f"v = {value}")["v"])
        assert load(given) == load(document), f"example line {number}: {key} = {value}"


# --- docs/configuration.md -------------------------------------------------------------

SECTION_OF_TABLE = {"Throttle keys": "throttle", "Report keys": "report"}
TICKED = re.compile(r"`([^`]*)`")


def doc_rows() -> Iterator[tuple[str, list[str], str]]:
    """(heading, key names, default cell) of every row of a "| key | default |" table."""
    heading, in_table = "", False
    for line in DOCS.read_text().splitlines():
        if line.startswith("## "):
            heading, in_table = line[3:].strip(), False
        elif line.startswith("| key | default |"):
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            yield heading, _key_names(heading, cells[0]), cells[1]
        elif not line.startswith("|"):
            in_table = False


def _key_names(heading: str, cell: str) -> list[str]:
    prefix = SECTION_OF_TABLE.get(heading, "")
    names: list[str] = []
    for token in TICKED.findall(cell):
        if token.startswith("[") and token.endswith("]"):
            prefix = token[1:-1]
        elif token.startswith(".") and names:
            names.append(names[-1].rsplit(".", 1)[0] + token)
        else:
            names.append(f"{prefix}.{token}" if prefix else token)
    return names


def doc_path(name: str) -> tuple[dict[str, Any], KeyPath]:
    parts = name.split(".")
    if parts[0] == "archives[]":
        kind = {"embedded": "embedded", "search": "ps-es"}.get(parts[1], "esmond")
        return context(".".join(["archives", *parts[1:-1]]), kind)[0], (
            "archives",
            0,
            *parts[1:],
        )
    return context(".".join(parts[:-1]), "esmond")[0], tuple(parts)


def _settings(document: dict[str, Any]) -> Settings:
    return settings_from_dict(copy.deepcopy(document), "<test>")


BASE: dict[str, Any] = {"archives": [dict(ARCHIVE)]}
STATE = {"larkps": {"state_dir": "/srv/larkps"}}
Check = Callable[[], bool]
# Defaults stated in words: what each means, checked on the settings.
PROSE: dict[tuple[str, str], Check] = {
    ("jobnet.max_rate", "none"): lambda: _settings(BASE).jobnet.max_rate_bps is None,
    ("jobnet.default_rate", "none"): lambda: _settings(BASE).jobnet.default_rate_bps is None,
    ("jobnet.pool4", "none"): lambda: _settings(BASE).jobnet.pool4 is None,
    ("jobnet.pool6", "none"): lambda: _settings(BASE).jobnet.pool6 is None,
    # Setting state_dir also turns incremental fetching on: not the same as leaving it out.
    ("larkps.state_dir", '`"/var/lib/larkps"`'): lambda: (
        _settings(BASE).state_dir == Path("/var/lib/larkps")
    ),
    ("archives[].ca_bundle", "none"): lambda: _settings(BASE).archives[0].ca_bundle is None,
    ("publish.file.path", "`state_dir/larkps.ads`"): lambda: (
        _settings({**BASE, **STATE, "publish": {"file": {}}}).publish.file.path  # type: ignore[union-attr]
        == Path("/srv/larkps/larkps.ads")
    ),
    ("publish.collector.token_file", "none"): lambda: (
        _settings(context("publish.collector", "")[0]).publish.collector.token_file is None  # type: ignore[union-attr]
    ),
    ("throttle.site_capacity.<site>.ingress", "none"): lambda: (
        _settings(BASE).throttle.site_capacity == ()
    ),
    ("archives[].interval", "every cycle"): lambda: (
        _settings(BASE).archives[0].fetch.interval is None
    ),
    ("archives[].filters.source", "none"): lambda: _filters_unset(),
    ("archives[].filters.input_source", "none"): lambda: _filters_unset(),
    ("archives[].filters.tool_name", "none"): lambda: _filters_unset(),
    ("archives[].filters.dns_match_rule", "none (archive default `v4v6`)"): lambda: (
        _filters_unset()
    ),
    ("archives[].filters.time_range", "the fetch window"): lambda: _filters_unset(),
    ("archives[].filters.families", "both"): lambda: (
        _settings(BASE).archives[0].fetch.filters.families == ()
    ),
    ("archives[].filters.params.<name>", "none"): lambda: (
        _settings(BASE).archives[0].fetch.filters.params == ()
    ),
    ("fetch.incremental", "on when `[larkps] state_dir` is set in the file"): lambda: (
        _settings({**BASE, **STATE}).fetch.incremental and not _settings(BASE).fetch.incremental
    ),
    ("fetch.deadline", "80 % of `interval` (at least 30 s)"): lambda: (
        _settings({**BASE, "larkps": {"interval": "10m"}}).fetch.deadline == 480
        and _settings({**BASE, "larkps": {"interval": "20s"}}).fetch.deadline == 30
    ),
    ("fetch.retention", "longest window + 1h"): lambda: (
        _settings({**BASE, "windows": {"list": ["1h", "2d"], "default": "1h"}}).fetch.retention
        == 2 * 86400 + 3600
    ),
    ("calibration.pool", "none"): lambda: _settings(BASE).calibration.pool is None,
    ("calibration.schedd", "none"): lambda: _settings(BASE).calibration.schedd is None,
    ("archives[].username", "none"): lambda: _settings(BASE).archives[0].credentials is None,
    ("archives[].password_file", "none"): lambda: _settings(BASE).archives[0].credentials is None,
    ("archives[].password_env", "none"): lambda: _settings(BASE).archives[0].credentials is None,
    ("archives[].search.indices.<family>", "the standard names"): lambda: (
        _settings(context("archives.search", "ps-es")[0]).archives[0].search.indices == ()  # type: ignore[union-attr]
    ),
}


def _filters_unset() -> bool:
    filters = _settings(BASE).archives[0].fetch.filters
    return all(getattr(filters, f.name) in (None, ()) for f in dataclasses.fields(filters))


def _literal(token: str) -> object:
    return tomllib.loads(f"v = {token}")["v"]


def test_every_default_in_docs_configuration_is_the_code_default():
    rows = list(doc_rows())
    assert len(rows) > 60
    literal_checked, prose_checked = 0, 0
    for heading, names, cell in rows:
        assert names, f"{heading}: a row without key names"
        check = PROSE.get((names[0], cell))
        if check is not None:
            assert check(), f"{heading}: {names[0]}: the default is not {cell}"
            prose_checked += 1
            continue
        values = _cell_literals(cell)
        assert len(values) == len(names), (
            f"{heading}: {names}: default {cell!r} is neither one literal per key nor "
            "a default in words this test knows (add it to PROSE)"
        )
        for name, value in zip(names, values, strict=True):
            document, path = doc_path(name)
            assert load(put(document, path, value)) == load(document), (
                f"{heading}: {name}: documented default {value!r} is not the code's"
            )
            literal_checked += 1
    assert literal_checked > 60 and prose_checked == len(PROSE)


def _cell_literals(cell: str) -> list[object]:
    if TICKED.sub("", cell).strip(" ,"):
        return []  # words around the literals: a prose default
    try:
        return [_literal(t) for t in TICKED.findall(cell)]
    except tomllib.TOMLDecodeError:
        return []


@pytest.mark.parametrize("cell", ["`3`", "`-2.0`, `0.5`", '`"24h"`'])
def test_the_docs_parser_reads_literal_defaults(cell: str):
    assert len(_cell_literals(cell)) == cell.count("`") // 2
