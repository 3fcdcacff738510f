"""One gate for the part of fetching that needs the CPU: decoding JSON, parsing pages.

Fetch threads spend most of their time waiting on sockets, but decoding and parsing
hold the GIL. With sixteen threads parsing at once, the one thread that commits to
SQLite (and gives the GIL up at every statement it runs) waited behind all of them:
a cold 10,000-pair ingest took 21-22.5 s; with at most two threads decoding or parsing
at a time, 19-20.7 s. The other threads keep their requests in flight meanwhile.
The GIL is per process, so the gate is too. (A big cycle now commits from a writer
process, larkps.ingest_writer; there the gate made no consistent difference, and it
still guards the cycles that commit in-process.)
"""

from __future__ import annotations

import threading

CPU_SLOTS = 2
cpu_gate = threading.BoundedSemaphore(CPU_SLOTS)
