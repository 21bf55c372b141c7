"""A push to an rclone remote makes its calls to one `rclone rcd`, which never outlives the push."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vault import Vault
from vault.replica import ReplicaUnreachable, add_replica, clone, push, verify_replica
from vault.replica import targets
from vault.replica.targets import target_for

from conftest import PASSPHRASE
from helpers.replica import build_history, rows
from helpers.webdav import WebdavServer

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")


def _children(pid: int) -> dict[int, list[str]]:
    """pid -> command line of each live process whose parent is `pid`."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            out[int(entry.name)] = [a.decode() for a in cmdline if a]
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def _rclone(started: list[list[str]]) -> list[list[str]]:
    """The rclone commands among `started`, from `rclone` on (the daemon is run through `setpriv`)."""
    return [args[args.index("rclone"):] for args in started if "rclone" in args[:6]]


@pytest.fixture
def started(monkeypatch) -> list[list[str]]:
    """The argument list of every process this test starts (the real processes, only recorded)."""
    seen: list[list[str]] = []
    real = subprocess.Popen

    class Recorded(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *a, **k):
            seen.append(list(args))
            super().__init__(args, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    return seen


def test_a_push_starts_one_rclone_process_and_stops_it(vault: Vault, webdav: WebdavServer, started) -> None:
    build_history(vault, n=30)
    add_replica(vault.log.vault_id, "cloud", "lvtest:v")  # (checks that the remote answers)
    started.clear()
    push(vault.log, "cloud")  # lease, listings, the two-writer checks, segments, manifest
    rclone = _rclone(started)
    assert [args[1] for args in rclone] == ["rcd"]
    assert not any(a.startswith("--rc-pass") or a.startswith("--rc-user") for a in rclone[0])  # in its environment
    assert [args for args in _children(os.getpid()).values() if args[:2] == ["rclone", "rcd"]] == []
    build_history(vault, n=5, start=30)
    assert push(vault.log, "cloud").events == 5
    assert verify_replica(target_for("lvtest:v"), "cloud", keys=vault.keys).events == 35


def test_a_frozen_remote_is_answered_within_the_limit_and_the_daemon_stopped(vault: Vault, webdav: WebdavServer,
                                                                             monkeypatch) -> None:
    build_history(vault, n=10)
    add_replica(vault.log.vault_id, "cloud", "lvtest:v")
    push(vault.log, "cloud")
    build_history(vault, n=5, start=10)
    monkeypatch.setenv("LIFEVAULT_RCLONE_TIMEOUT", "3")
    assert webdav.proc is not None
    os.kill(webdav.proc.pid, signal.SIGSTOP)
    try:
        t = time.monotonic()
        with pytest.raises(ReplicaUnreachable, match=r"^lvtest:v is unreachable: rclone \w+ got no answer within 3 s "
                                                     r"\(a frozen server\?\)\.$"):
            push(vault.log, "cloud")
        assert time.monotonic() - t < 15  # one call's limit, then the lease's withdrawal gets its own
        assert [args for args in _children(os.getpid()).values() if args[:2] == ["rclone", "rcd"]] == []
    finally:
        os.kill(webdav.proc.pid, signal.SIGCONT)
    assert push(vault.log, "cloud").events == 5


def test_the_daemon_dies_with_a_pusher_killed_by_sigkill(vault: Vault, webdav: WebdavServer, created) -> None:
    """A pusher stuck on a frozen server is killed with SIGKILL: its `rclone rcd` goes with it."""
    build_history(vault, n=10)
    add_replica(vault.log.vault_id, "cloud", "lvtest:v")
    env = {**os.environ, "LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE,
           "LIFEVAULT_RCLONE_TIMEOUT": "60"}
    assert webdav.proc is not None
    os.kill(webdav.proc.pid, signal.SIGSTOP)
    try:
        pusher = subprocess.Popen([sys.executable, "-c", "from vault.cli import main; main()", "push", "cloud"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (daemons := [p for p, a in _children(pusher.pid).items() if a[:2] == ["rclone", "rcd"]]):
            assert pusher.poll() is None and time.monotonic() < deadline, "the push never started rclone rcd"
            time.sleep(0.01)
        time.sleep(0.3)  # its first call is now waiting on the frozen server
        pusher.kill()
        pusher.wait()
        deadline = time.monotonic() + 10
        while _alive(daemons[0]):
            assert time.monotonic() < deadline, "rclone rcd outlived its pusher"
            time.sleep(0.02)
    finally:
        os.kill(webdav.proc.pid, signal.SIGCONT)


def test_a_push_that_compacts_a_remote_does_it_through_the_same_daemon(vault: Vault, webdav: WebdavServer,
                                                                        started, monkeypatch, tmp_path: Path) -> None:
    """Past the threshold a push fetches, merges and removes segments on the remote: still one rclone process."""
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "4")
    monkeypatch.setenv("LIFEVAULT_COMPACT_SEGMENTS", "6")
    add_replica(vault.log.vault_id, "cloud", "lvtest:v")
    build_history(vault, n=32)
    started.clear()
    push(vault.log, "cloud")  # 8 small segments, past the threshold: merged into one
    assert [args[1] for args in _rclone(started)] == ["rcd"]
    names = sorted(p.name for p in (webdav.root / "v").iterdir())
    assert names == ["blobs-000001.seg", "events-000000000001-000000000032.seg", "manifest.json"]
    assert verify_replica(target_for("lvtest:v"), "cloud", keys=vault.keys).events == 32
    clone("lvtest:v", tmp_path / "clone.db", PASSPHRASE)
    assert rows(tmp_path / "clone.db") == rows(vault.path)


def test_a_push_sent_in_many_batches_two_at_a_time_arrives_whole(vault: Vault, webdav: WebdavServer, started,
                                                                  monkeypatch, tmp_path: Path) -> None:
    """Through the daemon each staged segment may go in its own copy, two copies at once: all arrive before
    the manifest names them, by the one daemon."""
    monkeypatch.setattr(targets, "_SEND_BYTES_RC", 1)  # every segment its own batch
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "4")
    monkeypatch.setenv("LIFEVAULT_COMPACT_SEGMENTS", "1000")
    add_replica(vault.log.vault_id, "cloud", "lvtest:v")
    build_history(vault, n=40)
    started.clear()
    push(vault.log, "cloud")
    assert [args[1] for args in _rclone(started)] == ["rcd"]
    assert len([p for p in (webdav.root / "v").iterdir() if p.name.startswith("events-")]) == 10
    assert verify_replica(target_for("lvtest:v"), "cloud", keys=vault.keys).events == 40
    clone("lvtest:v", tmp_path / "clone.db", PASSPHRASE)
    assert rows(tmp_path / "clone.db") == rows(vault.path)
