"""A push killed with SIGKILL in the middle (a real subprocess), then run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vault import Kind, Source, Vault
from vault.replica import add_replica, clone, verify

from conftest import PASSPHRASE
from helpers.replica import assert_no_plaintext, cli_run, rows, SECRET

SEGMENT_EVENTS = 10


def _fill(vault: Vault, n: int, start: int) -> None:
    with vault.transaction() as tx:
        for i in range(start, start + n):
            tx.create(Kind.MESSAGE, {"subject": f"{SECRET} {i}", "body": "x" * 300}, Source("cli"))


def _killed_push(env: dict, folder: Path, at_least: int) -> int:
    """Start `lifevault push`, SIGKILL it once `at_least` new segment files exist; returns how many did."""
    before = len(list(folder.glob("*.seg")))
    proc = subprocess.Popen([sys.executable, "-c", "from vault.cli import main; main()", "push", "usb"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(folder.glob("*.seg"))) - before < at_least:
        assert proc.poll() is None, f"push ended before it could be killed: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return len(list(folder.glob("*.seg"))) - before


def test_push_killed_midway_then_rerun(vault: Vault, created, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", str(SEGMENT_EVENTS))
    env = {**os.environ, "LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    usb = tmp_path / "usb"
    add_replica(vault.log.vault_id, "usb", str(usb))
    _fill(vault, 2000, 0)

    # the first push dies before its manifest: the replica is empty, not corrupt
    sent = _killed_push(env, usb, at_least=5)
    assert sent < 2000 // SEGMENT_EVENTS and not (usb / "manifest.json").exists()
    r = cli_run("replica", "verify", "usb", "--blind", env=env)
    assert r.exit_code == 1 and "is empty: it has no manifest" in r.output
    r = cli_run("push", "usb", env=env)
    assert r.exit_code == 0 and "Pushed to usb: 2000 events" in r.output, r.output
    assert verify(created[0], "usb", vault.keys).events == 2000

    # a second push dies midway: the replica still holds the first push, plus unlisted leftovers
    _fill(vault, 1000, 2000)
    sent = _killed_push(env, usb, at_least=5)
    assert sent < 1000 // SEGMENT_EVENTS
    r = cli_run("replica", "verify", "usb", "--blind", env=env)
    assert r.exit_code == 1 and "extra segment events-000000002001-000000002010.seg" in r.output
    assert clone(str(usb), tmp_path / "mid.db", PASSPHRASE).events == 2000  # leftovers do not block a restore
    _fill(vault, 5, 3000)  # the vault moved on and segments are cut differently: the leftovers are dropped
    r = cli_run("push", "usb", env={**env, "LIFEVAULT_SEGMENT_EVENTS": "15"})
    assert r.exit_code == 0 and "Pushed to usb: 1005 events" in r.output, r.output
    assert verify(created[0], "usb", vault.keys).events == 3005  # no extra segment left
    assert "events-000000002001-000000002015.seg" in os.listdir(usb)
    assert "events-000000002001-000000002010.seg" not in os.listdir(usb)
    assert not list(usb.glob(".*"))  # no partial file left behind
    assert_no_plaintext(usb)
    clone(str(usb), tmp_path / "full.db", PASSPHRASE)
    assert rows(tmp_path / "full.db") == rows(created[0])
