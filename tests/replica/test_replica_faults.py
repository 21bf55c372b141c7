"""Replicas under faults (issue 11, findings 9 and 13): a vault rolled back behind its replica, two clones
of one replica that went their own ways, a damaged segment, a vault cloned from an older copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.replica import (
    ReplicaAhead, ReplicaDamaged, ReplicaError, ReplicaForked, add_replica, clone, pull, pull_fork, push,
    relation_of, status, verify,
)
from vault.replica.manifest import parse
from vault.store.verify import check_log

from conftest import PASSPHRASE
from helpers.replica import DAMAGE, SECRET, assert_no_plaintext, build_history, cli_run, copy_vault, corrupt_framing, rows

SRC = Source("cli")


def records(v: Vault) -> dict:
    """Every live record of every kind, by id."""
    return {rid: fields for kind in Kind for rid, fields in v.projection.state(kind)}


def _replace_file(path: Path, older: Path) -> None:
    """The vault file replaced by an older copy (a backup put back, a synced folder gone wrong)."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    shutil.copy(older, path)


@pytest.fixture
def env(created) -> dict:
    return {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}


# -- finding 9: a rolled-back vault plus one new event -----------------------------------
def test_rollback_then_one_new_event_keeps_both_histories(created, tmp_path: Path, env: dict) -> None:
    path, usb = created[0], tmp_path / "usb"
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=30)
        add_replica(v.log.vault_id, "usb", str(usb))
        add_replica(v.log.vault_id, "nas", str(tmp_path / "nas"))
    copy_vault(path, tmp_path / "older.db")  # yesterday's copy
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=10, start=30)
        push(v.log, "usb")
        on_replica = records(v)
    _replace_file(path, tmp_path / "older.db")
    with Vault.open(path, PASSPHRASE) as v:
        note = v.add(Kind.NOTE, {"title": f"{SECRET} written after the rollback"}, SRC)  # event 31, another one
        mine = records(v)
        push(v.log, "nas")  # a second replica gets the rolled-back vault's own event 31

    s = cli_run("status", "--json", env=env)
    copy = json.loads(s.output)["copies"][0]
    assert (copy["head_seq"], copy["fork_at"], copy["behind"], copy["ahead"]) == (40, 31, 0, 0)
    s = cli_run("status", env=env)
    assert "usb\t" in s.output and "event 40, another history from event 31 on" in s.output
    assert "holds another history from event 31 on" in s.output and "`lifevault pull --fork usb`" in s.output
    for args in (["push"], ["pull", "usb"]):
        r = cli_run(*args, env=env)
        assert r.exit_code == 1, args
        assert "holds another history from event 31 on (it ends at event 40, this vault at event 31)" in r.output
        assert "`lifevault pull --fork usb` keeps both histories" in r.output and "damaged" not in r.output
    assert cli_run("replica", "verify", "usb", env=env).exit_code == 0  # the replica itself is fine

    r = cli_run("pull", "--fork", "usb", env=env)
    assert r.exit_code == 0, r.output
    assert "Kept both histories" in r.output and "re-applied as 1 new events" in r.output
    assert "Replica nas holds this vault's old events past event 30" in r.output
    kept = next(tmp_path.glob("vault.db.before-fork-*"))
    assert str(kept) in r.output
    with Vault.open(path, PASSPHRASE) as v:
        assert check_log(v.log, blind=False).events == 41
        assert records(v) == {**on_replica, note: mine[note]}  # both histories' records
        last = v.log.event(41).event
        assert (last.record_id, last.source.via, last.source.name, last.source.detail["seq"]) == (note, "fork", "usb", 31)
    with Vault.open(kept, PASSPHRASE) as old:  # the file as it was, untouched
        assert records(old) == mine and old.log.head().seq == 31
    assert cli_run("verify", env=env).exit_code == 0
    r = cli_run("push", "usb", env=env)
    assert r.exit_code == 0 and "Pushed to usb: 1 events" in r.output, r.output
    assert "holds another history from event 31 on" in cli_run("push", "nas", env=env).output
    shutil.move(tmp_path / "nas", tmp_path / "nas-old")  # the documented way: fill it anew
    assert cli_run("replica", "remove", "nas", env=env).exit_code == 0
    assert cli_run("replica", "add", "nas", str(tmp_path / "nas"), env=env).exit_code == 0
    assert cli_run("push", "nas", env=env).exit_code == 0
    assert cli_run("replica", "verify", "usb", env=env).exit_code == 0
    assert [(c.behind, c.fork_at) for c in status(path).copies] == [(0, None), (0, None)]
    assert_no_plaintext(usb)


def test_rollback_alone_shows_the_replica_ahead(created, tmp_path: Path, env: dict) -> None:
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=30)
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
    copy_vault(path, tmp_path / "older.db")
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=10, start=30)
        push(v.log, "usb")
    _replace_file(path, tmp_path / "older.db")
    s = status(path)
    assert (s.copies[0].ahead, s.copies[0].behind, s.ok) == (10, 0, False)
    assert "is 10 events ahead of this vault" in s.verdict and "`lifevault pull usb` brings them here" in s.verdict
    r = cli_run("status", env=env)
    assert "event 40, 10 ahead of this vault" in r.output
    r = cli_run("pull", "--fork", "usb", env=env)  # not a fork: --fork does what pull does
    assert r.exit_code == 0 and "Pulled 10 events" in r.output


# -- finding 13: two clones of one replica ----------------------------------------------
def test_two_clones_that_both_pushed_are_named_a_fork_and_merge(created, tmp_path: Path, monkeypatch) -> None:
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"  # two machines
    usb = tmp_path / "usb"
    monkeypatch.setenv("LIFEVAULT_HOME", str(home_a))
    a = Vault.open(created[0], PASSPHRASE)
    build_history(a, n=40)
    add_replica(a.log.vault_id, "usb", str(usb))
    push(a.log, "usb")
    monkeypatch.setenv("LIFEVAULT_HOME", str(home_b))
    clone(str(usb), tmp_path / "b.db", PASSPHRASE)
    add_replica(a.log.vault_id, "usb", str(usb))

    monkeypatch.setenv("LIFEVAULT_HOME", str(home_a))
    build_history(a, n=5, start=40)
    push(a.log, "usb")
    monkeypatch.setenv("LIFEVAULT_HOME", str(home_b))
    b = Vault.open(tmp_path / "b.db", PASSPHRASE)
    build_history(b, n=2, start=200)
    before = rows(tmp_path / "b.db")
    for attempt in (lambda: push(b.log, "usb"), lambda: pull(b, "usb")):
        with pytest.raises(ReplicaForked, match=r"holds another history from event 41 on \(it ends at event 45, "
                                                r"this vault at event 42\); `lifevault pull --fork usb`"):
            attempt()
    assert rows(tmp_path / "b.db") == before
    assert relation_of(b.log, "usb").fork_at == 41
    merged = pull_fork(b, "usb")
    assert (merged.fork_at, merged.replica_events, merged.reapplied, merged.head_seq) == (41, 5, 2, 47)
    with Vault.open(tmp_path / "b.db", PASSPHRASE) as b:
        assert push(b.log, "usb").events == 2

    monkeypatch.setenv("LIFEVAULT_HOME", str(home_a))
    assert pull(a, "usb").events == 2  # the first clone simply catches up
    a.close()
    assert rows(created[0]) == rows(tmp_path / "b.db")
    assert verify(created[0], "usb", None).events == 47


def test_vault_cloned_from_an_older_copy_shows_the_replica_ahead(created, tmp_path: Path, monkeypatch) -> None:
    usb = tmp_path / "usb"
    with Vault.open(created[0], PASSPHRASE) as a:
        build_history(a, n=30)
        add_replica(a.log.vault_id, "usb", str(usb))
        push(a.log, "usb")
        shutil.copytree(usb, tmp_path / "usb-then")
        build_history(a, n=10, start=30)
        push(a.log, "usb")
        vid = a.log.vault_id
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home-b"))
    clone(str(tmp_path / "usb-then"), tmp_path / "b.db", PASSPHRASE)
    add_replica(vid, "usb", str(usb))
    s = status(tmp_path / "b.db")
    c = s.copies[0]
    assert (c.head_seq, c.ahead, c.behind, c.fork_at) == (40, 10, 0, None) and not s.ok
    with Vault.open(tmp_path / "b.db", PASSPHRASE) as b:
        with pytest.raises(ReplicaAhead, match="is 10 events ahead of this vault"):
            push(b.log, "usb")
        assert pull(b, "usb").events == 10
    assert status(tmp_path / "b.db").copies[0].behind == 0


# -- finding 13: a damaged segment is repaired by the next push ---------------------------
@pytest.mark.parametrize("segment", ["events-000000000016-000000000030.seg", "blobs-000001.seg"])
@pytest.mark.parametrize("damage", ["corrupted", "truncated", "missing"])
def test_push_repairs_a_damaged_segment(vault: Vault, created, tmp_path: Path, env: dict, monkeypatch,
                                       damage: str, segment: str) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    build_history(vault, n=40)
    usb = tmp_path / "usb"
    add_replica(vault.log.vault_id, "usb", str(usb))
    push(vault.log, "usb")
    sound = (usb / segment).read_bytes()
    DAMAGE[damage][0](usb / segment)
    # a payload byte of an event segment shows only in the chain, which a push follows with --deep
    deep = ["--deep"] if damage == "corrupted" and segment.startswith("events") else []
    r = cli_run("replica", "verify", "usb", "--blind", env=env)
    assert r.exit_code == 1 and segment in r.output
    assert f"`lifevault push{' --deep' if deep else ''} usb` re-sends damaged segments from this vault" in r.output
    if deep:
        assert "Repaired" not in cli_run("push", "usb", env=env).output
    r = cli_run("push", *deep, "usb", env=env)
    assert r.exit_code == 0, r.output
    assert f"Repaired usb: segment {segment} " in r.output and "re-sent from this vault" in r.output
    assert (usb / segment).read_bytes() == sound
    assert cli_run("replica", "verify", "usb", "--blind", env=env).exit_code == 0
    assert cli_run("replica", "verify", "usb", env=env).exit_code == 0
    repairs = parse((usb / "manifest.json").read_bytes(), "usb").repairs
    assert [x["segment"] for x in repairs] == [segment]
    r = cli_run("push", "usb", env=env)
    assert "usb is up to date" in r.output and "Repaired" not in r.output


def test_a_segment_the_vault_cannot_make_again_is_named(vault: Vault, tmp_path: Path, monkeypatch) -> None:
    """A manifest naming a segment whose rows this vault does not hold (never pushed from here)."""
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    build_history(vault, n=40)
    usb = tmp_path / "usb"
    add_replica(vault.log.vault_id, "usb", str(usb))
    push(vault.log, "usb")
    blob = usb / "blobs-000001.seg"
    blob.write_bytes(blob.read_bytes()[:-3])
    vault.conn.execute("DROP TRIGGER blobs_no_delete")  # only to make a vault that lacks the blob
    vault.conn.execute("DELETE FROM blobs")
    with pytest.raises(ReplicaDamaged, match="segment blobs-000001.seg no longer matches the manifest and this vault "
                                             "cannot make it again"):
        push(vault.log, "usb")


def test_fork_merge_keeps_fields_from_both_sides(created, tmp_path: Path) -> None:
    """The vault's changes are re-applied as changes: a field only the replica changed stays, a field the vault
    changed ends as the vault had it, a record the replica deleted and the vault changed comes back."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        c = v.add(Kind.CONTACT, {"name": "Ada", "note": "first"}, SRC)
        d = v.add(Kind.CONTACT, {"name": "Bob"}, SRC)
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
    copy_vault(path, tmp_path / "older.db")
    with Vault.open(path, PASSPHRASE) as v:  # what the replica gets
        v.update(c, {"note": "from the replica", "phones": ["+1 555"]}, SRC)
        v.delete(d, SRC)
        push(v.log, "usb")
    _replace_file(path, tmp_path / "older.db")
    with Vault.open(path, PASSPHRASE) as v:  # what the rolled-back vault does meanwhile
        v.update(c, {"name": "Ada L."}, SRC)
        v.update(d, {"note": "still here"}, SRC)
        e = v.add(Kind.NOTE, {"title": "new"}, SRC)
        v.delete(e, SRC)
        result = pull_fork(v, "usb")
    assert (result.fork_at, result.replica_events, result.reapplied) == (3, 2, 4)
    with Vault.open(path, PASSPHRASE) as v:
        assert v.get(c) == {"name": "Ada L.", "note": "from the replica", "phones": ["+1 555"]}
        assert v.get(d) == {"name": "Bob", "note": "still here"}
        assert v.projection.status(Kind.NOTE, e) == "deleted"
        assert check_log(v.log, blind=False).events == 8
        assert push(v.log, "usb").events == 4


def test_pull_fork_refuses_while_another_process_has_the_vault_open(created, tmp_path: Path) -> None:
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=5)
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
    copy_vault(path, tmp_path / "older.db")
    with Vault.open(path, PASSPHRASE) as v:
        build_history(v, n=3, start=5)
        push(v.log, "usb")
    _replace_file(path, tmp_path / "older.db")
    with Vault.open(path, PASSPHRASE) as v:
        v.add(Kind.NOTE, {"title": "meanwhile"}, SRC)
    before = rows(path)
    server = Vault.open(path, PASSPHRASE)  # as `lifevault serve` would hold it
    try:
        v = Vault.open(path, PASSPHRASE)
        with pytest.raises(ReplicaError, match=r"Another process \(`lifevault serve`\?\) has .* open; stop it and "
                                               r"run `lifevault pull --fork usb` again\. Nothing was changed\."):
            pull_fork(v, "usb")
    finally:
        server.close()
    assert rows(path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("vault", ".vault"))) == ["vault.db", "vault.db.state"]  # the state file is the vault's own


def test_a_server_pushing_again_rehashes_only_what_changed(vault: Vault, tmp_path: Path, monkeypatch) -> None:
    """In one process, a folder's segments found intact are not read again until they change."""
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    build_history(vault, n=40)
    usb = tmp_path / "usb"
    add_replica(vault.log.vault_id, "usb", str(usb))
    push(vault.log, "usb")
    push(vault.log, "usb")  # finds every segment intact
    reads: list[str] = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p.name) or real(p))
    push(vault.log, "usb")
    assert [n for n in reads if n.endswith(".seg")] == []
    corrupt_framing(usb / "events-000000000001-000000000015.seg")
    assert [r["segment"] for r in push(vault.log, "usb").repaired] == ["events-000000000001-000000000015.seg"]
