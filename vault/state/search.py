"""Full-text search, now or after any event, over the indexes inside the state file.

Every version of every record is indexed as it is written (projection.py), so
search is complete as soon as the state is, and a past instant searches the
same index: a match counts where its version was the open one then.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from vault.domain.events import Kind
from vault.state.kept import Kept
from vault.state.query import Hit, Record, _path, _q, live_at
from vault.domain.titles import name_of
from vault.store.codec import loads


def fts_table(kind: Kind) -> str:
    """The FTS5 table indexing every version of a kind (its rowids are the versions')."""
    return f"{kind.table}_fts"


LOOKUP_MATCHES = 2_000  # a list search's matches looked up one by one; beyond this the list's order is walked


class Matches:
    """The versions of a kind that match one search, kept so that every page of its list and its row count
    reuse one full-text evaluation (`lunch report` in 187,690 of 500,000 mails: 95 ms of FTS5 per page).

    Few are kept as their rowids, to be looked up one by one. Many as a map with a byte per version (1: it
    matches), which SQL tests natively (`list_search_where`): a Python function called per row counted
    500,000 mails in 270 ms holding the GIL, the map in 120 ms without it.
    """

    __slots__ = ("count", "few", "map", "__weakref__")

    def __init__(self, rowids: Sequence[int]) -> None:
        self.count = len(rowids)
        self.few: list[int] | None = list(rowids) if self.count <= LOOKUP_MATCHES else None
        self.map = b""
        if self.few is None:
            found = bytearray(max(rowids) + 1)
            for r in rowids:
                found[r] = 1
            self.map = bytes(found)

    def __contains__(self, rowid: object) -> bool:
        if self.few is not None:
            return rowid in self.few
        return isinstance(rowid, int) and 0 <= rowid < len(self.map) and self.map[rowid] == 1

    @property
    def size(self) -> int:
        """Bytes this holds, about (what a cache of them is bounded by)."""
        return len(self.map) + 8 * len(self.few or ()) + 100


def matching_versions(conn: Any, kind: Kind, text: str, column: str | None = None, raw: bool = False) -> Matches:
    """Every version of `kind` whose text (or `column`'s) matches `text`: FTS5 syntax as given when `raw`,
    else its words as prefixes (`fts_query`)."""
    fts = fts_table(kind)
    # One row of JSON rather than a row per match: each row fetched hands the GIL back and forth, and under
    # load every handover may wait for another thread (187,690 of them for `lunch report`).
    found = conn.execute(f"SELECT json_group_array(rowid) FROM {fts} WHERE {_q(column) if column else fts} MATCH ?",
                         (text if raw else fts_query(text),)).fetchone()[0]
    return Matches(json.loads(found))


def list_search_where(matches: Matches, param: str) -> str:
    """A WHERE term keeping the rows of a list (a live or past view) among `matches`, whose `param` is
    `list_search_param(matches, token)`. Few: each is looked up by rowid. Many (`lunch` in 37,000 of
    100,000 mails): looking each up to check it is open, then sorting them all by date, took 3 s; testing
    each row in the matches' map (`lv_matches`, the connection's `matches_function`, gives it once per
    query) lets SQLite walk the list's own index (by date, or the open versions to count)."""
    if matches.few is not None:
        return f"rowid IN (SELECT value FROM json_each(:{param}))"
    return f"substr(lv_matches(:{param}), rowid + 1, 1) = x'01'"


def list_search_param(matches: Matches, token: str) -> str:
    """The value of `list_search_where`'s parameter: the few matches as JSON, else the token that
    `matches_function` finds the matches by."""
    return json.dumps(matches.few) if matches.few is not None else token


def matches_function(find: Callable[[str], Matches]) -> Callable[[str], bytes]:
    """`lv_matches(token)`: the map of the matches `find(token)` names (SQLite calls it once per query, as
    it is deterministic and its argument constant)."""
    return lambda token: find(token).map


class MatchCache(Kept):
    """The list searches answered last, under keys naming the state they were evaluated in, bounded by the
    bytes their matches hold."""

    def __init__(self, keep_bytes: int = 32 << 20) -> None:
        super().__init__(keep_bytes, weigh=lambda matches: matches.size)


def fts_query(text: str) -> str:
    """User words as FTS5 prefix phrases (`lovel` finds Lovelace), so quotes and operators cannot make a
    syntax error."""
    return " ".join('"' + w.replace('"', '""') + '"*' for w in text.split())


def search(conn: Any, text: str, seq: int | None = None, kinds: Sequence[Kind] | None = None,
           limit: int = 20) -> list[Hit]:
    """The newest matches of `text`'s words per kind among the versions open after `seq` (None: now).

    Newest first rather than by rank: ranking a common word scores every match,
    seconds on a million rows; walking rowids backwards stops after `limit`.
    """
    query = fts_query(text)
    if not query:
        return []
    hits: list[Hit] = []
    for kind in kinds or list(Kind):
        fts, names = fts_table(kind), [*kind.spec.title_fields, *filter(None, [kind.spec.date_field])]
        rows = conn.execute(
            f"SELECT h.id, h.valid_from, snippet({fts}, -1, '[', ']', ' … ', 12), h.rowid, "
            + ", ".join(f"h.data -> {_path(n)}" for n in names)
            + f" FROM {fts} JOIN {kind.table}_history h ON h.rowid = {fts}.rowid "
            f"WHERE {fts} MATCH ? AND {live_at(seq)} AND h.deleted = 0 ORDER BY {fts}.rowid DESC LIMIT ?",
            (query, limit),
        ).fetchall()
        for rid, at, snip, version, *values in rows:
            shown = Record(kind, rid, {n: loads(v) for n, v in zip(names, values, strict=True) if v is not None}, at, 0)
            hits.append(Hit(kind, rid, name_of(kind, shown.fields), shown.date, snip, version))
    return hits
