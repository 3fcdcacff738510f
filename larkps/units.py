"""Parsing and formatting of durations, sizes and rates, in one place.

Durations: ``90``, ``90s``, ``5m``, ``1h``, ``24h``, ``7d``, ``1w``, and sums such
as ``1h30m``. Sizes (bytes): ``2GB``, ``500MiB``, ``1.5TB``. Rates (bits/s):
``100Mbit``, ``100Mbps``, ``1Gbit``, ``1.5Gbps``, ``12.5MB/s``, ``800kbit``.
Decimal prefixes are powers of 1000, binary ones (``Ki``, ``Mi``...) of 1024.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_PREFIXES = {
    "": 1.0,
    "k": 1e3,
    "m": 1e6,
    "g": 1e9,
    "t": 1e12,
    "p": 1e15,
    "ki": 2.0**10,
    "mi": 2.0**20,
    "gi": 2.0**30,
    "ti": 2.0**40,
    "pi": 2.0**50,
}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]i?)?\s*([a-z/]*)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 8.0, "byte": 8.0, "bytes": 8.0, "bit": 1.0, "bits": 1.0}
_RATE_UNITS = {
    "bit": 1.0,
    "bits": 1.0,
    "bps": 1.0,
    "bit/s": 1.0,
    "b/s": 8.0,
    "byte/s": 8.0,
    "bytes/s": 8.0,
}


def parse_duration(text: str | int | float) -> int:
    """Return a duration in whole seconds; raise ValueError on bad text."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 90s, 5m, 1h or 7d")
    if isinstance(text, int | float):
        return _whole_seconds(float(text))
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return _whole_seconds(float(cleaned))
    parts = _DURATION_PART.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"expected a duration such as 90s, 5m, 1h or 7d, got {text!r}")
    return _whole_seconds(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def _whole_seconds(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration, got {seconds!r} s")
    return round(seconds)


def format_duration(seconds: int) -> str:
    """Compact label: 86400 -> '24h', 604800 -> '7d', 5400 -> '90m', 45 -> '45s'."""
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _split_quantity(text: str, what: str) -> tuple[float, float, str]:
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"expected a {what} such as {_EXAMPLES[what]}, got {text!r}")
    number, prefix, unit = match.groups()
    return float(number), _PREFIXES[(prefix or "").lower()], unit.lower()


_EXAMPLES = {"size": "2GB or 500MiB", "rate": "100Mbit, 1.5Gbps or 12.5MB/s"}


def parse_size(text: str) -> int:
    """Return a size in bytes (``2GB`` = 2e9, ``500MiB`` = 500 * 2**20)."""
    number, scale, unit = _split_quantity(text, "size")
    bits_per_unit = _SIZE_UNITS.get(unit or "b")
    if bits_per_unit is None:
        raise ValueError(f"expected a size such as {_EXAMPLES['size']}, got {text!r}")
    return round(number * scale * bits_per_unit / 8.0)


def parse_rate(text: str) -> float:
    """Return a rate in bits per second."""
    number, scale, unit = _split_quantity(text, "rate")
    bits_per_unit = _RATE_UNITS.get(unit)
    if bits_per_unit is None:
        raise ValueError(f"expected a rate such as {_EXAMPLES['rate']}, got {text!r}")
    value = number * scale * bits_per_unit
    if value <= 0:
        raise ValueError(f"expected a positive rate, got {text!r}")
    return value


def mbps(bits_per_second: float | None) -> float | None:
    """Bits per second to megabits per second (output layer only)."""
    return None if bits_per_second is None else bits_per_second / 1e6
