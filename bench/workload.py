"""Realistic event shapes for benchmarks: mostly messages, some contacts and notes, edits and deletions."""

from __future__ import annotations

import random
from typing import Iterator

from vault.domain.events import Event, EventType, Kind, Source, new_record_id

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
         "et dolore magna aliqua garden train lunch report birthday holiday photos recipe").split()
SOURCE = Source("import", "bench", "bench.mbox", {"importer_version": "1"})


_POOL: dict[tuple[int, int], list[str]] = {}


def _make_text(rng: random.Random, lo: int, hi: int) -> str:
    n = rng.randint(lo, hi)
    out, size = [], 0
    while size < n:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def text(rng: random.Random, lo: int, hi: int) -> str:
    """Text of lo..hi characters, drawn from a pool so generating it costs (almost) nothing in the timings."""
    pool = _POOL.get((lo, hi))
    if pool is None:
        prng = random.Random(lo * 7919 + hi)
        pool = _POOL[(lo, hi)] = [_make_text(prng, lo, hi) for _ in range(2000)]
    return pool[rng.randrange(len(pool))]


def fields(rng: random.Random, kind: Kind, i: int) -> dict:
    if kind is Kind.CONTACT:
        return {"name": f"Person {i}", "given_name": "Person", "family_name": str(i),
                "emails": [f"person{i}@example.org"], "phones": [f"+44 20 7946 {i % 10000:04d}"],
                "organization": text(rng, 5, 20), "note": text(rng, 20, 200)}
    if kind is Kind.MESSAGE:
        return {"kind": "email", "from": f"person{rng.randrange(i + 1)}@example.org", "to": ["me@example.org"],
                "date": "2024-05-01T09:30:00+00:00", "subject": text(rng, 10, 40), "body": text(rng, 100, 550),
                "thread": f"t{rng.randrange(1000)}", "message_id": f"<{i}@bench.example>"}
    return {"title": text(rng, 10, 40), "body": text(rng, 100, 500), "tags": ["bench", rng.choice(WORDS)]}


def events(n: int, seed: int = 1, start_us: int = 1_600_000_000_000_000, step_us: int = 1_000_000) -> Iterator[Event]:
    """n events: ~60% new messages, 15% new contacts, 5% new notes, 15% updates, 5% deletions."""
    rng = random.Random(seed)
    live: list[tuple[Kind, str]] = []
    for i in range(n):
        at = start_us + i * step_us
        r = rng.random()
        if r < 0.8 or len(live) < 10:
            kind = Kind.MESSAGE if r < 0.6 else Kind.CONTACT if r < 0.75 else Kind.NOTE
            rid = new_record_id(kind)
            live.append((kind, rid))
            yield Event(EventType.CREATED, kind, rid, fields(rng, kind, i), SOURCE, at)
        elif r < 0.95:
            kind, rid = live[rng.randrange(len(live))]
            patch = {"note": text(rng, 20, 120)} if kind is Kind.CONTACT else {"body": text(rng, 100, 400)}
            yield Event(EventType.UPDATED, kind, rid, patch, SOURCE, at)
        else:
            kind, rid = live.pop(rng.randrange(len(live)))
            yield Event(EventType.DELETED, kind, rid, {}, SOURCE, at)


def record_rows(n: int, seed: int = 1) -> Iterator[dict]:
    """The same events as flat rows for the no-encryption, no-history baseline."""
    import json

    for e in events(n, seed):
        yield {"id": e.record_id, "kind": e.kind.value, "type": e.type.value, "at": e.recorded_at,
               "fields": json.dumps(e.changes)}


def batches(events: Iterator[Event], size: int = 1000) -> Iterator[list[Event]]:
    """Events in lists of `size`, as an importer would append them."""
    batch: list[Event] = []
    for e in events:
        batch.append(e)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
