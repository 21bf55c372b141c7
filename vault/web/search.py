"""Full-text search, now or at a past instant, over the indexes inside the state file.

Every version of every record is indexed as it is written (vault/projection.py),
so search is complete as soon as the server starts, and a past state searches
the same index: a match counts where its version is a row of the table (or
view) the connection calls `contacts`, `messages`, `notes`.
"""

from __future__ import annotations

from typing import Any

from vault.domain.events import Kind


def fts_table(kind: Kind) -> str:
    return f"{kind.table}_fts"


def search(conn: Any, query: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
    """The newest matches per table (id and a snippet) on a connection that sees `*_fts` tables.

    Newest first rather than by rank: ranking a common word scores every match,
    seconds on a million rows; walking rowids backwards stops after `limit`.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in Kind:
        fts = fts_table(kind)
        rows = conn.execute(
            f"SELECT t.id, snippet({fts}, -1, '[', ']', ' … ', 12) FROM {fts} "
            f"JOIN {kind.table} t ON t.rowid = {fts}.rowid WHERE {fts} MATCH ? ORDER BY {fts}.rowid DESC LIMIT ?",
            (query, limit),
        ).fetchall()
        out[kind.table] = [{"id": rid, "snippet": snip} for rid, snip in rows]
    return out
