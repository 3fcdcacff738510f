"""Counter-based deterministic randomness for the embedded mesh.

Every random decision is a pure function of integers (seed, stream, ids, k), so the
same data comes out whatever order or time it is asked for. Scalar helpers serve
single look-ups (``time-updated``); array helpers serve whole blocks.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


class Stream(IntEnum):
    """Independent random streams (one per kind of decision)."""

    SITE = 1
    PATH = 2
    FAMILY = 3
    PHASE = 4
    FAILURE = 5
    OUTAGE = 6
    BURST = 7
    BLOCK = 8
    RUN = 9
    TASK = 10
    SUBINTERVAL = 11


def _splitmix(x: int) -> int:
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * _MUL1) & _MASK
    x = ((x ^ (x >> 27)) * _MUL2) & _MASK
    return x ^ (x >> 31)


def hash_int(*parts: int) -> int:
    """Mix integers into one 64-bit value."""
    h = 0
    for p in parts:
        h = _splitmix(h ^ (p & _MASK))
    return h


def hash_u01(*parts: int) -> float:
    """Uniform float in [0, 1) from integers."""
    return (hash_int(*parts) >> 11) * (2.0**-53)


def hash_u01_array(prefix: tuple[int, ...], last: NDArray[np.int64]) -> NDArray[np.float64]:
    """Vectorised ``hash_u01(*prefix, x)`` for every ``x`` in ``last``."""
    h = np.uint64(hash_int(*prefix))
    x = np.atleast_1d(np.asarray(last, dtype=np.int64)).astype(np.uint64) ^ h
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MUL1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MUL2)
    x = x ^ (x >> np.uint64(31))
    out: NDArray[np.float64] = (x >> np.uint64(11)).astype(np.float64) * (2.0**-53)
    return out


def block_rng(*parts: int) -> np.random.Generator:
    """A numpy generator seeded by non-negative integers."""
    return np.random.default_rng([p & _MASK for p in parts])


def uuid_hex(*parts: int) -> str:
    """32 lowercase hex characters derived from integers."""
    return f"{hash_int(*parts):016x}{hash_int(*parts, 0x5EED):016x}"


def sha256_hex(text: str) -> str:
    """64 lowercase hex characters of SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()
