"""Property test: the query API's answers at every seq equal a naive in-memory model of the same operations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault import Kind, Source, Vault

WORDS = ["apple", "birch", "cedar"]  # no word is the start of another: prefix matching finds exactly these
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
SRC = Source("cli")

OPS = st.lists(st.tuples(st.sampled_from(["add", "edit", "rm", "revive"]), st.integers(0, 5),
                         st.lists(st.sampled_from(WORDS), min_size=1, max_size=2)), min_size=1, max_size=25)


def run(vault: Vault, ops: list[tuple[str, int, list[str]]]) -> list[dict[str, dict[str, Any]]]:
    """Apply the operations that make sense; the model is the live notes after each seq (index = seq)."""
    ids: list[str] = []
    live: dict[str, dict[str, Any]] = {}
    gone: dict[str, dict[str, Any]] = {}
    states: list[dict[str, dict[str, Any]]] = [{}]
    for op, pick, words in ops:
        fields = {"title": " ".join(words)}
        if op == "add" or not ids:
            ids.append(vault.add(Kind.NOTE, fields, SRC))
            live[ids[-1]] = fields
        else:
            rid = ids[pick % len(ids)]
            if op == "edit" and rid in live and live[rid] != fields:
                vault.update(rid, fields, SRC)
                live[rid] = fields
            elif op == "rm" and rid in live:
                vault.delete(rid, SRC)
                gone[rid] = live.pop(rid)
            elif op == "revive" and rid in gone:
                vault.revert(rid, _live_seq(states, rid), SRC)
                live[rid] = gone.pop(rid)
            else:
                continue
        states.append(dict(live))
    assert len(states) - 1 == vault.projection.seq
    return states


def _live_seq(states: list[dict[str, dict[str, Any]]], rid: str) -> Any:
    from vault import Instant

    return Instant(seq=max(s for s, state in enumerate(states) if rid in state))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_every_answer_at_every_seq_matches_the_model(ops: list[tuple[str, int, list[str]]]) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        vault, _ = Vault.create(Path(tmp) / "v.db", "model passphrase", kdf_cost="min")
        try:
            states = run(vault, ops)
            q, ever = vault.projection, {rid for state in states for rid in state}
            for seq, model in enumerate(states):
                assert dict(q.state(Kind.NOTE, seq)) == model
                assert q.count(Kind.NOTE, seq) == len(model)
                assert [r.id for r in q.listing(Kind.NOTE, seq)] == sorted(model)
                assert [r.id for r in q.page(Kind.NOTE, seq, limit=1000).records] == sorted(model)
                for rid in ever:
                    assert q.record(Kind.NOTE, rid, seq) == model.get(rid)
                for word in WORDS:
                    assert {h.id for h in q.search(word, seq, limit=100)} == {
                        rid for rid, f in model.items() if word in f["title"].split()}
                changed = {c.id: c.deleted for c in q.changed_since(seq)}
                assert changed == {rid: rid not in states[-1] for rid in ever
                                   if any(states[s].get(rid) != states[s - 1].get(rid)
                                          for s in range(seq + 1, len(states)))}
        finally:
            vault.close()
