"""Replicas on a local folder: push, verify, clone, pull, status, and every refusal.

What the replica tests share (`build_history`, `SECRET`, `rows`, `assert_no_plaintext`…) is in
tests/helpers/replica.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from vault import Kind, Vault
from vault.replica import (
    ForeignReplica, Pusher, push_on_change, ReplicaDamaged, ReplicaForked, ReplicaRolledBack, add_replica, clone,
    get_replica, pull, push, registry_path, status, target_for, verify, verify_replica,
)
from vault.errors import TamperDetected
from vault.replica.manifest import MANIFEST_NAME
from vault.store.verify import check_log

from conftest import PASSPHRASE
from helpers.replica import (
    BLOB, DAMAGE, SECRET, SRC, corrupt, assert_no_plaintext, build_history, cli_run, copy_vault, rows, states,
)


@pytest.fixture
def history(vault: Vault) -> Vault:
    build_history(vault)
    return vault


@pytest.fixture
def usb(tmp_path: Path, history: Vault) -> Path:
    folder = tmp_path / "usb"
    add_replica(history.log.vault_id, "usb", str(folder))
    return folder


@pytest.fixture
def env(created) -> dict:
    return {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}


# -- the round trip ---------------------------------------------------------------
def test_push_verify_clone_gives_identical_rows(history: Vault, usb: Path, tmp_path: Path, created) -> None:
    r = push(history.log, "usb")
    assert (r.events, r.blobs, r.manifest_written) == (40, 1, True)
    assert verify_replica(target_for(str(usb)), "usb").blind
    assert verify_replica(target_for(str(usb)), "usb", keys=history.keys).events == 40
    report = clone(str(usb), tmp_path / "clone.db", PASSPHRASE)
    assert (report.events, report.blobs) == (40, 1)
    assert rows(tmp_path / "clone.db") == rows(created[0])
    with Vault.open(tmp_path / "clone.db", PASSPHRASE) as c:
        assert states(c, [0, 10, 25, 40]) == states(history, [0, 10, 25, 40])
        note = next(f for _, f in c.projection.state(Kind.NOTE))
        assert c.get_blob(note["attachments"][0]["blob"]) == BLOB


def test_clone_with_recovery_key(history: Vault, usb: Path, tmp_path: Path, created) -> None:
    push(history.log, "usb")
    clone(str(usb), tmp_path / "rk.db", recovery_key=created[1])
    with Vault.open_with_recovery(tmp_path / "rk.db", created[1]) as c:
        assert check_log(c.log, blind=False).events == 40


def test_replica_holds_no_plaintext(history: Vault, usb: Path) -> None:
    push(history.log, "usb")
    assert_no_plaintext(usb)
    names = sorted(p.name for p in usb.iterdir())
    assert names == ["blobs-000001.seg", "events-000000000001-000000000040.seg", "manifest.json"]


def test_push_sends_only_what_is_new_and_never_rewrites(history: Vault, usb: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    push(history.log, "usb")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in usb.glob("*.seg")}
    assert len(before) == 4  # 15 + 15 + 10 events, one blob segment
    assert push(history.log, "usb").manifest_written is False  # up to date: nothing written
    build_history(history, n=5, start=40)
    r = push(history.log, "usb")
    assert (r.events, r.blobs) == (5, 0)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in usb.glob("*.seg")}
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"events-000000000041-000000000045.seg"}
    assert verify_replica(target_for(str(usb)), "usb", keys=history.keys).events == 45


def test_passphrase_change_reaches_the_replica(history: Vault, usb: Path, tmp_path: Path) -> None:
    push(history.log, "usb")
    history.change_passphrase("a new passphrase", "min")
    assert push(history.log, "usb").manifest_written  # the wrapped key changed, no new events
    with pytest.raises(Exception, match="Wrong passphrase"):
        clone(str(usb), tmp_path / "old.db", PASSPHRASE)
    assert not (tmp_path / "old.db").exists()
    assert clone(str(usb), tmp_path / "new.db", "a new passphrase").events == 40


# -- damage is named ----------------------------------------------------------------


@pytest.mark.parametrize("blind", [True, False])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_verify_names_the_damaged_segment(history: Vault, usb: Path, env: dict, damage: str, blind: bool,
                                          monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    push(history.log, "usb")
    name = "events-000000000016-000000000030.seg"
    hurt, words = DAMAGE[damage]
    hurt(usb / name)
    result = cli_run("replica", "verify", "usb", *(["--blind"] if blind else []), env=env)
    assert result.exit_code == 1
    named = "events-000000000041-000000000041.seg" if damage == "extra" else name
    assert f"Replica usb ({usb}) is damaged" in result.output
    assert named in result.output and words in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_altered_manifest_is_named(history: Vault, usb: Path) -> None:
    push(history.log, "usb")
    m = json.loads((usb / "manifest.json").read_text())
    m["body"] = m["body"].replace('"seq":40', '"seq":39')
    (usb / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ReplicaDamaged, match="manifest of usb is altered: its signature does not verify"):
        verify_replica(target_for(str(usb)), "usb")


def test_chain_break_inside_a_consistent_segment_is_found(history: Vault, usb: Path, monkeypatch) -> None:
    """A segment rewritten with a forged digest in the manifest cannot pass: the signature covers the manifest."""
    push(history.log, "usb")
    seg = usb / "events-000000000001-000000000040.seg"
    corrupt(seg)
    with pytest.raises(ReplicaDamaged, match=r"event \d+ in segment events-000000000001-000000000040.seg breaks the hash "
                                             "chain"):  # its digest covers the framing; the chain, every byte
        verify(history.path, "usb")


# -- rollback, fork, absence --------------------------------------------------------
def test_replica_replaced_by_an_older_copy_is_reported(history: Vault, usb: Path, tmp_path: Path, env) -> None:
    push(history.log, "usb")
    shutil.copytree(usb, tmp_path / "old-usb")
    build_history(history, n=5, start=40)
    push(history.log, "usb")
    shutil.rmtree(usb)
    shutil.copytree(tmp_path / "old-usb", usb)
    listing = sorted(os.listdir(usb))
    build_history(history, n=3, start=45)
    result = cli_run("push", "usb", env=env)
    assert result.exit_code == 1
    assert "was rolled back: it ends at event 40 but this vault already pushed up to event 45" in result.output
    assert sorted(os.listdir(usb)) == listing  # nothing written, nothing deleted
    with pytest.raises(ReplicaRolledBack):
        push(history.log, "usb")
    assert "rolled back" in status(history.path).verdict
    assert check_log(history.log, blind=False).events == 48


def test_fork_is_reported(history: Vault, usb: Path, tmp_path: Path, created) -> None:
    copy_vault(created[0], tmp_path / "twin.db")  # same vault id and keys, then different histories
    push(history.log, "usb")
    build_history(history, n=2, start=40)
    push(history.log, "usb")
    with Vault.open(tmp_path / "twin.db", PASSPHRASE) as twin:
        build_history(twin, n=5, start=100)  # different events at 41..45
        listing = sorted(os.listdir(usb))
        with pytest.raises(ReplicaForked, match=r"holds another history from event 41 on \(it ends at event 42, this "
                                                r"vault at event 45\); `lifevault pull --fork usb` keeps both"):
            push(twin.log, "usb")
        assert sorted(os.listdir(usb)) == listing


def test_missing_folder_stops_push_and_is_not_created(history: Vault, usb: Path, env) -> None:
    push(history.log, "usb")
    shutil.rmtree(usb)  # the drive is not mounted
    result = cli_run("push", env=env)
    assert result.exit_code == 1
    assert f"Replica usb ({usb}) is missing: {usb} does not exist (is the drive mounted?)" in result.output
    assert not usb.exists()
    usb.mkdir()  # an empty folder where the replica was
    result = cli_run("push", "usb", env=env)
    assert result.exit_code == 1
    assert "is empty although this vault pushed up to event 40 there" in result.output
    assert os.listdir(usb) == []


def test_pull_into_a_vault_restored_from_an_older_copy(history: Vault, usb: Path, created, env) -> None:
    path = created[0]
    history.close()
    old = path.read_bytes()
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=10, start=40)
        push(v.log, "usb")
    newer = rows(path)
    path.unlink()
    path.write_bytes(old)  # restored from yesterday's backup
    result = cli_run("push", "usb", env=env)
    assert result.exit_code == 1
    assert "is 10 events ahead of this vault (it ends at event 50, this vault at event 40" in result.output
    assert "`lifevault pull usb` brings them here" in result.output
    result = cli_run("pull", "usb", env=env)
    assert result.exit_code == 0, result.output
    assert "Pulled 10 events and 0 blobs from usb" in result.output
    assert rows(path) == newer
    with Vault.open(path, PASSPHRASE) as v:
        assert check_log(v.log, blind=False).events == 50
        assert pull(v, "usb").events == 0


def test_pull_names_a_fork(history: Vault, usb: Path, tmp_path: Path, created) -> None:
    """Issue 11, finding 13: a second clone that went its own way is a fork, not a damaged replica."""
    copy_vault(created[0], tmp_path / "twin.db")
    build_history(history, n=5, start=40)
    push(history.log, "usb")
    with Vault.open(tmp_path / "twin.db", PASSPHRASE) as twin:
        build_history(twin, n=2, start=200)
        before = rows(tmp_path / "twin.db")
        with pytest.raises(ReplicaForked, match=r"holds another history from event 41 on .*`lifevault pull --fork usb`"):
            pull(twin, "usb")
        assert rows(tmp_path / "twin.db") == before


# -- status, list, bad input ----------------------------------------------------------
def test_status_verdict_follows_3_2_1(history: Vault, tmp_path: Path, env) -> None:
    result = cli_run("status", env=env)  # issue 15: at risk exits 1 (it exited 0 before)
    assert result.exit_code == 1 and "AT RISK: 1 good copy" in result.output
    add_replica(history.log.vault_id, "usb", str(tmp_path / "usb"), offsite=True)
    add_replica(history.log.vault_id, "nas", str(tmp_path / "nas"))
    push(history.log, "usb")
    push(history.log, "nas")
    verify(history.path, "usb")
    verify(history.path, "nas")
    s = status(history.path)
    assert s.ok and s.verdict.startswith("OK: 3 copies (this vault and 2 replicas, 1 off-site)"), s.verdict
    build_history(history, n=2, start=40)
    push(history.log, "usb")
    result = cli_run("status", "--json", env=env)
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False and "Replica nas (" in data["verdict"] and "is 2 events behind" in data["verdict"]
    assert [(c["name"], c["behind"]) for c in data["copies"]] == [("usb", 0), ("nas", 2)]
    verify(history.path, "usb")
    assert get_replica(history.log.vault_id, "usb").verified_seq == 42


def test_registry_is_private_and_holds_no_secret(history: Vault, usb: Path) -> None:
    push(history.log, "usb")
    path = registry_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSPHRASE not in path.read_text() and SECRET not in path.read_text()


def test_replica_commands_and_bad_input(created, env, tmp_path: Path) -> None:
    r = cli_run("replica", "add", "usb", str(tmp_path / "usb"), env=env)
    assert r.exit_code == 0 and (tmp_path / "usb").is_dir()
    r = cli_run("replica", "add", "usb", str(tmp_path / "other"), env=env)
    assert r.exit_code == 1 and "A replica named 'usb' already exists" in r.output
    r = cli_run("replica", "add", "bad/name", str(tmp_path / "x"), env=env)
    assert r.exit_code == 1 and "Replica name 'bad/name' must be" in r.output
    r = cli_run("replica", "list", env=env)
    assert "usb" in r.output and "never pushed" in r.output
    r = cli_run("push", "nope", env=env)
    assert r.exit_code == 1 and "No replica named 'nope'" in r.output
    r = cli_run("push", env=env)
    assert r.exit_code == 0 and "Pushed to usb: 0 events" in r.output
    r = cli_run("clone", str(tmp_path / "usb"), str(created[0]), env=env)
    assert r.exit_code == 1 and "already exists; refusing to overwrite it" in r.output
    r = cli_run("clone", str(tmp_path / "nowhere"), str(tmp_path / "c.db"), env=env)
    assert r.exit_code == 1 and "does not exist (is the drive mounted?)" in r.output
    r = cli_run("clone", str(tmp_path / "usb"), str(tmp_path / "c.db"), env={**env, "LIFEVAULT_PASSPHRASE": "wrong"})
    assert r.exit_code == 1 and "Wrong passphrase" in r.output
    assert sorted(os.listdir(tmp_path)) == sorted(["home", "usb", "vault.db"])  # nothing half-written
    r = cli_run("replica", "remove", "usb", env=env)
    assert r.exit_code == 0 and (tmp_path / "usb" / "manifest.json").exists()
    r = cli_run("replica", "verify", "usb", env=env)
    assert r.exit_code == 1 and "No replica named 'usb'" in r.output


def test_every_replica_command_has_an_example() -> None:
    for args in (["replica", "add"], ["replica", "list"], ["replica", "remove"], ["replica", "verify"], ["push"],
                 ["pull"], ["clone"], ["status"], ["replica"]):
        r = cli_run(*args, "--help")
        assert r.exit_code == 0 and "Example: lifevault" in r.output, args


# -- the background pusher for `lifevault serve` ------------------------------------
def _wait_for(cond, timeout: float = 20.0) -> None:
    """Wait for a condition (not a timing assertion: it only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def test_pusher_debounces_and_retries(history: Vault, tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    add_replica(history.log.vault_id, "nas", str(nas))
    shutil.rmtree(nas)  # not mounted yet: the first attempt fails and is retried
    pusher = Pusher(history.path, history.keys, debounce=0.05, first_backoff=0.05, max_backoff=0.2).start()
    try:
        pusher.notify_changed()
        _wait_for(lambda: "nas" in pusher.states and pusher.states["nas"].failures >= 2)
        assert "is missing" in pusher.states["nas"].last_error
        nas.mkdir()
        _wait_for(lambda: pusher.states["nas"].last_result is not None)
        assert pusher.states["nas"].last_result.head_seq == 40
        build_history(history, n=3, start=40)
        pusher.notify_changed()
        _wait_for(lambda: pusher.states["nas"].last_result.head_seq == 43)
    finally:
        pusher.stop()
    assert verify(history.path, "nas", history.keys).events == 43


def test_served_vault_pushes_after_each_change(history: Vault, tmp_path: Path) -> None:
    """The hook `lifevault serve` uses: a LiveVault's on_change drives the Pusher."""
    live_mod = pytest.importorskip("vault.web.site.live")
    add_replica(history.log.vault_id, "nas", str(tmp_path / "nas"))
    live = live_mod.LiveVault(history)
    pusher = push_on_change(live, debounce=0.05, first_backoff=0.05)
    try:
        _wait_for(lambda: "nas" in pusher.states and pusher.states["nas"].last_result is not None)
        assert pusher.states["nas"].last_result.head_seq == 40
        live.write(lambda v: v.add(Kind.NOTE, {"title": f"{SECRET} from the web"}, SRC))
        _wait_for(lambda: pusher.states["nas"].last_result.head_seq == 41)
    finally:
        pusher.stop()
    assert verify(history.path, "nas", history.keys).events == 41
    assert_no_plaintext(tmp_path / "nas")


def test_a_folder_of_another_vault_is_refused(history: Vault, usb: Path, tmp_path: Path) -> None:
    push(history.log, "usb")
    other, _ = Vault.create(tmp_path / "other.db", PASSPHRASE, kdf_cost="min")
    with other:
        add_replica(other.log.vault_id, "usb", str(usb))
        with pytest.raises(ForeignReplica, match=r"holds another vault \(id [0-9a-f]{12}…\), not this one"):
            push(other.log, "usb")
        with pytest.raises(ForeignReplica):
            verify(other.path, str(usb))


def test_verify_a_folder_given_directly(history: Vault, usb: Path, env: dict) -> None:
    push(history.log, "usb")
    r = cli_run("replica", "verify", str(usb), "--blind", env=env)
    assert r.exit_code == 0 and "holds 40 events and 1 blobs" in r.output


def test_a_write_error_is_one_sentence(history: Vault, usb: Path, env: dict) -> None:
    (usb / "manifest.json").mkdir()  # something in the way: the final rename fails (as a full disk would)
    r = cli_run("push", "usb", env=env)
    assert r.exit_code == 1
    assert f"Cannot write to {usb}/manifest.json: Is a directory." in r.output and "Traceback" not in r.output
    assert get_replica(history.log.vault_id, "usb").pushed_seq is None


def test_clone_command_with_the_recovery_key(history: Vault, usb: Path, tmp_path: Path, created) -> None:
    push(history.log, "usb")
    env = {"LIFEVAULT_RECOVERY_KEY": created[1]}
    r = cli_run("clone", "--recovery", str(usb), str(tmp_path / "new-laptop" / "vault.db"), env=env)
    assert r.exit_code == 0, r.output
    assert "Cloned 40 events and 1 blobs" in r.output
    r = cli_run("clone", "--recovery", str(usb), str(tmp_path / "x.db"), env={"LIFEVAULT_RECOVERY_KEY": "AAAAAA-BBBBBB"})
    assert r.exit_code == 1 and "Wrong recovery key" in r.output and not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("damage, seq", [("payload", 20), ("retyped", 20), ("gap", 20), ("first", 1)])
def test_a_push_sends_no_history_whose_chain_is_broken(history: Vault, usb: Path, created, monkeypatch,
                                                       damage: str, seq: int) -> None:
    """The log is checked a chunk at a time on the way to the replica: a row altered, retyped or missing stops
    the push with the sentence naming that row, before any manifest lists it."""
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "7")  # the damage lies in the third chunk, or the first
    history.close()
    conn = sqlite3.connect(created[0])
    with conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")
        if damage == "gap":
            conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
        elif damage == "retyped":
            conn.execute("UPDATE events SET hash = hex(hash) WHERE seq = ?", (seq,))
        else:
            (payload,) = conn.execute("SELECT payload FROM events WHERE seq = ?", (seq,)).fetchone()
            conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (payload[:-1] + bytes([payload[-1] ^ 1]), seq))
    conn.close()
    with Vault.open(created[0], PASSPHRASE) as v, pytest.raises(TamperDetected) as e:
        push(v.log, "usb")
    assert e.value.seq == seq
    assert not (usb / MANIFEST_NAME).exists()
