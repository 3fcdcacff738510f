"""Generate the runs of one series in a span of time (a "block") as numpy arrays.

A block holds every run whose start time falls in its span, minus runs lost to host
outages. Runs are generated an hour (a CHUNK) at a time, each chunk from its own
random stream: values depend only on (seed, series index, hour), so blocks of any
whole number of hours hold the same runs, and can be generated in any order and cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from larkps.embedded._rand import Stream, block_rng, hash_u01, hash_u01_array
from larkps.embedded.histo import Hist, concat, from_samples
from larkps.embedded.series import Series
from larkps.embedded.world import PathModel, World

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CHUNK = 3600  # seconds generated from one random stream; block spans are multiples of it


@dataclass(frozen=True)
class GenParams:
    """Generation knobs taken from MeshConfig."""

    seed: int
    failure_rate: float
    latency_packets: int
    rtt_packets: int


@dataclass(frozen=True)
class Block:
    """Runs of one series in one day; arrays are aligned with ``ts``."""

    k: IntArray
    ts: IntArray
    failed: NDArray[np.bool_]
    num: dict[str, NDArray[np.float64] | IntArray]
    hist: Hist | None


def grid(series: Series, start: int, end: int) -> IntArray:
    """Grid indices k whose timestamp lies in [start, end)."""
    lo = -((series.phase - start) // series.interval)
    hi = -((series.phase - end) // series.interval)
    return np.arange(lo, hi, dtype=np.int64)


def is_failed(params: GenParams, series: Series, k: int) -> bool:
    """Whether run ``k`` of a throughput series failed (scalar form of the block mask)."""
    rate = params.failure_rate if series.kind == "throughput" else 0.0
    return hash_u01(params.seed, Stream.FAILURE, series.index, k) < rate


def _failed(params: GenParams, series: Series, k: IntArray) -> NDArray[np.bool_]:
    if series.kind != "throughput":
        return np.zeros(k.shape, dtype=bool)
    out: NDArray[np.bool_] = (
        hash_u01_array((params.seed, Stream.FAILURE, series.index), k) < params.failure_rate
    )
    return out


def make_block(params: GenParams, world: World, series: Series, start: int, end: int) -> Block:
    """Generate the block of ``series`` for [start, end) (multiples of CHUNK)."""
    if start % CHUNK or end % CHUNK or end <= start:
        raise ValueError(f"a block spans whole hours, not [{start}, {end})")
    chunks = [_chunk(params, world, series, hour) for hour in range(start // CHUNK, end // CHUNK)]
    return chunks[0] if len(chunks) == 1 else concat_blocks(chunks)


def _chunk(params: GenParams, world: World, series: Series, hour: int) -> Block:
    """The runs of ``series`` in one hour, from that hour's own random stream."""
    k = grid(series, hour * CHUNK, (hour + 1) * CHUNK)
    ts = k * series.interval + series.phase
    up = ~(world.down_mask(series.src_host, ts) | world.down_mask(series.dst_host, ts))
    k, ts = k[up], ts[up]
    rng = block_rng(params.seed, Stream.BLOCK, series.index, hour)
    path = world.path(series.src.index, series.dst.index, series.family)
    load = world.path_load(series.src.index, series.dst.index, ts)
    burst = world.burst_loss(series.src.index, series.dst.index, ts)
    failed = _failed(params, series, k)
    if series.kind == "throughput":
        num, hist = _throughput(rng, path, load, burst, failed), None
    elif series.kind == "latencybg":
        num, hist = _latency(rng, params.latency_packets, path, load, burst)
    else:
        back = world.burst_loss(series.dst.index, series.src.index, ts)
        num, hist = _rtt(rng, params.rtt_packets, path, load, 1 - (1 - burst) * (1 - back))
    return Block(k=k, ts=ts, failed=failed, num=num, hist=hist)


def _throughput(
    rng: np.random.Generator,
    path: PathModel,
    load: FloatArray,
    burst: FloatArray,
    failed: NDArray[np.bool_],
) -> dict[str, FloatArray | IntArray]:
    n = load.size
    noise = np.exp(rng.normal(0.0, 0.08, n))
    bad = np.where(rng.random(n) < 0.05, rng.uniform(0.3, 0.7, n), 1.0)
    raw = path.base_bps * (1.0 - 0.3 * load) * noise * bad * (1.0 - np.minimum(0.85, 3.0 * burst))
    bps = np.round(np.minimum(raw, 0.945 * path.cap_bps)).astype(np.float64)
    lam = path.retx_scale * np.sqrt(bps / 1e9) * (1.0 + 50.0 * burst + 2.0 * load)
    retx = rng.poisson(lam).astype(np.int64)
    return {
        "throughput": np.where(failed, np.nan, bps),
        "packet-retransmits": np.where(failed, 0, retx),
    }


def _delays(
    rng: np.random.Generator, n: int, packets: int, base: float, path: PathModel, load: FloatArray
) -> NDArray[np.int32]:
    """Per-packet delays in hundredths of a ms, shape (n, packets)."""
    scale = path.jitter_ms * (1.0 + 1.5 * load)
    ms = (
        base
        + path.queue_ms * load[:, None]
        + scale[:, None] * rng.standard_exponential((n, packets))
    )
    flat = ms.ravel()
    count = int(rng.binomial(flat.size, 0.001))
    flat[rng.integers(0, flat.size, count)] += rng.uniform(0.5, 8.0, count)
    out: NDArray[np.int32] = np.rint(ms * 100.0).astype(np.int32)
    return out


def _latency(
    rng: np.random.Generator, packets: int, path: PathModel, load: FloatArray, burst: FloatArray
) -> tuple[dict[str, FloatArray | IntArray], Hist]:
    n = load.size
    lost = rng.binomial(packets, np.clip(path.base_loss + burst, 0.0, 1.0)).astype(np.int64)
    received = packets - lost
    hist = from_samples(_delays(rng, n, packets, path.owd_ms + path.shift_ms, path, load), received)
    terr = np.round(path.terr_ms * (1.0 + 0.1 * rng.standard_normal(n)), 3)
    num: dict[str, FloatArray | IntArray] = {
        "sent": np.full(n, packets, dtype=np.int64),
        "lost": lost,
        "dups": rng.poisson(0.005, n).astype(np.int64),
        "reorders": rng.binomial(received, path.reorder_rate).astype(np.int64),
        "terr": np.abs(terr),
        "ttl": np.full(n, 255 - path.hops, dtype=np.int64),
    }
    return num, hist


def _rtt(
    rng: np.random.Generator, packets: int, path: PathModel, load: FloatArray, burst: FloatArray
) -> tuple[dict[str, FloatArray | IntArray], Hist]:
    n = load.size
    loss = np.clip(1.0 - (1.0 - path.base_loss) ** 2 + burst, 0.0, 1.0)
    lost = rng.binomial(packets, loss).astype(np.int64)
    received = packets - lost
    hist = from_samples(_delays(rng, n, packets, path.rtt_ms, path, 2.0 * load), received)
    num: dict[str, FloatArray | IntArray] = {
        "sent": np.full(n, packets, dtype=np.int64),
        "lost": lost,
        "dups": np.zeros(n, dtype=np.int64),
        "reorders": np.zeros(n, dtype=np.int64),
        "ttl": np.full(n, 64 - path.hops, dtype=np.int64),
    }
    return num, hist


def select(block: Block, mask: NDArray[np.bool_]) -> Block:
    """The rows of ``block`` where ``mask`` is True."""
    rows = np.flatnonzero(mask)
    hist = block.hist.take(rows) if block.hist is not None else None
    num = {key: arr[rows] for key, arr in block.num.items()}
    return Block(k=block.k[rows], ts=block.ts[rows], failed=block.failed[rows], num=num, hist=hist)


def concat_blocks(blocks: list[Block]) -> Block:
    """All rows of ``blocks`` in order (blocks of one series)."""
    first = blocks[0]
    hists = [b.hist for b in blocks if b.hist is not None]
    return Block(
        k=np.concatenate([b.k for b in blocks]),
        ts=np.concatenate([b.ts for b in blocks]),
        failed=np.concatenate([b.failed for b in blocks]),
        num={key: np.concatenate([b.num[key] for b in blocks]) for key in first.num},
        hist=concat(hists) if first.hist is not None else None,
    )
