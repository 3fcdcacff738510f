"""Request routing of the embedded archive, independent of the HTTP transport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from larkps.embedded.catalog import (
    ALL_EVENT_TYPES,
    ELMOND_WINDOWS,
    URL_TO_JSON_SUMMARY,
    Summary,
    has_summary,
)
from larkps.embedded.filters import build_filter
from larkps.embedded.mesh import Mesh
from larkps.embedded.metadata import ARCHIVE_PATH, event_entry, render
from larkps.embedded.query import BadRequest, HttpError, NotFound, page_links, paging, time_window
from larkps.embedded.series import Series
from larkps.embedded.world import DAY

ESMOND_METADATA_LIMIT = 1500
ELMOND_METADATA_LIMIT = 1000
DATA_LIMIT = 1000


@dataclass
class Response:
    """Status, JSON-able body and extra headers."""

    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """The parts of a GET request the routes need."""

    path: str
    query: str
    root: str

    @property
    def params(self) -> dict[str, str]:
        """Query parameters (the last value wins, as Django's QueryDict.get does)."""
        if "%" in self.query or "+" in self.query:
            return dict(parse_qsl(self.query, keep_blank_values=True))
        # nothing to unquote: parse_qsl's split, without its per-field unquote calls
        pairs = (field.partition("=") for field in self.query.split("&") if field)
        return {name: value for name, _, value in pairs}

    @property
    def url(self) -> str:
        """Absolute URL of the request."""
        return f"{self.root}{self.path}" + (f"?{self.query}" if self.query else "")


class ArchiveApp:
    """Maps requests to mesh queries; ``clock`` gives the archive's now."""

    def __init__(self, mesh: Mesh, clock: Callable[[], float]) -> None:
        self.mesh = mesh
        self.clock = clock
        self.flavour = mesh.config.flavour

    def handle(self, request: Request) -> Response:
        """Serve one GET request (errors become JSON bodies)."""
        try:
            return self._route(request)
        except HttpError as err:
            key = "detail" if self.flavour == "esmond" else "error"
            return Response(err.status, {key: err.message})

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/larkps/sites":
            return Response(200, self.mesh.site_map())
        if path == "/larkps/truth":
            return self._truth(request.params)
        if path.rstrip("/") == ARCHIVE_PATH:
            return self._metadata_list(request)
        if not path.startswith(ARCHIVE_PATH + "/"):
            raise NotFound()
        trailing = path.endswith("/")
        parts = path[len(ARCHIVE_PATH) + 1 :].rstrip("/").split("/")
        series = self.mesh.series_by_key(parts[0])
        if series is None:
            raise NotFound(f"Unable to find metadata with key {parts[0]}")
        return self._series_route(request, series, parts[1:], trailing)

    def _series_route(
        self, request: Request, series: Series, rest: list[str], trailing: bool
    ) -> Response:
        now = int(self.clock())
        if not rest:
            if self.flavour == "elmond" and trailing:
                raise NotFound()
            return Response(200, render(series, self.mesh.shape, self.mesh.at(now), request.root))
        if self.flavour == "elmond" and len(rest) != 3:
            raise NotFound()
        if len(rest) == 1:
            entry = event_entry(series, self.mesh.shape, self.mesh.at(now), rest[0])
            return Response(200, [entry] if entry else [])
        if len(rest) == 2 and rest[1] != "base":
            return Response(200, self._windows(series, rest[0], rest[1], now))
        if len(rest) > 3:
            raise NotFound()
        window = rest[2] if len(rest) == 3 else "0"
        return self._data(request.params, series, rest[0], rest[1], window, now)

    # -- metadata -------------------------------------------------------------------------
    def _metadata_list(self, request: Request) -> Response:
        params, now = request.params, int(self.clock())
        default = ESMOND_METADATA_LIMIT if self.flavour == "esmond" else ELMOND_METADATA_LIMIT
        limit, offset = paging(params, default, self.flavour)
        flt = build_filter(params, self.mesh.shape, self._resolve, time_window(params, now))
        clock = self.mesh.at(now)
        matched = [s for s in self.mesh.series if flt.matches(s, clock)]
        objs = [
            render(s, self.mesh.shape, clock, request.root)
            for s in matched[offset : offset + limit]
        ]
        prev, nxt = page_links(request.url, limit, offset, len(matched), self.flavour)
        if objs:
            objs[0] |= {
                "metadata-count-total": len(matched),
                "metadata-previous-page": prev,
                "metadata-next-page": nxt,
            }
        links = [f'<{u}>; rel="{rel}"' for u, rel in ((nxt, "next"), (prev, "prev")) if u]
        headers = {"Link": ", ".join(links)} if links and self.flavour == "esmond" else {}
        return Response(200, objs, headers)

    def _resolve(self, value: str, rule: str) -> list[str]:
        found = self.mesh.resolve(value, rule)
        if not found:
            raise BadRequest(f"Unable to find address for host {value}")
        return found

    def _windows(self, series: Series, event: str, plural: str, now: int) -> list[object]:
        """esmond's list of windows of one summary type of an event type."""
        stype = URL_TO_JSON_SUMMARY.get(plural)
        if stype is None:
            raise BadRequest(f"Invalid summary type '{plural}'")
        entry = event_entry(series, self.mesh.shape, self.mesh.at(now), event)
        sums = entry["summaries"] if entry else []
        assert isinstance(sums, list)
        return [s for s in sums if isinstance(s, dict) and s.get("summary-type") == stype]

    # -- data ----------------------------------------------------------------------------
    def _data(
        self,
        params: dict[str, str],
        series: Series,
        event: str,
        plural: str,
        window_text: str,
        now: int,
    ) -> Response:
        if event not in ALL_EVENT_TYPES:
            raise BadRequest(f"Unsupported event type '{event}' provided")
        stype = URL_TO_JSON_SUMMARY.get(plural)
        if stype is None:
            raise BadRequest(f"Invalid summary type '{plural}'")
        try:
            window = int(window_text)
        except ValueError:
            raise BadRequest("Summary window must be an integer") from None
        limit, offset = paging(params, DATA_LIMIT, self.flavour)
        tw = time_window(params, now)
        lo = max(tw.begin if tw else 0, now - self.mesh.config.retention_days * DAY)
        hi = now if tw is None or tw.end is None else min(tw.end, now)
        if hi < lo:
            return Response(200, [])
        if stype == "base":
            if self.flavour == "elmond" and window != 0:
                raise BadRequest(f"Unable to build aggregation for {event}/{plural}")
            return Response(200, self.mesh.points(series.key, event, lo, hi, limit, offset))
        self._check_summary(series, event, stype, window)
        if self.flavour == "esmond" and not has_summary(
            series.kind, "esmond", event, Summary(stype, window)
        ):
            return Response(200, [])
        points = self.mesh.summary(series.key, event, stype, window, lo, hi, now)
        return Response(200, points[offset : offset + limit])

    def _check_summary(self, series: Series, event: str, stype: str, window: int) -> None:
        if self.flavour != "elmond":
            return
        allowed = ELMOND_WINDOWS + ((0,) if stype == "statistics" else ())
        if window not in allowed:
            raise BadRequest(f"{window} is not a supported summary_window")
        if stype == "aggregation" and event.startswith("histogram-"):
            raise BadRequest(f"Unable to build aggregation for {event}/aggregations")

    # -- ground truth -------------------------------------------------------------------
    def _truth(self, params: dict[str, str]) -> Response:
        names = ("src_site", "dst_site", "family", "metric", "start", "end")
        missing = [n for n in names if not params.get(n)]
        if missing:
            raise BadRequest(f"missing parameter(s): {', '.join(missing)}")
        try:
            truth = self.mesh.truth(
                params["src_site"],
                params["dst_site"],
                params["family"],
                params["metric"],
                int(params["start"]),
                int(params["end"]),
            )
        except ValueError as err:
            raise BadRequest(str(err)) from None
        return Response(200, truth.to_dict())
