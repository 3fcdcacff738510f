"""Shared value types that cross stage boundaries.

Units (one internal unit per quantity, used everywhere inside larkps):

* throughput: bits per second (Mbps only in ClassAds and tables)
* one-way delay, RTT, clock error: milliseconds
* loss: fraction 0..1
* time: integer Unix seconds, UTC
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, NewType

PATH_AD_TYPE = "LarkPSPath"  # MyType of the per-path ads larkps publishes
SITE_AD_TYPE = "LarkPSSite"  # MyType of the per-site ads


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
    # Per-test scalars from archives that keep no histograms (OpenSearch rtt, WLCG ps_owd):
    OWDELAY_MEDIAN = "owdelay_median"  # ms, median one-way delay of one test
    OWDELAY_MEAN = "owdelay_mean"  # ms, mean one-way delay of one test
    RTT_MEAN = "rtt_mean"  # ms, mean round-trip time of one test
    RTT_MIN = "rtt_min"  # ms, minimum round-trip time of one test
    # esmond/elmond event types of rtt (ping) and trace tests:
    LOSS_RATE_BIDIR = "loss_rate_bidir"  # fraction per round-trip test
    PACKETS_LOST_BIDIR = "packets_lost_bidir"  # count per round-trip test
    PATH = "path"  # traceroute: value = hop count, note = sha256 fingerprint of the hop IPs


#: The two directions of a site's aggregate capacity (config keys and throttle names).
EGRESS = "egress"
INGRESS = "ingress"

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
    "packet-loss-rate-bidir": Metric.LOSS_RATE_BIDIR,
    "packet-count-lost-bidir": Metric.PACKETS_LOST_BIDIR,
    "packet-trace": Metric.PATH,
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
    Metric.OWDELAY_MEDIAN: "ms",
    Metric.OWDELAY_MEAN: "ms",
    Metric.RTT_MEAN: "ms",
    Metric.RTT_MIN: "ms",
    Metric.LOSS_RATE_BIDIR: "fraction",
    Metric.PACKETS_LOST_BIDIR: "packets",
    Metric.PATH: "hops",
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


Histogram = NewType("Histogram", bytes)
"""Delay buckets, packed: n little-endian float64 values (ms, ascending), then n uint32
counts. Made and read by larkps.histogram."""


class Point(NamedTuple):
    """One measurement: a scalar value or a histogram, at ts.

    A named tuple rather than a frozen dataclass: a big cycle makes a million of them,
    and a tuple is made in half the time (no ``object.__setattr__`` per field).
    """

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


class Basis(StrEnum):
    """What a delay or loss figure is computed from, best first (docs/statistics.md)."""

    HISTOGRAMS = "histograms"  # every packet of the window's merged latency histograms
    TEST_MEDIANS = "test-medians"  # per-test median delays: the archive keeps no histograms
    TEST_MEANS = "test-means"  # per-test mean delays
    COUNTS = "counts"  # sum(lost) / sum(sent) of one-way packet counts
    COUNTS_BIDIR = "counts-bidir"  # the same from round-trip (ping) packet counts
    RATES = "rates"  # mean of per-test one-way loss fractions: an approximation
    RATES_BIDIR = "rates-bidir"  # mean of per-test round-trip loss fractions


@dataclass(frozen=True, slots=True)
class Quality:
    """How far one figure can be trusted (docs/statistics.md).

    ``completeness`` is the fraction of expected tests present in the window, from
    the series' cadence (the median gap between its tests); None when the cadence is
    unknown. ``stale``: the newest sample is older than the configured limit (or
    there is none). ``low``: completeness below the configured minimum.
    ``clock_error``: negative one-way delays or large time-error estimates.
    """

    samples: int = 0  # tests in the window
    expected: float | None = None  # tests the cadence predicts for the window
    completeness: float | None = None  # samples / expected, capped at 1
    age: int | None = None  # seconds from the newest sample to the window end
    stale: bool = True
    low: bool = False
    clock_error: bool = False
    cadence: int | None = None  # seconds between tests (median gap)
    rejected: int = 0  # samples dropped as impossible (NaN, negative rates, ...)

    @property
    def trusted(self) -> bool:
        """Fresh, complete enough and free of clock trouble."""
        return self.samples > 0 and not (self.stale or self.low or self.clock_error)


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution statistics of one metric over one window.

    ``std`` is the population standard deviation (ddof 0); for histograms every
    statistic is over all samples of the merged histograms, ``count`` is tests.
    """

    count: int
    median: float | None = None
    p10: float | None = None
    p90: float | None = None
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    latest_ts: int | None = None
    p95: float | None = None
    std: float | None = None
    latest_value: float | None = None  # value of the newest test (histogram: its median)
    age: int | None = None  # window end - latest_ts
    p25: float | None = None
    p75: float | None = None
    quality: Quality | None = None
    basis: Basis | None = None  # delays with tests: histograms or per-test scalars


@dataclass(frozen=True, slots=True)
class LossSummary:
    """Packet loss over one window: sum(lost) / sum(sent) from packet counts.

    An archive that keeps only per-test loss fractions (WLCG ``ps_packetloss``) has
    no counts: ``rate`` is then the mean of those fractions (an approximation, see
    docs/statistics.md) and ``packets_sent`` is 0.
    """

    count: int
    packets_sent: int = 0
    packets_lost: int = 0
    latest_ts: int | None = None
    quality: Quality | None = None
    rate: float | None = None  # mean per-test fraction; only without packet counts
    basis: Basis | None = None  # counts or rates (one-way or round trip), when count > 0

    @property
    def fraction(self) -> float | None:
        """sum(lost) / sum(sent); without packet counts the mean per-test rate (or None)."""
        if self.packets_sent > 0:
            return self.packets_lost / self.packets_sent
        return self.rate


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
    retransmits: Summary = Summary(count=0)  # packets per test
    clock_error: Summary = Summary(count=0)  # time-error-estimates, ms
    window_start: int | None = None  # None: window_end - window (rollups may start earlier)
    source_host: str | None = None  # set for per-host-pair statistics
    destination_host: str | None = None

    @property
    def start(self) -> int:
        """The exclusive start of the window actually covered."""
        return self.window_end - self.window if self.window_start is None else self.window_start


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
    total: float | None = None  # sum of the values: packet counts (loss = sum lost / sum sent)
    first_ts: int | None = None  # the pair's oldest document in [start, end]
    documents: int | None = None  # the pair's documents in [start, end], failed runs included


class Provenance(StrEnum):
    """Where a bandwidth figure comes from."""

    MEASURED = "measured"  # throughput tests on this path
    MODELLED = "modelled"  # TCP model from RTT and loss
    FORECAST = "forecast"  # a predictor over the measured series


@dataclass(frozen=True, slots=True)
class Calibration:
    """Achieved over predicted for a site pair (larkps.stats.calibration): the ratio applied
    to its expected bandwidth (1 when not ``applied``), its live samples and spread."""

    ratio: float
    count: int
    spread: float
    applied: bool
    note: str  # the provenance, in words


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
    calibration: Calibration | None = None  # applied to forecast and error (larkps.stats.expected)

    @property
    def lower_bound_bps(self) -> float | None:
        """forecast - error, never negative; None when there is no figure."""
        return lower_bound(self.forecast_bps, self.error_bps)


def lower_bound(expected: float | None, error: float) -> float | None:
    """The expected-bandwidth figure: expected - error, never negative (None: no figure).

    The one formula: estimates, ads, throttles and the advisor all use it
    (larkps.stats.expected).
    """
    if expected is None:
        return None
    return max(0.0, expected - error)


class ProblemKind(StrEnum):
    """What kind of trouble a :class:`FetchProblem` records."""

    ERROR = "error"  # the archive or series could not be read
    BAD_VALUES = "bad-values"  # points or metadata objects rejected
    DEADLINE = "deadline"  # the cycle deadline left it fetched in part or not at all


@dataclass(frozen=True, slots=True)
class FetchProblem:
    """A series or archive that could not be read in a cycle."""

    archive: str
    what: str
    problem: str
    kind: ProblemKind = ProblemKind.ERROR


@dataclass(frozen=True, slots=True)
class PublishProblem:
    """A publish target that did not take a cycle's ads (they wait in its spool)."""

    target: str  # e.g. "collector cm.example.org"
    problem: str


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one cycle did."""

    started: int
    window: int
    archives: tuple[str, ...]
    series: int
    points: int  # in the window
    paths: int
    ads_written: int
    outputs: tuple[str, ...] = ()
    problems: tuple[FetchProblem, ...] = field(default=())
    duration_s: float = 0.0
    stages: tuple[tuple[str, float], ...] = ()  # (stage, seconds): fetch, aggregate, publish
    ads_spooled: int = 0  # ads left in the collector spool after a failed delivery
    skipped: tuple[str, ...] = ()  # archives not due this cycle (their own interval)
    ingested: int = 0  # points new to the state this cycle
    publish_problems: tuple[PublishProblem, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.problems or self.publish_problems)

    @property
    def cut_by_deadline(self) -> bool:
        """Whether the cycle deadline left series unfetched or fetched in part."""
        return any(p.kind == ProblemKind.DEADLINE for p in self.problems)


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    """How many jobs may move data at once over one bottleneck, and at what rate.

    ``jobs`` (N) becomes a DAGMan MAXJOBS or node throttle, ``per_job_bps`` (R) a
    per-job rate limit; R x N never exceeds target utilisation x ``bottleneck_bps``.
    """

    jobs: int  # N
    per_job_bps: float  # R, bits/s
    bottleneck: str  # "path A->B/ipv4", "site A egress", "given bandwidth"
    bottleneck_bps: float | None  # usable bandwidth of the bottleneck; None if unknown
    target_jobs: int  # N the bandwidth alone allows, before step limits and clamps
    held: bool = False  # stale or low-quality input: the previous N was kept
    clamped: bool = False  # raised to min_jobs or cut to max_jobs
    stepped: bool = False  # the change was limited to max_step_up / max_step_down
    collapsed: bool = False  # the bottleneck collapsed; the step-down limit was skipped
    rationale: str = ""  # one line: inputs, formula, result


@dataclass(frozen=True, slots=True)
class Forecast:
    """The next value of one path's metric by the best recent predictor (NWS method).

    ``error`` is that predictor's mean absolute one-step error over the recent
    history, in the metric's unit; ``method`` names the predictor.
    """

    path: PathKey
    metric: Metric
    value: float
    error: float
    method: str
    samples: int  # history length the predictors ran over
    latest_ts: int | None = None


class AlarmKind(StrEnum):
    """What an alarm says (rules and defaults in docs/statistics.md)."""

    BANDWIDTH_DROP = "bandwidth_drop"
    LOSS = "loss"
    COMPLETE_LOSS = "complete_loss"
    HIGH_DELAY = "high_delay"
    CLOCK_OFFSET = "clock_offset"
    SITE_PATHS = "site_paths"  # a site with many affected partner paths


@dataclass(frozen=True, slots=True)
class Alarm:
    """One raised alarm on a path (``subject`` = PathKey.name) or a site."""

    kind: AlarmKind
    subject: str
    site: str  # the site it concerns (path: its source site)
    since: int  # when it was first raised
    value: float  # the observed figure
    threshold: float  # the limit it crossed
    clearing: bool = False  # condition gone, waiting for enough good windows
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PathHealth:
    """Health of one path in [0, 1] with the alarms that lowered it."""

    path: PathKey
    window: int
    health: float
    alarms: tuple[AlarmKind, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteStats:
    """One site over one window, from its partner paths in both address families.

    Bandwidth and delay are medians over partner paths of the path medians; loss is
    Σlost/Σsent over those paths. ``health`` in [0, 1] (docs/statistics.md).
    """

    site: str
    window: int
    window_end: int
    outbound_bps: float | None
    inbound_bps: float | None
    outbound_loss: float | None
    inbound_loss: float | None
    outbound_owdelay_ms: float | None
    inbound_owdelay_ms: float | None
    partners: int  # partner sites with any path to or from this site
    fresh_partners: int  # of those, partners with a fresh figure
    health: float
    alarms: tuple[AlarmKind, ...] = ()


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    """Thresholds and windows of the alarm rules (config section [alarms])."""

    bandwidth_z: float = -2.0
    bandwidth_drop: float = 0.5
    bandwidth_window: int = 86400
    bandwidth_baseline: int = 21 * 86400
    loss: float = 0.02
    loss_window: int = 86400
    delay_p95_factor: float = 1.5
    delay_iqr_factor: float = 2.0
    delay_window: int = 3600
    delay_baseline: int = 7 * 86400
    delay_min_tests: int = 10
    clock_offset_ms: float = 100.0
    clock_window: int = 86400
    site_paths: int = 5
    clear_after: int = 3
    forget_after: int = 7 * 86400

    @property
    def windows(self) -> tuple[int, ...]:
        """The statistics windows the rules read."""
        return tuple(
            sorted({self.loss_window, self.delay_window, self.delay_baseline, self.clock_window})
        )


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """TCP model constants (config section [model])."""

    mss_bytes: int = 1448
    mathis_constant: float = math.sqrt(1.5)  # C: periodic loss, no delayed ACKs
    path_capacity_bps: float = 10e9  # cap when no site capacity is configured
