"""Archive sources beyond esmond/elmond: perfSONAR 5 OpenSearch and the WLCG ``ps_*`` datastore.

Every source satisfies :class:`~larkps.sources.base.Source` (``discover`` +
``fetch``), like :class:`larkps.fetch.EsmondSource`; these two also satisfy
:class:`~larkps.sources.base.SummarySource` (``summaries``: per-pair statistics
computed by the cluster). Documents become the canonical records of
:mod:`larkps.model`: :class:`~larkps.model.Series`, :class:`~larkps.model.Point`
and :class:`~larkps.model.SeriesSummary`.
"""

from __future__ import annotations

from larkps.sources.base import ArchiveAnswers, Source, SummarySource
from larkps.sources.collect import Collected, collect_summaries, split_modes
from larkps.sources.factory import SEARCH_KINDS, search_source
from larkps.sources.opensearch import OpenSearchSource
from larkps.sources.pses import PsEsSource
from larkps.sources.search import SearchSource

__all__ = [
    "SEARCH_KINDS",
    "ArchiveAnswers",
    "Collected",
    "OpenSearchSource",
    "PsEsSource",
    "SearchSource",
    "Source",
    "SummarySource",
    "collect_summaries",
    "search_source",
    "split_modes",
]
