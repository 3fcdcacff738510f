"""Site names -> ClassAd attribute-name fragments, by a documented, collision-free scheme.

ClassAd attribute names match ``^[A-Za-z_][A-Za-z0-9_]*$`` and are compared
without regard to case. A site name becomes a fragment like this:

* ASCII letters are upper-cased, ASCII digits kept;
* every other character, ``_`` included, becomes ``_<hex code point>_``
  (``BNL-ATLAS`` -> ``BNL_2d_ATLAS``, ``a_b`` -> ``A_5f_B``).

Because ``_`` only ever appears as an escape delimiter, two names that differ in
anything but letter case map to different fragments. Names that differ only in case
(``CERN`` and ``cern``) would collide, so :func:`identifier_map` refuses them: map
them to one site in the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from larkps.errors import PublishError

_FRAGMENT = re.compile(r"^[A-Za-z0-9_]+$")


def site_fragment(name: str) -> str:
    """The attribute-name fragment for one site name."""
    if not name:
        raise PublishError("a site name cannot be empty")
    parts = []
    for char in name:
        if char.isascii() and char.isalnum():
            parts.append(char.upper())
        else:
            parts.append(f"_{ord(char):x}_")
    return "".join(parts)


def fragment_site(fragment: str) -> str:
    """Invert :func:`site_fragment` (letters come back upper-case)."""
    if not _FRAGMENT.match(fragment):
        raise ValueError(f"not a site fragment: {fragment!r}")
    return re.sub(r"_([0-9a-fA-F]+)_", lambda m: chr(int(m.group(1), 16)), fragment)


def identifier_map(names: Iterable[str]) -> dict[str, str]:
    """Fragments for a set of site names; refuses names that differ only in case."""
    result: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name in sorted(set(names)):
        fragment = site_fragment(name)
        if fragment in owner:
            raise PublishError(
                f"site names {owner[fragment]!r} and {name!r} differ only in letter case; "
                "map them to one site"
            )
        owner[fragment] = name
        result[name] = fragment
    return result
