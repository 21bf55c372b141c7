"""Full-text search, now or after any event, over the indexes inside the state file.

Every version of every record is indexed as it is written (projection.py), so
search is complete as soon as the state is, and a past instant searches the
same index: a match counts where its version was the open one then.
"""

from __future__ import annotations

from typing import Any, Sequence

from vault.domain.events import Kind
from vault.state.query import Hit, Record, _path, live_at
from vault.domain.titles import name_of
from vault.store.codec import loads


def fts_table(kind: Kind) -> str:
    """The FTS5 table indexing every version of a kind (its rowids are the versions')."""
    return f"{kind.table}_fts"


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
