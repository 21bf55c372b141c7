"""The Vault: one object to create, unlock, change and read a vault file.

It ties the encrypted log to the state derived from it, the projection (every
version of every record), which lives in the encrypted state file beside the
vault (state_file.py): opened on first use and caught up with the events it
lacks. Every append goes to the log and then, before the write lock is let
go, to the state file, so the file is never ahead of the log.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from vault.store import blobs, keyring, rollback, schema, seal
from vault.state import file as state_file
from vault.store.blobs import missing_blobs, referenced_blobs
from vault.store.codec import LazyFields, dumps, fields_json
from vault.store.crypto import DEFAULT_KDF_COST, Keys, key_fingerprint
from vault.errors import AlreadyExists, BadInstant, CannotWrite, InvalidRecord, NotFound, TamperDetected
from vault.domain.events import Event, EventType, Kind, Recorded, Source, check_fields, diff, kind_of, new_record_id
from vault.domain.kinds import check_record
from vault.domain.instants import Instant, iso
from vault.store.log import EventLog, Writer
from vault.store.passphrase import check_strength
from vault.paths import private_dir
from vault.state.projection import Folded, Projection, folded_parts
from vault.state.provenance import trace
from vault.store.verify import check_log

logger = logging.getLogger("lifevault")
_BLOB_ID = re.compile(r"^[0-9a-f]{64}$")
# A full collection costs tens of milliseconds in a large process: worth it before a long replay, not a short one.
GC_FREEZE_FROM = 5000
PROGRESS_FROM = 20_000  # events: a replay this long (a second or more) says how far it is (`notify`)…
PROGRESS_EVERY_S = 2.0  # …every this many seconds
REMEMBER_EVERY_S = 1.0  # how often a run of writes raises this machine's memory of the head (rollback.py)

# Which state a record must be in for each event type.
_REQUIRES = {
    EventType.CREATED: "absent",
    EventType.UPDATED: "live",
    EventType.DELETED: "live",
    EventType.REVIVED: "deleted",
}


class Vault:
    """An unlocked vault. Use `Vault.create` / `Vault.open`; close it (or use `with`)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, keys: Keys) -> None:
        self.path, self.conn, self.keys = path, conn, keys
        self.notify: Callable[[str], None] = lambda _: None  # told, in one sentence, why the state file is rebuilt
        self.log = EventLog(conn, path, keys)
        self._check_head()
        self.rollback: rollback.Behind | None = None  # set when the file is behind what this machine saw of it
        self._remembered_at, self._unremembered = 0.0, False  # the last write to the memory; writes since
        self.log.on_commit = self._committed
        self._check_seal()
        self._projection: Projection | None = None
        self._writer: Writer | None = None  # the open write transaction, if any

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, seq={self.log.head().seq})"

    # -- opening -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str, passphrase: str, kdf_cost: str = DEFAULT_KDF_COST, *,
               weak_ok: bool = False) -> tuple["Vault", str]:
        """Make a new vault file (never overwriting); returns it and the recovery key to show once.
        A passphrase zxcvbn finds easy to guess is refused (WeakPassphrase) unless `weak_ok`."""
        path = Path(path)
        if path.exists():
            raise AlreadyExists(path)
        if not weak_ok:
            check_strength(passphrase)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.creating")
        try:
            private_dir(path.parent)
            conn = schema.connect(tmp, create=True)
        except OSError as e:  # no such folder and none can be made, read-only, full
            raise CannotWrite(path, e.strerror or str(e)) from e
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                keys, recovery = keyring.create_keys(conn, passphrase, kdf_cost)
                log = EventLog(conn, tmp, keys)
                log.write_head(0, log.genesis)  # signed from the start: an emptied log is detectable
                seal.write(conn, keys, log.vault_id, 0, log.genesis)
        finally:
            conn.close()
        try:
            os.link(tmp, path)  # fails rather than overwrite a file that appeared meanwhile
        except FileExistsError:
            raise AlreadyExists(path) from None
        finally:
            tmp.unlink()
        return cls.open(path, passphrase), recovery

    @classmethod
    def open(cls, path: Path | str, passphrase: str) -> "Vault":
        """Unlock a vault with its passphrase."""
        path = Path(path)
        conn = schema.connect(path)
        return cls._unlocked(path, conn, lambda: keyring.unlock(conn, passphrase))

    @classmethod
    def open_with_recovery(cls, path: Path | str, recovery_key: str) -> "Vault":
        """Unlock a vault with its recovery key."""
        path = Path(path)
        conn = schema.connect(path)
        return cls._unlocked(path, conn, lambda: keyring.unlock_with_recovery(conn, recovery_key))

    @classmethod
    def _unlocked(cls, path: Path, conn: sqlite3.Connection, unlock) -> "Vault":
        try:
            return cls(path, conn, unlock())
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close the state file and the vault file."""
        try:
            self._drop_projection()
        finally:
            try:
                if self._unremembered:
                    self._remember_head()
            finally:
                self.conn.close()

    def __enter__(self) -> "Vault":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the derived states ----------------------------------------------------
    def _check_head(self) -> None:
        try:
            self.log.check_head(self.log.head(), *self.log._tail())
        except TamperDetected:
            check_log(self.log, blind=False)  # name the first bad seq (e.g. an event swapped with the last)
            raise

    def _check_seal(self) -> None:
        """Compare with what this machine saw of the file, then check its seal (sealing a file that has none
        yet: one from an older lifevault or rebuilt from a replica), then remember its head."""
        found = seal.read(self.conn)
        head = self.log.head()
        self.rollback = rollback.check(self.path, self.log.vault_id, head.seq, found.counter if found else 0,
                                       self.log.hash_at, self.keys)
        if found is None:
            with self.log.writer():
                pass  # the writer migrates the file and seals it at commit (which remembers the head)
        else:
            # tokens and key material are checked where they are used (token lookups, unlocking) and by verify
            seal.check(self.conn, self.log.vault_id, keyring.verify_key(self.conn), self.keys, head.seq, head.hash,
                       contents=())
            self._remember_head()

    def _remember_head(self) -> None:
        """After opening or a write: raise this machine's memory of the head, unless the file is behind it."""
        head, found = self.log.head(), seal.read(self.conn)
        counter = found.counter if found else 0
        self.rollback = rollback.check(self.path, self.log.vault_id, head.seq, counter, self.log.hash_at, self.keys)
        if self.rollback is None:
            rollback.remember(self.path, self.log.vault_id, self.keys, head.seq, head.hash, counter)
        self._remembered_at, self._unremembered = time.monotonic(), False

    def _committed(self) -> None:
        """After a write: a vault that was not behind stays so (it only grew), so its memory is raised at most once
        a second (and at close): writing the memory file after every append tripled the cost of a small one."""
        if self.rollback is not None or time.monotonic() - self._remembered_at >= REMEMBER_EVERY_S:
            self._remember_head()
        else:
            self._unremembered = True

    @property
    def state_path(self) -> Path:
        """The encrypted state file beside the vault."""
        return state_file.path_for(self.path)

    @property
    def projection(self) -> Projection:
        """Every version of every record, in the state file; opened (and caught up) on first use."""
        if self._projection is None:
            proj = state_file.open_projection(self.state_path, self.keys.state, self._matches, self.notify)
            try:
                self._projection = self._caught_up(proj)
            except BaseException:
                proj.close()
                raise
        return self._projection

    def _matches(self, proj: Projection) -> bool:
        """Whether the state file holds a prefix of this log: its last event made a version with the same seq
        and instant. Its seq is read before the head, and the file commits after the log, so a prefix is never
        taken for a file ahead of the log."""
        head = self._upto()
        if proj.seq > head:
            return False
        if proj.seq == 0:
            return True
        r = self.log.event(proj.seq)
        return proj.has_version(r.event.kind, r.event.record_id, r.seq, iso(r.recorded_at))

    def _drop_projection(self) -> None:
        if self._projection is not None:
            self._projection.close()
        self._projection = None

    def _upto(self) -> int:
        """The last seq the state must include: the head, or inside a transaction its latest append."""
        return self._writer.seq if self._writer is not None else self.log.head().seq

    def _caught_up(self, proj: Projection) -> Projection:
        """`proj` with the events after its seq applied, under its write lock (another process may be
        catching it up too: its seq is reread there, then the head)."""
        if proj.seq == self._upto():  # the usual case: nothing to write, so no lock to take
            return proj
        with proj.transaction():
            upto = self._upto()
            if upto < proj.seq:
                raise TamperDetected(upto + 1, f"the log ends before the state already seen (seq {proj.seq}): rolled back")
            if upto > proj.seq:
                self._replay(proj, upto)
        return proj

    def _replay(self, proj: Projection, upto: int) -> None:
        long = upto - proj.seq >= GC_FREEZE_FROM
        if long:  # long replays allocate many short-lived objects; keep the collector off old ones
            gc.collect()
            gc.freeze()
        events = folded_parts(self.log.read_parts(proj.seq, upto))
        if upto - proj.seq >= PROGRESS_FROM:
            events = self._reporting(events, proj.seq, upto)
        try:
            proj.apply_folded(events)
        finally:
            if long:
                gc.unfreeze()

    def _reporting(self, events: Iterator[Folded], start: int, upto: int) -> Iterator[Folded]:
        """`events`, telling `notify` how far a long replay is, then that a first build indexes them."""
        self.notify(f"Building the state file {self.state_path} from {upto - start:,} events…")
        due = time.monotonic() + PROGRESS_EVERY_S
        for e in events:
            yield e
            if time.monotonic() >= due:
                self.notify(f"… {e[0] - start:,} of {upto - start:,} events")
                due = time.monotonic() + PROGRESS_EVERY_S
        if start == 0:  # a first build indexes every version at the end (`Projection.apply_folded`)
            self.notify("… building the search indexes")

    def refresh(self) -> int:
        """Catch up with events other processes appended; returns how many were applied."""
        if self._projection is None:
            return 0
        before = self._projection.seq
        self._caught_up(self._projection)
        return self._projection.seq - before

    def replay_from_zero(self) -> Projection:
        """A fresh in-memory projection built from event 1 (a reference to compare the state file with)."""
        proj = Projection()
        with proj.transaction():
            self._replay(proj, self.log.head().seq)
        return proj

    # -- writing ---------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["Transaction"]:
        """All appends inside commit together or not at all. The log commits first, then the state file
        (still under the log's write lock): a crash between leaves the file behind the log, never ahead, and a
        state-file commit that fails after the log's is not a failed write (the file is caught up from the log)."""
        proj = self.projection
        stored = False
        try:
            with proj.transaction():
                with self.log.writer() as w:
                    self._writer = w
                    if w.seq > proj.seq:  # another process appended and has not caught the file up (it crashed)
                        self._replay(proj, w.seq)
                    yield Transaction(self, w)
                stored = True  # the log committed: the write took effect, whatever the state file's commit does
        except BaseException as e:
            if self._projection is not None and self._projection.seq != self.log.head().seq:
                self._drop_projection()  # reopened and caught up at next use
            if not (stored and isinstance(e, Exception)):
                raise
            logger.warning("the state file %s did not take write %d (%s); it is caught up from the log",
                           self.state_path, self.log.head().seq, e)
        finally:
            self._writer = None

    def add(self, kind: Kind, fields: Mapping[str, Any], source: Source, *, allow_extra: bool = False) -> str:
        """Create a record; returns its new id. Fields are checked against the kind's schema (kinds.py): fields
        it does not know are refused unless `allow_extra`."""
        with self.transaction() as tx:
            return tx.create(kind, fields, source, allow_extra=allow_extra)

    def update(self, record_id: str, patch: Mapping[str, Any], source: Source, *,
               allow_extra: bool = False) -> Recorded | None:
        """Apply a field-level patch (checked like `add`'s fields); None when it changes nothing."""
        with self.transaction() as tx:
            return tx.update(record_id, patch, source, allow_extra=allow_extra)

    def delete(self, record_id: str, source: Source) -> Recorded:
        """Tombstone a record (its history stays)."""
        with self.transaction() as tx:
            return tx.delete(record_id, source)

    def revert(self, record_id: str, instant: Instant, source: Source) -> list[Recorded]:
        """Append what brings a record back to how it was at `instant`; undelete is a revert. What comes back
        was stored before, so it is not held to today's schema (a revert never strands a record's past).

        The events' source says which state they go back to (`revert_to`, `revert_to_at` in its detail), so a
        timeline can say "reverted to how it was on …" and a list of moments can find every revert."""
        kind = kind_of(record_id)
        with self.transaction() as tx:
            seq = self.seq_for(instant)
            when = {"revert_to_at": iso(self.log.recorded_at(seq))} if seq else {}
            source = replace(source, detail={**source.detail, "revert_to": seq, **when})
            if self.projection.status(kind, record_id) == "absent":
                raise NotFound(record_id)
            then = self.projection.record(kind, record_id, seq)
            now = self.projection.record(kind, record_id)
            if then == now:
                return []
            if then is None:
                return [tx.delete(record_id, source)]
            if now is None:
                return tx.append([Event(EventType.REVIVED, kind, record_id, then, source)])
            r = tx.update(record_id, diff(now, then), source, checked=False)
            return [r] if r else []

    def put_blob(self, data: bytes) -> str:
        """Store an attachment (deduplicated); returns its id."""
        with self.transaction() as tx:
            return tx.put_blob(data)

    def change_passphrase(self, new_passphrase: str, kdf_cost: str = DEFAULT_KDF_COST, *, weak_ok: bool = False) -> None:
        """Rewrap the data key under a new passphrase; events are not re-encrypted.
        A passphrase zxcvbn finds easy to guess is refused (WeakPassphrase) unless `weak_ok`."""
        if not weak_ok:
            check_strength(new_passphrase)
        with self.log.writer(frozenset({"keys"})):
            keyring.set_passphrase(self.conn, self.keys, new_passphrase, kdf_cost)

    # -- reading ---------------------------------------------------------------
    def seq_for(self, instant: Instant) -> int:
        """The seq whose prefix of the log is the state at `instant`."""
        head = self.log.head().seq
        if instant.seq is not None:
            if instant.seq > head:
                raise BadInstant(f"seq:{instant.seq}", f"the log only has {head} events")
            return instant.seq
        assert instant.us is not None
        return self.log.seq_at(instant.us)

    def get(self, record_id: str, at: Instant | None = None) -> dict[str, Any]:
        """A record's fields now, or at an instant; NotFound if it was not live then."""
        kind = kind_of(record_id)
        seq = None if at is None else self.seq_for(at)
        data = self.projection.record(kind, record_id, seq)
        if data is None:
            when = "" if at is None else f" at seq {seq}"
            if self.projection.status(kind, record_id) == "deleted" and at is None:
                when = " (it was deleted; see its history)"
            raise NotFound(record_id, when)
        return data

    def history(self, record_id: str) -> list[dict[str, Any]]:
        """Every version of a record, oldest first; NotFound if it never existed."""
        versions = self.projection.versions(kind_of(record_id), record_id)
        if not versions:
            raise NotFound(record_id)
        return versions

    def provenance(self, record_id: str) -> dict[str, list[dict[str, Any]]]:
        """Where each value of the record as it is now came from: per field (per list item) the version, instant
        and source since which it has been there."""
        return trace(self.history(record_id))

    def events(self, since: Instant | None = None, limit: int | None = None) -> Iterator[Recorded]:
        """Decrypted events after `since` (default: all), at most the last `limit`."""
        head = self.log.head().seq
        start = self.seq_for(since) if since else 0
        if limit is not None:
            start = max(start, head - limit)
        return self.log.read(start, head)

    def get_blob(self, blob_id: str) -> bytes:
        return blobs.get_blob(self.conn, self.keys, self.log.vault_id, blob_id)

    def referenced_blob(self, blob_id: str) -> bytes:
        """An attachment a record refers to: one the vault lacks is damage, not an unknown id."""
        try:
            return self.get_blob(blob_id)
        except NotFound as e:
            raise TamperDetected(None, f"the attachment {blob_id[:16]}… a record refers to is missing from its blob "
                                       "store") from e

    @property
    def key_fingerprint(self) -> str:
        """The fingerprint of the vault's public signing key: pins `verify --blind` of a copy."""
        return key_fingerprint(self.keys.verify_key)

    def stats(self) -> dict[str, Any]:
        """Counts and sizes; no plaintext beyond counts and the first/last change times."""
        head = self.log.head().seq
        out: dict[str, Any] = {"events": head}
        for kind in Kind:
            out[kind.table] = self.projection.count(kind)
            out[f"deleted_{kind.table}"] = self.projection.count_deleted(kind)
        out["blobs"] = self.conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
        out["first_change"] = iso(self.log.recorded_at(1)) if head else None
        out["last_change"] = iso(self.log.recorded_at(head)) if head else None
        out["bytes_on_disk"] = sum(p.stat().st_size for p in _vault_files(self.path))
        out["state_bytes"] = sum(p.stat().st_size for p in _vault_files(self.state_path))
        out["key_fingerprint"] = self.key_fingerprint
        return out


def _vault_files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


class Transaction:
    """Appends within one write transaction; the projection sees each change at once."""

    def __init__(self, vault: Vault, writer: Writer) -> None:
        self.vault, self.writer = vault, writer

    def append(self, events: Sequence[Event]) -> list[Recorded]:
        """Check each event against the current state, then record them all."""
        vault = self.vault
        known = vault.projection
        for e in events:
            if kind_of(e.record_id) is not e.kind:
                raise InvalidRecord(f"Record id {e.record_id!r} is not a {e.kind.value} id.")
        pending: dict[str, str] = {}  # status after the earlier events of this batch
        for kind in {e.kind for e in events}:
            pending.update(known.statuses(kind, [e.record_id for e in events if e.kind is kind]))
        for e in events:
            status = pending.get(e.record_id, "absent")
            if status != _REQUIRES[e.type]:
                raise _refusal(e, status)
            check_fields(e.changes, patch=e.type is EventType.UPDATED)
            pending[e.record_id] = "deleted" if e.type is EventType.DELETED else "live"
        events = [Event(e.type, e.kind, e.record_id, LazyFields.wrap(e.changes), e.source, e.recorded_at) for e in events]
        self._check_attachments(events)
        recorded = self.writer.append(events)
        known.apply(recorded)
        return recorded

    def _check_attachments(self, events: Sequence[Event]) -> None:
        """Every {"blob": …} object must name an attachment this vault holds: it is reserved for them."""
        refs: dict[str, str] = {}
        for e in events:
            if '"blob"' in fields_json(e.changes):  # parse only the change sets that can hold one
                refs.update((bid, e.record_id) for bid in referenced_blobs(dict(e.changes)) if bid not in refs)
        bad = sorted(b for b in refs if not _BLOB_ID.match(b)) or sorted(missing_blobs(self.vault.conn, set(refs)))
        if bad:
            raise InvalidRecord(f"Record {refs[bad[0]]} refers to attachment {bad[0]!r}, which this vault does not hold "
                                '(an object with a "blob" key is reserved for stored attachments).')

    def create(self, kind: Kind, fields: Mapping[str, Any], source: Source, *, record_id: str | None = None,
               recorded_at: int | None = None, allow_extra: bool = False, checked: bool = True) -> str:
        """Create a record (a fresh id unless one is given); returns the id. Unless `checked` is False (history
        re-applied as it was), the fields must fit the kind's schema, extras only with `allow_extra`."""
        fields = LazyFields.wrap(check_fields(fields))  # JSON first: NaN gets its own sentence, not a type's
        if checked:
            check_record(kind, fields, allow_extra=allow_extra)
        rid = record_id or new_record_id(kind)
        self.append([Event(EventType.CREATED, kind, rid, fields, source, recorded_at)])
        return rid

    def update(self, record_id: str, patch: Mapping[str, Any], source: Source, *, recorded_at: int | None = None,
               allow_extra: bool = False, checked: bool = True) -> Recorded | None:
        """Record only the fields that really change; None when nothing does. Checked like `create`."""
        kind = kind_of(record_id)
        current = self._live(kind, record_id)
        patch = check_fields(patch, patch=True)
        if checked:
            dumps(patch)  # JSON first, as in `create`
            check_record(kind, patch, patch=True, allow_extra=allow_extra)
        effective = {k: v for k, v in patch.items()
                     if (v is None and k in current) or (v is not None and current.get(k) != v)}
        if not effective:
            return None
        return self.append([Event(EventType.UPDATED, kind, record_id, effective, source, recorded_at)])[0]

    def delete(self, record_id: str, source: Source, *, recorded_at: int | None = None) -> Recorded:
        return self.append([Event(EventType.DELETED, kind_of(record_id), record_id, {}, source, recorded_at)])[0]

    def put_blob(self, data: bytes) -> str:
        return blobs.put_blob(self.vault.conn, self.vault.keys, self.vault.log.vault_id, data)

    def _live(self, kind: Kind, record_id: str) -> dict[str, Any]:
        data = self.vault.projection.record(kind, record_id)
        if data is None:
            raise _refusal(Event(EventType.UPDATED, kind, record_id, {}, Source("cli")),
                           self.vault.projection.status(kind, record_id))
        return data


def _refusal(e: Event, status: str) -> Exception:
    if status == "absent":
        return NotFound(e.record_id)
    if status == "deleted":
        return InvalidRecord(f"Record {e.record_id} is deleted; revert it to bring it back first.")
    return InvalidRecord(f"Record {e.record_id} already exists.")
