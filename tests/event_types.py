"""Metric -> the event-type name archives give it, for building test series."""

from __future__ import annotations

from larkps.model import EVENT_TYPE_METRICS, Metric
from larkps.sources.search.specs import OPENSEARCH_INDICES, PSES_INDICES


def _event_types() -> dict[Metric, str]:
    names = {metric: event for event, metric in EVENT_TYPE_METRICS.items()}
    for index in OPENSEARCH_INDICES + PSES_INDICES:
        for spec in index.fields:
            names.setdefault(spec.metric, spec.event_type)
    return names


EVENTS = _event_types()
