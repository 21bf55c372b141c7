"""The questions every front end asks of the state, answered in one place.

Import, restore, the API, the browser and the CLI read the state through
`StateQuery` (the projection is one; any connection that sees the state file's
tables makes another, e.g. a Datasette reader): a record at T, a page of a
kind at T, a record's versions, what changed since a seq, full-text search now
or at T, and the records of a kind at T as table rows. No module outside
vault/state writes SQL over the history tables or the live views
(tests/state/test_state_query.py holds that rule), so their layout can change here alone.

"At T" is always a seq (`Vault.seq_for` turns an instant into one); None means now.
Table rows are flattened by SQL alone (`table_select`): the browser, the
as-of views and `restore` show the same spelling of every value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Mapping, Sequence

from vault.domain.kinds import Kind
from vault.domain.titles import name_of
from vault.errors import InvalidRecord
from vault.store.codec import loads

MAX_PAGE = 1000
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path(name: str) -> str:
    """The JSON path of a field, for json_extract."""
    return f"'$.{_q(name)}'"


def live_at(seq: int | None, alias: str = "h") -> str:
    """The SQL condition for the versions open after event `seq` (None: now)."""
    if seq is None:
        return f"{alias}.seq_to IS NULL"
    return f"{alias}.seq_from <= {int(seq)} AND ({alias}.seq_to IS NULL OR {alias}.seq_to > {int(seq)})"


def table_columns(kind: Kind, *, times: bool = True) -> list[str]:
    """The columns of a kind's table: id, the known fields, `extra`, and (with `times`) created_at, updated_at."""
    return ["id", *kind.fields, "extra", *(["created_at", "updated_at"] if times else [])]


def table_select(kind: Kind, seq: int | None = None, *, times: bool = True) -> str:
    """The one flattening of records into table rows: SQL for the records live after event `seq` (None: now),
    `rowid` (the version's, which the search index knows), `id`, the known fields as columns (lists and
    objects as compact JSON text), the rest in `extra`, then `created_at` and `updated_at` (with `times`)."""
    t, fields = kind.table, kind.fields
    extracts = ", ".join(f"json_extract(h.data, {_path(f)}) AS {_q(f)}" for f in fields)
    paths = ", ".join(_path(f) for f in fields)
    stamps = (f", (SELECT min(f.valid_from) FROM {t}_history f WHERE f.id = h.id) AS created_at, "
              "h.valid_from AS updated_at") if times else ""
    return (f"SELECT h.rowid AS rowid, h.id AS id, {extracts}, NULLIF(json_remove(h.data, {paths}), '{{}}') AS extra"
            f"{stamps} FROM {t}_history h WHERE {live_at(seq)} AND h.deleted = 0")


def cell_text(value: Any) -> str:
    """A field's value as a table cell spells it: text as it is, anything else as SQLite's compact JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def as_of_views(seq: int, recorded_at: str | None) -> list[str]:
    """TEMP views shaped like the live ones (`contacts`, …) showing the records live after event `seq`, and
    `as_of` saying which instant that is: a past state made of SQL alone, nothing copied."""
    out = [f"CREATE TEMP VIEW {kind.table} AS {table_select(kind, seq)}" for kind in Kind]
    at = "NULL" if recorded_at is None else "'" + recorded_at.replace("'", "''") + "'"
    out.append(f"CREATE TEMP VIEW as_of AS SELECT {int(seq)} AS seq, {at} AS recorded_at")
    return out


@dataclass
class Record:
    """One record as a page shows it: its fields, and the instant and event that made its version then."""

    kind: Kind
    id: str
    fields: dict[str, Any]
    updated_at: str
    version_seq: int

    @property
    def title(self) -> str:
        return name_of(self.kind, self.fields) or self.id

    @property
    def date(self) -> str:
        name = self.kind.spec.date_field
        value = self.fields.get(name) if name else None
        return value if isinstance(value, str) else self.updated_at


@dataclass
class Page:
    """Some records of a kind at a seq, and how to ask for the next ones (`after` by id, or `offset`)."""

    kind: Kind
    seq: int | None
    records: list[Record]
    next_after: str | None = None
    next_offset: int | None = None


@dataclass(frozen=True)
class Change:
    """A record changed after some seq: its last change, and whether that left it deleted."""

    kind: Kind
    id: str
    seq: int
    deleted: bool


@dataclass(frozen=True)
class Hit:
    """A search match: the record, a name to show, a date, and the words around the match ([…] marks them)."""

    kind: Kind
    id: str
    name: str
    date: str
    snippet: str
    version: int = field(repr=False)  # the matched version's rowid: newest first


Order = Literal["id", "title", "date", "changed"]


class StateQuery:
    """Read-only questions over the state's tables on `conn` (the projection's, or any reader of its file)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # -- one record ------------------------------------------------------------
    def record(self, kind: Kind, record_id: str, seq: int | None = None) -> dict[str, Any] | None:
        """A record's fields after event `seq` (None: now), or None if it was not live then."""
        row = self.conn.execute(f"SELECT deleted, data FROM {kind.table}_history h WHERE id = ? AND {live_at(seq)}",
                                (record_id,)).fetchone()
        return loads(row[1]) if row and not row[0] else None

    def has_version(self, kind: Kind, record_id: str, seq: int, valid_from: str) -> bool:
        """Whether event `seq`, recorded at `valid_from`, made a version of this record."""
        return self.conn.execute(
            f"SELECT 1 FROM {kind.table}_history WHERE id = ? AND seq_from = ? AND valid_from = ?",
            (record_id, seq, valid_from),
        ).fetchone() is not None

    def record_of_version(self, kind: Kind, version: int) -> str | None:
        """The id of the record a version belongs to (a list row's rowid is its version's), or None."""
        row = self.conn.execute(f"SELECT id FROM {kind.table}_history WHERE rowid = ?", (version,)).fetchone()
        return row[0] if row else None

    def status(self, kind: Kind, record_id: str) -> str:
        """`live`, `deleted` or `absent` (never existed), now."""
        return self.statuses(kind, [record_id]).get(record_id, "absent")

    def statuses(self, kind: Kind, ids: Sequence[str]) -> dict[str, str]:
        """`live` or `deleted` now for each of `ids` that ever existed (absent ones are left out)."""
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            rows = self.conn.execute(
                f"SELECT id, deleted FROM {kind.table}_history WHERE seq_to IS NULL AND id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            out.update((rid, "deleted" if deleted else "live") for rid, deleted in rows)
        return out

    def versions(self, kind: Kind, record_id: str) -> list[dict[str, Any]]:
        """Every version of a record, oldest first: seq_from, seq_to, valid_from, valid_to, event, deleted, the
        source that made it (a dict) and its fields (`data`, None for a tombstone)."""
        cur = self.conn.execute(
            f"SELECT seq_from, seq_to, valid_from, valid_to, event, deleted, source, data "
            f"FROM {kind.table}_history WHERE id = ? ORDER BY seq_from",
            (record_id,),
        )
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur:
            v = dict(zip(cols, row, strict=True))
            v["source"] = loads(v["source"])
            v["data"] = loads(v["data"]) if v["data"] is not None else None
            out.append(v)
        return out

    # -- many records ----------------------------------------------------------
    def state(self, kind: Kind, seq: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, fields) of every record live after event `seq` (None: now), in the order their versions were
        written (the same for every replay of the same log). Streamed: nothing is listed."""
        # A scan in rowid order is the cheapest there is; sorting by id cost a quarter of the time.
        cur = self.conn.execute(
            f"SELECT id, data FROM {kind.table}_history h WHERE {live_at(seq)} AND deleted = 0 ORDER BY rowid")
        for rid, data in cur:
            yield rid, loads(data)

    def rows(self, kind: Kind, seq: int | None = None, *, times: bool = False) -> Iterator[dict[str, Any]]:
        """Every record live after `seq` as a table row (`table_select`'s flattening), in write order."""
        cols = table_columns(kind, times=times)
        cur = self.conn.execute(f"SELECT {', '.join(_q(c) for c in cols)} FROM ({table_select(kind, seq, times=times)}) "
                                "ORDER BY rowid")
        for row in cur:
            yield dict(zip(cols, row, strict=True))

    def blobs_referenced(self, kind: Kind, seq: int | None = None) -> set[str]:
        """Every attachment id (a `blob` text in an object, at any depth) the records live after `seq` refer to."""
        rows = self.conn.execute(
            f"SELECT DISTINCT j.value FROM {kind.table}_history h, json_tree(h.data) j WHERE {live_at(seq)} "
            "AND h.deleted = 0 AND h.data LIKE '%\"blob\"%' AND j.key = 'blob' AND j.type = 'text'")
        return {r[0] for r in rows}

    def page(self, kind: Kind, seq: int | None = None, *, order: Order = "id", descending: bool = False,
             after: str | None = None, offset: int = 0, limit: int = 100,
             where: Mapping[str, Any] | None = None) -> Page:
        """Records of a kind live after `seq`: sorted by id (keyset paging with `after`), title, date or last
        change (paging with `offset`); `where` keeps those whose fields equal the given values."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRecord(f"A page holds 1 to {MAX_PAGE} records, not {limit}.")
        if after is not None and order != "id":
            raise InvalidRecord("Paging with `after` needs records sorted by id; use an offset.")
        sql, args = self._sorted(kind, seq, order, descending, where, after)
        rows = self.conn.execute(f"{sql} LIMIT ? OFFSET ?", (*args, limit + 1, 0 if after is not None else offset)).fetchall()
        records = [Record(kind, rid, loads(data), at, s) for _, rid, at, s, data in rows[:limit]]
        more = len(rows) > limit
        return Page(kind, seq, records,
                    next_after=records[-1].id if more and order == "id" else None,
                    next_offset=offset + limit if more and after is None else None)

    def listing(self, kind: Kind, seq: int | None = None, *, order: Order = "id", descending: bool = False,
                where: Mapping[str, Any] | None = None) -> Iterator[Record]:
        """Every record of a kind live after `seq`, sorted as `page` sorts them, streamed: only the sort keys
        are sorted (in memory, never a temp file), each record is read as it is reached."""
        sql, args = self._sorted(kind, seq, order, descending, where, None, keys_only=True)
        read = f"SELECT data FROM {kind.table}_history WHERE rowid = ?"
        for rowid, rid, at, s in self.conn.execute(sql, args).fetchall():
            yield Record(kind, rid, loads(self.conn.execute(read, (rowid,)).fetchone()[0]), at, s)

    def _sorted(self, kind: Kind, seq: int | None, order: Order, descending: bool,
                where: Mapping[str, Any] | None, after: str | None, keys_only: bool = False) -> tuple[str, list[Any]]:
        """SQL (and its arguments) for the sorted records: rowid, id, valid_from, seq_from[, data]."""
        conds, args = [live_at(seq), "h.deleted = 0"], []
        for name, value in (where or {}).items():
            conds.append(f"json_extract(h.data, {_path(_field_name(name))}) = ?")
            args.append(value)
        if after is not None:
            conds.append("h.id < ?" if descending else "h.id > ?")
            args.append(after)
        date = kind.spec.date_field
        sort = {"id": "h.id", "changed": "h.valid_from", "title": f"{_coalesce(kind.spec.title_fields)} COLLATE NOCASE",
                "date": f"coalesce({_coalesce((date,))}, h.valid_from)" if date else "h.valid_from"}[order]
        way = " DESC" if descending else ""
        return (f"SELECT h.rowid, h.id, h.valid_from, h.seq_from{'' if keys_only else ', h.data'} "
                f"FROM {kind.table}_history h WHERE {' AND '.join(conds)} ORDER BY {sort}{way}, h.id{way}"), args

    def changed_since(self, since: int, seq: int | None = None, kinds: Sequence[Kind] | None = None) -> list[Change]:
        """Every record changed after event `since` (up to `seq`, None: now), once, with its last change, in
        the order of those changes: what a sync token (a seq) asks for."""
        out: list[Change] = []
        upto = "" if seq is None else f" AND seq_from <= {int(seq)}"
        for kind in kinds or list(Kind):
            rows = self.conn.execute(
                f"SELECT id, max(seq_from), deleted FROM {kind.table}_history WHERE seq_from > ?{upto} GROUP BY id",
                (since,))
            out += [Change(kind, rid, s, bool(deleted)) for rid, s, deleted in rows]
        return sorted(out, key=lambda c: c.seq)

    def count(self, kind: Kind, seq: int | None = None) -> int:
        """How many records of the kind are live after event `seq` (None: now)."""
        return self.conn.execute(
            f"SELECT count(*) FROM {kind.table}_history h WHERE {live_at(seq)} AND deleted = 0").fetchone()[0]

    def count_deleted(self, kind: Kind) -> int:
        """How many records of the kind are deleted now."""
        # Open versions are counted from the (id, seq_to) index alone, live ones from the partial index: no row is read.
        opened = self.conn.execute(f"SELECT count(*) FROM {kind.table}_history WHERE seq_to IS NULL").fetchone()[0]
        return opened - self.count(kind)

    # -- search and sources ----------------------------------------------------
    def search(self, text: str, seq: int | None = None, kinds: Sequence[Kind] | None = None,
               limit: int = 20) -> list[Hit]:
        """Records matching the words of `text` after event `seq` (None: now), newest first, at most `limit` per kind."""
        from vault.state.search import search

        return search(self.conn, text, seq, kinds, limit)


def _field_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise InvalidRecord(f"{name!r} is not a field name.")
    return name


def _coalesce(names: Sequence[str | None]) -> str:
    parts = [f"json_extract(h.data, {_path(n)})" for n in names if n]
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})" if parts else "NULL"
