"""One writer at a time on a replica: a lease file each pusher writes under its own name, then checks alone.

Storage behind a replica (a folder, WebDAV, a bucket) offers no atomic
"create if absent" that rclone exposes, but every one of them lists what was
written before. So a pusher writes `lock-<nonce>.json` (owner, host, expiry)
and then lists the replica: if any other live lease is there, it withdraws
its own and tries again shortly, and gives up naming the other owner. Two
pushers that both write before either lists both withdraw; one that lists
after the other wrote sees it. Either way at most one goes on. A lease past
its expiry (a machine that died mid-push) is ignored and removed; `lifevault
replica unlock NAME` removes any lease at once. The push also re-reads the
manifest before and after writing it (sync.py), so even a lease lost to
expiry cannot make two pushes both report success.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import nacl.utils

from vault.domain.instants import iso
from vault.replica.errors import ReplicaBusy, ReplicaUnreachable
from vault.replica.reader import is_lease_name
from vault.replica.targets import LocalFolder, Target

_TRIES = 4


def lease_seconds() -> float:
    """How long a lease holds without its pusher: $LIFEVAULT_LEASE_SECONDS, else 30 minutes."""
    return float(os.environ.get("LIFEVAULT_LEASE_SECONDS") or 1800)


@dataclass(frozen=True)
class Lease:
    """Who is pushing to a replica, and until when the lease holds without them."""

    file: str
    owner: str
    taken_at: float
    expires_at: float
    host: str = ""
    pid: int = 0

    @property
    def expired(self) -> bool:
        """Past its expiry, or its pusher was on this machine and is gone (killed mid-push)."""
        return time.time() > self.expires_at or (self.host == socket.gethostname() and not _alive(self.pid))

    def describe(self) -> str:
        if not self.taken_at:  # unreadable: being written as we looked, or damaged
            return self.owner
        return f"{self.owner} (since {iso(int(self.taken_at * 1e6))}, lease until {iso(int(self.expires_at * 1e6))})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def _owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _read(target: Target, name: str) -> Lease | None:
    try:
        data = target.read(name)
    except ReplicaUnreachable:
        # rclone's `cat` lists, then fetches: a lease withdrawn in between fails as a 404, not as "not found"
        if name not in (target.listing() or {}):
            return None
        raise
    if data is None:
        return None  # withdrawn since the listing
    try:
        d = json.loads(data)
        return Lease(name, str(d["owner"]), float(d["taken_at"]), float(d["expires_at"]), str(d.get("host", "")),
                     int(d.get("pid", 0)))
    except (ValueError, KeyError, TypeError):  # caught mid-upload, or damaged: held until `replica unlock`
        return Lease(name, f"whoever is writing the lease file {name} (unreadable yet)", 0.0, float("inf"))


def leases(target: Target, listing: dict[str, int] | None = None) -> list[Lease]:
    """Every lease file on the replica, live or expired."""
    listing = target.listing() if listing is None else listing
    found = (_read(target, n) for n in sorted(listing or {}) if is_lease_name(n))
    return [lease for lease in found if lease is not None]


def _others_live(target: Target, mine: str | None, listing: dict[str, int] | None = None) -> list[Lease]:
    out = []
    listing = {n: size for n, size in ((target.listing() if listing is None else listing) or {}).items() if n != mine}
    for lease in leases(target, listing):
        if lease.expired:
            target.remove([lease.file])  # its pusher died; the manifest checks catch one that merely stalled
        else:
            out.append(lease)
    return out


def _busy(where: str, other: Lease, name: str) -> ReplicaBusy:
    return ReplicaBusy(f"{where} is being pushed to by another machine, {other.describe()}; nothing was sent "
                       f"(if no push is running there, `lifevault replica unlock {name}` removes its lease).")


@dataclass(frozen=True)
class Held:
    """A lease held: its file (None for a missing folder, which the push then refuses without writing), and the
    replica's listing taken just after it was written, so the push need not list again to begin."""

    file: str | None
    listing: dict[str, int] | None


@contextmanager
def held(target: Target, where: str, name: str, first: bool) -> Iterator[Held]:
    """Hold the replica's lease for the block; no lease for a missing folder that is not this vault's `first`
    push to a remote. ReplicaBusy when another pusher holds it."""
    if (isinstance(target, LocalFolder) or not first) and target.listing() is None:
        yield Held(None, None)
        return
    mine = f"lock-{nacl.utils.random(8).hex()}.json"
    now = time.time()
    body = json.dumps({"owner": _owner(), "host": socket.gethostname(), "pid": os.getpid(), "taken_at": now,
                       "expires_at": now + lease_seconds()}).encode()
    for attempt in range(_TRIES):
        target.put_one(mine, body)  # written first, then the listing shows whether anyone else holds one
        listing = target.listing()
        if not (others := _others_live(target, mine, listing)):
            break
        target.remove([mine])  # another holds it, or both wrote before either listed: step back, retry apart
        if attempt == _TRIES - 1 or any(o.taken_at < now for o in others):
            raise _busy(where, others[0], name)
        time.sleep(random.uniform(0.05, 0.4) * (attempt + 1))
    try:
        yield Held(mine, listing)
    finally:
        target.remove([mine])


def still_held(target: Target, where: str, name: str, mine: str | None) -> dict[str, int] | None:
    """Before the manifest is written: our lease is still there and no one else's is (unlock, or expiry).
    Returns the listing it read (None without a lease), which the push reuses to see whether a manifest appeared."""
    if mine is None:
        return None
    listing = target.listing() or {}
    if mine not in listing:
        raise ReplicaBusy(f"{where} lost this push's lease (removed by `lifevault replica unlock {name}`, or expired); "
                          "its manifest was not written, so the replica is as it was.")
    if others := _others_live(target, mine, listing):
        # A lease newer than ours is a newcomer that steps back on seeing ours (`held`); only one no newer than
        # ours means another push may be writing.
        own = _read(target, mine)
        if earlier := [o for o in others if own is None or o.taken_at <= own.taken_at]:
            raise _busy(where, earlier[0], name)
    return listing


def unlock(target: Target) -> list[Lease]:
    """Remove every lease on the replica (only when no push is running there); returns what was removed."""
    found = leases(target)
    target.remove([lease.file for lease in found])
    return found
