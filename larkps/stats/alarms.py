"""Pure alarm rules (after sand-ci's AlarmsAndAlerts) and their hysteresis.

Rules, each with configurable defaults ([alarms], docs/statistics.md):

* bandwidth drop: over the path's throughput tests, the mean of the last
  ``bandwidth_window`` has a z-score <= ``bandwidth_z`` against the tests of the
  last ``bandwidth_baseline`` (21 days or the kept history, whichever is shorter)
  and lies >= ``bandwidth_drop`` below their mean;
* loss: Σlost/Σsent over ``loss_window`` >= ``loss``; complete loss when every
  packet was lost;
* high delay: one-way delay p95 over ``delay_window`` above
  max(``delay_p95_factor`` x baseline p95, baseline mean + ``delay_iqr_factor`` x
  baseline IQR) with the ``delay_baseline`` window as baseline; paths whose delays
  carry the clock-error flag, or with fewer than ``delay_min_tests`` tests, are
  not judged;
* clock offset (a site): median over partners of (mean OWD out - mean OWD in) / 2
  above ``clock_offset_ms`` in absolute value;
* site: a site with >= ``site_paths`` partner paths under alarm.

Hysteresis: an alarm is raised at once and clears only after ``clear_after``
consecutive good evaluations; a subject that cannot be judged (no data) keeps its
state, and is forgotten after ``forget_after`` seconds without a judgement.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from larkps.model import Alarm, AlarmKind, AlarmPolicy, PathKey, PathStats
from larkps.stats.aggregate.history import History


@dataclass(frozen=True, slots=True)
class Finding:
    """One judgement of one rule on one subject: bad or good."""

    kind: AlarmKind
    subject: str
    site: str
    bad: bool
    value: float
    threshold: float
    detail: str = ""
    peer: str = ""  # destination site of a path

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.subject)


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """Persisted state of one alarm between cycles."""

    kind: AlarmKind
    subject: str
    site: str
    since: int
    good: int  # consecutive good evaluations since the last bad one
    value: float
    threshold: float
    judged: int  # last time the subject could be judged
    detail: str = ""
    peer: str = ""  # destination site of a path

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.subject)


def bandwidth_finding(
    path: PathKey, history: History, now: int, policy: AlarmPolicy
) -> Finding | None:
    """z-score and relative drop of the recent mean against the baseline tests."""
    ts, values = history
    base = values[(ts > now - policy.bandwidth_baseline) & (ts <= now)]
    current = values[(ts > now - policy.bandwidth_window) & (ts <= now)]
    if current.size == 0 or base.size < 3:
        return None
    mean, std = float(base.mean()), float(base.std())
    if mean <= 0 or std <= 0:
        return None
    level = float(current.mean())
    z = (level - mean) / std
    drop = 1.0 - level / mean
    bad = z <= policy.bandwidth_z and drop >= policy.bandwidth_drop
    detail = f"z {z:.2f}, {100 * drop:.0f}% below the baseline mean over {base.size} tests"
    return Finding(
        AlarmKind.BANDWIDTH_DROP,
        path.name,
        path.source_site,
        bad,
        level,
        mean,
        detail,
        path.destination_site,
    )


def loss_findings(stats: PathStats, policy: AlarmPolicy) -> list[Finding]:
    """Loss at or above the limit, and complete loss (judged apart)."""
    fraction = stats.loss.fraction
    if fraction is None:
        return []
    path = stats.path
    complete = fraction >= 1.0  # lost is capped at sent: every packet lost
    lossy = not complete and fraction >= policy.loss
    detail = (
        f"{stats.loss.packets_lost} of {stats.loss.packets_sent} packets lost"
        if stats.loss.rate is None
        else f"mean loss rate of {stats.loss.count} tests (no packet counts)"
    )
    return [
        Finding(
            kind, path.name, path.source_site, bad, fraction, limit, detail, path.destination_site
        )
        for kind, bad, limit in (
            (AlarmKind.COMPLETE_LOSS, complete, 1.0),
            (AlarmKind.LOSS, lossy, policy.loss),
        )
    ]


def delay_finding(current: PathStats, baseline: PathStats, policy: AlarmPolicy) -> Finding | None:
    """Current p95 against max(factor x baseline p95, baseline mean + k x IQR)."""
    now, base = current.owdelay, baseline.owdelay
    if now.count < policy.delay_min_tests or base.count < policy.delay_min_tests:
        return None
    if any(s.quality is not None and s.quality.clock_error for s in (now, base)):
        return None
    if None in (now.p95, base.p95, base.mean, base.p25, base.p75):
        return None
    assert now.p95 is not None and base.p95 is not None and base.mean is not None
    assert base.p25 is not None and base.p75 is not None
    limit = max(
        policy.delay_p95_factor * base.p95,
        base.mean + policy.delay_iqr_factor * (base.p75 - base.p25),
    )
    detail = f"p95 {now.p95:.2f} ms against {limit:.2f} ms (baseline p95 {base.p95:.2f} ms)"
    path = current.path
    bad = now.p95 > limit
    return Finding(
        AlarmKind.HIGH_DELAY,
        path.name,
        path.source_site,
        bad,
        now.p95,
        limit,
        detail,
        path.destination_site,
    )


def clock_findings(stats: Iterable[PathStats], policy: AlarmPolicy) -> list[Finding]:
    """Per site: median over partners of (mean OWD out - mean OWD in) / 2."""
    means = {s.path: s.owdelay.mean for s in stats if s.owdelay.mean is not None}
    offsets: dict[str, list[float]] = {}
    for path, out in means.items():
        back = means.get(PathKey(path.destination_site, path.source_site, path.family))
        if out is not None and back is not None:
            offsets.setdefault(path.source_site, []).append((out - back) / 2.0)
    findings = []
    for site, values in sorted(offsets.items()):
        offset = statistics.median(values)
        detail = f"median over {len(values)} partner paths"
        bad = abs(offset) > policy.clock_offset_ms
        findings.append(
            Finding(AlarmKind.CLOCK_OFFSET, site, site, bad, offset, policy.clock_offset_ms, detail)
        )
    return findings


def site_findings(
    path_alarms: Iterable[AlarmRecord], sites: Iterable[str], policy: AlarmPolicy
) -> list[Finding]:
    """A site with at least ``site_paths`` partner paths under alarm (either direction)."""
    affected: dict[str, set[str]] = {site: set() for site in sites}
    for record in path_alarms:
        for site in (record.site, record.peer):
            affected.setdefault(site, set()).add(record.subject)
    return [
        Finding(
            AlarmKind.SITE_PATHS,
            site,
            site,
            len(paths) >= policy.site_paths,
            float(len(paths)),
            float(policy.site_paths),
            f"{len(paths)} partner paths under alarm",
        )
        for site, paths in sorted(affected.items())
    ]


def step(
    previous: Mapping[tuple[str, str], AlarmRecord],
    findings: Iterable[Finding],
    now: int,
    policy: AlarmPolicy,
) -> dict[tuple[str, str], AlarmRecord]:
    """Apply one cycle's findings with hysteresis; returns the records to keep."""
    records = dict(previous)
    for finding in findings:
        old = records.get(finding.key)
        if finding.bad:
            since = old.since if old is not None else now
            records[finding.key] = AlarmRecord(
                kind=finding.kind,
                subject=finding.subject,
                site=finding.site,
                since=since,
                good=0,
                value=finding.value,
                threshold=finding.threshold,
                judged=now,
                detail=finding.detail,
                peer=finding.peer,
            )
        elif old is not None:
            good = old.good + 1
            if good >= policy.clear_after:
                del records[finding.key]
            else:
                records[finding.key] = replace(old, good=good, judged=now, value=finding.value)
    return {k: r for k, r in records.items() if now - r.judged <= policy.forget_after}


def to_alarm(record: AlarmRecord) -> Alarm:
    return Alarm(
        kind=record.kind,
        subject=record.subject,
        site=record.site,
        since=record.since,
        value=record.value,
        threshold=record.threshold,
        clearing=record.good > 0,
        detail=record.detail,
    )


PATH_KINDS = (
    AlarmKind.BANDWIDTH_DROP,
    AlarmKind.LOSS,
    AlarmKind.COMPLETE_LOSS,
    AlarmKind.HIGH_DELAY,
)


def evaluate(
    windows: Mapping[int, Iterable[PathStats]],
    histories: Mapping[PathKey, History],
    previous: Mapping[tuple[str, str], AlarmRecord],
    now: int,
    policy: AlarmPolicy,
) -> dict[tuple[str, str], AlarmRecord]:
    """Every rule over one cycle's statistics (by window length) and histories."""
    findings: list[Finding] = []
    for stats in windows.get(policy.loss_window, ()):
        findings.extend(loss_findings(stats, policy))
    baseline = {s.path: s for s in windows.get(policy.delay_baseline, ())}
    for stats in windows.get(policy.delay_window, ()):
        if stats.path in baseline:
            findings.extend(_some(delay_finding(stats, baseline[stats.path], policy)))
    for path, history in sorted(histories.items(), key=lambda item: item[0].name):
        findings.extend(_some(bandwidth_finding(path, history, now, policy)))
    findings.extend(clock_findings(windows.get(policy.clock_window, ()), policy))
    records = step(previous, findings, now, policy)
    sites = {site for stats in windows.values() for s in stats for site in _ends(s.path)}
    path_records = [r for r in records.values() if r.kind in PATH_KINDS]
    return step(records, site_findings(path_records, sorted(sites), policy), now, policy)


def _some(finding: Finding | None) -> list[Finding]:
    return [] if finding is None else [finding]


def _ends(path: PathKey) -> tuple[str, str]:
    return (path.source_site, path.destination_site)
