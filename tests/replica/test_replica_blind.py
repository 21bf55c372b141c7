"""Blind verification from the replica alone (issue 15, finding 3): a machine with no vault file (a fresh
LIFEVAULT_HOME) checks a folder and a WebDAV replica against the vault's key fingerprint, and surveys the
candidates before a clone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vault import Vault
from vault.replica import add_replica, push

from conftest import PASSPHRASE
from helpers.replica import build_history, cli_run

WRONG = "AAAA-BBBB-CCCC-DDDD"


@pytest.fixture
def pushed(created, tmp_path: Path) -> tuple[Vault, str]:
    """A vault with 12 events pushed to a folder; returns it and its key fingerprint."""
    v = Vault.open(created[0], PASSPHRASE)
    build_history(v, n=12)
    add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
    push(v.log, "usb")
    yield v, v.key_fingerprint
    v.close()


def _elsewhere(tmp_path: Path) -> dict:
    """Another machine: its own empty LIFEVAULT_HOME, no vault file, no passphrase."""
    home = tmp_path / "untrusted-host"
    return {"LIFEVAULT_HOME": str(home), "LIFEVAULT_PATH": str(home / "vault.db"), "LIFEVAULT_PASSPHRASE": ""}


def _check_alone(target: str, fingerprint: str, tmp_path: Path) -> None:
    env = _elsewhere(tmp_path)
    r = cli_run("replica", "verify", target, "--blind", "--key", fingerprint.lower(), env=env)
    assert r.exit_code == 0, r.output
    assert f"OK: replica {target} holds 12 events" in r.output and f"signed by key {fingerprint}" in r.output
    r = cli_run("replica", "verify", target, "--blind", "--key", WRONG, env=env)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert f"is signed by key {fingerprint}, not the expected {WRONG}" in r.output
    r = cli_run("replica", "verify", target, "--blind", env=env)
    assert r.exit_code == 1 and "There is no vault file at" in r.output and "--key FINGERPRINT" in r.output
    assert not Path(env["LIFEVAULT_PATH"]).exists()


def test_folder_replica_verified_with_no_vault_file(pushed, tmp_path: Path) -> None:
    _check_alone(str(tmp_path / "usb"), pushed[1], tmp_path)


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")
def test_webdav_replica_verified_with_no_vault_file(pushed, tmp_path: Path, webdav) -> None:
    v, fingerprint = pushed
    add_replica(v.log.vault_id, "cloud", "lvtest:lifevault")
    push(v.log, "cloud")
    _check_alone("lvtest:lifevault", fingerprint, tmp_path)


def test_a_replica_re_signed_by_another_vault_fails_the_pin(pushed, tmp_path: Path) -> None:
    """Someone who controls the replica replaces it with their own vault's: self-consistent, wrong key."""
    other_path = tmp_path / "other.db"
    other, _ = Vault.create(other_path, PASSPHRASE, kdf_cost="min")
    build_history(other, n=12)
    add_replica(other.log.vault_id, "evil", str(tmp_path / "evil"))
    push(other.log, "evil")
    other.close()
    shutil.rmtree(tmp_path / "usb")
    shutil.copytree(tmp_path / "evil", tmp_path / "usb")
    r = cli_run("replica", "verify", str(tmp_path / "usb"), "--key", pushed[1], env=_elsewhere(tmp_path))
    assert r.exit_code == 1 and f"not the expected {pushed[1]}" in r.output


def test_survey_reports_each_candidate(pushed, tmp_path: Path) -> None:
    v, fingerprint = pushed
    add_replica(v.log.vault_id, "old", str(tmp_path / "old"))
    push(v.log, "old")
    build_history(v, n=3, start=12)
    push(v.log, "usb")
    (tmp_path / "old" / "events-000000000001-000000000012.seg").write_bytes(b"damaged")
    r = cli_run("replica", "survey", str(tmp_path / "usb"), str(tmp_path / "old"), str(tmp_path / "nowhere"),
                "--key", fingerprint, "--json", env=_elsewhere(tmp_path))
    assert r.exit_code == 0, r.output
    usb, old, nowhere = json.loads(r.output)
    assert (usb["head_seq"], usb["problem"], usb["fingerprint"]) == (15, None, fingerprint)
    assert usb["written_at"] and usb["head_hash"] == v.log.head().hash.hex()
    assert old["head_seq"] == 12 and "is damaged" in old["problem"]
    assert nowhere["head_seq"] is None and "is missing" in nowhere["problem"]
    r = cli_run("replica", "survey", str(tmp_path / "usb"), env=_elsewhere(tmp_path))
    assert "event 15 (" in r.output and "verified (blind)" in r.output
