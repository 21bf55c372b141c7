"""Replicas on a real rclone remote (`rclone serve webdav` on loopback), and the disaster drill.

The remote is configured the way a user without a config file would: RCLONE_CONFIG_<NAME>_TYPE/URL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from vault import Kind, Vault
from vault.domain.instants import Instant
from vault.replica import (
    ReplicaMissing, ReplicaUnreachable, add_replica, clone, push, status, target_for, verify, verify_replica,
)
from vault.store.verify import check_log

from conftest import PASSPHRASE
from helpers.replica import HOUR, SECRET, T0, assert_no_plaintext, build_history, cli_run, rows, states
from helpers.served import Served, replica_head, wait_until
from helpers.webdav import WebdavServer

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")


@pytest.fixture
def history(vault: Vault) -> Vault:
    build_history(vault)
    return vault


def test_push_verify_clone_over_rclone(history: Vault, webdav: WebdavServer, tmp_path: Path, created, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    add_replica(history.log.vault_id, "cloud", "lvtest:backups/lifevault")
    r = push(history.log, "cloud")
    assert (r.events, r.blobs) == (40, 1)
    stored = webdav.root / "backups" / "lifevault"
    assert sorted(p.name for p in stored.iterdir()) == [
        "blobs-000001.seg", "events-000000000001-000000000015.seg", "events-000000000016-000000000030.seg",
        "events-000000000031-000000000040.seg", "manifest.json"]
    assert_no_plaintext(webdav.root)
    leftover = tmp_path / "events-000000000041-000000000050.seg"  # as an interrupted push would leave
    leftover.write_bytes(b"LVREPEV1 half-sent")
    subprocess.run(["rclone", "copyto", str(leftover), f"lvtest:backups/lifevault/{leftover.name}"], check=True,
                   capture_output=True)
    build_history(history, n=4, start=40)
    assert push(history.log, "cloud").events == 4
    assert not (stored / leftover.name).exists()
    assert verify(history.path, "cloud").blind
    assert verify(history.path, "cloud", history.keys).events == 44
    clone("lvtest:backups/lifevault", tmp_path / "clone.db", PASSPHRASE)
    assert rows(tmp_path / "clone.db") == rows(created[0])


def test_damage_on_the_remote_is_named(history: Vault, webdav: WebdavServer, tmp_path: Path) -> None:
    add_replica(history.log.vault_id, "cloud", "lvtest:v")
    push(history.log, "cloud")
    seg = webdav.root / "v" / "events-000000000001-000000000040.seg"
    cut = tmp_path / seg.name
    cut.write_bytes(seg.read_bytes()[:100])  # tampered through the remote's own interface
    subprocess.run(["rclone", "copyto", str(cut), f"lvtest:v/{seg.name}"], check=True, capture_output=True)
    with pytest.raises(Exception, match=r"events-000000000001-000000000040\.seg is truncated \(100 of"):
        verify_replica(target_for("lvtest:v"), "cloud")


def test_remote_down_then_catch_up(history: Vault, webdav: WebdavServer, created, monkeypatch) -> None:
    env = {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    add_replica(history.log.vault_id, "cloud", "lvtest:v")
    push(history.log, "cloud")
    webdav.stop()
    build_history(history, n=6, start=40)
    before = rows(created[0])
    result = cli_run("push", "cloud", env=env)
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("Error: lvtest:v is unreachable:") and "connection refused" in line, line
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert rows(created[0]) == before
    assert check_log(history.log, blind=False).events == 46  # the vault is unaffected
    s = status(history.path)
    assert not s.ok and "unreachable" in s.verdict
    with pytest.raises(ReplicaUnreachable):
        push(history.log, "cloud")
    webdav.start()
    result = cli_run("push", "cloud", env=env)
    assert result.exit_code == 0 and "Pushed to cloud: 6 events" in result.output
    assert verify(history.path, "cloud", history.keys).events == 46


def test_disaster_drill(history: Vault, webdav: WebdavServer, tmp_path: Path, created) -> None:
    """A vault with history is pushed to a folder and to a remote, then lost; each replica alone
    brings back the same events and the same state at every instant asked."""
    build_history(history, n=30, start=40)
    add_replica(history.log.vault_id, "usb", str(tmp_path / "usb"))
    add_replica(history.log.vault_id, "cloud", "lvtest:drill")
    assert push(history.log, "usb").events == push(history.log, "cloud").events == 70
    seqs = [0, 1, 5, 17, 33, 52, 69, 70]
    times = [T0 - 1, T0 + 4 * HOUR, T0 + 12 * HOUR + 1, T0 + 41 * HOUR, T0 + 500 * HOUR]
    expected = states(history, seqs)
    expected_t = {t: states(history, [history.seq_for(Instant(us=t))]) for t in times}
    expected_rows = rows(created[0])
    history.close()
    for leftover in created[0].parent.glob(created[0].name + "*"):
        leftover.unlink()  # the laptop is gone
    for target, name in ((str(tmp_path / "usb"), "from-usb.db"), ("lvtest:drill", "from-cloud.db")):
        report = clone(target, tmp_path / "fresh-machine" / name, PASSPHRASE)
        assert (report.events, report.blobs) == (70, 1)
        assert rows(tmp_path / "fresh-machine" / name) == expected_rows
        with Vault.open(tmp_path / "fresh-machine" / name, PASSPHRASE) as v:
            assert states(v, seqs) == expected
            assert {t: states(v, [v.seq_for(Instant(us=t))]) for t in times} == expected_t
            assert any(kind is Kind.CONTACT and s == 33 and st for (kind, s), st in expected.items())


def test_remote_folder_gone_or_emptied_stops_push(history: Vault, webdav: WebdavServer) -> None:
    add_replica(history.log.vault_id, "cloud", "lvtest:v")
    push(history.log, "cloud")
    subprocess.run(["rclone", "purge", "lvtest:v"], check=True, capture_output=True)  # someone deleted it
    with pytest.raises(ReplicaMissing, match=r"Replica cloud \(lvtest:v\) is missing: lvtest:v does not exist"):
        push(history.log, "cloud")
    subprocess.run(["rclone", "mkdir", "lvtest:v"], check=True, capture_output=True)
    with pytest.raises(ReplicaMissing, match="is empty although this vault pushed up to event 40 there"):
        push(history.log, "cloud")
    listing = subprocess.run(["rclone", "lsjson", "lvtest:v"], check=True, capture_output=True).stdout
    assert listing.strip() == b"[\n]" or listing.strip() == b"[]"


def test_a_frozen_remote_does_not_hold_back_the_other_replicas(created, webdav: WebdavServer, tmp_path: Path,
                                                               lifevault_home: Path) -> None:
    """Issue 11, finding 13: `lifevault serve` with a WebDAV replica whose server is frozen (SIGSTOP) and a folder
    replica; a change made through the API reaches the folder within 15 s."""
    usb, frozen = tmp_path / "usb", webdav.root / "frozen"
    with Vault.open(created[0], PASSPHRASE) as v:
        add_replica(v.log.vault_id, "cloud", "lvtest:frozen")
        add_replica(v.log.vault_id, "usb", str(usb))
    server = Served(tmp_path, created[0], lifevault_home, PASSPHRASE)
    assert webdav.proc is not None
    stopped = False
    try:
        token = server.cli("token", "create", "phone").stdout.strip()
        head = Vault.open(created[0], PASSPHRASE)
        seq = head.log.head().seq
        head.close()
        wait_until(lambda: replica_head(usb) == seq and replica_head(frozen) == seq, "the start-up pushes", server.log)
        os.kill(webdav.proc.pid, signal.SIGSTOP)
        stopped = True
        r = httpx.post(server.url + "/api/notes", json={"title": f"{SECRET} while cloud is frozen"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 201, r.text + server.output()
        new_seq = r.json()["seq"]
        wait_until(lambda: replica_head(usb) == new_seq, "the push to the folder replica", server.log, timeout=15)
        assert replica_head(frozen) == seq  # the frozen one could not have taken it
    finally:
        if stopped:
            os.kill(webdav.proc.pid, signal.SIGCONT)
        server.stop()
    assert verify(created[0], "usb").events == new_seq
    assert_no_plaintext(usb)


def test_push_deep_repairs_a_remote_segment(history: Vault, webdav: WebdavServer, created) -> None:
    """A remote's sizes are checked on every push; its bytes only with --deep (they must be fetched)."""
    env = {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    add_replica(history.log.vault_id, "cloud", "lvtest:v")
    push(history.log, "cloud")
    seg = webdav.root / "v" / "events-000000000001-000000000040.seg"
    sound = seg.read_bytes()
    flipped = bytearray(sound)
    flipped[len(flipped) // 2] ^= 0x10
    seg.write_bytes(bytes(flipped))
    r = cli_run("replica", "verify", "cloud", "--blind", env=env)
    assert r.exit_code == 1 and "`lifevault push --deep cloud` re-sends damaged segments" in r.output
    r = cli_run("push", "cloud", env=env)
    assert r.exit_code == 0 and "Repaired" not in r.output
    r = cli_run("push", "--deep", "cloud", env=env)
    assert r.exit_code == 0, r.output
    assert "Repaired cloud: segment events-000000000001-000000000040.seg no longer matched its digest" in r.output
    assert seg.read_bytes() == sound
    assert cli_run("replica", "verify", "cloud", "--blind", env=env).exit_code == 0
