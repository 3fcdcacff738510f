"""Shared value types that cross stage boundaries.

Units (one internal unit per quantity, used everywhere inside larkps):

* throughput: bits per second (Mbps only in ClassAds and tables)
* one-way delay, RTT, clock error: milliseconds
* loss: fraction 0..1
* time: integer Unix seconds, UTC
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Family(StrEnum):
    """IP address family of a measurement; IPv4 and IPv6 are separate series."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


class Metric(StrEnum):
    """What a series measures, named by larkps rather than by the archive."""

    THROUGHPUT = "throughput"  # bits/s per test
    RETRANSMITS = "retransmits"  # packets per test
    OWDELAY = "owdelay"  # histogram of one-way delay, ms
    RTT = "rtt"  # histogram of round-trip time, ms
    LOSS_RATE = "loss_rate"  # fraction per test
    PACKETS_LOST = "packets_lost"  # count per test
    PACKETS_SENT = "packets_sent"  # count per test
    CLOCK_ERROR = "clock_error"  # ms, estimated max clock error per test
    FAILURE = "failure"  # test failed; value is None, text in `note`


#: esmond/elmond event type -> larkps metric
EVENT_TYPE_METRICS: dict[str, Metric] = {
    "throughput": Metric.THROUGHPUT,
    "packet-retransmits": Metric.RETRANSMITS,
    "histogram-owdelay": Metric.OWDELAY,
    "histogram-rtt": Metric.RTT,
    "packet-loss-rate": Metric.LOSS_RATE,
    "packet-count-lost": Metric.PACKETS_LOST,
    "packet-count-sent": Metric.PACKETS_SENT,
    "time-error-estimates": Metric.CLOCK_ERROR,
    "failures": Metric.FAILURE,
}

METRIC_UNITS: dict[Metric, str] = {
    Metric.THROUGHPUT: "bit/s",
    Metric.RETRANSMITS: "packets",
    Metric.OWDELAY: "ms",
    Metric.RTT: "ms",
    Metric.LOSS_RATE: "fraction",
    Metric.PACKETS_LOST: "packets",
    Metric.PACKETS_SENT: "packets",
    Metric.CLOCK_ERROR: "ms",
    Metric.FAILURE: "",
}


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identity of one measurement series in one archive."""

    archive: str
    metadata_key: str
    event_type: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a measured path."""

    host: str  # hostname as configured in the test (input-source/-destination)
    ip: str
    site: str


@dataclass(frozen=True, slots=True)
class Series:
    """A series of points between two endpoints, as discovered in an archive."""

    key: SeriesKey
    source: Endpoint
    destination: Endpoint
    family: Family
    metric: Metric
    tool: str
    data_uri: str  # used verbatim, as the archive gave it
    bucket_width: float | None = None  # seconds, latency histograms only

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]


Histogram = tuple[tuple[float, int], ...]
"""Sorted (bucket value, count) pairs; bucket values already in ms."""


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement: a scalar value or a histogram, at ts."""

    ts: int
    value: float | None = None
    histogram: Histogram | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PathKey:
    """A directed site-to-site path in one address family."""

    source_site: str
    destination_site: str
    family: Family

    @property
    def name(self) -> str:
        return f"{self.source_site}->{self.destination_site}/{self.family.value}"


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution statistics of one metric over one window."""

    count: int
    median: float | None = None
    p10: float | None = None
    p90: float | None = None
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    latest_ts: int | None = None


@dataclass(frozen=True, slots=True)
class LossSummary:
    """Packet loss over one window: sum(lost) / sum(sent), never a mean of fractions."""

    count: int
    packets_sent: int = 0
    packets_lost: int = 0
    latest_ts: int | None = None

    @property
    def fraction(self) -> float | None:
        if self.packets_sent <= 0:
            return None
        return self.packets_lost / self.packets_sent


@dataclass(frozen=True, slots=True)
class PathStats:
    """Statistics of one path over one window ending at `window_end`."""

    path: PathKey
    window: int  # seconds
    window_end: int
    throughput: Summary  # bits/s
    owdelay: Summary  # ms
    rtt: Summary  # ms
    loss: LossSummary
    failures: int = 0
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """Statistics of one series over [start, end] computed by the archive itself.

    OpenSearch-style sources can aggregate server-side (summary mode) and send these
    instead of raw points. Units as for the series' metric.
    """

    series: Series
    start: int
    end: int
    count: int
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    percentiles: tuple[tuple[float, float], ...] = ()  # (quantile 0..1, value)
    latest_ts: int | None = None


class Provenance(StrEnum):
    """Where a bandwidth figure comes from."""

    MEASURED = "measured"  # throughput tests on this path
    MODELLED = "modelled"  # TCP model from RTT and loss
    FORECAST = "forecast"  # a predictor over the measured series


@dataclass(frozen=True, slots=True)
class BandwidthEstimate:
    """Expected bandwidth of one path, with its error bar and how much to trust it."""

    path: PathKey
    forecast_bps: float | None
    error_bps: float
    provenance: Provenance
    stale: bool
    quality: float  # 0..1: fraction of expected tests present in the window
    latest_ts: int | None
    method: str = ""  # predictor or model name

    @property
    def lower_bound_bps(self) -> float | None:
        """forecast - error, never negative; None when there is no figure."""
        if self.forecast_bps is None:
            return None
        return max(0.0, self.forecast_bps - self.error_bps)


@dataclass(frozen=True, slots=True)
class FetchProblem:
    """A series or archive that could not be read in a cycle."""

    archive: str
    what: str
    problem: str


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one cycle did."""

    started: int
    window: int
    archives: tuple[str, ...]
    series: int
    points: int
    paths: int
    ads_written: int
    outputs: tuple[str, ...] = ()
    problems: tuple[FetchProblem, ...] = field(default=())
    duration_s: float = 0.0

    @property
    def partial(self) -> bool:
        return bool(self.problems)
