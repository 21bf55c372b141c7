"""Property test: the vault's state at any instant equals a naive in-memory model.

Random sequences of add / edit / rm / revert (a revert of a deleted record is a
revival) run against a real vault file with explicit, advancing timestamps
(steps of 0 allowed, so several events can share an instant). The model is a
list of (recorded_at, record_id, state-after) entries; the state at T is the
fold of the entries recorded at or before T. Replays (twice from zero) and the
state file kept current across a reopen must give identical projection tables.

Example counts come from a hypothesis profile: `quick` (default, for the suite)
or `thorough` (LIFEVAULT_PROPERTY_PROFILE=thorough python -m pytest tests/domain/test_property.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis import given

import vault.store.log as vault_log
from vault import Kind, Source, Vault
from vault.errors import NotFound
from vault.store.codec import dumps
from vault.domain.events import apply_patch, kind_of
from vault.domain.instants import iso
from vault.domain.instants import Instant
from vault.state import projection
from vault.state.projection import Projection

settings.register_profile(
    "quick", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = settings.get_profile(os.environ.get("LIFEVAULT_PROPERTY_PROFILE", "quick"))

PASSPHRASE = "property passphrase"
# Vault files for the many examples live in RAM when possible: this test checks logic, not fsync.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
BASE_US = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
SRC = Source("cli")

# A few field names (known and unknown to the projection) and small value sets, so
# patches often repeat a value (a no-op update must record nothing) or remove a field.
FIELD_NAMES = ["name", "emails", "note", "title", "body", "zz_extra"]
VALUES = st.one_of(
    st.sampled_from(["", "a", "b", "Ünïcødé ✓"]),
    st.integers(min_value=-3, max_value=3),
    st.lists(st.sampled_from(["x", "y"]), max_size=2),
    st.fixed_dictionaries({"k": st.sampled_from([1, 2])}),
)
FIELDS = st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=3)
PATCHES = st.dictionaries(st.sampled_from(FIELD_NAMES), st.one_of(st.none(), VALUES), min_size=1, max_size=3)


class Model:
    """What a vault should contain: a time-ordered list of record versions."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, dict[str, Any] | None]] = []  # (at, id, fields or None=deleted)

    def at(self, t: int | None = None, upto_events: int | None = None) -> dict[str, dict[str, Any]]:
        """Every live record at instant t (or after the first `upto_events` events)."""
        state: dict[str, dict[str, Any] | None] = {}
        entries = self.entries if upto_events is None else self.entries[:upto_events]
        for at, rid, fields in entries:
            if t is not None and at > t:
                break
            state[rid] = fields
        return {rid: f for rid, f in state.items() if f is not None}

    def now(self, rid: str) -> dict[str, Any] | None:
        return self.at().get(rid)

    def record(self, t: int, rid: str, fields: dict[str, Any] | None) -> None:
        self.entries.append((t, rid, fields))

    @property
    def ids(self) -> list[str]:
        """Ids in creation order (ids are random, so sorting them would make draws nondeterministic)."""
        return list(dict.fromkeys(rid for _, rid, _ in self.entries))


def vault_state(v: Vault, seq: int) -> dict[str, dict[str, Any]]:
    return {rid: fields for kind in Kind for rid, fields in v.projection.state(kind, seq)}


def table_contents(proj: Projection) -> dict[str, list[tuple]]:
    """Every table's rows and the live views', sorted: comparing contents, never serialized bytes."""
    for kind in Kind:  # the full-text indexes match their tables (their pages differ with the order of writes)
        proj.conn.execute(f"INSERT INTO {kind.table}_fts ({kind.table}_fts) VALUES ('integrity-check')")
    names = [r[0] for r in proj.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                             "AND name NOT LIKE '%_fts%' AND name NOT LIKE '%_text' ORDER BY name")]
    return {n: sorted(proj.conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def run_ops(v: Vault, model: Model, data: st.DataObject, n_ops: int, clock: list[int]) -> None:
    """Draw and apply n_ops operations to both the vault and the model."""
    for _ in range(n_ops):
        clock[0] += data.draw(st.sampled_from([0, 1000, 250_000, 3_600_000_000]), label="step_us")
        t = clock[0]
        ids = model.ids
        live = [r for r in ids if model.now(r) is not None]
        ops = ["add"] + (["edit", "rm"] if live else []) + (["revert"] if ids else [])
        op = data.draw(st.sampled_from(ops), label="op")
        if op == "add":
            kind = data.draw(st.sampled_from(list(Kind)), label="kind")
            fields = data.draw(FIELDS, label="fields")
            with v.transaction() as tx:
                rid = tx.create(kind, fields, SRC, recorded_at=t, checked=False)  # folding, not the schema
            model.record(t, rid, dict(fields))
        elif op == "edit":
            rid = data.draw(st.sampled_from(live), label="id")
            patch = data.draw(PATCHES, label="patch")
            with v.transaction() as tx:
                r = tx.update(rid, patch, SRC, recorded_at=t, checked=False)
            new = apply_patch(model.now(rid), patch)
            if new == model.now(rid):
                assert r is None, "an update that changes nothing must record nothing"
            else:
                assert r is not None and r.recorded_at == t
                model.record(t, rid, new)
        elif op == "rm":
            rid = data.draw(st.sampled_from(live), label="id")
            with v.transaction() as tx:
                tx.delete(rid, SRC, recorded_at=t)
            model.record(t, rid, None)
        else:
            rid = data.draw(st.sampled_from(ids), label="id")
            target = data.draw(st.integers(min_value=BASE_US - 1, max_value=t), label="revert_to_us")
            then, now = model.at(target).get(rid), model.now(rid)
            with mock.patch.object(vault_log, "now_us", lambda t=t: t):  # the clock of this operation, bound now
                recorded = v.revert(rid, Instant(us=target), SRC)
            if then == now:
                assert recorded == []
            else:
                assert len(recorded) == 1 and recorded[0].recorded_at == t
                assert recorded[0].event.type.value == (
                    "deleted" if then is None else "revived" if now is None else "updated"
                )
                model.record(t, rid, then)
        assert len(model.entries) == v.log.head().seq


def check_instants(v: Vault, model: Model) -> None:
    """The state at every interesting instant, and after every seq, matches the model."""
    times = {BASE_US - 1, BASE_US}
    for at, _, _ in model.entries:
        times.update((at - 1, at, at + 1))
    for t in sorted(times):
        expected = model.at(t)
        assert vault_state(v, v.seq_for(Instant(us=t))) == expected, f"state at {t}"
        for rid in model.ids:
            if rid in expected:
                assert v.get(rid, Instant(us=t)) == expected[rid]
            else:
                with pytest.raises(NotFound):
                    v.get(rid, Instant(us=t))
    for seq in range(len(model.entries) + 1):
        assert vault_state(v, seq) == model.at(upto_events=seq), f"state after seq {seq}"
    assert {rid: f for rid in model.ids if (f := _get_now(v, rid)) is not None} == model.at()
    check_live_tables(v, model)


def check_live_tables(v: Vault, model: Model) -> None:
    """The live views (one row per live record: its version's rowid, then known fields as columns) match the model now."""
    first = {rid: at for at, rid, _ in reversed(model.entries)}
    last = {rid: at for at, rid, _ in model.entries}
    for kind in Kind:
        expected = {}
        for rid, fields in model.at().items():
            if kind_of(rid) is kind:
                rest = dict(fields)
                cols = [rest.pop(f, None) for f in kind.fields]
                cols = [dumps(c) if isinstance(c, (list, dict)) else c for c in cols]
                expected[rid] = (rid, *cols, dumps(rest) if rest else None, iso(first[rid]), iso(last[rid]))
        assert v.projection.count(kind) == len(expected)
        rows = v.projection.conn.execute(f"SELECT * FROM {kind.table}").fetchall()
        assert {r[1]: r[1:] for r in rows} == expected, f"live view {kind.table}"


def _get_now(v: Vault, rid: str) -> dict[str, Any] | None:
    try:
        return v.get(rid)
    except NotFound:
        return None


@PROFILE
@given(data=st.data(), n_first=st.integers(min_value=1, max_value=14), n_second=st.integers(min_value=0, max_value=14))
def test_state_at_every_instant_matches_model(data: st.DataObject, n_first: int, n_second: int) -> None:
    model, clock = Model(), [BASE_US]
    with contextlib.ExitStack() as stack:
        if data.draw(st.booleans(), label="tiny_chunks"):
            # exercise the projection's chunked folding on small logs
            stack.enter_context(mock.patch.object(projection, "_CHUNK", 2))
        run_example(data, n_first, n_second, model, clock)


def run_example(data: st.DataObject, n_first: int, n_second: int, model: Model, clock: list[int]) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as d:
        path = Path(d) / "v.db"
        v, _ = Vault.create(path, PASSPHRASE, kdf_cost="min")
        try:
            run_ops(v, model, data, n_first, clock)
            v.close()
            v = Vault.open(path, PASSPHRASE)  # the reopen catches the state file up: no replay
            run_ops(v, model, data, n_second, clock)
            check_instants(v, model)

            first, second = v.replay_from_zero(), v.replay_from_zero()
            assert table_contents(first) == table_contents(second)
            assert table_contents(first) == table_contents(v.projection), "incremental projection differs from replay"
        finally:
            v.close()

        with Vault.open(path, PASSPHRASE) as reopened:
            assert table_contents(reopened.projection) == table_contents(first), "state file differs from replay"
            check_instants(reopened, model)



def test_an_earlier_recorded_at_is_clamped_so_time_never_goes_back(vault: Vault) -> None:
    """recorded_at never decreases along seq (the binary search relies on it), even when a caller asks."""
    from vault.store.verify import check_log

    with vault.transaction() as tx:
        rid = tx.create(Kind.NOTE, {"t": 1}, SRC, recorded_at=BASE_US + 10, allow_extra=True)
    with vault.transaction() as tx:
        r = tx.update(rid, {"t": 2}, SRC, recorded_at=BASE_US, allow_extra=True)
    assert r is not None and r.recorded_at == BASE_US + 10
    assert [e.recorded_at for e in vault.events()] == [BASE_US + 10, BASE_US + 10]
    assert vault.get(rid, Instant(us=BASE_US + 10)) == {"t": 2}
    with pytest.raises(NotFound):
        vault.get(rid, Instant(us=BASE_US + 9))
    assert check_log(vault.log, blind=False).events == 2
