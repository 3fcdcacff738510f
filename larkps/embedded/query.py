"""Request-parameter handling shared by the archive routes (time filters, paging, errors)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ELMOND_MAX_LIMIT = 10000
TIME_KEYS = ("time", "time-start", "time-end", "time-range")


class HttpError(Exception):
    """An error that becomes an HTTP status and a JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BadRequest(HttpError):
    """HTTP 400."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class NotFound(HttpError):
    """HTTP 404."""

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(404, message)


@dataclass(frozen=True)
class TimeWindow:
    """[begin, end] in Unix seconds; ``end`` None means open."""

    begin: int
    end: int | None


def _int(value: str, what: str = "Time parameter") -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{what} must be an integer") from None


def time_window(params: dict[str, str], now: int) -> TimeWindow | None:
    """The time filter of a request, with esmond's/elmond's combination rules."""
    p = {k: _int(params[k]) for k in TIME_KEYS if k in params}
    if not p:
        return None
    begin, end = 0, now
    if "time" in p:
        begin = end = p["time"]
    elif "time-start" in p and "time-end" in p:
        begin, end = p["time-start"], p["time-end"]
    elif "time-start" in p and "time-range" in p:
        begin, end = p["time-start"], p["time-start"] + p["time-range"]
    elif "time-end" in p and "time-range" in p:
        begin, end = p["time-end"] - p["time-range"], p["time-end"]
    elif "time-start" in p:
        return TimeWindow(p["time-start"], None)
    elif "time-end" in p:
        end = p["time-end"]
    else:
        return TimeWindow(now - p["time-range"], None)
    if end < begin:
        raise BadRequest("Requested start time must be less than end time")
    return TimeWindow(begin, end)


def paging(params: dict[str, str], default: int, flavour: str) -> tuple[int, int]:
    """(limit, offset) of a request; elmond rejects limits above 10000."""
    limit = _int(params["limit"], "limit parameter") if params.get("limit") else default
    offset = _int(params["offset"], "offset parameter") if params.get("offset") else 0
    if limit < 1 or offset < 0:
        raise BadRequest("limit must be positive and offset must not be negative")
    if flavour == "elmond" and limit > ELMOND_MAX_LIMIT:
        raise BadRequest(f"limit parameter cannot exceed {ELMOND_MAX_LIMIT}")
    return limit, offset


def _with_query(url: str, updates: dict[str, int], drop: tuple[str, ...] = ()) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key in drop:
        query.pop(key, None)
    query.update({k: str(v) for k, v in updates.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def page_links(
    url: str, limit: int, offset: int, total: int, flavour: str
) -> tuple[str | None, str | None]:
    """(previous, next) page URLs as DRF (esmond) or elmond build them."""
    nxt = None
    if offset + limit < total:
        size = min(limit, total - offset - limit) if flavour == "elmond" else limit
        nxt = _with_query(url, {"limit": size, "offset": offset + limit})
    if offset <= 0:
        return None, nxt
    if flavour == "elmond":
        back = {"limit": min(limit, offset), "offset": max(offset - limit, 0)}
        return _with_query(url, back), nxt
    if offset - limit <= 0:
        return _with_query(url, {"limit": limit}, drop=("offset",)), nxt
    return _with_query(url, {"limit": limit, "offset": offset - limit}), nxt
