"""``kill -9`` of a real ``larkps run`` at random moments, then a restart.

After every kill the store holds, for each series, exactly the archive's points up to
its high-water mark (no duplicates, no gaps), and the ads file is either absent or a
whole, parseable set. The restarted daemon resumes from the marks and completes.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import classad2
import pytest
from test_ingest_kill import check_store

from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig

pytestmark = pytest.mark.slow
KILLS = 5


def write_config(path: Path, url: str, state: Path) -> None:
    path.write_text(
        f'[larkps]\nstate_dir = "{state}"\ninterval = "1s"\n\n'
        '[[archives]]\nname = "mesh"\nkind = "esmond"\n'
        f'url = "{url}"\nmax_connections = 3\npage_size = 20\n'
        'event_types = ["histogram-owdelay", "packet-count-lost", "packet-count-sent",'
        ' "throughput"]\n\n'
        '[windows]\nlist = ["1h", "6h"]\ndefault = "6h"\n\n'
        f'[publish.file]\npath = "{state}/larkps.ads"\n'
    )


def daemon(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "larkps", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def whole_ads(path: Path) -> int:
    """Every ad in the file parses and is complete; returns how many there are."""
    text = path.read_text()
    ads = list(classad2.parseAds(text, classad2.ParserType.Old))
    assert text.count("MyType = ") == len(ads)
    assert all("Name" in ad and "LarkPS_UpdateTime" in ad for ad in ads)
    return len(ads)


def ok_cycles(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM run_reports WHERE ok = 1").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_kill_9_of_the_daemon_loses_nothing_and_restart_resumes(tmp_path: Path):
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    mesh = Mesh(MeshConfig(sites=3, seed=21))
    now = int(time.time())
    state, config = tmp_path / "state", tmp_path / "larkps.toml"
    db, ads = state / "larkps.sqlite", state / "larkps.ads"
    with EmbeddedArchive(mesh, clock=lambda: float(now)) as archive:
        write_config(config, archive.url, state)
        for _ in range(KILLS):
            child = daemon(config)
            time.sleep(rng.uniform(0.5, 4.0))
            child.kill()
            child.communicate()
            if db.exists():
                check_store(db, mesh, now)
                with sqlite3.connect(db) as conn:
                    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            if ads.exists():
                assert whole_ads(ads) > 0, seed
        before = ok_cycles(db)
        child = daemon(config)
        deadline = time.monotonic() + 120
        while ok_cycles(db) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 0, (seed, err.decode()[-2000:])
    assert ok_cycles(db) >= before + 2, seed
    marks = check_store(db, mesh, now)
    assert marks, seed
    paths = whole_ads(ads)
    assert paths >= 6, seed  # 3 sites: >= 6 directed site paths (+ site ads)
