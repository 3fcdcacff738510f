"""A small typed reader over one TOML table that names every problem precisely.

Every value read is also kept, resolved (defaults filled in, durations in seconds,
rates in bits/s), under the file's own key names in ``resolved``, nested as in the
file: what ``larkps check-config`` prints.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from larkps.config.sites import IPNetwork
from larkps.errors import ConfigError
from larkps.units import parse_duration, parse_rate

_MISSING = object()
_T = TypeVar("_T")


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


class Section:
    """One table of the config; each read removes the key, `finish` rejects leftovers."""

    def __init__(
        self, data: object, source: str, path: str, home: tuple[Section, str] | None = None
    ) -> None:
        self.source = source
        self.path = path
        self.present = data is not None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(source, path, f"expected a table, got {_type_name(data)}")
        self.data: dict[str, Any] = dict(data)
        self.resolved: dict[str, Any] = {}
        self._home = home  # (parent, key): where ``resolved`` goes once anything is in it
        if self.present:
            self._attach()

    def _attach(self) -> None:
        if self._home is not None:
            parent, key = self._home
            if parent.resolved.get(key) is not self.resolved:
                parent.resolved[key] = self.resolved
                parent._attach()

    def keep(self, key: str, value: _T) -> _T:
        """Record a value read (resolved) under its key; return it."""
        self.resolved[key] = value
        self._attach()
        return value

    def key_path(self, key: str) -> str:
        if not key:
            return self.path
        if key.startswith("["):
            return f"{self.path}{key}"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key_path(key), problem)

    def finish(self) -> None:
        """Reject every key that no reader asked for."""
        if self.data:
            key = sorted(self.data)[0]
            raise self.error(key, "unknown key")

    def _take(self, key: str, default: object) -> object:
        value = self.data.pop(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.error(key, "required key is missing")
            return default
        return value

    def _expect(self, key: str, value: object, kinds: tuple[type, ...], what: str) -> None:
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"expected {what}, got a boolean")
        if not isinstance(value, kinds):
            raise self.error(key, f"expected {what}, got {_type_name(value)}")

    def section(self, key: str) -> Section:
        return Section(self.data.pop(key, None), self.source, self.key_path(key), (self, key))

    def section_list(self, key: str, required: bool = False) -> list[Section]:
        """An array of tables (``[[key]]``)."""
        value = self.data.pop(key, [])
        if not isinstance(value, list) or (required and not value):
            raise self.error(key, "expected at least one [[" + key + "]] table")
        sections = [
            Section(item, self.source, self.key_path(f"{key}[{i}]")) for i, item in enumerate(value)
        ]
        self.keep(key, [s.resolved for s in sections])
        return sections

    def string(self, key: str, default: object = _MISSING) -> str:
        value = self._take(key, default)
        self._expect(key, value, (str,), "a string")
        assert isinstance(value, str)
        if not value.strip():
            raise self.error(key, "expected a non-empty string")
        return self.keep(key, value)

    def optional_string(self, key: str) -> str | None:
        if key not in self.data:
            return self.keep(key, None)
        return self.string(key)

    def choice(self, key: str, choices: Sequence[str], default: object = _MISSING) -> str:
        value = self.string(key, default)
        if value not in choices:
            options = ", ".join(f'"{c}"' for c in choices)
            raise self.error(key, f"expected one of {options}, got {value!r}")
        return value

    def pattern(
        self, key: str, regex: re.Pattern[str], what: str, default: object = _MISSING
    ) -> str:
        value = self.string(key, default)
        if not regex.match(value):
            raise self.error(key, f"expected {what}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._take(key, default)
        self._expect(key, value, (bool,), "true or false")
        return self.keep(key, bool(value))

    def integer(
        self, key: str, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._take(key, default)
        self._expect(key, value, (int,), "an integer")
        assert isinstance(value, int)
        if minimum is not None and value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"expected an integer <= {maximum}, got {value}")
        return self.keep(key, value)

    def fraction(self, key: str, default: float) -> float:
        value = self._take(key, default)
        self._expect(key, value, (int, float), "a number")
        assert isinstance(value, int | float)
        if not 0 < value <= 1:
            raise self.error(key, f"expected a fraction in (0, 1], got {value}")
        return self.keep(key, float(value))

    def number(self, key: str, default: float, minimum: float, maximum: float) -> float:
        """A number (integer or float) within [minimum, maximum]."""
        value = self._take(key, default)
        self._expect(key, value, (int, float), "a number")
        assert isinstance(value, int | float)
        if not minimum <= value <= maximum:
            raise self.error(key, f"expected a number from {minimum} to {maximum}, got {value}")
        return self.keep(key, float(value))

    def duration(self, key: str, default: object = _MISSING) -> int:
        value = self._take(key, default)
        self._expect(key, value, (str, int, float), 'a duration such as "90s", "5m" or "24h"')
        assert isinstance(value, str | int | float)
        try:
            return self.keep(key, parse_duration(value))
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def rate(self, key: str) -> float | None:
        """An optional rate such as "10Gbit" or "1.25GB/s", in bits/s."""
        if key not in self.data:
            return self.keep(key, None)
        value = self.string(key)
        try:
            return self.keep(key, parse_rate(value))
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def string_list(self, key: str) -> list[str]:
        value = self._take(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"expected an array of strings, got {_type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.error(f"{key}[{index}]", "expected a non-empty string")
        return self.keep(key, list(value))

    def network_list(self, key: str, what: str = "a network") -> list[IPNetwork]:
        """An array of networks (``"198.18.0.0/15"``, ``"2001:db8::/32"``; host bits allowed)."""
        networks = []
        for index, text in enumerate(self.string_list(key)):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise self.error(f"{key}[{index}]", f"expected {what}, got {text!r}") from None
        return networks

    def duration_list(self, key: str, default: list[str]) -> list[int]:
        value = self._take(key, default)
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected a non-empty array of durations")
        probe = Section({str(i): v for i, v in enumerate(value)}, self.source, self.key_path(key))
        result = []
        for index in range(len(value)):
            try:
                result.append(probe.duration(str(index)))
            except ConfigError as exc:
                raise self.error(f"{key}[{index}]", exc.problem) from None
        if len(set(result)) != len(result):
            raise self.error(key, "windows must be distinct")
        return self.keep(key, sorted(result))

    def url(self, key: str, required: bool) -> str | None:
        if key not in self.data and not required:
            return self.keep(key, None)
        value = self.string(key)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(key, f"expected an http:// or https:// URL, got {value!r}")
        return value

    def existing_file(self, key: str) -> str | None:
        value = self.optional_string(key)
        if value is not None and not os.path.isfile(value):
            raise self.error(key, f"file not found: {value}")
        return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document of one file (ConfigError if it cannot be read)."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML ({exc})") from None
