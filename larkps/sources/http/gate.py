"""One gate for the part of fetching that needs the CPU: decoding JSON, parsing pages.

Fetch threads spend most of their time waiting on sockets, but decoding and parsing
hold the GIL. With sixteen threads parsing at once, the one thread that commits to
SQLite (and gives the GIL up at every statement it runs) waits behind all of them;
at most two threads decode or parse at a time, and the others keep their requests in
flight meanwhile (figures in docs/benchmarks.md). The GIL is per process, so the gate
is too: it guards the cycles that commit in-process (a big cycle commits from a
writer process, larkps.ingest.writer, where the gate makes no consistent difference).
"""

from __future__ import annotations

import threading

CPU_SLOTS = 2
cpu_gate = threading.BoundedSemaphore(CPU_SLOTS)
