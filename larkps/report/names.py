"""Safe, injective file names for per-path pictures.

``<src>.<dst>.<family>.png`` where each site name is encoded byte by byte from its
UTF-8 form: ASCII letters, digits and ``-`` stay as they are, every other byte
(``_`` and ``.`` included) becomes ``_`` and two upper-case hex digits. The encoded
parts never contain ``.``, so the name splits back into exactly one (src, dst,
family): different paths never share a file. A name longer than
:data:`MAX_NAME` characters is replaced by ``h-`` and the SHA-256 of the plain
path name (``src->dst/family``) in hex; such names contain no ``.`` before
``.png`` and so cannot meet an encoded one.
"""

from __future__ import annotations

import hashlib
import string

from larkps.model import PathKey

MAX_NAME = 200
_KEEP = frozenset((string.ascii_letters + string.digits + "-").encode())


def encode_part(text: str) -> str:
    """One site name in the file-name alphabet [A-Za-z0-9_-]."""
    return "".join(chr(b) if b in _KEEP else f"_{b:02X}" for b in text.encode("utf-8"))


def decode_part(encoded: str) -> str:
    """The inverse of :func:`encode_part`."""
    out = bytearray()
    i = 0
    while i < len(encoded):
        if encoded[i] == "_":
            out.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(encoded[i]))
            i += 1
    return out.decode("utf-8")


def path_file_name(path: PathKey) -> str:
    """The picture file name of one path (see the module docstring)."""
    parts = (encode_part(path.source_site), encode_part(path.destination_site), path.family.value)
    name = ".".join(parts) + ".png"
    if len(name) <= MAX_NAME:
        return name
    return "h-" + hashlib.sha256(path.name.encode("utf-8")).hexdigest() + ".png"
