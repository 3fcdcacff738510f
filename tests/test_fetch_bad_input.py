"""The bad-input matrix: one way an archive can misbehave per test, on real 127.0.0.1 servers.

Every case runs two incremental cycles over an archive with two throughput series, A
and B. The first stores both; before the second, series A's data route starts to
misbehave. Then: A gets exactly one logged, counted problem; B's new points are
stored as usual; nothing A had stored is lost or overwritten, and no bad value
reaches the store.
"""

from __future__ import annotations

import math
import shutil
import ssl
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from archive_fake import ARCHIVE_PATH, FakeArchive, Handler, path_name, throughput_metadata

from larkps.config.sites import SiteMap
from larkps.ingest.runner import ArchivePlan, Ingester, IngestOptions, IngestReport
from larkps.model import Point
from larkps.sources import EsmondSource, HttpOptions, JsonClient
from larkps.store.db import Store
from larkps.store.points import IngestStore

T0 = 1_700_000_000
STEP = 600
A, B = "a1" * 16, "b2" * 16
FIXTURES = Path(__file__).parent / "fixtures" / "archive"


def rows(start: int, end: int, base: float) -> list[dict[str, object]]:
    return [{"ts": ts, "val": base + ts % 7} for ts in range(start - start % STEP, end + 1, STEP)]


def data_path(key: str) -> str:
    return f"{ARCHIVE_PATH}{key}/throughput/base"


def make_archive(tls: ssl.SSLContext | None = None) -> FakeArchive:
    metadata = [
        throughput_metadata(A, "192.0.2.10", "198.51.100.20"),
        throughput_metadata(B, "2001:db8::10", "2001:db8::20"),
    ]
    points = {data_path(A): rows(T0 - 7200, T0, 9e8), data_path(B): rows(T0 - 7200, T0, 5e8)}
    return FakeArchive(metadata, points, tls)


def options(**overrides: object) -> HttpOptions:
    base: dict[str, object] = {
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "retries": 1,
        "backoff": 0.01,
        "max_connections": 2,
        "max_response_bytes": 1 << 20,
    }
    base.update(overrides)
    return HttpOptions(**base)  # type: ignore[arg-type]


def cycle(state: Path, archives: list[tuple[str, str, HttpOptions]], now: int) -> IngestReport:
    plans = []
    clients = []
    for name, url, opts in archives:
        client = JsonClient(name, opts)
        clients.append(client)
        source = EsmondSource(name, url, client, SiteMap(), event_types=("throughput",))
        plans.append(ArchivePlan(source, ("throughput",)))
    with Store.in_directory(state) as store:
        report = Ingester(IngestStore(store), IngestOptions()).cycle(plans, now, now - 7200)
    for client in clients:
        client.close()
    return report


def stored(state: Path, key: str) -> dict[int, Point]:
    with Store.in_directory(state) as store:
        ingest = IngestStore(store)
        (one,) = [s for s in ingest.series("fake", SiteMap()) if s.series.key.metadata_key == key]
        return {p.ts: p for p in ingest.points(one.id, 0, 2**40)}


def run_case(tmp_path: Path, behaviour: Callable[[Handler, dict[str, str]], None], **opts: object):
    state = tmp_path / "state"
    with make_archive() as archive:
        first = cycle(state, [("fake", archive.url, options(**opts))], T0 - 3600)
        assert first.problems == () and first.points == 14
        before_a, before_b = stored(state, A), stored(state, B)
        archive.behaviours[A] = behaviour
        second = cycle(state, [("fake", archive.url, options(**opts))], T0)
        hits = archive.hits[data_path(A)] - 1
    after_a, after_b = stored(state, A), stored(state, B)
    problems = [p for p in second.problems if p.what == path_name(A)]
    assert len(problems) == 1, second.problems
    assert not [p for p in second.problems if p.what == path_name(B)]
    assert len(after_b) == len(before_b) + 6  # B went on: (T0-3600, T0] at 600 s
    assert all(after_a[ts] == point for ts, point in before_a.items())  # nothing lost/overwritten
    for point in after_a.values():
        assert point.value is not None and math.isfinite(point.value) and point.value < 1e13
    return problems[0], before_a, after_a, hits


def respond(status: int, body: bytes = b'{"detail": "no"}', **headers: str):
    def behaviour(handler: Handler, params: dict[str, str]) -> None:
        handler.send_raw(body, status, headers)

    return behaviour


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error_status(tmp_path: Path, status: int):
    problem, before, after, hits = run_case(tmp_path, respond(status, **{"Retry-After": "0"}))
    assert f"HTTP {status} from http://127.0.0.1" in problem.problem
    assert after == before
    assert hits == (1 if status < 500 else 2)  # 5xx retried once, 4xx never


def test_read_timeout(tmp_path: Path):
    def slow(handler: Handler, params: dict[str, str]) -> None:
        handler.wfile.flush()
        import time

        time.sleep(60)  # far past the read timeout, however busy the machine

    # Long enough for the other series' answers on a busy machine, short of the sleep.
    problem, before, after, hits = run_case(tmp_path, slow, read_timeout=1.5)
    assert "timed out reading" in problem.problem
    assert after == before and hits == 1


def test_truncated_json(tmp_path: Path):
    body = (FIXTURES / "truncated.json").read_bytes()
    problem, before, after, _ = run_case(tmp_path, respond(200, body))
    assert "is not JSON" in problem.problem and after == before


def test_valid_json_of_the_wrong_shape(tmp_path: Path):
    body = (FIXTURES / "wrong_shape.json").read_bytes()
    problem, before, after, _ = run_case(tmp_path, respond(200, body))
    assert "is not a list" in problem.problem and after == before


def test_nan_infinity_negative_and_absurd_values(tmp_path: Path):
    body = (FIXTURES / "nonfinite_values.json").read_bytes()
    problem, before, after, _ = run_case(tmp_path, respond(200, body))
    assert problem.kind == "bad-values"
    assert "rejected 5 points" in problem.problem
    for reason in ("non-finite value", "negative value", "implausible value", "non-numeric"):
        assert reason in problem.problem
    assert sorted(set(after) - set(before)) == [T0 - 1800, T0]  # the two good points


def test_timestamps_in_milliseconds(tmp_path: Path):
    page = [{"ts": (T0 - 600) * 1000, "val": 9e8}, {"ts": T0 * 1000, "val": 9e8}]
    import json

    problem, before, after, _ = run_case(tmp_path, respond(200, json.dumps(page).encode()))
    assert "rejected 2 points: 2 timestamp in milliseconds" in problem.problem
    assert after == before


def test_duplicate_points(tmp_path: Path):
    old = T0 - 3800  # stored in cycle 1; the archive now sends it again with another value
    page = [
        {"ts": old, "val": 1.0},
        {"ts": T0 - 600, "val": 7e8},
        {"ts": T0 - 600, "val": 6e8},
    ]
    import json

    problem, before, after, _ = run_case(tmp_path, respond(200, json.dumps(page).encode()))
    assert "1 duplicate timestamp" in problem.problem
    assert after[old] == before[old] and after[old].value != 1.0
    assert after[T0 - 600].value == 7e8


def test_response_far_larger_than_expected_keeps_memory_bounded(tmp_path: Path):
    chunk = b'{"ts": 1700000000, "val": 1.0},' * 2048

    def endless(handler: Handler, params: dict[str, str]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            handler.wfile.write(b"[")
            for _ in range(10_000):  # up to ~600 MiB unless the client hangs up
                handler.wfile.write(chunk)
        except OSError:
            pass

    tracemalloc.start()
    try:
        problem, before, after, hits = run_case(tmp_path, endless)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "is larger than 1048576 bytes" in problem.problem
    assert after == before
    assert hits == 5  # limit 10000, 1000, 100, 10, 1: each read stops at the cap
    assert peak < 32 * 2**20


def test_redirect_to_another_host_is_refused(tmp_path: Path):
    target = "http://198.18.0.1/esmond/perfsonar/archive/"
    problem, before, after, _ = run_case(tmp_path, respond(302, b"", Location=target))
    assert "refused redirect from http://127.0.0.1" in problem.problem
    assert target in problem.problem and after == before


def test_connection_refused_costs_only_that_archive(tmp_path: Path):
    state = tmp_path / "state"
    with make_archive() as down, make_archive() as up:
        archives = [("down", down.url, options()), ("up", up.url, options())]
        cycle(state, archives, T0 - 3600)
        down.stop()
        report = cycle(state, archives, T0)
    down_problems = [p for p in report.problems if p.archive == "down"]
    assert {p.what for p in down_problems} == {"metadata"} | {path_name(k) for k in (A, B)}
    assert all("cannot connect to http://127.0.0.1" in p.problem for p in down_problems)
    assert report.points == 12 and report.archives_ok == ("up",)  # 6 new points each on "up"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/debian-test-packages.txt lists it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


def test_invalid_tls_certificate_is_refused_unless_configured(
    tmp_path: Path, certificate: tuple[Path, Path]
):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    state = tmp_path / "state"
    with make_archive(context) as archive:
        refused = cycle(state, [("tls", archive.url, options())], T0)
        trusted = cycle(state, [("tls", archive.url, options(ca_bundle=str(cert)))], T0)
        insecure = cycle(tmp_path / "other", [("tls", archive.url, options(verify_tls=False))], T0)
    assert refused.points == 0 and refused.archives_ok == ()
    assert "TLS verification failed for https://127.0.0.1" in refused.problems[0].problem
    assert trusted.problems == () and trusted.points == 24
    assert insecure.problems == () and insecure.points == 24
