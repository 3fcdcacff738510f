"""Serve recorded OpenSearch/Elasticsearch answers from a real HTTP server on 127.0.0.1.

Each route answers POST ``/<index>/_search`` with the next page of a list and
records what the client sent (JSON body, Authorization header), so tests check
the request bodies: range filter, sort, ``search_after``, composite ``after``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures"


def load(*parts: str) -> Any:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


@dataclass
class Route:
    """One index's ``_search`` endpoint: hit pages and aggregation pages, each in order."""

    pages: list[Any] = field(default_factory=list)
    agg_pages: list[Any] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    agg_bodies: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.auth.append(request.headers.get("Authorization"))
        sent, answers = (
            (self.agg_bodies, self.agg_pages) if "aggs" in body else (self.bodies, self.pages)
        )
        sent.append(body)
        if not answers:
            return Response("no such page", status=404)
        answer = answers[min(len(sent), len(answers)) - 1]
        return Response(json.dumps(answer), content_type="application/json")


def serve(
    server: HTTPServer,
    index: str,
    pages: list[Any] | None = None,
    agg_pages: list[Any] | None = None,
    prefix: str = "",
) -> Route:
    route = Route(pages or [], agg_pages or [])
    server.expect_request(f"{prefix}/{index}/_search", method="POST").respond_with_handler(route)
    return route


EMPTY_HITS = {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
EMPTY_BUCKETS = {"hits": {"hits": []}, "aggregations": {"pairs": {"buckets": []}}}


def serve_empty(server: HTTPServer, *indices: str) -> list[Route]:
    """Indices that exist but hold nothing in the window."""
    return [serve(server, i, pages=[EMPTY_HITS], agg_pages=[EMPTY_BUCKETS]) for i in indices]


def filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = body["query"]["bool"]["filter"]
    return result


def hits(page: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page["hits"]["hits"]
    return result
