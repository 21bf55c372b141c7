"""`lifevault status` as a monitor reads it (issue 15, finding 2): head hashes compared, every bad case named in
one sentence, exit codes 0 OK / 1 at risk / 2 broken, a frozen remote answered within the time limit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from vault import Vault
from vault.replica import add_replica, mark_offsite, push, verify
from vault.replica.registry import update

from conftest import PASSPHRASE
from helpers.replica import build_history, cli_run, copy_vault

needs_rclone = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")


@pytest.fixture
def env(created) -> dict:
    return {"LIFEVAULT_PATH": str(created[0])}  # status needs no passphrase


@pytest.fixture
def healthy(created, tmp_path: Path) -> Vault:
    """A vault with two replicas, pushed and verified, one off-site: status OK."""
    v = Vault.open(created[0], PASSPHRASE)
    build_history(v, n=10)
    add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
    add_replica(v.log.vault_id, "nas", str(tmp_path / "nas"), offsite=True)
    for name in ("usb", "nas"):
        push(v.log, name)
        verify(v.path, name)
    yield v
    v.close()


def _status(env: dict, *args: str) -> tuple[int, dict]:
    r = cli_run("status", "--json", *args, env=env)
    return r.exit_code, json.loads(r.output)


def _copy(data: dict, name: str) -> dict:
    return next(c for c in data["copies"] if c["name"] == name)


def test_all_well_exits_0(healthy: Vault, env: dict) -> None:
    r = cli_run("status", env=env)
    assert r.exit_code == 0, r.output
    assert "nas (off-site)" in r.output and "OK: 3 copies (this vault and 2 replicas, 1 off-site)" in r.output


def test_no_offsite_copy_is_at_risk(healthy: Vault, env: dict) -> None:
    assert cli_run("replica", "mark", "nas", "--onsite", env=env).exit_code == 0
    code, data = _status(env)
    assert code == 1 and data["state"] == "at risk"
    assert "no replica in order is marked off-site (`lifevault replica mark NAME --offsite`)" in data["verdict"]
    mark_offsite(healthy.log.vault_id, "usb", True)
    assert _status(env)[0] == 0


def test_same_length_fork_is_broken(healthy: Vault, tmp_path: Path, env: dict) -> None:
    """Another history of exactly the same length: event numbers agree, head hashes do not."""
    copy_vault(healthy.path, tmp_path / "twin.db")
    build_history(healthy, n=1, start=10)
    push(healthy.log, "usb")  # usb holds this vault's event 11
    with Vault.open(tmp_path / "twin.db", PASSPHRASE) as twin:
        build_history(twin, n=1, start=50)  # the twin's own event 11
    code, data = _status({"LIFEVAULT_PATH": str(tmp_path / "twin.db")})
    usb = _copy(data, "usb")
    assert code == 2 and data["state"] == "broken" and usb["state"] == "broken"
    assert (usb["head_seq"], usb["fork_at"]) == (11, 11) and data["head_seq"] == 11
    assert "holds another history from event 11 on" in usb["problem"] and data["verdict"].startswith("BROKEN: ")


def test_replica_ahead_is_broken(healthy: Vault, tmp_path: Path, env: dict) -> None:
    copy_vault(healthy.path, tmp_path / "older.db")
    build_history(healthy, n=3, start=10)
    push(healthy.log, "usb")
    code, data = _status({"LIFEVAULT_PATH": str(tmp_path / "older.db")})
    assert code == 2 and _copy(data, "usb")["ahead"] == 3
    assert "is 3 events ahead of this vault" in _copy(data, "usb")["problem"]


def test_behind_is_at_risk(healthy: Vault, env: dict) -> None:
    build_history(healthy, n=2, start=10)
    push(healthy.log, "usb")
    code, data = _status(env)
    assert code == 1 and _copy(data, "nas")["behind"] == 2 and _copy(data, "usb")["state"] == "ok"
    assert "is 2 events behind; run `lifevault push nas`" in _copy(data, "nas")["problem"]


def test_never_verified_and_old_verification_are_at_risk(healthy: Vault, env: dict) -> None:
    update(healthy.log.vault_id, "usb", verified_at=None)
    code, data = _status(env)
    assert code == 1 and "was never verified; run `lifevault replica verify usb`" in _copy(data, "usb")["problem"]
    update(healthy.log.vault_id, "usb", verified_at="2026-01-01T00:00:00.000000Z")
    code, data = _status(env, "--verified-within", "7")
    assert code == 1 and "was last verified" in _copy(data, "usb")["problem"] and "days ago" in _copy(data, "usb")["problem"]
    assert _status(env, "--verified-within", "100000")[0] == 0


def test_never_pushed_says_so(healthy: Vault, tmp_path: Path, env: dict) -> None:
    add_replica(healthy.log.vault_id, "new", str(tmp_path / "new"))
    code, data = _status(env)
    assert code == 1 and _copy(data, "new")["problem"] == (
        f"Replica new ({tmp_path / 'new'}) was never pushed; `lifevault push new` fills it.")


def test_emptied_replica_is_broken(healthy: Vault, tmp_path: Path, env: dict) -> None:
    for p in (tmp_path / "usb").iterdir():
        p.unlink()
    code, data = _status(env)
    assert code == 2 and "is empty although this vault pushed up to event 10 there" in _copy(data, "usb")["problem"]


@needs_rclone
def test_never_pushed_remote_is_not_called_missing(healthy: Vault, webdav, env: dict) -> None:
    add_replica(healthy.log.vault_id, "cloud", "lvtest:fresh")
    code, data = _status(env)
    problem = _copy(data, "cloud")["problem"]
    assert code == 1 and problem == "Replica cloud (lvtest:fresh) was never pushed; `lifevault push cloud` fills it."


@needs_rclone
def test_unreachable_remote_is_at_risk(healthy: Vault, webdav, env: dict) -> None:
    add_replica(healthy.log.vault_id, "cloud", "lvtest:v", offsite=True)
    push(healthy.log, "cloud")
    verify(healthy.path, "cloud")
    assert _status(env)[0] == 0
    webdav.stop()
    code, data = _status(env)
    assert code == 1 and "lvtest:v is unreachable" in _copy(data, "cloud")["problem"]
    assert _copy(data, "usb")["state"] == "ok"


@needs_rclone
def test_frozen_remote_answered_within_15_s(healthy: Vault, webdav, env: dict) -> None:
    add_replica(healthy.log.vault_id, "cloud", "lvtest:v")
    add_replica(healthy.log.vault_id, "cloud2", "lvtest:w")
    push(healthy.log, "cloud")
    push(healthy.log, "cloud2")
    os.kill(webdav.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        code, data = _status(env, "--timeout", "5")
        took = time.monotonic() - started
    finally:
        os.kill(webdav.proc.pid, signal.SIGCONT)
    assert took < 15, took  # two frozen remotes, read in parallel, within one time limit each
    assert code == 1
    for name in ("cloud", "cloud2"):
        assert "got no answer within" in _copy(data, name)["problem"] or "did not answer" in _copy(data, name)["problem"]
    assert _copy(data, "usb")["state"] == "ok"


def test_rclone_settings_come_from_the_environment(monkeypatch) -> None:
    from vault.replica.targets import rclone_flags

    monkeypatch.setenv("LIFEVAULT_RCLONE_RETRIES", "4")
    monkeypatch.setenv("LIFEVAULT_RCLONE_IO_TIMEOUT", "7")
    flags = rclone_flags()
    assert flags[flags.index("--retries") + 1] == "4" and flags[flags.index("--timeout") + 1] == "7s"


def test_a_damaged_push_key_list_is_one_sentence(healthy: Vault, env: dict, created) -> None:
    """The vault's list of push keys is read once, before any replica is asked: damage there is named in one
    sentence with a broken exit code, never a failure inside a replica's thread."""
    healthy.close()
    conn = sqlite3.connect(created[0])
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('push_keys', ?)", (b"[{not json",))
    conn.close()
    for args in ((), ("--json",)):
        r = cli_run("status", *args, env=env)
        assert r.exit_code == 2, r.output
        assert "list of push keys" in r.output and str(created[0]) in r.output and "Traceback" not in r.output
        assert "did not answer" not in r.output
