"""The vault file's format: format 1 plus one migration per later format, keyed by `user_version`.

Tested on real files written by older lifevaults (tests/fixtures/vaults/README.md): a format-1 file is
migrated and sealed when opened with the passphrase and then has exactly the schema of a new file; a
format-2 file written before the schema moved still passes every check; a migration rolled back leaves
the file as it was. A new file has 64 KB pages and stores attachments in parts (format 3); an older file
keeps its pages and its whole attachments, and stores new ones in parts once migrated.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.store import blobs, schema, tokens
from vault.store.verify import verify_blind, verify_vault

from conftest import PASSPHRASE

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vaults"
SRC = Source("cli")


def _copy(name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    shutil.copyfile(FIXTURES / name, path)
    return path


def _schema(path: Path) -> set[tuple[str, str, str, str | None]]:
    """The file's tables, indexes and triggers, less the `snapshots` table format 1 had (ignored, see schema)."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name != 'snapshots'")
        return set(rows)


def _contents(v: Vault) -> tuple[dict, dict, bytes]:
    events = list(v.events())
    contact = next(r.event.record_id for r in events if r.event.kind is Kind.CONTACT)
    note = next(r.event.record_id for r in events if r.event.kind is Kind.NOTE)
    fields = v.get(note)
    return v.get(contact), fields, v.get_blob(fields["attachments"][0]["blob"])


def test_migrations_are_one_per_format_in_order() -> None:
    assert [m.to for m in schema.MIGRATIONS] == list(range(2, schema.FORMAT_VERSION + 1))
    assert all(m.why and m.statements for m in schema.MIGRATIONS)


def test_a_format_1_file_is_migrated_to_the_schema_of_a_new_file(tmp_path: Path) -> None:
    old = _copy("format-1.vault", tmp_path)
    with closing(sqlite3.connect(old)) as conn:
        assert schema.format_of(conn) == 1
    with Vault.open(old, PASSPHRASE) as v:  # the passphrase: migrated and sealed now
        contact, note, scan = _contents(v)
        verify_vault(v.log, behind=v.rollback)
    assert contact["name"] == "Ada Lovelace" and contact["phones"] == ["+44 20 7946 0000"]
    assert note["title"] == "letter" and scan == b"a scan of a letter"
    with closing(sqlite3.connect(old)) as conn:
        assert schema.format_of(conn) == schema.FORMAT_VERSION
    new, _ = Vault.create(tmp_path / "new.vault", PASSPHRASE, kdf_cost="min")
    new.close()
    assert _schema(old) == _schema(tmp_path / "new.vault")
    assert verify_blind(old).events == 3


def test_a_format_2_file_from_before_the_move_passes_every_check(tmp_path: Path) -> None:
    """The schema's statements are part of the format: a file written by the old DDL still matches them."""
    old = _copy("format-2.vault", tmp_path)
    assert verify_blind(old).events == 3
    with Vault.open(old, PASSPHRASE) as v:
        assert [t.name for t in tokens.list_tokens(v.log)] == ["phone"]
        assert verify_vault(v.log, behind=v.rollback).events == 3
        contact, _, scan = _contents(v)
    assert contact["name"] == "Ada Lovelace" and scan == b"a scan of a letter"


def test_a_migration_rolled_back_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    old = _copy("format-1.vault", tmp_path)
    before = _schema(old)
    with closing(schema.connect(old)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        assert schema.migrate(conn) == 1
        assert schema.format_of(conn) == schema.FORMAT_VERSION
        conn.execute("ROLLBACK")
        assert schema.format_of(conn) == 1
    assert _schema(old) == before


@pytest.mark.parametrize("name", ["format-1.vault", "format-2.vault"])
def test_the_fixtures_are_what_their_readme_says(name: str) -> None:
    with closing(sqlite3.connect(f"file:{FIXTURES / name}?immutable=1", uri=True)) as conn:  # leaves no -wal
        assert schema.format_of(conn) == int(name[7])
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3


def _layout(path: Path) -> tuple[int, dict[bytes, int]]:
    """The file's page size, and each attachment's number of parts (0: stored whole in its row)."""
    with closing(sqlite3.connect(path)) as conn:
        parts = {raw: 0 if payload else conn.execute("SELECT count(*) FROM blob_parts WHERE id = ?", (raw,)).fetchone()[0]
                 for raw, payload in conn.execute("SELECT id, payload FROM blobs").fetchall()}
        return conn.execute("PRAGMA page_size").fetchone()[0], parts


def test_a_new_file_has_large_pages_and_stores_attachments_in_parts(tmp_path: Path) -> None:
    big = os.urandom(3 * blobs.PART_BYTES + 10)  # sealed: four parts, the last one short
    with Vault.create(tmp_path / "new.vault", PASSPHRASE, kdf_cost="min")[0] as v:
        bid = v.put_blob(big)
        small = v.put_blob(b"a short note")
        assert v.get_blob(bid) == big and v.get_blob(small) == b"a short note"
        sealed = blobs.sealed_payloads(v.conn, [bytes.fromhex(bid)])[bytes.fromhex(bid)]
        parts = [p for (p,) in v.conn.execute("SELECT part FROM blob_parts WHERE id = ? ORDER BY n",
                                                (bytes.fromhex(bid),))]
        assert schema.format_of(v.conn) == schema.FORMAT_VERSION
    assert b"".join(parts) == sealed and {len(p) for p in parts[:-1]} == {blobs.PART_BYTES} and len(parts) == 4
    assert _layout(tmp_path / "new.vault") == (schema.PAGE_SIZE, {bytes.fromhex(bid): 4, bytes.fromhex(small): 1})
    assert verify_blind(tmp_path / "new.vault").blobs == 2


def test_a_format_2_file_keeps_its_pages_and_whole_attachments_and_adds_parts(tmp_path: Path) -> None:
    old = _copy("format-2.vault", tmp_path)
    page_size, before = _layout(old)
    assert page_size == 4096 and list(before.values()) == [0]
    later = os.urandom(2 * blobs.PART_BYTES + 10)  # an attachment stored after the migration: three parts
    with Vault.open(old, PASSPHRASE) as v:
        added = v.put_blob(later)
        _, _, scan = _contents(v)
        assert v.get_blob(added) == later
        assert verify_vault(v.log, behind=v.rollback).blobs == 2
    assert scan == b"a scan of a letter"
    assert _layout(old) == (4096, {**before, bytes.fromhex(added): 3})
    assert verify_blind(old).blobs == 2
    new, _ = Vault.create(tmp_path / "new.vault", PASSPHRASE, kdf_cost="min")
    new.close()
    assert {r for r in _schema(old) if r[2] == "blob_parts"} == {r for r in _schema(tmp_path / "new.vault")
                                                                 if r[2] == "blob_parts"} != set()


def test_the_wal_of_an_open_vault_shrinks_back_after_a_large_write(tmp_path: Path) -> None:
    """A long-open vault (serve) does not keep the WAL of its largest write: checkpointed at WAL_BYTES, then
    cut back to that size."""
    path = tmp_path / "vault.db"
    with Vault.create(path, PASSPHRASE, kdf_cost="min")[0] as v:
        v.put_blob(os.urandom(3 * schema.WAL_BYTES))  # one transaction: the WAL cannot be checkpointed meanwhile
        grown = path.with_name("vault.db-wal").stat().st_size
        for i in range(3):
            v.add(Kind.NOTE, {"title": f"later {i}"}, SRC)
        assert grown > 3 * schema.WAL_BYTES >= schema.WAL_BYTES >= path.with_name("vault.db-wal").stat().st_size
