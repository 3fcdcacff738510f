"""Build a host -> site map from a pSConfig template (pure; no I/O).

A pSConfig JSON document has ``addresses`` (name -> ``{address, host, labels,
remote-addresses, _meta}``) and optionally ``hosts`` (name -> ``{site, _meta}``).
An address's site is the first of: its host object's ``site``, its own
``_meta.site``, the host's ``_meta.site``, then the host's or the address's
``_meta.display-name`` (see :data:`SITE_KEYS`; a host claimed by two sites stays
with the more authoritative claim). Host names become ``hosts``, IP addresses single-address
``networks`` (/32, /128). Untrusted names are validated: a site name must match
:data:`larkps.config.settings.NAME_PATTERN`, a host name the DNS syntax; anything else is
reported and skipped, never written.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from larkps.config.settings import NAME_PATTERN

HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$"
)
#: Where an address's site is looked for, most authoritative first. When two
#: addresses claim one host, the claim found earlier in this list wins.
SITE_KEYS = (
    ("host", "site"),
    ("address", "_meta", "site"),
    ("host", "_meta", "site"),
    ("host", "_meta", "display-name"),
    ("address", "_meta", "display-name"),
)


@dataclass
class SiteImport:
    """What a pSConfig document says about sites, and what was skipped and why."""

    hosts: dict[str, set[str]] = field(default_factory=dict)  # site -> host names
    networks: dict[str, set[str]] = field(default_factory=dict)  # site -> /32 and /128
    skipped: list[str] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)  # host or network -> site

    @property
    def sites(self) -> list[str]:
        return sorted(set(self.hosts) | set(self.networks))

    def add(self, site: str, entry: str, is_network: bool, where: str) -> None:
        owner = self.owner.setdefault(entry, site)
        if owner != site:
            self.skipped.append(f"{where}: {entry} is already in site {owner}")
            return
        (self.networks if is_network else self.hosts).setdefault(site, set()).add(entry)


def import_psconfig(document: object) -> SiteImport:
    """The site map of one parsed pSConfig document; ValueError if it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("addresses"), dict):
        raise ValueError("not a pSConfig document (no 'addresses' object)")
    hosts = document.get("hosts")
    host_objects = hosts if isinstance(hosts, dict) else {}
    result = SiteImport()
    claims = []
    for name in sorted(document["addresses"], key=str):
        spec = document["addresses"][name]
        where = f"address {_shown(name)}"
        if not isinstance(spec, dict):
            result.skipped.append(f"{where}: not an object")
            continue
        found = _site(spec, host_objects, where, result)
        if found is not None:
            claims.append((found[0], where, found[1], spec))
    for _, where, site, spec in sorted(claims, key=lambda claim: claim[:2]):
        for text in _addresses(spec):
            _add_address(result, site, text, where)
    return result


def _site(
    spec: dict[str, Any], host_objects: dict[str, Any], where: str, result: SiteImport
) -> tuple[int, str] | None:
    """(rank of the key that named it, site) of one address object."""
    reference = spec.get("host")
    host = host_objects.get(reference) if isinstance(reference, str) else None
    objects = {"address": spec, "host": host if isinstance(host, dict) else {}}
    for rank, path in enumerate(SITE_KEYS):
        value = _dig(objects, path)
        if value is None:
            continue
        if isinstance(value, str) and NAME_PATTERN.match(value):
            return rank, value
        result.skipped.append(f"{where}: site name {_shown(value)} is not usable")
        return None
    result.skipped.append(f"{where}: no site (host site, _meta.site or display-name)")
    return None


def _dig(objects: dict[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = objects
    for key in path:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current


def _addresses(spec: dict[str, Any]) -> Iterator[object]:
    """The address of an address object, its labels' and its remote addresses'."""
    yield spec.get("address")
    for table in ("labels", "remote-addresses"):
        entries = spec.get(table)
        for entry in entries.values() if isinstance(entries, dict) else ():
            if isinstance(entry, dict):
                yield from _addresses(entry)


def _add_address(result: SiteImport, site: str, text: object, where: str) -> None:
    if text is None:
        return
    if not isinstance(text, str):
        result.skipped.append(f"{where}: address {_shown(text)} is not a string")
        return
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        if HOSTNAME.match(text):
            result.add(site, text.lower().rstrip("."), False, where)
        else:
            result.skipped.append(f"{where}: {_shown(text)} is neither a host name nor an IP")
        return
    result.add(site, str(ipaddress.ip_network(address)), True, where)


def _shown(value: object) -> str:
    """A bounded, printable rendering of an untrusted value for messages."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def render_toml(result: SiteImport, origin: str) -> str:
    """``[sites."NAME"]`` tables that larkps's configuration accepts."""
    lines = [
        f"# Site map imported from {_shown(origin)} by `larkps sites import-psconfig`.",
        f"# {len(result.sites)} sites; {len(result.skipped)} entries skipped.",
    ]
    for site in result.sites:
        lines += ["", f"[sites.{json.dumps(site)}]"]
        for key, table in (("hosts", result.hosts), ("networks", result.networks)):
            entries = sorted(table.get(site, ()))
            if entries:
                lines.append(f"{key} = [{', '.join(json.dumps(e) for e in entries)}]")
    return "\n".join(lines) + "\n"
