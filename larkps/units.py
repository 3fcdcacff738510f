"""Parsing and formatting of numbers, durations, sizes and rates, in one place.

Numbers from archives: :func:`finite_number` is the one rule (numeric strings
accepted; bools, NaN and infinities refused).

Durations: ``90``, ``90s``, ``5m``, ``1h``, ``24h``, ``7d``, ``1w``, and sums such
as ``1h30m``. Sizes (bytes): ``2GB``, ``500MiB``, ``1.5TB``, ``800Mbit``. Rates
(bits/s): ``100Mbit``, ``100Mbps``, ``1Gbit``, ``1.5Gbps``, ``12.5MB/s``,
``12.5MBps``, ``800kbit/s``. Decimal prefixes are powers of 1000, binary ones
(``Ki``, ``Mi``...) of 1024; prefixes are case-insensitive. In a rate a lower-case
``b`` in ``bps``/``b/s`` is a bit and an upper-case ``B`` a byte (``MBps`` = 8 *
``Mbps``); ``bit``/``byte`` spelt out are unambiguous. docs/units.md is the
user-facing table.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

HOUR = 3600  # seconds

_DURATION_UNITS = {"s": 1, "m": 60, "h": HOUR, "d": 86400, "w": 604800}
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
    "bit/s": 1.0,
    "bits/s": 1.0,
    "byte/s": 8.0,
    "bytes/s": 8.0,
}
# Short forms whose meaning depends on the case of the b: b = bit, B = byte.
_SHORT_RATE_UNITS = {"bps", "b/s"}


def finite_number(value: object) -> float | None:
    """A finite float from a number or numeric string, else None (bools, NaN, inf, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def positive_number(value: object) -> float | None:
    """:func:`finite_number` when it is above zero, else None."""
    number = finite_number(value)
    return number if number is not None and number > 0 else None


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


@lru_cache(maxsize=256)
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
    return float(number), _PREFIXES[(prefix or "").lower()], unit


_EXAMPLES = {"size": "2GB or 500MiB", "rate": "100Mbit, 1.5Gbps or 12.5MB/s"}


def parse_size(text: str) -> int:
    """Return a size in bytes (``2GB`` = 2e9, ``500MiB`` = 500 * 2**20)."""
    number, scale, unit = _split_quantity(text, "size")
    bits_per_unit = _SIZE_UNITS.get(unit.lower() or "b")
    if bits_per_unit is None:
        raise ValueError(f"expected a size such as {_EXAMPLES['size']}, got {text!r}")
    return round(number * scale * bits_per_unit / 8.0)


def parse_rate(text: str) -> float:
    """Return a rate in bits per second."""
    number, scale, unit = _split_quantity(text, "rate")
    bits_per_unit = _rate_unit(unit)
    if bits_per_unit is None:
        raise ValueError(f"expected a rate such as {_EXAMPLES['rate']}, got {text!r}")
    value = number * scale * bits_per_unit
    if value <= 0:
        raise ValueError(f"expected a positive rate, got {text!r}")
    return value


def _rate_unit(unit: str) -> float | None:
    """Bits per rate unit; ``bps``/``b/s`` are bits, ``Bps``/``B/s`` bytes."""
    if unit.lower() in _SHORT_RATE_UNITS:
        return 1.0 if unit[0] == "b" else 8.0
    return _RATE_UNITS.get(unit.lower())


_RATE_STEPS = ((1e12, "Tbit/s"), (1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s"))


def format_rate(bits_per_second: float) -> str:
    """Compact label for messages: 5e7 -> '50Mbit/s', 1.25e9 -> '1.25Gbit/s'."""
    for scale, label in _RATE_STEPS:
        if abs(bits_per_second) >= scale:
            return f"{bits_per_second / scale:.4g}{label}"
    return f"{bits_per_second:.4g}bit/s"


def format_size(size_bytes: float) -> str:
    """Compact decimal label: 2e9 -> '2GB', 524288000 -> '524.3MB'."""
    for scale, label in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(size_bytes) >= scale:
            return f"{size_bytes / scale:.4g}{label}"
    return f"{size_bytes:.4g}B"


def mbps(bits_per_second: float | None) -> float | None:
    """Bits per second to megabits per second (output layer only)."""
    return None if bits_per_second is None else bits_per_second / 1e6
