"""Give freed heap memory back to the operating system after a cycle.

A cycle allocates and frees a lot (JSON pages, numpy arrays, worker threads);
glibc keeps freed memory in its per-thread arenas, so a long-running daemon's
resident size creeps up although nothing leaks. ``malloc_trim(0)`` returns it.
Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    return library if hasattr(library, "malloc_trim") else None


def release_free_memory() -> bool:
    """Ask the allocator to return free memory; True if it could be asked."""
    library = _libc()
    if library is None:
        return False
    library.malloc_trim(0)
    return True
