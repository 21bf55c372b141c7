"""Every copy of the vault at a glance, and a plain verdict on the 3-2-1 rule.

Needs no passphrase: the vault's head and each replica's signed manifest are
readable without it, and so are the chain hashes that tell whether a replica
is behind the vault, ahead of it (the vault was restored from an older copy)
or holds another history. The rule: three copies (the vault and at least two
replicas), and none of them stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import keyring, schema
from ..log import EventLog
from . import registry
from .errors import ReplicaError
from .compare import ahead_sentence, fork_sentence, relation
from .reader import open_replica
from .targets import target_for


@dataclass(frozen=True)
class CopyStatus:
    name: str
    location: str
    head_seq: int | None  # None when the replica could not be read
    behind: int | None
    ahead: int | None  # events the replica holds beyond the vault (restored from an older copy?)
    fork_at: int | None  # the first event where the replica holds another history
    pushed_at: str | None
    verified_at: str | None
    problem: str | None  # one sentence, or None when the copy is readable and consistent

    @property
    def stale(self) -> bool:
        return self.problem is not None or bool(self.behind) or bool(self.ahead)


@dataclass(frozen=True)
class Status:
    vault: str
    head_seq: int
    copies: list[CopyStatus]
    verdict: str
    ok: bool


def _copy_status(log: EventLog, rep: registry.Replica, identity: tuple[bytes, bytes]) -> CopyStatus:
    where = f"Replica {rep.name} ({rep.target})"
    rel, problem = None, None
    try:
        opened = open_replica(target_for(rep.target), where, identity)
        m = opened.manifest
        if m is None and rep.pushed_seq:
            problem = f"{where} is empty although this vault pushed up to event {rep.pushed_seq} there."
        elif m is None:
            problem = f"{where} has never been pushed to."
        elif rep.pushed_seq is not None and m.head_seq < rep.pushed_seq:
            problem = f"{where} was rolled back to event {m.head_seq} (this vault pushed up to {rep.pushed_seq})."
        rel = relation(log, opened)
        if rel.forked:
            problem = f"{fork_sentence(where, rel, rep.name)}."
        elif rel.ahead:
            problem = f"{ahead_sentence(where, rel, rep.name)}."
    except ReplicaError as e:
        problem = str(e)
    if rel is None:
        return CopyStatus(rep.name, rep.target, None, None, None, None, rep.pushed_at, rep.verified_at, problem)
    return CopyStatus(rep.name, rep.target, rel.replica_seq, rel.behind, rel.ahead, rel.fork_at, rep.pushed_at,
                      rep.verified_at, problem)


def _verdict(copies: list[CopyStatus]) -> tuple[str, bool]:
    n, warnings = len(copies), []
    if n < 2:
        warnings.append(f"AT RISK: {n + 1} cop{'y' if n == 0 else 'ies'} (this vault and {n} replica"
                        f"{'' if n == 1 else 's'}); the 3-2-1 rule wants at least two replicas, one of them off-site.")
    stale = [c for c in copies if c.stale]
    if stale:
        why = " ".join(c.problem or f"Replica {c.name} is {c.behind} events behind." for c in stale)
        hint = "" if all(c.ahead or c.fork_at for c in stale) else " Run `lifevault push` (and check the drive or remote)."
        warnings.append(f"STALE: {why}{hint}")
    if warnings:
        return " ".join(warnings), False
    return (f"OK: {n + 1} copies, all up to date; keep at least one replica off-site and on another kind of "
            "storage to satisfy 3-2-1."), True


def status(vault_path: Path | str) -> Status:
    """The vault's head and every replica's state, read without the passphrase."""
    path = Path(vault_path)
    conn = schema.connect(path)
    try:
        log = EventLog(conn, path, None)
        head_seq = log.head().seq
        identity = (log.vault_id, keyring.verify_key(conn))
        copies = [_copy_status(log, r, identity) for r in registry.replicas(log.vault_id)]
    finally:
        conn.close()
    verdict, ok = _verdict(copies)
    return Status(str(path), head_seq, copies, verdict, ok)
