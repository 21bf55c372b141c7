"""Rows sealed elsewhere enter a vault file one checked way (`Writer.append_sealed`, `copies.build_file`).

Two copies of one vault (same keys) stand in for a vault and its replica: the rows one gained are
appended to the other byte for byte; rows that skip a seq or break the chain are refused with the seq
named, and nothing is stored.
"""

from __future__ import annotations

import shutil
from contextlib import closing
from pathlib import Path

import pytest

from vault import Kind, Source, TamperDetected, Vault
from vault.store import blobs, copies, keyring, schema
from vault.store.log import EventLog, Head, Row
from vault.store.tokens import list_tokens
from vault.store.verify import check_log, verify_blind, verify_vault

from conftest import PASSPHRASE

SRC = Source("cli")


def _twins(created: tuple[Path, str]) -> tuple[Path, Path, list[Row]]:
    """The vault file, a copy of it taken at 2 events, and the rows (seq, hash, payload) the original gained
    after the copy was taken."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        v.add(Kind.CONTACT, {"name": "Ada"}, SRC)
        v.add(Kind.NOTE, {"title": "first"}, SRC)
    twin = path.with_name("twin.db")
    shutil.copyfile(path, twin)
    with Vault.open(path, PASSPHRASE) as v:
        for i in range(5):
            v.add(Kind.NOTE, {"title": f"later {i}"}, SRC)
        rows = list(v.log.rows(after=2))
    return path, twin, rows


def test_sealed_rows_continue_the_log_byte_for_byte(created: tuple[Path, str]) -> None:
    path, twin, rows = _twins(created)
    with Vault.open(twin, PASSPHRASE) as v:
        with v.log.writer() as w:
            w.append_sealed(rows)
        assert list(v.log.rows(after=2)) == rows
        assert check_log(v.log, blind=False).events == 7
        v.refresh()
        v.add(Kind.NOTE, {"title": "after the pull"}, SRC)  # the writer's tail (seq, hash, time) moved on too
        assert [r.event.changes.get("title") for r in v.events()][-2:] == ["later 4", "after the pull"]
        assert check_log(v.log, blind=False).events == 8


@pytest.mark.parametrize("damage", ["gap", "chain", "replayed"])
def test_rows_that_do_not_continue_the_log_are_refused(created: tuple[Path, str], damage: str) -> None:
    path, twin, rows = _twins(created)
    if damage == "gap":
        bad, seq = rows[:1] + rows[2:], 4
    elif damage == "chain":
        seq, h, payload = rows[2]
        bad, seq = rows[:2] + [(seq, h, payload[:-1] + bytes([payload[-1] ^ 1]))] + rows[3:], 5
    else:
        bad, seq = rows[1:], 3  # rows that do not start right after the head
    with Vault.open(twin, PASSPHRASE) as v:
        with pytest.raises(TamperDetected) as e:
            with v.log.writer() as w:
                w.append_sealed(bad)
        assert e.value.seq == seq
        assert v.log.head().seq == 2 and check_log(v.log, blind=False).events == 2  # nothing stored


def test_a_file_is_built_from_raw_rows_only_when_they_reach_the_head(created: tuple[Path, str]) -> None:
    path, twin, rows = _twins(created)
    with Vault.open(path, PASSPHRASE) as v:
        meta = dict(v.conn.execute("SELECT key, value FROM meta"))
        everything = list(v.log.rows())
        h = v.log.head()
    built = path.with_name("built.db")
    copies.build_file(built, meta, [everything[:3], everything[3:]], [], Head(h.seq, h.hash, h.mac, h.sig))
    with Vault.open(built, PASSPHRASE) as v:
        assert list(v.log.rows()) == everything and check_log(v.log, blind=False).events == 7

    short = path.with_name("short.db")
    with pytest.raises(TamperDetected) as e:
        copies.build_file(short, meta, [everything[:-1]], [], Head(h.seq, h.hash, h.mac, h.sig))
    assert e.value.seq == 7


def test_a_copy_of_an_older_file_stores_the_same_sealed_attachments_in_parts(tmp_path: Path) -> None:
    """A clone of a format-2 vault (64 KB pages, attachments in parts) holds its attachments byte for byte: the
    same sealed bytes, so the seal and a replica's blob segments agree between the two."""
    old = tmp_path / "old.vault"
    shutil.copyfile(Path(__file__).parent.parent / "fixtures" / "vaults" / "format-2.vault", old)
    with closing(schema.connect(old)) as conn:
        log = EventLog(conn, old, None)
        meta, rows, head = dict(conn.execute("SELECT key, value FROM meta")), list(log.rows()), log.head()
        whole = list(blobs.sealed_rows(conn))
    built = tmp_path / "built.vault"
    copies.build_file(built, meta, [rows], whole, head)
    with closing(schema.connect(built)) as conn:
        assert list(blobs.sealed_rows(conn)) == whole and conn.execute("SELECT count(*) FROM blob_parts").fetchone()[0]
        assert conn.execute("PRAGMA page_size").fetchone()[0] == schema.PAGE_SIZE
        keys = keyring.unlock(conn, PASSPHRASE)
        assert check_log(EventLog(conn, built, keys), blind=False).events == 3


@pytest.mark.parametrize("name", ["format-1.vault", "format-2.vault"])
def test_an_older_file_written_anew_is_the_same_vault_in_this_layout(name: str, tmp_path: Path) -> None:
    """`lifevault compact`: the same rows (tokens, batches and seal too) at this format's page size, attachments
    in parts, format 1's snapshot caches left out; the vault itself is not touched."""
    old = tmp_path / name
    shutil.copyfile(Path(__file__).parent.parent / "fixtures" / "vaults" / name, old)
    with Vault.open(old, PASSPHRASE) as v:  # a format-1 file is sealed when opened with the passphrase
        tokens = [t.name for t in list_tokens(v.log)]
    before = old.read_bytes()
    out = tmp_path / "anew.vault"
    copies.write_anew(old, out)
    assert old.read_bytes() == before and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    with closing(schema.connect(out)) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == schema.PAGE_SIZE
        assert schema.format_of(conn) == schema.FORMAT_VERSION and conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'snapshots'").fetchone()[0] == 0
        assert conn.execute("SELECT payload FROM blobs").fetchall() == [(b"",)]  # the attachment is in parts
    assert verify_blind(out).events == 3
    with Vault.open(out, PASSPHRASE) as v:
        assert verify_vault(v.log).blobs == 1 and [t.name for t in list_tokens(v.log)] == tokens
        note = next(r.event.record_id for r in v.events() if r.event.kind is Kind.NOTE)
        assert v.get_blob(v.get(note)["attachments"][0]["blob"]) == b"a scan of a letter"
