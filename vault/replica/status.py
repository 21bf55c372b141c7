"""Every copy of the vault at a glance, a level a monitor can act on, and a plain verdict on the 3-2-1 rule.

Needs no passphrase: the vault's head and each replica's signed manifest are
readable without it, and so are the chain hashes that tell whether a replica
is behind the vault, ahead of it (the vault was restored from an older copy)
or holds another history. Each replica is read on a thread of its own, over
its own connection, and no rclone call runs past the time limit, so one
frozen remote costs that limit, not minutes. Levels: 0 OK, 1 at risk (a copy
behind, never pushed, unreachable, not verified lately, too few copies or none
off-site), 2 broken (a fork, a replica ahead, rolled back, emptied, damaged or
another vault's). The rule: three copies (the vault and at least two replicas
in order), one of them off-site.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vault.store import keyring, schema
from vault.store.log import EventLog
from vault.replica import push_key, registry
from vault.replica.compare import ahead_sentence, fork_sentence, relation
from vault.replica.errors import ReplicaError, ReplicaMissing, ReplicaUnreachable, RevokedSigner
from vault.replica.reader import open_replica
from vault.replica.targets import target_for

OK, AT_RISK, BROKEN = 0, 1, 2
LEVELS = {OK: "ok", AT_RISK: "at risk", BROKEN: "broken"}
TIME_LIMIT = 10.0  # seconds per replica
VERIFIED_WITHIN_DAYS = 30


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
    offsite: bool = False
    level: int = OK
    problems: tuple[str, ...] = ()  # one sentence each, worst first

    @property
    def problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    @property
    def stale(self) -> bool:
        return self.level != OK


@dataclass(frozen=True)
class Status:
    vault: str
    head_seq: int
    copies: list[CopyStatus]
    verdict: str
    level: int

    @property
    def ok(self) -> bool:
        return self.level == OK


def _age_days(stamp: str) -> float:
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(timezone.utc) - then).total_seconds() / 86400


def _copy_status(path: Path, rep: registry.Replica, deadline: float, verified_within: float,
                 issued: push_key.Issued | None) -> CopyStatus:
    """One replica's state; every failure becomes a sentence and a level, never an exception."""
    where = f"Replica {rep.name} ({rep.target})"
    rel, found = None, []  # (level, sentence)
    conn = schema.connect(path)
    try:
        log = EventLog(conn, path, None)
        identity = (log.vault_id, keyring.verify_key(conn))
        opened = open_replica(target_for(rep.target, deadline), where, identity, issued=issued)
        m = opened.manifest
        if m is None and rep.pushed_seq:
            found.append((BROKEN, f"{where} is empty although this vault pushed up to event {rep.pushed_seq} there."))
        elif m is None:
            found.append((AT_RISK, f"{where} was never pushed; `lifevault push {rep.name}` fills it."))
        elif rep.pushed_seq is not None and m.head_seq < rep.pushed_seq:
            found.append((BROKEN, f"{where} was rolled back to event {m.head_seq} (this vault pushed up to "
                                  f"{rep.pushed_seq})."))
        rel = relation(log, opened)
        if rel.forked:
            found.append((BROKEN, f"{fork_sentence(where, rel, rep.name)}."))
        elif rel.ahead:
            found.append((BROKEN, f"{ahead_sentence(where, rel, rep.name)}."))
        elif rel.behind and m is not None:
            found.append((AT_RISK, f"{where} is {rel.behind} events behind; run `lifevault push {rep.name}`."))
        if m is not None and not rel.forked:
            if rep.verified_at is None:
                found.append((AT_RISK, f"{where} was never verified; run `lifevault replica verify {rep.name}`."))
            elif (days := _age_days(rep.verified_at)) > verified_within:
                found.append((AT_RISK, f"{where} was last verified {days:.0f} days ago; run "
                                       f"`lifevault replica verify {rep.name}`."))
    except ReplicaMissing as e:
        text = f"{where} was never pushed; `lifevault push {rep.name}` fills it." if rep.pushed_seq is None else str(e)
        found.append((AT_RISK, text))
    except ReplicaUnreachable as e:
        found.append((AT_RISK, str(e)))
    except RevokedSigner as e:  # nothing known lost, but its listing is vouched for by a revoked key until a push
        found.append((AT_RISK, str(e)))
    except ReplicaError as e:  # damaged, another vault's
        found.append((BROKEN, str(e)))
    finally:
        conn.close()
    found.sort(key=lambda f: -f[0])
    level, problems = (found[0][0] if found else OK), tuple(s for _, s in found)
    if rel is None:
        return CopyStatus(rep.name, rep.target, None, None, None, None, rep.pushed_at, rep.verified_at, rep.offsite,
                          level, problems)
    return CopyStatus(rep.name, rep.target, rel.replica_seq, rel.behind, rel.ahead, rel.fork_at, rep.pushed_at,
                      rep.verified_at, rep.offsite, level, problems)


def _unanswered(rep: registry.Replica, limit: float) -> CopyStatus:
    where = f"Replica {rep.name} ({rep.target})"
    return CopyStatus(rep.name, rep.target, None, None, None, None, rep.pushed_at, rep.verified_at, rep.offsite,
                      AT_RISK, (f"{where} did not answer within {limit:.0f} s (a frozen drive or server?).",))


def _checked_in_parallel(path: Path, reps: list[registry.Replica], limit: float, verified_within: float,
                         issued: push_key.Issued | None) -> list[CopyStatus]:
    deadline = time.monotonic() + limit
    results: dict[str, CopyStatus] = {}

    def check(rep: registry.Replica) -> None:
        results[rep.name] = _copy_status(path, rep, deadline, verified_within, issued)

    threads = [threading.Thread(target=check, args=(r,), daemon=True, name=f"lifevault-status-{r.name}") for r in reps]
    for t in threads:
        t.start()
    for t in threads:  # rclone calls stop at the deadline; a hung local mount is left behind (daemon thread)
        t.join(max(deadline + 2.0 - time.monotonic(), 0.0))
    return [results.get(r.name) or _unanswered(r, limit) for r in reps]


def _verdict(copies: list[CopyStatus]) -> tuple[str, int]:
    broken = [c for c in copies if c.level == BROKEN]
    at_risk = [c for c in copies if c.level == AT_RISK]
    good = [c for c in copies if c.level == OK]
    parts, level = [], max((c.level for c in copies), default=OK)
    if broken:
        parts.append("BROKEN: " + " ".join(c.problems[0] for c in broken))
    if at_risk:
        parts.append("AT RISK: " + " ".join(" ".join(c.problems) for c in at_risk))
    if len(good) < 2:
        parts.append(f"AT RISK: {len(good) + 1} good cop{'y' if not good else 'ies'} (this vault and {len(good)} "
                     f"replica{'' if len(good) == 1 else 's'} in order); the 3-2-1 rule wants at least two replicas, "
                     "one of them off-site.")
    elif not any(c.offsite for c in good):
        parts.append("AT RISK: no replica in order is marked off-site (`lifevault replica mark NAME --offsite`); "
                     "the 3-2-1 rule wants one copy in another place.")
    if parts:
        return " ".join(parts), max(level, AT_RISK)
    n_off = sum(c.offsite for c in good)
    return (f"OK: {len(good) + 1} copies (this vault and {len(good)} replicas, {n_off} off-site), all up to date and "
            "verified lately; keep them on at least two kinds of storage."), OK


def status(vault_path: Path | str, *, time_limit: float = TIME_LIMIT,
           verified_within: float = VERIFIED_WITHIN_DAYS) -> Status:
    """The vault's head and every replica's state, read without the passphrase, each replica within `time_limit`
    seconds; a verification older than `verified_within` days puts a copy at risk."""
    path = Path(vault_path)
    conn = schema.connect(path)
    try:
        log = EventLog(conn, path, None)
        head_seq, reps = log.head().seq, registry.replicas(log.vault_id)
        try:  # read once, here: a replica's thread only reports on its replica
            issued = push_key.issued(conn)
        except push_key.BadPushKey as e:
            why = type(e.__cause__).__name__ if e.__cause__ else "unreadable"
            return Status(str(path), head_seq, [], f"BROKEN: The vault file {path} is damaged: its list of push keys "
                          f"cannot be read ({why}); `lifevault verify` names what was altered (no replica was "
                          "judged against it).", BROKEN)
    finally:
        conn.close()
    copies = _checked_in_parallel(path, reps, time_limit, verified_within, issued)
    verdict, level = _verdict(copies)
    return Status(str(path), head_seq, copies, verdict, level)
