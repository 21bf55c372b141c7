"""Tampering with a vault file is detected, naming the first bad seq.

Each attack edits the file with plain sqlite3 the way an attacker would (the
append-only triggers dropped first), then checks three ways: `lifevault verify`
(non-zero exit, the message names the seq), the library (TamperDetected.seq),
and, for chain and truncation attacks, `verify --blind` without the passphrase.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from vault import Kind, Source, Vault
from vault.store import crypto, keyring, rollback, schema, seal
from vault.cli import cli
from vault.errors import RolledBack, TamperDetected
from vault.store.log import EventLog
from vault.store.verify import check_log, verify_blind

from conftest import PASSPHRASE

N = 9  # events in each test vault
SRC = Source("cli")


def build(path: Path) -> Path:
    """A vault with N events of every type."""
    v, _ = Vault.create(path, PASSPHRASE, kdf_cost="min")
    with v:
        c = v.add(Kind.CONTACT, {"name": "Ada"}, SRC)
        m = v.add(Kind.MESSAGE, {"subject": "hi", "body": "hello"}, SRC)
        v.add(Kind.NOTE, {"title": "t"}, SRC)
        v.update(c, {"emails": ["ada@example.org"]}, SRC)
        v.update(m, {"body": "hello again"}, SRC)
        v.delete(c, SRC)
        v.add(Kind.CONTACT, {"name": "Grace"}, SRC)
        v.update(m, {"subject": None}, SRC)
        v.add(Kind.NOTE, {"title": "last"}, SRC)
        assert v.log.head().seq == N
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return build(tmp_path / "target.db")


def attacker(path: Path) -> sqlite3.Connection:
    """A raw connection with the append-only triggers dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
    return conn


def rows(path: Path) -> dict[int, tuple[bytes, bytes]]:
    with closing(sqlite3.connect(path)) as conn:
        return {s: (h, p) for s, h, p in conn.execute("SELECT seq, hash, payload FROM events")}


def flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= 0x01
    return bytes(b)


def rechain_from(conn: sqlite3.Connection, start: int) -> None:
    """What a careful attacker does next: recompute every chain hash from `start` and the head's hash."""
    vid = keyring.vault_id(conn)
    prev = crypto.genesis_hash(vid) if start == 1 else conn.execute(
        "SELECT hash FROM events WHERE seq = ?", (start - 1,)).fetchone()[0]
    for seq, payload in conn.execute("SELECT seq, payload FROM events WHERE seq >= ? ORDER BY seq", (start,)).fetchall():
        prev = crypto.chain_hash(prev, seq, payload)
        conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (prev, seq))
    conn.execute("UPDATE head SET hash = ?", (prev,))


# -- the three detectors ------------------------------------------------------------
def library_seq(path: Path) -> int | None:
    """check_log with the keys (unlocked without loading a projection): the seq it names."""
    conn = schema.connect(path)
    try:
        log = EventLog(conn, path, keyring.unlock(conn, PASSPHRASE))
        with pytest.raises(TamperDetected) as e:
            check_log(log, blind=False)
        return e.value.seq
    finally:
        conn.close()


def vault_open_seq(path: Path) -> int | None:
    """Opening the vault (then verifying it), as a program using the library would: the seq named."""
    with pytest.raises(TamperDetected) as e:
        with Vault.open(path, PASSPHRASE) as v:
            check_log(v.log, blind=False)
    return e.value.seq


def cli_verify(path: Path, *extra: str) -> str:
    r = CliRunner().invoke(cli, ["verify", "--vault", str(path), *extra], env={"LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)  # no traceback
    assert "Traceback" not in r.output
    return r.output


def blind_seq(path: Path) -> int | None:
    with pytest.raises(TamperDetected) as e:
        verify_blind(path)
    return e.value.seq


def assert_detected(path: Path, seq: int, *, blind: bool) -> None:
    assert library_seq(path) == seq
    assert vault_open_seq(path) == seq
    out = cli_verify(path)
    assert f"Tampering detected at event {seq}:" in out, out
    if blind:
        assert blind_seq(path) == seq
        out = cli_verify(path, "--blind")
        assert f"Tampering detected at event {seq}:" in out, out


# -- sanity: an untouched vault verifies -------------------------------------------
def test_untouched_vault_verifies(target: Path) -> None:
    r = CliRunner().invoke(cli, ["verify", "--vault", str(target)], env={"LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 0 and f"OK: {N} events" in r.output, r.output
    r = CliRunner().invoke(cli, ["verify", "--blind", "--vault", str(target)], env={"LIFEVAULT_PASSPHRASE": ""})
    assert r.exit_code == 0 and f"OK: {N} events" in r.output, r.output
    assert verify_blind(target).events == N


def test_triggers_refuse_update_and_delete(target: Path) -> None:
    with closing(sqlite3.connect(target)) as conn:
        for sql in ("UPDATE events SET payload = x'00' WHERE seq = 1", "DELETE FROM events WHERE seq = 1"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert verify_blind(target).events == N


# -- one flipped byte ------------------------------------------------------------------
@pytest.mark.parametrize("seq", [1, 2, 5, N - 1, N])
@pytest.mark.parametrize("column,offset", [("payload", 0), ("payload", 30), ("payload", -1), ("hash", 0), ("hash", -1)])
def test_flipped_byte(target: Path, seq: int, column: str, offset: int) -> None:
    stored = rows(target)[seq][0 if column == "hash" else 1]
    with closing(attacker(target)) as conn:
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (flip(stored, offset), seq))
    assert_detected(target, seq, blind=True)


@pytest.mark.parametrize("seq", [1, 4, N])
def test_flipped_payload_byte_with_rechained_hashes(target: Path, seq: int) -> None:
    """The chain is made consistent again, but the tag of event `seq` cannot be forged."""
    with closing(attacker(target)) as conn:
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (flip(rows(target)[seq][1], 40), seq))
        rechain_from(conn, seq)
    assert library_seq(target) == seq
    assert vault_open_seq(target) == seq
    assert f"Tampering detected at event {seq}:" in cli_verify(target)
    with pytest.raises(TamperDetected):
        verify_blind(target)  # the chain is consistent, but the head's signature no longer matches


# -- deleted, swapped, truncated -------------------------------------------------------
@pytest.mark.parametrize("seq", [1, 4, N - 1])
def test_deleted_middle_event(target: Path, seq: int) -> None:
    with closing(attacker(target)) as conn:
        conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
    assert_detected(target, seq, blind=True)


@pytest.mark.parametrize("first,second", [(2, 3), (3, 7), (1, N)])
def test_two_events_swapped(target: Path, first: int, second: int) -> None:
    stored = rows(target)
    with closing(attacker(target)) as conn:
        for a, b in ((first, second), (second, first)):
            conn.execute("UPDATE events SET hash = ?, payload = ? WHERE seq = ?", (*stored[b], a))
    assert_detected(target, first, blind=True)


@pytest.mark.parametrize("keep", [0, 1, 5, N - 1])
def test_truncated_tail(target: Path, keep: int) -> None:
    """The last events deleted, the head row left as it was."""
    with closing(attacker(target)) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (keep,))
    assert_detected(target, keep + 1, blind=True)


def test_truncated_tail_with_head_rewound_to_forged_values(target: Path) -> None:
    """Truncate and point the head at the new last event: the head's MAC and signature do not match."""
    with closing(attacker(target)) as conn:
        conn.execute("DELETE FROM events WHERE seq > 5")
        conn.execute("UPDATE head SET seq = 5, hash = (SELECT hash FROM events WHERE seq = 5)")
    with pytest.raises(TamperDetected):
        verify_blind(target)
    out = cli_verify(target)
    assert "Tampering detected" in out


# -- an event copied in from another vault (same passphrase) ---------------------------
@pytest.fixture
def other(tmp_path: Path) -> Path:
    return build(tmp_path / "other.db")


@pytest.mark.parametrize("seq", [1, 4, N])
def test_event_copied_from_another_vault(target: Path, other: Path, seq: int) -> None:
    theirs = rows(other)[seq]
    with closing(attacker(target)) as conn:
        conn.execute("UPDATE events SET hash = ?, payload = ? WHERE seq = ?", (*theirs, seq))
    assert_detected(target, seq, blind=True)


@pytest.mark.parametrize("seq", [1, 4, N])
def test_event_copied_from_another_vault_and_chain_recomputed(target: Path, other: Path, seq: int) -> None:
    """The stronger attacker also recomputes every later chain hash and the head's hash."""
    with closing(attacker(target)) as conn:
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (rows(other)[seq][1], seq))
        rechain_from(conn, seq)
    assert library_seq(target) == seq
    with pytest.raises(TamperDetected):
        verify_blind(target)  # the head's signature no longer matches its hash
    assert vault_open_seq(target) == seq
    out = cli_verify(target)
    assert f"Tampering detected at event {seq}:" in out, out


# -- tampering behind the state file (it is only a cache) -------------------------------
def state_caught_up(path: Path) -> None:
    """The state file caught up with the head, so opening the vault decrypts no old event."""
    with Vault.open(path, PASSPHRASE) as v:
        _ = v.projection


@pytest.mark.parametrize("seq", [1, 3, N])
def test_flipped_byte_behind_the_state_file(target: Path, seq: int) -> None:
    state_caught_up(target)
    with closing(attacker(target)) as conn:
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (flip(rows(target)[seq][1], 50), seq))
    assert library_seq(target) == seq
    assert f"Tampering detected at event {seq}:" in cli_verify(target)
    assert blind_seq(target) == seq


def test_swap_with_the_last_event_behind_the_state_file(target: Path) -> None:
    state_caught_up(target)
    stored = rows(target)
    with closing(attacker(target)) as conn:
        for a, b in ((2, N), (N, 2)):
            conn.execute("UPDATE events SET hash = ?, payload = ? WHERE seq = ?", (*stored[b], a))
    assert library_seq(target) == 2
    assert vault_open_seq(target) == 2
    assert "Tampering detected at event 2:" in cli_verify(target)
    assert "Tampering detected at event 2:" in cli_verify(target, "--blind")


# -- known gaps (the lead decides; each test says what should happen) -------------------
def test_head_row_deleted_is_detected(target: Path) -> None:
    with closing(attacker(target)) as conn:
        conn.execute("DELETE FROM head")
    with pytest.raises(TamperDetected):
        verify_blind(target)
    assert "Tampering detected" in cli_verify(target)


def test_whole_log_and_head_deleted_is_detected(target: Path) -> None:
    with closing(attacker(target)) as conn:
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM head")
    with pytest.raises(TamperDetected):
        verify_blind(target)


def forge_identity_and_truncate(path: Path, keep: int) -> None:
    """Truncate, then replace the stored verify key with the attacker's and sign a matching head and seal."""
    import nacl.signing

    forged = nacl.signing.SigningKey.generate()
    with closing(attacker(path)) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (keep,))
        last = conn.execute("SELECT hash FROM events WHERE seq = ?", (keep,)).fetchone()[0]
        msg = crypto.head_message(keyring.vault_id(conn), keep, last)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'verify_key'", (bytes(forged.verify_key),))
        conn.execute("UPDATE head SET seq = ?, hash = ?, sig = ?", (keep, last, forged.sign(msg).signature))
        old = seal.read(conn)
        keys_digest = seal.key_material_digest(conn)
        msg = crypto.seal_message(keyring.vault_id(conn), keep, last, old.counter, old.tokens, keys_digest,
                                  old.blob_count, old.blob_set)
        conn.execute("UPDATE seal SET seq = ?, hash = ?, keys = ?, sig = ?",
                     (keep, last, keys_digest, forged.sign(msg).signature))
        for op in ("UPDATE", "DELETE"):  # and puts the append-only triggers back as they were
            conn.execute(f"CREATE TRIGGER events_no_{op.lower()} BEFORE {op} ON events\n"
                         "    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END")


def test_forged_verify_key_is_caught_with_the_passphrase(target: Path) -> None:
    forge_identity_and_truncate(target, 5)
    with pytest.raises(TamperDetected):
        library_seq(target)
    assert "Tampering detected" in cli_verify(target)


def test_forged_verify_key_is_caught_blind_with_the_pinned_fingerprint(target: Path) -> None:
    # Whoever rewrites the file can re-sign it with a key of their own; the owner's fingerprint pins the real one.
    with Vault.open(target, PASSPHRASE) as v:
        fingerprint = v.key_fingerprint
    assert verify_blind(target, expected_key=fingerprint).events > 5
    forge_identity_and_truncate(target, 5)
    with pytest.raises(RolledBack, match="ends at event 5 but was at event 9"):
        verify_blind(target)  # this machine remembers the head it saw
    rollback.memory_path().unlink()  # elsewhere, unpinned, a consistent forgery passes: the fingerprint is for that
    verify_blind(target)
    with pytest.raises(TamperDetected, match="fingerprint"):
        verify_blind(target, expected_key=fingerprint.lower())
    assert "fingerprint" in cli_verify(target, "--blind", "--key", fingerprint)


# -- blobs ---------------------------------------------------------------------------
@pytest.fixture
def with_blob(target: Path) -> Path:
    with Vault.open(target, PASSPHRASE) as v:
        with v.transaction() as tx:
            bid = tx.put_blob(b"\xff\xd8 a photo " * 100)
            tx.create(Kind.CONTACT, {"name": "Pic", "photo": {"blob": bid}}, SRC)
    return target


def blob_attacker(path: Path) -> sqlite3.Connection:
    conn = attacker(path)
    for table in ("blobs", "blob_parts"):
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    return conn


def test_flipped_blob_byte_is_detected(with_blob: Path) -> None:
    with closing(blob_attacker(with_blob)) as conn:
        raw, n, part = conn.execute("SELECT id, n, part FROM blob_parts").fetchone()  # format 3: the bytes are in parts
        conn.execute("UPDATE blob_parts SET part = ? WHERE n = ?", (flip(part, 30), n))
    out = cli_verify(with_blob)
    assert f"Tampering detected at the vault: blob {raw.hex()[:16]}" in out, out


def test_blob_swapped_for_another_is_detected(with_blob: Path, other: Path) -> None:
    with Vault.open(other, PASSPHRASE) as v:
        v.put_blob(b"another picture")
    with closing(sqlite3.connect(other)) as conn:
        theirs = conn.execute("SELECT part FROM blob_parts").fetchone()[0]
    with closing(blob_attacker(with_blob)) as conn:
        conn.execute("UPDATE blob_parts SET part = ?", (theirs,))
    assert "Tampering detected" in cli_verify(with_blob)


def test_parts_of_no_attachment_are_detected(with_blob: Path) -> None:
    with closing(blob_attacker(with_blob)) as conn:
        conn.execute("INSERT INTO blob_parts (id, part) VALUES (?, ?)", (bytes(32), b"smuggled"))
    assert "parts that belong to no attachment" in cli_verify(with_blob, "--blind")


def test_deleted_blob_is_detected(with_blob: Path) -> None:
    with closing(blob_attacker(with_blob)) as conn:
        conn.execute("DELETE FROM blobs")
    cli_verify(with_blob)
