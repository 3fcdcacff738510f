"""Logging set-up (text or one JSON object per line, to stderr) and problem lines.

A record may carry structured fields in ``extra={"fields": {...}}``: the JSON
format writes them as fields of the line's object, the text format as
``key=value`` words after the message. Untrusted text in messages is escaped
(:func:`one_line`), so one record is always one line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from larkps.model import FetchProblem, ProblemKind, PublishProblem

LOG_FORMATS = ("text", "json")
RESERVED = ("time", "level", "logger", "message", "exception")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with newlines and other control characters escaped (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(c) or _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def record_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the record's fields
    (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            key: value for key, value in record_fields(record).items() if key not in RESERVED
        }
        document.update(
            time=datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            level=record.levelname.lower(),
            logger=record.name,
            message=record.getMessage(),
        )
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, sort_keys=True, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``; the exception's traceback on the lines after."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


class SchedulerChatter(logging.Filter):
    """APScheduler's warnings about late or skipped runs are routine for a daemon whose
    cycle can outlast its interval: they become INFO records, shown only with -v."""

    def __init__(self, shown: int) -> None:
        super().__init__()
        self.shown = shown  # the lowest level of APScheduler's records to pass

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("apscheduler"):
            return True
        if record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return record.levelno >= self.shown


def configure(verbose: int, fmt: str = "text", default: int = logging.WARNING) -> None:
    """Root logging to stderr at ``default`` (WARNING; INFO for the daemon), INFO (-v)
    or DEBUG (-vv). APScheduler's chatter is below WARNING and shown only with -v."""
    level = logging.DEBUG if verbose > 1 else min(logging.INFO, default) if verbose else default
    scheduler_level = level if verbose else logging.WARNING
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(SchedulerChatter(scheduler_level))
    root = logging.getLogger()
    root.handlers = [
        h
        for h in root.handlers
        if not isinstance(h, logging.StreamHandler) or getattr(h, "stream", None) is None
    ]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(scheduler_level)


def problem_lines(problems: Iterable[FetchProblem | PublishProblem]) -> Iterable[str]:
    """Each problem once, escaped; the series a deadline cut short in one line."""
    cut = []
    for problem in problems:
        if isinstance(problem, PublishProblem):
            yield one_line(f"publish to {problem.target}: {problem.problem}")
        elif problem.kind == ProblemKind.DEADLINE:
            cut.append(problem)
        else:
            yield one_line(f"archive {problem.archive}: {problem.what}: {problem.problem}")
    if cut:
        yield one_line(
            f"partial: the cycle deadline cut {len(cut)} series short (fetched in part or"
            f" not at all), such as archive {cut[0].archive}: {cut[0].what}"
        )
