"""Read DAGMan files and rewrite their MAXJOBS lines, leaving every other byte alone.

Understood: keywords in any case; comment lines starting with ``#`` or ``//``
(which never continue); backslash line continuations (a comment line inside a
continuation is skipped); inline submit descriptions (``JOB A {`` ... ``}``,
``@=end`` ... ``@end``), whose lines are not DAG commands; ``CATEGORY node cat``,
``MAXJOBS cat n`` (the last one for a category wins, as in DAGMan), ``+global``
categories, ``INCLUDE file`` (read as if its lines stood in place of the
command), ``SPLICE name file [DIR d]`` and ``SUBDAG EXTERNAL name file``.
Category names are case-sensitive. DAGMan (25.x) refuses a ``#`` after a
command's words, so such a comment on a line larkps reads is an error here too.

This deliberately does not use ``htcondor2.dags``, whose writer puts
``max_jobs_by_category`` into CATEGORY lines instead of MAXJOBS lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from larkps.errors import FieldError, UsageError

CATEGORY_PATTERN = re.compile(r"^\+?[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_NODE_KEYWORDS = {"JOB", "FINAL", "SERVICE", "PROVISIONER", "SUBMIT-DESCRIPTION"}
_PHYSICAL = re.compile(r"[^\n]*\n|[^\n]+$")
_TOKEN = re.compile(r"[^ \t]+")
_COMMENTS = ("#", "//")
_READ = {"CATEGORY", "MAXJOBS", "SPLICE", "INCLUDE", "SUBDAG"}


class DagError(UsageError):
    """A DAG file that cannot be read or rewritten safely."""


class DagFieldError(DagError, FieldError):
    """A DAG rewrite asked with an unusable value (a category name, a job count)."""


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
        raise DagFieldError(
            "category",
            f"expected an optional '+' then letters, digits, '_', '.' or '-', got {name!r}",
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
            inline_end = None if _closes(content, inline_end) else inline_end
            index += 1
            continue
        if not content or content.startswith(_COMMENTS):
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
    return text[line[0] : line[1]].lstrip(" \t").startswith(_COMMENTS)


def _closes(content: str, end: str) -> bool:
    """DAGMan's rule: the closing line is the token alone or followed by a blank."""
    content = content.rstrip(" \t")
    return content == end or content.startswith((end + " ", end + "\t"))


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
    if keyword in _READ and any(word.startswith("#") for word in words[1:]):
        raise DagError(
            f"{where}: DAGMan refuses a comment after {keyword} (a '#' comment must be"
            f" on a line of its own), got {' '.join(words)!r}"
        )
    if keyword in _SHAPES:
        count, example = _SHAPES[keyword]
        if len(words) != count:
            raise DagError(f"{where}: expected {example!r}, got {' '.join(words)!r}")
    if keyword == "MAXJOBS" and not words[2].isdigit():
        raise DagError(f"{where}: MAXJOBS value must be a non-negative integer, got {words[2]!r}")
    if keyword == "SPLICE" and len(words) not in (3, 5):
        raise DagError(f"{where}: expected 'SPLICE SpliceName SpliceFileName [DIR directory]'")
    if keyword == "SPLICE" and len(words) == 5 and words[3].upper() != "DIR":
        raise DagError(f"{where}: expected 'SPLICE SpliceName SpliceFileName [DIR directory]'")
    if keyword == "INCLUDE" and len(words) != 2:
        raise DagError(f"{where}: expected 'INCLUDE FileName'")
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
        raise DagFieldError(
            "jobs", f"MAXJOBS {category} {jobs} would never run a node of the category"
        )
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


# --- a DAG with its INCLUDEs and SPLICEs ------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    """A statement of the DAG's own scope, with the file it was read from."""

    file: DagFile
    statement: Statement

    @property
    def where(self) -> str:
        return f"{self.file.source}:{self.statement.line}"


@dataclass(frozen=True, slots=True)
class Setting:
    """The MAXJOBS value DAGMan would use for a category, and where it is written."""

    value: int
    where: str


@dataclass(frozen=True, slots=True)
class DagTree:
    """A DAG file, its scope (its lines with INCLUDEs expanded in place) and its splices."""

    top: DagFile
    scope: tuple[Placed, ...]
    splices: tuple[tuple[str, DagTree], ...]

    def statements(self, keyword: str) -> list[Placed]:
        return [p for p in self.scope if p.statement.keyword == keyword]

    def categories(self) -> dict[str, list[str]]:
        """Category -> node names (or ALL_NODES) assigned to it in this scope."""
        found: dict[str, list[str]] = {}
        for placed in self.statements("CATEGORY"):
            words = placed.statement.words
            found.setdefault(words[2], []).append(words[1])
        return found

    def global_categories(self) -> set[str]:
        """Every ``+global`` category assigned or limited here or in any splice."""
        used = set(self.categories()) | {p.statement.words[1] for p in self.statements("MAXJOBS")}
        names = {name for name in used if name.startswith("+")}
        for _, splice in self.splices:
            names |= splice.global_categories()
        return names

    def maxjobs(self, category: str) -> Setting | None:
        """The value DAGMan uses for `category` in this DAG.

        The scope's last MAXJOBS line wins. A ``+global`` category not limited in
        the scope takes the value of the first splice (in file order) that limits
        it: observed with condor_dagman 25.13, where a higher level overrides a
        splice and, among splices, the first one parsed keeps its value.
        """
        lines = [p for p in self.statements("MAXJOBS") if p.statement.words[1] == category]
        if lines:
            return Setting(int(lines[-1].statement.words[2]), lines[-1].where)
        if category.startswith("+"):
            for name, splice in self.splices:
                found = splice.maxjobs(category)
                if found is not None:
                    return Setting(found.value, f"splice {name}, {found.where}")
        return None


def load_dag(path: Path) -> DagTree:
    """Read a DAG file with the files its INCLUDE and SPLICE lines name.

    Relative names are taken from the DAG file's directory (and a splice's DIR),
    which is where DAGMan looks when the DAG is submitted from its own directory.
    """
    return _load(path, path.parent, ())


def _load(path: Path, base: Path, stack: tuple[Path, ...], named_at: str = "") -> DagTree:
    top = _read(path, stack, named_at)
    inside = (*stack, path.resolve())
    scope = tuple(_expand(top, base, inside))
    splices = []
    for placed in scope:
        if placed.statement.keyword != "SPLICE":
            continue
        words = placed.statement.words
        directory = base / _unquote(words[4]) if len(words) == 5 else base
        at = f"{placed.where}: SPLICE {words[1]}"
        splices.append((words[1], _load(directory / _unquote(words[2]), directory, inside, at)))
    return DagTree(top, scope, tuple(splices))


def _expand(dag: DagFile, base: Path, stack: tuple[Path, ...]) -> list[Placed]:
    placed: list[Placed] = []
    for statement in dag.statements:
        if statement.keyword != "INCLUDE":
            placed.append(Placed(dag, statement))
            continue
        included = base / _unquote(statement.words[1])
        placed.extend(_expand(_read(included, stack, f"{dag.source}:{statement.line}"), base,
                              (*stack, included.resolve())))  # fmt: skip
    return placed


def _read(path: Path, stack: tuple[Path, ...], named_at: str = "") -> DagFile:
    where = f"{named_at}: " if named_at else ""
    if path.resolve() in stack:
        raise DagError(f"{where}{path} includes or splices itself (a cycle)")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise DagError(f"{where}{path}: file not found") from None
    except UnicodeDecodeError:
        raise DagError(f"{where}{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DagError(f"{where}{path}: cannot read ({exc.strerror})") from None
    return parse_dag(text, str(path))


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word


def rewrite_maxjobs(tree: DagTree, category: str, jobs: int) -> str:
    """The top file's text with `category` limited to `jobs`; included files stay as they are.

    The top file's own MAXJOBS lines of the category change in place. A line is
    appended to the top file when it has none, or when a later one from an
    INCLUDE would otherwise win.
    """
    text = set_maxjobs(tree.top, category, jobs)
    lines = [p for p in tree.statements("MAXJOBS") if p.statement.words[1] == category]
    own = [p for p in lines if p.file is tree.top]
    if own and lines[-1].file is not tree.top:
        text = text + _separator(text) + f"MAXJOBS {category} {jobs}" + _line_end(text)
    return text
