"""The append-only, hash-chained, encrypted event log inside a vault file.

Each row is (seq, hash, payload): payload is the sealed event, its AAD binds
the vault id, the seq and the previous hash; hash = BLAKE2b(prev, seq,
payload). The head row holds the latest (seq, hash) with a MAC keyed from the
data key and an Ed25519 signature, so truncation is detectable with the key
and, through the signature, without it. Every write also rewrites the seal
(seal.py), after checking the old one, so what lies beside the log is bound
to the same head.
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import nacl.exceptions

from vault.store import blobs, codec, crypto, keyring, read_ahead, schema, seal
from vault.store.crypto import Keys
from vault.errors import CannotWrite, TamperDetected, VaultLocked
from vault.domain.events import Event, Recorded


Row = tuple[int, bytes, bytes]  # (seq, hash, payload): an event row as stored
_INSERT_ROWS = "INSERT INTO events (seq, hash, payload) VALUES (?, ?, ?)"  # the one statement that adds events


def now_us() -> int:
    """The current instant in UTC microseconds, the unit of `recorded_at`."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Head:
    seq: int
    hash: bytes
    mac: bytes
    sig: bytes


class EventLog:
    """Reads and appends events; `keys` is None for a blind (passphrase-less) reader."""

    def __init__(self, conn: sqlite3.Connection, path: Path, keys: Keys | None) -> None:
        self.conn, self.path, self.keys = conn, path, keys
        self.vault_id = keyring.vault_id(conn)
        self.genesis = crypto.genesis_hash(self.vault_id)
        self._last_at: tuple[int, int] = (0, 0)  # (seq, recorded_at) cache of the tail
        self.on_commit: Callable[[], None] | None = None  # told after every committed write (the Vault remembers heads)
        if keys is not None:
            seal.track_new_blobs(conn)

    # -- reading -------------------------------------------------------------
    def head(self) -> Head:
        """The head row; every vault has one from its creation, so a missing head is tampering."""
        try:
            row = self.conn.execute("SELECT seq, hash, mac, sig FROM head WHERE id = 1").fetchone()
        except sqlite3.DatabaseError as e:
            raise schema.damaged(self.path, e) from e
        if row is None:
            raise TamperDetected(None, "its head row is missing")
        if not (isinstance(row[0], int) and all(isinstance(v, bytes) for v in row[1:])):
            raise TamperDetected(None, "its head row holds values of the wrong type")
        return Head(*row)

    def hash_at(self, seq: int) -> bytes:
        """The chain hash after event `seq` (the genesis hash for 0)."""
        if seq == 0:
            return self.genesis
        row = self.conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise TamperDetected(seq, "the event is missing")
        return row[0]

    def rows(self, after: int = 0, upto: int | None = None, chunk: int = 5000) -> Iterator[tuple[int, bytes, bytes]]:
        """Raw (seq, hash, payload) rows in seq order, fetched in chunks."""
        for batch in self._chunks(after, upto, chunk):
            yield from batch

    def _chunks(self, after: int, upto: int | None, chunk: int) -> Iterator[list[Row]]:
        last = after
        while True:
            limit = chunk if upto is None else min(chunk, upto - last)
            if limit <= 0:
                return
            try:
                batch = self.conn.execute(
                    "SELECT seq, hash, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (last, limit)
                ).fetchall()
            except sqlite3.DatabaseError as e:
                raise schema.damaged(self.path, e) from e
            if batch:
                yield batch
            if len(batch) < limit:
                return
            last = batch[-1][0]

    def checked_batches(self, after: int = 0, upto: int | None = None, chunk: int = 5000) -> Iterator[list[Row]]:
        """Raw rows in seq order, a fetched chunk at a time, each chunk checked whole (seq continuity, the chain)
        before it is given: a full push reads the log this way, with no generator step per row."""
        prev, expected = self.hash_at(after), after + 1
        for batch in self._chunks(after, upto, chunk):
            try:
                intact = (list(map(itemgetter(0), batch)) == list(range(expected, expected + len(batch)))
                          and crypto.first_broken_link(prev, batch) is None)
            except (TypeError, struct.error):  # a retyped column: named below
                intact = False
            if not intact:
                for _ in _checked(batch, prev, expected):  # raises naming the first bad row
                    pass
                raise AssertionError("a chunk that failed its check passed it row by row")
            yield batch
            prev, expected = batch[-1][1], batch[-1][0] + 1

    def checked_rows(self, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        """Rows as (seq, prev_hash, hash, payload), checking seq continuity and the chain."""
        prev, expected = self.hash_at(after), after + 1
        for batch in self._chunks(after, upto, 5000):  # row by row: a replay gets every event before a damaged one
            yield from _checked(batch, prev, expected)
            prev, expected = batch[-1][1], batch[-1][0] + 1

    def decrypt(self, seq: int, prev: bytes, payload: bytes) -> Recorded:
        """Open one sealed event; TamperDetected if its tag, AAD or content is wrong."""
        assert self.keys is not None, "a blind log cannot decrypt"
        return recorded(seq, open_event(self.keys.event, self.vault_id, seq, prev, payload))

    def read(self, after: int = 0, upto: int | None = None) -> Iterator[Recorded]:
        """Decrypted events after seq `after`, up to `upto`, checked as they are read.

        A long stretch of committed events is decrypted by a second process (`read_ahead`); events
        appended in a transaction still open here are read here, since no other process sees them."""
        return (recorded(p[0], p[1:]) for p in self.read_parts(after, upto))

    def read_parts(self, after: int = 0, upto: int | None = None) -> Iterator[tuple]:
        """`read` without making objects: per event (seq, *`codec.decode_parts`), checked the same way but
        with its codes not yet looked up, for a replay that folds plain values (`recorded` checks them)."""
        if upto is not None and upto - after >= read_ahead.READ_AHEAD_FROM:
            committed = min(upto, self.head().seq) if self.conn.in_transaction else upto
            if committed - after >= read_ahead.READ_AHEAD_FROM:
                rest = self.read_parts_here(committed, upto) if committed < upto else ()
                return itertools.chain(read_ahead.read_ahead(self, after, committed), rest)
        return self.read_parts_here(after, upto)

    def read_parts_here(self, after: int = 0, upto: int | None = None) -> Iterator[tuple]:
        """`read_parts`, always in this process."""
        assert self.keys is not None, "a blind log cannot decrypt"
        key, vault_id = self.keys.event, self.vault_id
        for seq, prev, _, payload in self.checked_rows(after, upto):
            yield (seq, *open_event(key, vault_id, seq, prev, payload))

    def read_here(self, after: int = 0, upto: int | None = None) -> Iterator[Recorded]:
        """`read`, always in this process."""
        return (recorded(p[0], p[1:]) for p in self.read_parts_here(after, upto))

    def event(self, seq: int) -> Recorded:
        """One decrypted event."""
        return next(self.read(seq - 1, seq))

    def recorded_at(self, seq: int) -> int:
        """When event `seq` was recorded (0 for seq 0)."""
        if seq == 0:
            return 0
        if self._last_at[0] == seq:
            return self._last_at[1]
        return self.event(seq).recorded_at

    def seq_at(self, instant_us: int) -> int:
        """The last seq recorded at or before the instant; recorded_at never decreases,
        so a binary search decrypts about log2(n) events."""
        lo, hi = 0, self.head().seq
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.recorded_at(mid) <= instant_us:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # -- the head ------------------------------------------------------------
    def check_head(self, head: Head, last_seq: int, last_hash: bytes, *, blind: bool = False) -> None:
        """Raise TamperDetected unless the head names the last event and is authentic."""
        if head.seq != last_seq:
            if head.seq > last_seq:
                raise TamperDetected(last_seq + 1, f"the log ends at {last_seq} but its head says {head.seq} (truncated)")
            raise TamperDetected(head.seq + 1, f"events after the head ({head.seq}) were added outside lifevault")
        msg = crypto.head_message(self.vault_id, head.seq, head.hash)
        if head.hash != last_hash:
            raise TamperDetected(head.seq, "the head's hash does not match the last event")
        if not crypto.check_signature(keyring.verify_key(self.conn), msg, head.sig):
            raise TamperDetected(None, "the head's signature does not verify")
        if not blind and self.keys is not None and self.keys.head_mac(msg) != head.mac:
            raise TamperDetected(None, "the head's MAC does not verify")

    def write_head(self, seq: int, last_hash: bytes) -> None:
        """Record (seq, hash) as the head, with its MAC and signature (inside the caller's transaction)."""
        assert self.keys is not None, "a blind log cannot write the head"
        msg = crypto.head_message(self.vault_id, seq, last_hash)
        self.conn.execute(
            "INSERT OR REPLACE INTO head (id, seq, hash, mac, sig) VALUES (1, ?, ?, ?, ?)",
            (seq, last_hash, self.keys.head_mac(msg), self.keys.sign(msg)),
        )

    def _tail(self) -> tuple[int, bytes]:
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if row and (type(row[0]) is not int or type(row[1]) is not bytes):  # e.g. a damaged schema: seq no rowid
            raise TamperDetected(None, "its last event row holds values of the wrong type")
        return (row[0], row[1]) if row else (0, self.genesis)

    # -- appending -----------------------------------------------------------
    @contextmanager
    def writer(self, reseal: frozenset[str] = frozenset(), *, repair: bool = False) -> Iterator["Writer"]:
        """One write transaction (BEGIN IMMEDIATE): commit on success, roll back on any error. `reseal` names
        what beside the log the write changes ("tokens", "keys"): checked against the seal first (unless the
        write is a `repair` that replaces them), then sealed anew."""
        assert self.keys is not None, "a blind log cannot append"
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise VaultLocked(self.path) from e
        try:
            head = self.head()
            self.check_head(head, *self._tail())
            schema.migrate(self.conn)  # an older file: a format-1 file's first seal is the one written below
            if seal.read(self.conn) is not None:  # never seal in what was altered since
                seal.check(self.conn, self.vault_id, keyring.verify_key(self.conn), self.keys, head.seq, head.hash,
                           contents=() if repair else tuple(reseal), signature=False)  # the MAC is enough here
            w = Writer(self, head.seq, head.hash)
            yield w
            try:
                if w.seq != head.seq:
                    self.write_head(w.seq, w.hash)
                seal.write(self.conn, self.keys, self.vault_id, w.seq, w.hash, reseal)
                self.conn.execute("COMMIT")
            except sqlite3.Error as e:  # a full disk, an I/O error: rolled back below, so nothing is stored
                raise CannotWrite(self.path, f"SQLite refused to commit ({str(e).splitlines()[0][:200]}); "
                                  "nothing was stored") from e
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._last_at = (0, 0)
            raise
        if self.on_commit is not None:
            self.on_commit()


def _checked(rows: list[Row], prev: bytes, expected: int) -> Iterator[tuple[int, bytes, bytes, bytes]]:
    """Rows as (seq, prev_hash, hash, payload), each checked before it is given: TamperDetected names the first
    that is missing, retyped or off the chain."""
    for seq, stored, payload in rows:
        if seq != expected:
            raise TamperDetected(expected, "the event is missing")
        if type(stored) is not bytes or type(payload) is not bytes:  # a damaged record header can retype a column
            raise TamperDetected(seq, "its stored hash or payload is not a byte string")
        if crypto.chain_hash(prev, seq, payload) != stored:
            raise TamperDetected(seq, "its chain hash does not match its content and predecessor")
        yield seq, prev, stored, payload
        prev, expected = stored, seq + 1


def open_event(event_key: bytes, vault_id: bytes, seq: int, prev: bytes, payload: bytes) -> tuple:
    """One sealed event opened and taken apart (`codec.decode_parts`); TamperDetected if it is wrong."""
    try:
        return codec.decode_parts(crypto.open_sealed(event_key, payload, crypto.event_aad(vault_id, seq, prev)))
    except nacl.exceptions.CryptoError as e:
        raise TamperDetected(seq, "its authentication tag does not verify (altered, moved or from another vault)") from e
    except ValueError as e:  # a bad flag or version, or text that is not UTF-8 (unknown codes: `recorded`)
        raise TamperDetected(seq, f"its content cannot be decoded ({e})") from e


def recorded(seq: int, parts: tuple) -> Recorded:
    """The Recorded event `open_event` took apart; TamperDetected if its codes are unknown."""
    try:
        return Recorded(seq, parts[2], codec.event_from_parts(*parts))
    except KeyError as e:
        raise TamperDetected(seq, f"its content cannot be decoded (unknown code {e})") from e


class Writer:
    """Appends inside one transaction; recorded_at is clamped so it never decreases."""

    def __init__(self, log: EventLog, seq: int, last_hash: bytes) -> None:
        self.log, self.seq, self.hash = log, seq, last_hash
        self.last_at = log.recorded_at(seq)

    def append(self, events: Sequence[Event]) -> list[Recorded]:
        """Seal, chain and store `events` after the writer's tail."""
        keys, vid = self.log.keys, self.log.vault_id
        assert keys is not None
        rows, out, now = [], [], now_us()
        seq, prev, last_at = self.seq, self.hash, self.last_at
        for event in events:
            seq += 1
            at = max(event.recorded_at if event.recorded_at is not None else now, last_at)
            event = Event(event.type, event.kind, event.record_id, codec.LazyFields.wrap(event.changes), event.source, at)
            sealed = crypto.seal(keys.event, codec.encode_event(event, at), crypto.event_aad(vid, seq, prev))
            prev = crypto.chain_hash(prev, seq, sealed)
            rows.append((seq, prev, sealed))
            out.append(Recorded(seq, at, event))
            last_at = at
        self.log.conn.executemany(_INSERT_ROWS, rows)
        self.seq, self.hash, self.last_at = seq, prev, last_at
        self.log._last_at = (seq, last_at)
        return out

    def append_sealed(self, rows: Sequence[Row]) -> None:
        """Store rows sealed elsewhere (a replica's), byte for byte, after checking that they continue this
        log; the head written on commit names the last of them. The caller checks that their tags open."""
        if not rows:
            return
        self.seq, self.hash = insert_rows(self.log.conn, rows, self.seq, self.hash)
        self.last_at = self.log.recorded_at(self.seq)  # clamps what `append` adds after them
        self.log._last_at = (self.seq, self.last_at)

    def add_sealed_blobs(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """Store attachments sealed elsewhere, (raw id, payload) as they were, skipping those already here."""
        blobs.insert_sealed(self.log.conn, pairs)


def insert_rows(conn: sqlite3.Connection, rows: Iterable[Row], seq: int, prev: bytes) -> tuple[int, bytes]:
    """Insert already sealed rows after event `seq` whose chain hash is `prev`, checking seq continuity and
    every chain hash first (TamperDetected, nothing inserted); returns the new tail (seq, hash)."""
    rows = list(rows)
    for n, stored, payload in rows:
        if n != seq + 1:
            raise TamperDetected(seq + 1, f"the rows to append go on at event {n}, not at the next one")
        if type(stored) is not bytes or type(payload) is not bytes:
            raise TamperDetected(n, "its stored hash or payload is not a byte string")
        if crypto.chain_hash(prev, n, payload) != stored:
            raise TamperDetected(n, "its chain hash does not match its content and predecessor")
        seq, prev = n, stored
    conn.executemany(_INSERT_ROWS, rows)
    return seq, prev
