"""Archive credentials that cannot be printed by accident.

A password is read once, from a file or an environment variable, into a
:class:`Secret` whose ``repr``/``str`` is ``<set>``: the resolved settings,
``larkps check-config``, log records and tracebacks show ``<set>``, never the
value. Only :meth:`Credentials.as_auth` hands the value to the HTTP client.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

MASK = "<set>"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Secret:
    """A string that prints as ``<set>``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


class BasicAuth(tuple[str, str]):
    """A (username, password) pair for requests whose repr hides the password."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"BasicAuth({self[0]!r}, {MASK})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Credentials:
    """HTTP basic-auth credentials of one archive."""

    username: str
    password: Secret
    origin: str  # "file" or "environment": where the password was read from

    def as_auth(self) -> BasicAuth:
        return BasicAuth((self.username, self.password.reveal()))


def password_from_file(path: str) -> Secret:
    """The first line of a file (trailing newline removed); ValueError when unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read password file {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"password file {path} is not UTF-8 text") from None
    lines = text.splitlines()
    value = lines[0] if lines else ""
    if not value:
        raise ValueError(f"password file {path} is empty")
    return Secret(value)


def password_from_environment(name: str) -> Secret:
    """The value of an environment variable; ValueError when unset or empty."""
    if not ENV_NAME.match(name):
        raise ValueError(f"expected an environment variable name, got {name!r}")
    value = os.environ.get(name, "")
    if not value:
        raise ValueError(f"environment variable {name} is not set")
    return Secret(value)
