"""What the replica tests share: a history to push, its secret word, raw rows, the CLI, damage to do."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from vault import Kind, Source, Vault
from vault.cli import cli
from vault.store import blobs, schema

SECRET = "Quetzalcoatl7731"  # appears in every record; must never appear in a replica

BLOB = b"%PDF-1.4 " + SECRET.encode() * 40

SRC = Source("cli")

T0 = 1_700_000_000_000_000

HOUR = 3_600_000_000



def build_history(vault: Vault, n: int = 40, start: int = 0) -> list[int]:
    """Creates, updates, deletes and a blob, one hour apart; returns the recorded_at of each event."""
    times, live = [], [r for r, _ in vault.projection.state(Kind.CONTACT)]
    for i in range(start, start + n):
        at = T0 + i * HOUR
        with vault.transaction() as tx:
            if i % 5 == 3 and live:
                tx.update(live[i % len(live)], {"note": f"{SECRET} note {i}"}, SRC, recorded_at=at)
            elif i % 7 == 6 and len(live) > 2:
                tx.delete(live.pop(0), SRC, recorded_at=at)
            elif i == 4:
                bid = tx.put_blob(BLOB)
                tx.create(Kind.NOTE, {"title": f"{SECRET} scan", "attachments": [{"blob": bid}]}, SRC, recorded_at=at)
            else:
                live.append(tx.create(Kind.CONTACT, {"name": f"{SECRET} Person {i}", "emails": [f"p{i}@example.org"]},
                                      SRC, recorded_at=at))
        times.append(at)
    return times



def rows(path: Path) -> list[tuple]:
    """The raw event rows, head and blobs of a vault file."""
    conn = schema.connect(path)
    try:
        return [conn.execute("SELECT seq, hash, payload FROM events ORDER BY seq").fetchall(),
                conn.execute("SELECT seq, hash, mac, sig FROM head").fetchall(),
                sorted(blobs.sealed_rows(conn))]  # the sealed bytes, whether stored whole or in parts
    finally:
        conn.close()



def copy_vault(src: Path, dst: Path) -> None:
    """A consistent copy of a vault file that is open elsewhere (its WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    b.close()
    a.close()



def assert_no_plaintext(folder: Path) -> None:
    needles = [SECRET.encode(), SECRET.lower().encode(), b"example.org", BLOB[:9]]
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert SECRET.lower() not in str(p.relative_to(folder)).lower()
        data = p.read_bytes()
        for needle in needles:
            assert needle not in data, (p.name, needle)



def states(vault: Vault, seqs: list[int]) -> dict:
    return {(kind, s): list(vault.projection.state(kind, s)) for kind in Kind for s in seqs}



def cli_run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)



def corrupt(p: Path, at: int | None = None) -> None:
    """Flip one bit: in the middle (inside a sealed payload, for an event segment), or at byte `at`."""
    data = bytearray(p.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    p.write_bytes(bytes(data))


def corrupt_framing(p: Path) -> None:
    """Flip a bit of an event segment's first chain hash, which its framing digest covers."""
    corrupt(p, at=24 + 12 + 5)



DAMAGE = {
    "corrupted": (corrupt, "breaks the hash chain"),  # a payload byte: the framing digest holds, the chain does not
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-7]), "is truncated"),
    "missing": (lambda p: p.unlink(), "is missing"),
    "extra": (lambda p: shutil.copy(p, p.with_name("events-000000000041-000000000041.seg")), "extra segment"),
}
