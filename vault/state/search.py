"""Full-text search, now or after any event, over the indexes inside the state file.

Every version of every record is indexed as it is written (projection.py), so
search is complete as soon as the state is, and a past instant searches the
same index: a match counts where its version was the open one then.
"""

from __future__ import annotations

from typing import Any, Sequence

from vault.domain.events import Kind
from vault.state.query import Hit, Record, _path, _q, live_at
from vault.domain.titles import name_of
from vault.store.codec import loads


def fts_table(kind: Kind) -> str:
    """The FTS5 table indexing every version of a kind (its rowids are the versions')."""
    return f"{kind.table}_fts"


LOOKUP_MATCHES = 2_000  # a list search's matches looked up one by one; beyond this the list's order is walked


def list_matches(kind: Kind, param: str, column: str | None = None, raw: bool = False) -> str:
    """SQL for the versions of `kind` whose text (or `column`'s) matches the words in `:param`: FTS5
    syntax as given when `raw`, else through `escape_fts` (the connection's `fts_query`)."""
    fts = fts_table(kind)
    return (f"SELECT rowid FROM {fts} WHERE {_q(column) if column else fts} MATCH "
            f"{':' + param if raw else f'escape_fts(:{param})'}")


def matches_upto(kind: Kind, param: str, column: str | None = None, raw: bool = False) -> str:
    """SQL counting the matching versions, stopping past LOOKUP_MATCHES (all list_search_where needs)."""
    return f"SELECT count(*) FROM ({list_matches(kind, param, column, raw)} LIMIT {LOOKUP_MATCHES + 1})"


def list_search_where(kind: Kind, param: str, matches: int, column: str | None = None, raw: bool = False) -> str:
    """A WHERE term keeping the rows of a list (a live or past view of `kind`) that match, for a search with
    `matches` matching versions. Few: each is looked up by rowid. Many (`lunch` in 37,000 of 100,000 mails):
    looking each up to check it is open, then sorting them all by date, took 3 s; `+rowid` lets SQLite walk
    the list's own index (by date, or the open versions to count) and test each row against the matches."""
    return f"{'+' if matches > LOOKUP_MATCHES else ''}rowid IN ({list_matches(kind, param, column, raw)})"


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
