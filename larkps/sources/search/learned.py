"""Sites named by an archive's own documents, remembered for the life of the process.

WLCG ``ps_*`` documents carry site names (``src_netsite``...). The incremental
store keeps a series' endpoints (host, IP), not its sites, and maps them again
through the source's ``sites`` when it reads series back. :class:`LearnedSites`
is that map: the sites documents named at discovery first, then the configured
rules. What it learned is kept per archive for the whole process (sources are
made anew each cycle); a new process rediscovers once (see ``PsEsSource.filters``).
"""

from __future__ import annotations

import threading
import uuid
from typing import ClassVar

from larkps.config.sites import SiteMap

#: Changes with every process, so a restarted daemon rediscovers (and relearns) once.
PROCESS_TOKEN = uuid.uuid4().hex[:12]


class LearnedSites(SiteMap):
    """The configured site map, preceded by the sites documents named."""

    _registry: ClassVar[dict[str, dict[tuple[str, str], str]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, archive: str, configured: SiteMap) -> None:
        super().__init__(configured.rules)
        with self._lock:
            self._learned = self._registry.setdefault(archive, {})

    def __bool__(self) -> bool:
        return bool(self.rules) or bool(self._learned)

    def _site_for(self, host: str, ip: str = "") -> str:
        return self._learned.get((host, ip)) or super()._site_for(host, ip)

    @classmethod
    def forget(cls) -> None:
        """Drop everything learned (tests; a configuration reload)."""
        with cls._lock:
            for learned in cls._registry.values():
                learned.clear()

    def learn(self, host: str, ip: str, site: str) -> None:
        """Remember that the documents put (host, ip) at `site`."""
        with self._lock:
            if self._learned.get((host, ip)) == site:
                return
            self._learned[(host, ip)] = site
        self.site_for.cache_clear()
