"""Read DAGMan files and rewrite their MAXJOBS lines, leaving every other byte alone.

Understood: keywords in any case; ``#`` comment lines (which never continue);
backslash line continuations (a comment line inside a continuation is skipped);
inline submit descriptions (``JOB A {`` ... ``}``, ``@=end`` ... ``@end``), whose
lines are not DAG commands; ``CATEGORY node cat``, ``MAXJOBS cat n`` (the last
one for a category wins, as in DAGMan), ``+global`` categories, ``SPLICE name
file`` and ``SUBDAG EXTERNAL name file``. Category names are case-sensitive.

This deliberately does not use ``htcondor2.dags``, whose writer puts
``max_jobs_by_category`` into CATEGORY lines instead of MAXJOBS lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from larkps.errors import UsageError

CATEGORY_PATTERN = re.compile(r"^\+?[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_NODE_KEYWORDS = {"JOB", "FINAL", "SERVICE", "PROVISIONER", "SUBMIT-DESCRIPTION"}
_PHYSICAL = re.compile(r"[^\n]*\n|[^\n]+$")
_TOKEN = re.compile(r"[^ \t]+")


class DagError(UsageError):
    """A DAG file that cannot be read or rewritten safely."""


@dataclass(frozen=True, slots=True)
class Token:
    """One whitespace-separated word and where it sits in the file's text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Statement:
    """One logical line (after joining continuations): its words and first line number."""

    line: int
    tokens: tuple[Token, ...]

    @property
    def keyword(self) -> str:
        return self.tokens[0].text.upper()

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.tokens)


@dataclass(frozen=True, slots=True)
class DagFile:
    """A parsed DAG file; `text` is kept verbatim for byte-exact rewriting."""

    source: str
    text: str
    statements: tuple[Statement, ...]

    def of(self, keyword: str) -> list[Statement]:
        return [s for s in self.statements if s.keyword == keyword]

    def categories(self) -> dict[str, list[str]]:
        """Category -> the node names (or ALL_NODES) assigned to it in this file."""
        found: dict[str, list[str]] = {}
        for statement in self.of("CATEGORY"):
            found.setdefault(statement.words[2], []).append(statement.words[1])
        return found

    def maxjobs(self) -> dict[str, int]:
        """Category -> its MAXJOBS value (the last line wins)."""
        return {s.words[1]: int(s.words[2]) for s in self.of("MAXJOBS")}

    def splices(self) -> list[tuple[str, str]]:
        return [(s.words[1], s.words[2]) for s in self.of("SPLICE")]

    def subdags(self) -> list[tuple[str, str]]:
        return [(s.words[2], s.words[3]) for s in self.of("SUBDAG")]


def check_category(name: str) -> str:
    """A category name DAGMan accepts and a shell or DAG line cannot be bent by."""
    if not CATEGORY_PATTERN.match(name):
        raise DagError(
            f"--category: expected an optional '+' then letters, digits, '_', '.' or '-',"
            f" got {name!r}"
        )
    return name


def parse_dag(text: str, source: str = "<dag>") -> DagFile:
    """Split text into statements; malformed CATEGORY/MAXJOBS/SPLICE lines are errors."""
    statements = tuple(_statements(text, _physical_lines(text)))
    for statement in statements:
        _check(statement, source)
    return DagFile(source, text, statements)


def _physical_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line's content, without its newline or carriage return."""
    lines = []
    for match in _PHYSICAL.finditer(text):
        start, end = match.start(), match.end()
        if text[start:end].endswith("\n"):
            end -= 1
        if end > start and text[end - 1] == "\r":
            end -= 1
        lines.append((start, end))
    return lines


def _statements(text: str, lines: list[tuple[int, int]]) -> list[Statement]:
    statements: list[Statement] = []
    index, inline_end = 0, None
    while index < len(lines):
        start, end = lines[index]
        content = text[start:end].lstrip(" \t")
        if inline_end is not None:
            inline_end = None if content.startswith(inline_end) else inline_end
            index += 1
            continue
        if not content or content.startswith("#"):
            index += 1
            continue
        tokens: list[Token] = []
        first_line = index + 1
        index = _join(text, lines, index, tokens)
        if tokens:
            statement = Statement(first_line, tuple(tokens))
            statements.append(statement)
            inline_end = _inline_end(statement)
    return statements


def _join(text: str, lines: list[tuple[int, int]], index: int, tokens: list[Token]) -> int:
    """Collect the tokens of one logical line; return the index of the line after it."""
    while True:
        start, end = lines[index]
        continued = text[start:end].endswith("\\")
        stop = end - 1 if continued else end
        tokens.extend(
            Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text, start, stop)
        )
        index += 1
        while continued and index < len(lines) and _is_comment(text, lines[index]):
            index += 1
        if not continued or index >= len(lines):
            return index


def _is_comment(text: str, line: tuple[int, int]) -> bool:
    return text[line[0] : line[1]].lstrip(" \t").startswith("#")


def _inline_end(statement: Statement) -> str | None:
    """The line that closes an inline submit description this statement opens."""
    words = statement.words
    if statement.keyword not in _NODE_KEYWORDS or len(words) < 3:
        return None
    description = words[2]
    if description.startswith("{"):
        return "}"
    if description.startswith("@="):
        return "@" + description[2:]
    return None


_SHAPES = {
    "CATEGORY": (3, "CATEGORY NodeName CategoryName"),
    "MAXJOBS": (3, "MAXJOBS CategoryName Value"),
}


def _check(statement: Statement, source: str) -> None:
    words, keyword = statement.words, statement.keyword
    where = f"{source}:{statement.line}"
    if keyword in _SHAPES:
        count, example = _SHAPES[keyword]
        if len(words) != count:
            raise DagError(f"{where}: expected {example!r}, got {' '.join(words)!r}")
    if keyword == "MAXJOBS" and not words[2].isdigit():
        raise DagError(f"{where}: MAXJOBS value must be a non-negative integer, got {words[2]!r}")
    if keyword == "SPLICE" and len(words) < 3:
        raise DagError(f"{where}: expected 'SPLICE SpliceName SpliceFileName [DIR directory]'")
    if keyword == "SUBDAG" and (len(words) < 4 or words[1].upper() != "EXTERNAL"):
        raise DagError(f"{where}: expected 'SUBDAG EXTERNAL NodeName DagFileName ...'")


def set_maxjobs(dag: DagFile, category: str, jobs: int) -> str:
    """The DAG's text with MAXJOBS for `category` set to `jobs`; nothing else changes.

    Every existing MAXJOBS line of the category gets the new value in place (its
    spacing and keyword spelling kept); without one, a line is appended. Running
    it again with the same value returns the same text.
    """
    check_category(category)
    if jobs < 1:
        raise DagError(f"MAXJOBS {category} {jobs} would never run a node of the category")
    text = dag.text
    lines = [s for s in dag.of("MAXJOBS") if s.words[1] == category]
    if not lines:
        return text + _separator(text) + f"MAXJOBS {category} {jobs}" + _line_end(text)
    for statement in reversed(lines):
        value = statement.tokens[2]
        text = text[: value.start] + str(jobs) + text[value.end :]
    return text


def _line_end(text: str) -> str:
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _separator(text: str) -> str:
    return _line_end(text) if text and not text.endswith("\n") else ""
