"""Pushing without the passphrase (issue 15, finding 4): a push credential in LIFEVAULT_HOME lets a process that
has nothing else push (as cron would), and cannot open, write or sign an event."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vault import Vault
from vault.store import crypto
from vault.errors import TamperDetected
from vault.store.log import open_event
from vault.replica import ReplicaDamaged, add_replica, push, verify, verify_pinned
from vault.replica.push_key import BadPushKey, create, load, push_key_path

from conftest import PASSPHRASE
from test_replica import SECRET, assert_no_plaintext, build_history, cli_run, rows


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
    create(history.log.vault_id, history.keys)
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
    create(history.log.vault_id, history.keys)
    push_key_path(history.log.vault_id).write_text("{not json")
    with pytest.raises(BadPushKey, match="cannot be read"):
        load(history.log.vault_id, history.keys.verify_key)
    done = _cron(created, "push")
    assert done.returncode == 1 and "push-key create" in done.stderr and "Traceback" not in done.stderr
