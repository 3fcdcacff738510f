"""A cycle's calibration: stored transfers -> per-pair ratios -> calibrated estimates.

Wires the pure parts (larkps.stats.calibration, larkps.stats.expected.calibrated) to the state
store (larkps.stats.achieved_state). The predicted figure of a site pair is the lowest
uncalibrated lower bound among its address families; the pair's calibration is
applied to every family's estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from larkps.config.calibration import CalibrationPolicy
from larkps.model import BandwidthEstimate, Calibration
from larkps.stats.achieved_state import (
    AppliedRatio,
    HostSite,
    SitePair,
    fill_predictions,
    load_ratios,
    prune_transfers,
    samples_by_pair,
    save_ratios,
    stored_transfers,
)
from larkps.stats.calibration import Sample, calibrate
from larkps.stats.expected import calibrated
from larkps.store.db import Store


def predicted_figures(estimates: Sequence[BandwidthEstimate]) -> dict[SitePair, float]:
    """Per site pair, the lowest uncalibrated lower bound of its families."""
    out: dict[SitePair, float] = {}
    for e in estimates:
        low = e.lower_bound_bps
        if low is None or low <= 0:
            continue
        pair = (e.path.source_site, e.path.destination_site)
        out[pair] = min(low, out.get(pair, low))
    return out


def pair_calibrations(
    store: Store,
    estimates: Sequence[BandwidthEstimate],
    now: int,
    policy: CalibrationPolicy,
    site_of: HostSite,
    commit: bool = True,
) -> dict[SitePair, Calibration]:
    """This cycle's calibration of every pair with an estimate and a stored transfer.

    ``commit`` (publishing cycles): the applied ratios are kept for the next cycle's
    step and expired transfers pruned. Otherwise (explain, report) a pair with a kept
    ratio shows that ratio, the one its ads carry, and nothing is written but the
    predicted figures of new transfers.
    """
    if commit:
        prune_transfers(store, now - policy.max_age)
    predicted = predicted_figures(estimates)
    since = now - policy.max_age
    transfers = fill_predictions(store, stored_transfers(store, site_of, since), predicted, now)
    samples = samples_by_pair(transfers)
    previous = load_ratios(store)
    out = {}
    for pair in sorted(samples):
        if pair not in predicted:
            continue
        kept = previous.get(pair)
        if not commit and kept is not None:
            out[pair] = _as_applied(samples[pair], kept, now, policy)
            continue
        out[pair] = calibrate(samples[pair], None if kept is None else kept.ratio, now, policy)
    if commit:
        save_ratios(store, {p: (c.ratio, c.count) for p, c in out.items() if c.applied}, now)
    return out


def _as_applied(
    samples: Sequence[Sample], kept: AppliedRatio, now: int, policy: CalibrationPolicy
) -> Calibration:
    """The kept ratio with the spread of today's samples, saying when it was set."""
    spread = calibrate(samples, kept.ratio, now, policy).spread
    stamp = datetime.fromtimestamp(kept.updated, tz=UTC)
    note = f"as applied by the cycle of {stamp:%Y-%m-%dT%H:%MZ} over {kept.count} jobs"
    return Calibration(kept.ratio, kept.count, spread, True, note)


def calibrate_estimates(
    estimates: Sequence[BandwidthEstimate], calibrations: dict[SitePair, Calibration]
) -> tuple[BandwidthEstimate, ...]:
    """Each estimate with its pair's calibration (unchanged where there is none)."""
    out = []
    for e in estimates:
        found = calibrations.get((e.path.source_site, e.path.destination_site))
        out.append(e if found is None else calibrated(e, found))
    return tuple(out)
