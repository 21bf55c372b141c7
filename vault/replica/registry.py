"""The replica list and what this machine remembers about each replica.

Kept outside the vault, in `replicas.json` under LIFEVAULT_HOME (mode 0o600),
keyed by vault id so one home can serve several vaults. Per replica: where it
is, and the last head this vault pushed there (to detect a replica rolled back
to an older copy) and when it was last pushed and verified. Removing a replica
forgets it here; it never touches the replica's files.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from vault.errors import InvalidRecord
from vault.domain.instants import iso
from vault.store.log import now_us
from vault.paths import home_dir, private_dir
from vault.replica.errors import ReplicaError, ReplicaUnreachable, UnknownReplica
from vault.replica.targets import LocalFolder, target_for

ADD_CHECK_SECONDS = 20.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Replica:
    """One copy of the vault somewhere else, as this machine knows it."""

    name: str
    target: str
    added_at: str
    pushed_seq: int | None = None  # the head this vault last pushed there
    pushed_hash: str | None = None
    pushed_at: str | None = None
    verified_at: str | None = None
    verified_seq: int | None = None
    offsite: bool = False  # in another place than the vault (the 3-2-1 rule wants one)
    reseeds: tuple[dict, ...] = ()  # {"at", "seq", "hash", "set_aside"}: what it held before each `replica reseed`


def registry_path() -> Path:
    return home_dir() / "replicas.json"


@contextmanager
def _locked() -> Iterator[dict]:
    """The whole file as a dict, under an exclusive lock; written back (atomically, 0o600) on exit."""
    path = registry_path()
    private_dir(path.parent)
    lock_fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except json.JSONDecodeError as e:
            raise ReplicaError(f"{path} is not valid JSON (line {e.lineno}); fix or remove it.") from e
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        os.close(lock_fd)


def replicas(vault_id: bytes) -> list[Replica]:
    """This vault's replicas, in the order they were added."""
    if not registry_path().exists():
        return []  # and create nothing: a server with no replicas leaves no trace
    with _locked() as data:
        return sorted((Replica(**r) for r in data.get(vault_id.hex(), {}).values()), key=lambda r: r.added_at)


def get(vault_id: bytes, name: str) -> Replica:
    for r in replicas(vault_id):
        if r.name == name:
            return r
    raise UnknownReplica(name)


def add(vault_id: bytes, name: str, target: str, offsite: bool = False, check: bool = True) -> Replica:
    """Remember a new replica; a local folder is created now (a later push never creates it), and a remote
    must answer (rclone knows it and can list it) unless `check` is off."""
    if not _NAME.match(name):
        raise InvalidRecord(f"Replica name {name!r} must be letters, digits, '.', '_' or '-' (at most 64).")
    t = target_for(target)
    if check and not isinstance(t, LocalFolder):
        try:
            target_for(target, time.monotonic() + ADD_CHECK_SECONDS).listing()
        except ReplicaUnreachable as e:
            raise ReplicaUnreachable(f"Replica {name} was not added: {str(e).rstrip('.')} (see `rclone config`; "
                                     "`--no-check` adds it anyway).") from e
    with _locked() as data:
        mine = data.setdefault(vault_id.hex(), {})
        if name in mine:
            raise ReplicaError(f"A replica named {name!r} already exists ({mine[name]['target']}).")
        if any(r["target"] == t.location for r in mine.values()):
            raise ReplicaError(f"{t.location} is already a replica of this vault.")
        if isinstance(t, LocalFolder):
            try:
                private_dir(t.path)
            except OSError as e:
                raise ReplicaError(f"Cannot create the replica folder {t.path}: {e.strerror}.") from e
        rep = Replica(name, t.location, iso(now_us()), offsite=offsite)
        mine[name] = asdict(rep)
    return rep


def remove(vault_id: bytes, name: str) -> Replica:
    """Forget a replica (its files stay where they are)."""
    with _locked() as data:
        mine = data.get(vault_id.hex(), {})
        if name not in mine:
            raise UnknownReplica(name)
        return Replica(**mine.pop(name))


@contextmanager
def push_lock(vault_id: bytes, name: str) -> Iterator[None]:
    """One push to a replica at a time on this machine (the CLI and a server's Pusher may race);
    otherwise a slower push could put back an older manifest after a newer one."""
    locks = home_dir() / "locks"
    private_dir(locks)
    fd = os.open(locks / f"push-{vault_id.hex()[:16]}-{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update(vault_id: bytes, name: str, **changes: Any) -> None:
    """Record a push, a verification or a mark (offsite)."""
    with _locked() as data:
        mine = data.get(vault_id.hex(), {})
        if name in mine:
            mine[name] = asdict(replace(Replica(**mine[name]), **changes))


def mark_offsite(vault_id: bytes, name: str, offsite: bool) -> Replica:
    """Mark a replica as kept off-site (or not), for the 3-2-1 verdict."""
    rep = get(vault_id, name)
    update(vault_id, name, offsite=offsite)
    return replace(rep, offsite=offsite)
