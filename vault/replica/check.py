"""Verifying a replica, blind or with the key, and cloning a vault back out of one.

Blind (no passphrase): the manifest's signature, no missing, extra,
truncated or altered segment, seqs 1..n with no gap, every chain hash, and a
signed head at the end. With the key: also the manifest MAC and, through a
temporary vault file rebuilt from the replica (ciphertext only), every AEAD
tag, the head MAC and every blob.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vault.store import keyring, schema
from vault.store.crypto import Keys
from vault.store.crypto import key_fingerprint
from vault.errors import AlreadyExists, CannotWrite, TamperDetected, VaultError
from vault.domain.instants import iso
from vault.store.log import EventLog, now_us
from vault.paths import private_dir
from vault.store.verify import check_log
from vault.replica import push_key, registry
from vault.replica.errors import ForeignReplica, ReplicaDamaged, UnknownReplica
from vault.replica.manifest import Manifest
from vault.replica.push_key import Issued
from vault.replica.reader import (
    Opened, build_vault_file, checked_blobs, checked_rows, damaged, digest_problems, file_problems, open_replica,
    redundant_segments, require_manifest,
)
from vault.replica.targets import LocalFolder, Target, target_for


@dataclass(frozen=True)
class ReplicaReport:
    """What a verification or clone covered; it exists only when everything checked out."""

    where: str
    events: int
    blobs: int
    segments: int
    blind: bool
    leftovers: int = 0  # unlisted copies of listed rows, left by an interrupted compaction (harmless)


def _intact(opened: Opened, extras: bool = True) -> tuple[Manifest, list[str], list[str]]:
    """The manifest, the listing's problems, and the segments worth fetching (right size)."""
    m = require_manifest(opened)
    return m, file_problems(opened, extras), [s.name for s in m.segments if opened.listing.get(s.name) == s.size]


def _check_digests(opened: Opened, m: Manifest, problems: list[str], fetched: list[str], folder: Path) -> None:
    problems = problems + digest_problems(m, folder, set(fetched))
    if problems:
        raise damaged(opened.where, problems)


def _segment_of(m: Manifest, seq: int | None) -> str:
    for s in m.events:
        if seq is not None and s.first <= seq <= s.last:
            return f" in segment {s.name}"
    return ""


def _full_check(m: Manifest, path: Path, keys: Keys, where: str) -> int:
    """check_log over a rebuilt vault file: every tag, the head MAC, every blob."""
    m.check_mac(keys, where)
    conn = schema.connect(path)
    try:
        return check_log(EventLog(conn, path, keys), blind=False).blobs
    except TamperDetected as e:
        at = f"event {e.seq}{_segment_of(m, e.seq)}" if e.seq is not None else "the replica"
        raise ReplicaDamaged(f"{where} is damaged: {at} fails with the key ({e.reason}).") from e
    finally:
        conn.close()


def verify_replica(target: Target, where: str, keys: Keys | None = None, expect: tuple[bytes, bytes] | None = None,
                   issued: Issued | None = None, *, revoked_ok: bool = False, extras: bool = True) -> ReplicaReport:
    """Check a replica; ReplicaDamaged names every missing, extra (unless not asked) or altered file, or the first
    bad event. `issued` is the vault's list of push keys (else the manifest's own), unless `revoked_ok`."""
    opened = open_replica(target, where, expect, issued=issued, revoked_ok=revoked_ok)
    m, problems, fetch = _intact(opened, extras)
    with target.local_copy(fetch) as folder:
        _check_digests(opened, m, problems, fetch, folder)
        if keys is None:
            for _ in checked_rows(m, folder, where):
                pass
            n_blobs = sum(1 for _ in checked_blobs(m, folder, where))
        else:
            with tempfile.TemporaryDirectory(prefix="lifevault-verify-") as tmp:
                path = Path(tmp) / "replica.db"  # ciphertext only, like the replica itself
                build_vault_file(path, m, folder, where)
                n_blobs = _full_check(m, path, keys, where)
    return ReplicaReport(where, m.head_seq, n_blobs, len(m.segments), keys is None, len(redundant_segments(opened)))


@dataclass(frozen=True)
class Candidate:
    """A replica as a new machine sees it before cloning: its head, when it was written, whether it checks out."""

    location: str
    head_seq: int | None
    head_hash: str | None
    written_at: str | None
    fingerprint: str | None
    problem: str | None  # None when the blind verification passed (and the key matched, if one was given)


def _pinned(opened: Opened, fingerprint: str) -> Manifest:
    m = require_manifest(opened)
    found = key_fingerprint(m.verify_key)
    if found.upper() != fingerprint.strip().upper():
        raise ForeignReplica(f"{opened.where} is signed by key {found}, not the expected {fingerprint.strip()}: "
                             "it is another vault's, or its manifest was replaced.")
    return m


def verify_pinned(target_text: str, fingerprint: str) -> ReplicaReport:
    """Blind-check a replica with no vault file at hand: its manifest carries the public key, and `fingerprint`
    (the vault's, known from elsewhere) pins it, so a replica re-signed by someone else fails."""
    target = target_for(target_text)
    where = f"Replica {target.location}"
    m = _pinned(open_replica(target, where), fingerprint)
    return verify_replica(target, where, None, (m.vault_id, m.verify_key))


def survey(targets: list[str], fingerprint: str | None = None) -> list[Candidate]:
    """Each candidate replica's head, date and blind verification (pinned to `fingerprint` if given), so a new
    machine can choose which one to clone."""
    out = []
    for text in targets:
        target = target_for(text)
        where = f"Replica {target.location}"
        m, problem = None, None
        try:
            m = require_manifest(open_replica(target, where))
            if fingerprint:
                _pinned(open_replica(target, where), fingerprint)
            verify_replica(target, where, None, (m.vault_id, m.verify_key))
        except VaultError as e:
            problem = str(e)
        out.append(Candidate(target.location, m.head_seq if m else None, m.head_hash.hex() if m else None,
                             m.written_at if m else None, key_fingerprint(m.verify_key) if m else None, problem))
    return out


def clone(target_text: str, path: Path | str, passphrase: str | None = None,
          recovery_key: str | None = None) -> ReplicaReport:
    """Rebuild a vault file at `path` (never overwriting) from a replica alone, unlock it with the
    passphrase or recovery key, and verify it fully before it appears under its name."""
    path = Path(path)
    if path.exists():
        raise AlreadyExists(path)
    target = target_for(target_text)
    where = f"Replica {target.location}"
    opened = open_replica(target, where)
    m, problems, fetch = _intact(opened, extras=False)  # files left by an interrupted push do not matter here
    try:
        private_dir(path.parent)
    except OSError as e:
        raise CannotWrite(path, e.strerror or str(e)) from e
    tmp = path.with_name(f".{path.name}.{os.getpid()}.cloning")
    try:
        with target.local_copy(fetch) as folder:
            _check_digests(opened, m, problems, fetch, folder)
            build_vault_file(tmp, m, folder, where)
        conn = schema.connect(tmp)
        try:
            keys = keyring.unlock(conn, passphrase) if passphrase else keyring.unlock_with_recovery(conn, recovery_key or "")
        finally:
            conn.close()
        n_blobs = _full_check(m, tmp, keys, where)
        _seal(tmp, keys)
        try:
            os.link(tmp, path)  # fails rather than overwrite a file that appeared meanwhile
        except FileExistsError:
            raise AlreadyExists(path) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return ReplicaReport(where, m.head_seq, n_blobs, len(m.segments), False)


def _seal(path: Path, keys: Keys) -> None:
    """Seal the clone's tokens (none), keys and attachments to its head, as every vault file is (seal.py)."""
    conn = schema.connect(path)
    try:
        with EventLog(conn, path, keys).writer():
            pass
    finally:
        conn.close()


def verify(vault_path: Path | str, name: str, keys: Keys | None = None) -> ReplicaReport:
    """Verify this vault's replica `name` (or a folder or `remote:path`), blind when `keys` is None,
    and remember when a named replica passed."""
    path = Path(vault_path)
    conn = schema.connect(path)
    try:
        vid, identity, issued = keyring.vault_id(conn), (keyring.vault_id(conn), keyring.verify_key(conn)), \
            push_key.issued(conn)
    finally:
        conn.close()
    try:
        rep = registry.get(vid, name)
    except UnknownReplica:
        if not ("/" in name or ":" in name):
            raise
        # a folder or remote given directly: check it is a replica of this vault, remember nothing
        return verify_replica(target_for(name), f"Replica {name}", keys, identity, issued)
    try:
        report = verify_replica(target_for(rep.target), f"Replica {name} ({rep.target})", keys, identity, issued)
    except ReplicaDamaged as e:
        if "segment" not in str(e):
            raise
        # a remote's bytes are fetched only with --deep; a folder's chain is followed only with --deep
        local = isinstance(target_for(rep.target), LocalFolder)
        deep = "" if local and "breaks the hash chain" not in str(e) else " --deep"
        raise ReplicaDamaged(f"{str(e).rstrip('.')}; `lifevault push{deep} {name}` re-sends damaged segments from "
                             "this vault when it holds their rows.") from e
    registry.update(vid, name, verified_at=iso(now_us()), verified_seq=report.events)
    return report
