"""The builder's service side without making networks: who may connect, what a bad
request or a refused job gets, config reloads, and the command's exits. (Every
network the builder makes is in test_privileged.py, with real traffic.)

The ground truth of a refusal is what the helper says when it plans the job itself:
plan_job over the same ad texts and root's config, as helper_local does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from larkps.errors import LarkpsError
from larkps.jobnet.builder import Builder, bind_socket, serve_forever
from larkps.jobnet.helperconf import load_node
from larkps.jobnet.jobad import parse_ad_texts
from larkps.jobnet.request import plan_job
from larkps.jobnet.wire import Channel

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the builder runs as root and serves root only"),
]

LARKPS = Path(sys.executable).parent / "larkps"
CONFIG = """[jobnet]
mode = "privileged"
policies = {policies}
default_policy = "nat"
pool4 = "198.18.97.0/24"
ledger = "{ledger}"
"""
JOB_AD = 'ClusterId = 41\nProcId = 0\nOwner = "someone"\nLarkNetworkPolicy = "{policy}"\n'
CALLER = {"uid": 4242, "gid": 4242, "groups": [4242], "name": "someone"}


@pytest.fixture
def home() -> Iterator[Path]:
    """A root-owned directory every user may enter (for the socket and the config)."""
    path = Path(tempfile.mkdtemp(prefix="larkps-builder-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(home: Path, policies: list[str]) -> Path:
    config = home / "jobnet.toml"
    config.write_text(CONFIG.format(policies=json.dumps(policies), ledger=home / "ledger.sqlite"))
    config.chmod(0o644)
    return config


@pytest.fixture
def serving(home: Path) -> Iterator[tuple[Path, Path]]:
    """A builder (policies nat, ports) serving on home/builder.sock; (config, socket)."""
    config = write_config(home, ["nat", "ports"])
    path = home / "builder.sock"
    listener = bind_socket(Builder(str(config)), str(path))
    stop = threading.Event()
    worker = threading.Thread(
        target=serve_forever, args=(Builder(str(config)), listener, stop), daemon=True
    )
    worker.start()
    yield config, path
    stop.set()
    worker.join(timeout=10)
    listener.close()


def ask(path: Path, doc: object, raw: bytes | None = None) -> list[dict[str, object]]:
    """Every message the builder sends back for one request, until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(raw if raw is not None else json.dumps(doc).encode() + b"\n")
        channel = Channel(sock, 1 << 20)
        answers = []
        while (message := channel.receive(time.monotonic() + 30)) is not None:
            answers.append(message)
            if "refused" in message:
                break
        return answers


def request(policy: str, caller: object = CALLER) -> dict[str, object]:
    """A helper's request; the tests ask only for what the node refuses, so that a check
    that failed would show as a wrong answer, never as a network made on this host."""
    return {"caller": caller, "job_ad": ["/x/.job.ad", JOB_AD.format(policy=policy)],
            "machine_ad": None}  # fmt: skip


def own_refusal(config: Path, policy: str) -> str:
    """What the helper says when it plans the same job from the same config itself."""
    job, machine = parse_ad_texts(("/x/.job.ad", JOB_AD.format(policy=policy)), None)
    with pytest.raises(LarkpsError) as caught:
        plan_job(job, machine, load_node(str(config)))
    return str(caught.value)


def test_its_socket_is_roots_alone(serving: tuple[Path, Path]):
    _, path = serving
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == 0
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         connect], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr


def test_a_peer_that_is_not_root_gets_nothing(serving: tuple[Path, Path]):
    _, path = serving
    path.chmod(0o666)  # only here: the peer check is what is under test
    talk = (
        "import json, socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
        " s.sendall(json.dumps(json.loads(sys.argv[2])).encode() + b'\\n');"
        "\ntry:\n    print(repr(s.recv(65536)))\nexcept ConnectionResetError:\n    print(repr(b''))"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         talk, str(path), json.dumps(request("vlan"))],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "b''"), done.stderr


@pytest.mark.parametrize("policy", ["vlan", "bridge", "routed"])
def test_a_refused_job_gets_what_the_helper_would_say_and_nothing_is_made(
    serving: tuple[Path, Path], policy: str
):
    config, path = serving
    answers = ask(path, request(policy))
    assert answers == [{"refused": own_refusal(config, policy)}]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (request("vlan", caller={"uid": 0, "gid": 0}), "caller uid is not a positive integer"),
        (request("vlan", caller="root"), "caller is not an object"),
        ({"caller": CALLER, "job_ad": "ClusterId = 1"}, "job_ad is not [file, text]"),
    ],
)
def test_a_bad_request_is_refused_and_makes_nothing(
    serving: tuple[Path, Path], doc: object, problem: str
):
    _, path = serving
    answers = ask(path, doc)
    assert len(answers) == 1 and problem in str(answers[0].get("refused")), answers


def test_a_request_that_is_no_json_object_gets_no_answer(serving: tuple[Path, Path]):
    _, path = serving
    assert ask(path, None, raw=b"[1, 2]\n") == []
    assert ask(path, None, raw=b"not json\n") == []
    assert ask(path, request("vlan"))  # and it still serves the next


def test_a_changed_config_is_read_at_the_next_request(serving: tuple[Path, Path]):
    config, path = serving
    before = ask(path, request("routed"))
    assert before == [{"refused": own_refusal(config, "routed")}]
    time.sleep(0.01)
    write_config(config.parent, ["nat"])
    after = ask(path, request("ports"))
    assert after == [{"refused": own_refusal(config, "ports")}]
    config.chmod(0o666)  # now others could change it: every job is refused for that
    refused = ask(path, request("nat"))
    assert len(refused) == 1 and "writable by group or others" in str(refused[0]["refused"])


def builder_command(config: Path, path: Path, *prefix: str) -> subprocess.Popen[str]:
    argv = [*prefix, str(LARKPS), "jobnet", "builder", "--config", str(config)]
    return subprocess.Popen(
        [*argv, "--socket", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_the_command_runs_as_root_only_with_a_privileged_config_only_root_can_change(
    home: Path,
) -> None:
    config = write_config(home, ["nat"])
    path = home / "builder.sock"
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    rootless = home / "rootless.toml"
    rootless.write_text("[jobnet]\n")
    open_config = home / "open.toml"
    open_config.write_text(config.read_text())
    open_config.chmod(0o666)
    for given, code, words, prefix in [
        (config, 1, "must run as root", nobody),
        (rootless, 2, 'mode = "rootless": privileged mode is off', ()),
        (open_config, 2, "is writable by group or others", ()),
        (home / "absent.toml", 2, "No such file", ()),
    ]:
        process = builder_command(given, path, *prefix)
        _, err = process.communicate(timeout=60)
        lines = err.strip().splitlines()
        assert (process.returncode, len(lines)) == (code, 1), err
        assert words in lines[0] and "Traceback" not in err, err
    assert not path.exists()


def test_sigterm_stops_it_and_takes_its_socket_away(home: Path) -> None:
    config = write_config(home, ["nat"])
    path = home / "builder.sock"
    process = builder_command(config, path)
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.05)
    assert ask(path, request("vlan"))[0]["refused"]
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert not path.exists()
