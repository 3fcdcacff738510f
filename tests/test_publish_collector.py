"""The collector path against TCP listeners on 127.0.0.1 (no HTCondor daemon exists here).

Listeners that refuse, accept and stay silent, or read slowly show that the deadline
holds, that the spool keeps the last set, and that a retry resends it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest

from larkps.config.settings import CollectorTarget
from larkps.errors import PublishError
from larkps.publish.collector import CollectorPublisher, Spool, invalidation_ad


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Listener:
    """Accepts connections on 127.0.0.1 and records what arrives; never answers."""

    def __init__(self, port: int, read_delay: float = 0.0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.read_delay = read_delay
        self.received = bytearray()
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        clients = []
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            client.settimeout(0.1)
            clients.append(client)
            threading.Thread(target=self._drain, args=(client,), daemon=True).start()
        for client in clients:
            client.close()

    def _drain(self, client: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                chunk = client.recv(1 if self.read_delay else 65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.received.extend(chunk)
            if self.read_delay:
                time.sleep(self.read_delay)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def listener_factory() -> Iterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for listener in made:
        listener.close()


def ads(*names: str) -> list[classad2.ClassAd]:
    return [classad2.ClassAd({"MyType": "LarkPSPath", "Name": n, "LarkPS_X": 1}) for n in names]


def publisher(tmp_path: Path, port: int, timeout: float = 2.0, retries: int = 1):
    target = CollectorTarget(pool=f"127.0.0.1:{port}", timeout=timeout)
    return CollectorPublisher(
        target, Spool(tmp_path / "spool"), retries=retries, sleep=lambda _: None
    )


def test_refused_collector_fails_fast_and_keeps_the_set_in_the_spool(tmp_path: Path, port: int):
    pub = publisher(tmp_path, port, retries=2)
    started = time.monotonic()
    with pytest.raises(PublishError, match=f"collector 127.0.0.1:{port}: UPDATE_AD_GENERIC"):
        pub.publish(ads("A->B/ipv4@larkps", "B->A/ipv4@larkps"), 1_700_000_000)
    assert time.monotonic() - started < 15
    pending = pub.spool.pending_text()
    assert pending is not None
    names = [a["Name"] for a in classad2.parseAds(pending, classad2.ParserType.Old)]
    assert names == ["A->B/ipv4@larkps", "B->A/ipv4@larkps"]
    assert not pub.spool.published.exists()


@pytest.mark.parametrize("read_delay", [0.0, 0.05], ids=["silent", "slow"])
def test_deadline_holds_against_a_hung_collector(
    tmp_path: Path, port: int, listener_factory: list[Listener], read_delay: float
):
    listener = Listener(port, read_delay)
    listener_factory.append(listener)
    pub = publisher(tmp_path, port, timeout=2.0)
    started = time.monotonic()
    with pytest.raises(PublishError, match="no answer within 2 s"):
        pub.publish(ads("A->B/ipv4@larkps"), 1_700_000_000)
    elapsed = time.monotonic() - started
    assert elapsed < 10, "the bindings' own 20 s timeout must not be what ends the call"
    assert listener.connections >= 1
    assert pub.spool.pending_text() is not None


def test_retry_resends_the_spooled_set(
    tmp_path: Path, port: int, listener_factory: list[Listener], monkeypatch: pytest.MonkeyPatch
):
    # Without security negotiation the client sends the ads straight after the
    # command, so the listener can see which ads were (re)sent.
    monkeypatch.setenv("_CONDOR_SEC_CLIENT_NEGOTIATION", "NEVER")
    pub = publisher(tmp_path, port)
    with pytest.raises(PublishError):
        pub.publish(ads("SPOOLED-PATH->X/ipv4@larkps"), 1_700_000_000)
    listener = Listener(port)  # the "collector" comes back
    listener_factory.append(listener)
    delivery = pub.resend_pending()
    assert (delivery.sent, delivery.invalidated) == (1, 0)
    deadline = time.monotonic() + 5
    while b"SPOOLED-PATH" not in listener.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b'Name = "SPOOLED-PATH->X/ipv4@larkps"' in bytes(listener.received)
    assert pub.spool.pending_text() is None
    assert pub.spool.published_names() == {"SPOOLED-PATH->X/ipv4@larkps": "LarkPSPath"}


def test_vanished_paths_are_invalidated_by_name(
    tmp_path: Path, port: int, listener_factory: list[Listener], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("_CONDOR_SEC_CLIENT_NEGOTIATION", "NEVER")
    listener = Listener(port)
    listener_factory.append(listener)
    pub = publisher(tmp_path, port)
    assert pub.publish(ads("KEEP", "GONE"), 1).sent == 2
    second = pub.publish(ads("KEEP"), 2)
    assert (second.sent, second.invalidated) == (1, 1)
    deadline = time.monotonic() + 5
    while b'TargetType = "LarkPSPath"' not in listener.received and time.monotonic() < deadline:
        time.sleep(0.05)
    received = bytes(listener.received)
    assert b'MyType = "Query"' in received and b'Name = "GONE"' in received


def test_nothing_pending_sends_nothing(tmp_path: Path, port: int):
    delivery = publisher(tmp_path, port).resend_pending()
    assert (delivery.sent, delivery.attempts) == (0, 0)


def test_invalidation_query_ad_selects_the_table_and_the_name():
    query = invalidation_ad("LarkPSPath", "A->B/ipv4@larkps")
    assert query["MyType"] == "Query"
    assert query["TargetType"] == "LarkPSPath"
    assert query["Name"] == "A->B/ipv4@larkps"


def test_published_names_come_from_the_last_delivered_set(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.hold("\n".join(a.printOld() for a in ads("P1", "P2")))
    spool.delivered()
    assert spool.published_names() == {"P1": "LarkPSPath", "P2": "LarkPSPath"}
    assert spool.pending_text() is None
