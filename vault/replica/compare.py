"""How a replica's history stands to the vault's: the same, behind, ahead, or another history (a fork).

Event numbers alone cannot tell: a vault restored from an older copy that then
gained one event has a head seq close to the replica's but another event at
that seq. So the heads' chain hashes are compared at the shorter history's
end; when they differ, the replica's rows (hashes only, no key needed) are
walked back until they meet the vault's, which names the first event where
the two histories part. A typical fork costs one segment read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vault.store.log import EventLog
from vault.replica.reader import Opened, segment_rows
from vault.replica.segments import SegmentInfo


@dataclass(frozen=True)
class Relation:
    """The vault's and a replica's heads, and where their histories part (None when one continues the other)."""

    vault_seq: int
    replica_seq: int
    fork_at: int | None = None  # the first event that differs

    @property
    def forked(self) -> bool:
        return self.fork_at is not None

    @property
    def ahead(self) -> int:
        """Events the replica holds beyond the vault (0 for a fork: those are another history)."""
        return 0 if self.forked else max(self.replica_seq - self.vault_seq, 0)

    @property
    def behind(self) -> int:
        return 0 if self.forked else max(self.vault_seq - self.replica_seq, 0)


def relation(log: EventLog, opened: Opened) -> Relation:
    """Compare the vault's history with the replica's (blind: chain hashes only)."""
    m, head = opened.manifest, log.head()
    if m is None or m.head_seq == 0:
        return Relation(head.seq, 0)
    shared = min(head.seq, m.head_seq)
    if m.head_seq <= head.seq and log.hash_at(shared) == m.head_hash:
        return Relation(head.seq, m.head_seq)
    return Relation(head.seq, m.head_seq, _fork_point(log, opened, shared))


def _fork_point(log: EventLog, opened: Opened, shared: int) -> int | None:
    """The first seq whose hash differs, walking the replica's segments back from `shared`; None if none does."""
    m = opened.manifest
    assert m is not None
    for seg in sorted((s for s in m.events if s.first <= shared), key=lambda s: s.first, reverse=True):
        with opened.target.local_copy([seg.name]) as folder:  # usually the first one read tells
            last = _last_shared(log, opened, seg, folder, shared)
        if last is not None:
            return None if last == shared else last + 1
    return 1 if shared else None  # only the genesis is shared


def _last_shared(log: EventLog, opened: Opened, seg: SegmentInfo, folder: Path, shared: int) -> int | None:
    """The last seq up to `shared` in this segment at which both histories hold the same event."""
    rows = segment_rows(folder, seg, opened.where)
    mine = dict(log.conn.execute("SELECT seq, hash FROM events WHERE seq BETWEEN ? AND ?", (seg.first, shared)))
    return next((seq for seq, h, _ in reversed(rows) if seq <= shared and mine.get(seq) == h), None)


def fork_sentence(where: str, rel: Relation, name: str) -> str:
    return (f"{where} holds another history from event {rel.fork_at} on (it ends at event {rel.replica_seq}, this "
            f"vault at event {rel.vault_seq}); `lifevault pull --fork {name}` keeps both histories")


def ahead_sentence(where: str, rel: Relation, name: str) -> str:
    return (f"{where} is {rel.ahead} events ahead of this vault (it ends at event {rel.replica_seq}, this vault at "
            f"event {rel.vault_seq}: restored from an older copy?); `lifevault pull {name}` brings them here")
