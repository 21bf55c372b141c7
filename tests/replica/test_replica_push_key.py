"""Pushing without the passphrase (issue 15, finding 4): a push credential in LIFEVAULT_HOME lets a process that
has nothing else push (as cron would), and cannot open, write or sign an event.

Revoking one: a copied or stolen credential stops working. The vault lists the push keys it issued; a revoked
one no longer pushes, and a manifest it signs is refused by the vault (push, pull, status, verify) and, once a
push has carried the revocation there, by a blind reader of the replica alone. The owner's next push checks the
replica's rows and signs it anew."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from vault import Vault
from vault.store import crypto
from vault.store.crypto import PushKeys
from vault.errors import TamperDetected
from vault.domain.instants import iso
from vault.store.log import EventLog, now_us, open_event
from vault.replica import ReplicaDamaged, add_replica, push, verify, verify_pinned
from vault.replica.errors import RevokedSigner
from vault.replica.manifest import MANIFEST_NAME, parse
from vault.replica.push_key import BadPushKey, create, load, push_key_path
from vault.replica.status import status

from conftest import PASSPHRASE
from helpers.replica import SECRET, assert_no_plaintext, build_history, cli_run, rows


@pytest.fixture
def history(created, tmp_path: Path) -> Vault:
    v = Vault.open(created[0], PASSPHRASE)
    build_history(v, n=20)
    add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
    yield v
    v.close()


def _cron(created, *args: str) -> subprocess.CompletedProcess:
    """`lifevault …` as cron runs it: a real process with the vault's path and home, and no passphrase."""
    env = {k: v for k, v in os.environ.items() if k != "LIFEVAULT_PASSPHRASE"}
    env.update(LIFEVAULT_PATH=str(created[0]), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", "from vault.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_push_from_a_process_with_only_the_credential(history: Vault, created, tmp_path: Path) -> None:
    r = cli_run("replica", "push-key", "create", env={"LIFEVAULT_PATH": str(created[0]),
                                                    "LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 0 and "Wrote the push credential" in r.output
    path = push_key_path(history.log.vault_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert PASSPHRASE not in path.read_text() and SECRET not in path.read_text()

    done = _cron(created, "push")
    assert done.returncode == 0 and "Pushed to usb: 20 events" in done.stderr, done.stderr
    build_history(history, n=5, start=20)
    done = _cron(created, "push", "usb")
    assert done.returncode == 0 and "Pushed to usb: 5 events" in done.stderr, done.stderr
    assert verify(history.path, "usb", history.keys).events == 25  # the full check: MAC, every tag
    assert verify_pinned(str(tmp_path / "usb"), history.key_fingerprint).events == 25  # and from anywhere
    assert_no_plaintext(tmp_path / "usb")
    clone = tmp_path / "clone.db"
    assert cli_run("clone", str(tmp_path / "usb"), str(clone), env={"LIFEVAULT_PASSPHRASE": PASSPHRASE}).exit_code == 0
    assert rows(clone) == rows(history.path)


def test_without_a_credential_push_still_asks_for_the_passphrase(history: Vault, created) -> None:
    done = _cron(created, "push")
    assert done.returncode == 1 and "Passphrase" in done.stderr + done.stdout


def test_the_credential_cannot_open_an_event(history: Vault) -> None:
    """Every value in the credential file, used as an event key or as a data key, fails on every event."""
    create(history.log)
    values = [bytes.fromhex(v) for v in json.loads(push_key_path(history.log.vault_id).read_text()).values()
              if isinstance(v, str) and len(v) >= 64 and all(c in "0123456789abcdef" for c in v)]
    candidates = {v[i:i + 32] for v in values for i in range(0, len(v) - 31, 32)}
    candidates |= {crypto.Keys(k).event for k in list(candidates)}
    assert history.keys.event not in candidates and history.keys.data_key not in candidates
    log = history.log
    for seq, prev, _, payload in list(log.checked_rows())[:5]:
        assert open_event(history.keys.event, log.vault_id, seq, prev, payload)  # the real key opens it
        for key in candidates:
            with pytest.raises(TamperDetected):
                open_event(key, log.vault_id, seq, prev, payload)
    pk = load(history.log.vault_id, history.keys.verify_key)
    assert not hasattr(pk, "event") and not hasattr(pk, "head") and "hidden" in repr(pk)


def test_a_push_key_the_vault_never_vouched_for_is_refused(history: Vault, tmp_path: Path) -> None:
    from vault.store.crypto import PushKeys

    real = history.keys.delegate_push()
    forged = PushKeys(os.urandom(32), real.manifest, real.vault_verify_key, real.delegation)  # another signing key
    push(history.log, "usb", signer=forged)  # what a thief with a half credential could write
    with pytest.raises(ReplicaDamaged, match="signed by a push key this vault's key never vouched for"):
        verify_pinned(str(tmp_path / "usb"), history.key_fingerprint)


def test_a_damaged_credential_is_one_sentence(history: Vault, created) -> None:
    create(history.log)
    push_key_path(history.log.vault_id).write_text("{not json")
    with pytest.raises(BadPushKey, match="cannot be read"):
        load(history.log.vault_id, history.keys.verify_key)
    done = _cron(created, "push")
    assert done.returncode == 1 and "push-key create" in done.stderr and "Traceback" not in done.stderr


# -- revoking a credential ---------------------------------------------------------
def _env(created) -> dict:
    return {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}


def _stolen(history: Vault, created) -> PushKeys:
    """The credential as a thief copies it off the cron machine."""
    assert cli_run("replica", "push-key", "create", env=_env(created)).exit_code == 0
    pk = load(history.log.vault_id, history.keys.verify_key)
    assert pk is not None
    return pk


def _fingerprint(created) -> str:
    r = cli_run("replica", "push-key", "list", "--json", env={"LIFEVAULT_PATH": str(created[0])})
    keys = json.loads(r.output)
    assert len(keys) == 1 and keys[0]["revoked_at"] is None
    return keys[0]["fingerprint"]


def _forge(folder: Path, thief: PushKeys, head_from: Path | None = None) -> None:
    """What a thief with the credential and write access can do with code of his own: re-sign a manifest (here
    the one at `head_from`, an older copy: a rollback), keeping the meta rows it carries."""
    m = parse(((head_from or folder) / MANIFEST_NAME).read_bytes(), "t")
    forged = replace(m, written_at=iso(now_us()), signer=thief.verify_key, delegation=thief.delegation)
    (folder / MANIFEST_NAME).write_bytes(forged.sealed(thief))


def test_a_revoked_credential_no_longer_pushes(history: Vault, created) -> None:
    _stolen(history, created)
    fpr = _fingerprint(created)
    assert _cron(created, "push").returncode == 0
    r = cli_run("replica", "push-key", "revoke", fpr, env=_env(created))
    assert r.exit_code == 0 and f"Revoked {fpr}" in r.output, r.output
    listed = json.loads(cli_run("replica", "push-key", "list", "--json", env={"LIFEVAULT_PATH": str(created[0])}).output)
    assert listed[0]["fingerprint"] == fpr and listed[0]["revoked_at"]
    build_history(history, n=3, start=20)
    done = _cron(created, "push")
    assert done.returncode == 1, done.stderr
    assert f"holds push key {fpr}, revoked at" in done.stderr and "push-key create" in done.stderr
    assert "Traceback" not in done.stderr
    # a new credential pushes again; the old one stays refused
    assert cli_run("replica", "push-key", "create", env=_env(created)).exit_code == 0
    done = _cron(created, "push")
    assert done.returncode == 0 and "Pushed to usb: 3 events" in done.stderr, done.stderr


def test_a_manifest_signed_by_a_revoked_key_is_refused_then_signed_anew(history: Vault, created, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    thief = _stolen(history, created)
    fpr = _fingerprint(created)
    blind = EventLog(sqlite3.connect(created[0]), Path(created[0]), None)
    push(blind, "usb", signer=thief)  # the cron machine's last honest push, before the theft was noticed
    assert cli_run("replica", "push-key", "revoke", fpr, env=_env(created)).exit_code == 0

    with pytest.raises(BadPushKey, match="revoked at"):
        push(blind, "usb", signer=thief)  # the vault's own code refuses the credential
    with pytest.raises(RevokedSigner, match=f"signed by push key {fpr}, revoked at"):
        verify(history.path, "usb")
    st = status(history.path)
    copy = next(c for c in st.copies if c.name == "usb")
    assert copy.level == 1 and any(f"push key {fpr}, revoked" in p for p in copy.problems), copy.problems
    r = cli_run("pull", "usb", env=_env(created))
    assert r.exit_code == 1 and "revoked at" in r.output and len(r.output.strip().splitlines()) == 1

    # the owner's next push checks every row of the replica, then signs the manifest with the vault's key
    r = cli_run("push", "usb", env=_env(created))
    assert r.exit_code == 0, r.output
    assert parse((usb / MANIFEST_NAME).read_bytes(), "t").signer == b""
    assert verify(history.path, "usb", history.keys).events == 20
    assert next(c for c in status(history.path).copies if c.name == "usb").level == 0

    # from now on the replica carries the revocation: a manifest the thief re-signs fails even a blind reader
    _forge(usb, thief)
    with pytest.raises(RevokedSigner, match="revoked at"):
        verify_pinned(str(usb), history.key_fingerprint)
    r = cli_run("replica", "survey", str(usb), "--key", history.key_fingerprint)
    assert "FAILED" in r.output and "revoked at" in r.output
    clone_path = tmp_path / "clone.db"
    r = cli_run("clone", str(usb), str(clone_path), env={"LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 1 and "revoked at" in r.output and not clone_path.exists()


def test_a_rollback_signed_by_a_revoked_key_is_named(history: Vault, created, tmp_path: Path) -> None:
    """The thief keeps an old manifest and puts it back, re-signed: the vault names it, and its push refuses it."""
    usb = tmp_path / "usb"
    thief = _stolen(history, created)
    push(history.log, "usb")
    shutil.copytree(usb, tmp_path / "old")
    build_history(history, n=5, start=20)
    push(history.log, "usb")
    assert cli_run("replica", "push-key", "revoke", "--all", env=_env(created)).exit_code == 0
    _forge(usb, thief, head_from=tmp_path / "old")
    r = cli_run("replica", "verify", "usb", "--blind", env=_env(created))
    assert r.exit_code == 1 and "revoked at" in r.output
    r = cli_run("push", "usb", env=_env(created))
    assert r.exit_code == 1 and "rolled back" in r.output, r.output
    r = cli_run("replica", "reseed", "usb", env=_env(created))
    assert r.exit_code == 0, r.output
    assert verify(history.path, "usb", history.keys).events == 25


def test_revoke_all_refuses_a_credential_made_before_keys_were_listed(history: Vault, created, tmp_path: Path) -> None:
    """A credential from before this vault listed its push keys keeps pushing until `revoke --all`."""
    old = history.keys.delegate_push()  # made as older versions did: vouched for, never listed
    path = push_key_path(history.log.vault_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "lifevault-push-key/1", "vault_id": history.log.vault_id.hex(),
                                "seed": old.seed.hex(), "manifest_key": old.manifest.hex(),
                                "vault_verify_key": old.vault_verify_key.hex(), "delegation": old.delegation.hex()}))
    assert _cron(created, "push").returncode == 0
    assert verify_pinned(str(tmp_path / "usb"), history.key_fingerprint).events == 20
    r = cli_run("replica", "push-key", "revoke", "--all", env=_env(created))
    assert r.exit_code == 0, r.output
    done = _cron(created, "push")
    assert done.returncode == 1 and "which this vault does not list" in done.stderr, done.stderr
    with pytest.raises(RevokedSigner, match="does not list"):
        verify(history.path, "usb")


def test_undoing_a_revocation_in_the_vault_file_is_caught_by_the_seal(history: Vault, created) -> None:
    _stolen(history, created)
    conn = sqlite3.connect(created[0])
    before = conn.execute("SELECT value FROM meta WHERE key = 'push_keys'").fetchone()[0]
    conn.close()
    assert cli_run("replica", "push-key", "revoke", "--all", env=_env(created)).exit_code == 0
    history.close()
    conn = sqlite3.connect(created[0])
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'push_keys'", (before,))
    conn.close()
    r = cli_run("verify", env=_env(created))
    assert r.exit_code == 1 and "key material" in r.output, r.output
    assert rows(created[0])  # nothing else was touched


def test_revoking_an_unknown_fingerprint_is_one_sentence(history: Vault, created) -> None:
    r = cli_run("replica", "push-key", "revoke", "AAAA-BBBB-CCCC-DDDD", env=_env(created))
    assert r.exit_code == 1 and "lists no push key AAAA-BBBB-CCCC-DDDD" in r.output
    r = cli_run("replica", "push-key", "revoke", env=_env(created))
    assert r.exit_code == 2 and "--all" in r.output
