"""The moments worth going back to: each import (and undo of one), each revert, each day with changes.

Like restic's snapshots or Time Machine's timeline, but derived, not stored: every event already made one
version row in the state's `*_history` tables, with its seq, instant and source (an import's id and file, a
revert's target), so a few grouped scans of those tables list them. Every moment names the state just after
it (`seq`) and just before it (`before`), which any front end opens with its "as of" mechanism.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vault.store.codec import loads
from vault.domain.events import Kind
from vault.domain.instants import human_date, human_time
from vault.state.timeline import record_label, source_words


@dataclass
class Moment:
    """A point in the vault's history: the state after event `seq` (and before `before + 1`)."""

    kind: str  # "import", "undo", "revert" or "day"
    seq: int  # the last event of the moment: the vault as it was just after it
    before: int  # the event just before its first one: the vault as it was just before it
    at: str  # when its last event was recorded (ISO, UTC)
    day: str  # the local day it belongs to (YYYY-MM-DD)
    title: str  # `Import of contacts.vcf`, `Changes on 3 Mar 2025`, `Revert of Ada Lovelace`
    counts: dict[str, int] = field(default_factory=dict)  # added/changed/removed records, or events in a day
    import_id: str | None = None
    record_id: str | None = None

    @property
    def when(self) -> str:
        return human_time(self.at)

    @property
    def summary(self) -> str:
        """The counts in words: `12 added, 3 changed, 1 removed` or `14 changes`."""
        if self.kind == "day":
            n = self.counts.get("events", 0)
            return f"{n} change{'' if n == 1 else 's'}"
        if self.kind == "revert":
            return ""
        words = [f"{self.counts.get(k, 0)} {k}" for k in ("added", "changed", "removed") if self.counts.get(k)]
        return ", ".join(words) or "nothing changed"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "when": self.when, "summary": self.summary}


class Moments:
    """The moments of a vault, kept up to date by scanning only the versions written since the last look: the
    history is append-only, so what was found stays true (a day or an import that goes on is extended)."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.seq = 0  # every version up to this event has been looked at
        self._imports: dict[str, Moment] = {}
        self._days: dict[str, Moment] = {}
        self._reverts: list[Moment] = []

    def update(self, conn: Any) -> "Moments":
        """Look at the versions written since the last update, on a connection that sees the state's
        `*_history` tables and `_projection` (the projection's, or a reader of the state file)."""
        upto = conn.execute("SELECT seq FROM _projection").fetchone()[0]  # committed with the versions up to it
        if upto < self.seq:  # another history (the state file was rebuilt from another log): start again
            self._clear()
        if upto > self.seq:
            for kind in Kind:
                self._scan(conn, kind, self.seq, upto)
            self.seq = upto
        return self

    def list(self) -> list[Moment]:
        """Newest first; a day before (above) what happened in it."""
        order = {"day": 1, "import": 0, "undo": 0, "revert": 0}
        found = [*self._imports.values(), *self._reverts, *self._days.values()]
        return sorted(found, key=lambda m: (m.seq, order[m.kind]), reverse=True)

    def _scan(self, conn: Any, kind: Kind, after: int, upto: int) -> None:
        t, span = f"{kind.table}_history", (after, upto)
        for imp, first, last, at, file, importer, undo_of, added, changed, removed, day in conn.execute(
                "SELECT json_extract(source, '$.detail.import_id') AS imp, min(seq_from), max(seq_from), "
                "max(valid_from), json_extract(source, '$.file'), json_extract(source, '$.name'), "
                "json_extract(source, '$.detail.undo_of'), "
                "count(DISTINCT CASE WHEN event IN ('created', 'revived') THEN id END), "
                "count(DISTINCT CASE WHEN event = 'updated' THEN id END), "
                "count(DISTINCT CASE WHEN event = 'deleted' THEN id END), date(max(valid_from), 'localtime') "
                f"FROM {t} WHERE seq_from > ? AND seq_from <= ? AND source LIKE '%\"import_id\"%' "
                "AND json_extract(source, '$.via') = 'import' AND imp IS NOT NULL GROUP BY imp", span):
            what = file or importer or imp
            m = self._imports.setdefault(imp, Moment(
                "undo" if undo_of else "import", last, first - 1, at, day,
                f"Undo of the import of {what}" if undo_of else f"Import of {what}",
                {"added": 0, "changed": 0, "removed": 0}, import_id=imp))
            _extend(m, first, last, at, day)
            for name, n in (("added", added), ("changed", changed), ("removed", removed)):
                m.counts[name] += n  # a record counts in each table it is in, and tables hold different kinds
        # Days and reverts in one scan of the table (a scan reads every version's whole row: 3 s for 100,000
        # mails at load 6); each revert is its own group, keyed by its row, whose details are read after.
        reverts = []
        for day, revert, first, last, at, n in conn.execute(
                "SELECT date(valid_from, 'localtime') AS d, CASE WHEN source LIKE '%\"revert_to\"%' AND "
                "json_extract(source, '$.detail.revert_to') IS NOT NULL THEN rowid END AS r, "
                f"min(seq_from), max(seq_from), max(valid_from), count(*) FROM {t} "
                "WHERE seq_from > ? AND seq_from <= ? GROUP BY d, r", span):
            m = self._days.setdefault(day, Moment("day", last, first - 1, at, day, f"Changes on {human_date(at)}",
                                                  {"events": 0}))
            _extend(m, first, last, at, day)
            m.counts["events"] += n
            if revert is not None:
                reverts.append(revert)
        for rowid in reverts:
            seq, at, rid, source, day, data = conn.execute(
                f"SELECT h.seq_from, h.valid_from, h.id, h.source, date(h.valid_from, 'localtime'), "
                f"coalesce(h.data, (SELECT p.data FROM {t} p WHERE p.id = h.id AND p.seq_from < h.seq_from "
                f"AND p.data IS NOT NULL ORDER BY p.seq_from DESC LIMIT 1)) FROM {t} h WHERE h.rowid = ?",
                (rowid,)).fetchone()
            label = record_label(rid, loads(data) if data else None)
            self._reverts.append(Moment("revert", seq, seq - 1, at, day,
                                        f"Revert of {label} {source_words(loads(source), revert=False)}",
                                        record_id=rid))


def _extend(m: Moment, first: int, last: int, at: str, day: str) -> None:
    """Widen a moment to cover events first..last (found in another table, or in a later scan)."""
    if last > m.seq:
        m.seq, m.at, m.day = last, at, day
    m.before = min(m.before, first - 1)


def moments(conn: Any) -> list[Moment]:
    """Every import, undo, revert and day with changes, newest first, from a connection that sees the state's
    `*_history` tables (the projection's, or a read-only reader of the state file).

    A day's moment is the vault at the end of that day (local time); an import's the vault just after it."""
    return Moments().update(conn).list()
