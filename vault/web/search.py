"""Full-text search, now or at a past instant, over the indexes inside the state file.

Every version of every record is indexed as it is written (vault/projection.py),
so search is complete as soon as the server starts, and a past state searches
the same index: a match counts where its version is a row of the table (or
view) the connection calls `contacts`, `messages`, `notes`.
"""

from __future__ import annotations

from typing import Any

from vault.domain.events import Kind
from vault.domain.titles import record_title, record_when


def prefix_query(text: str) -> str:
    """User words as FTS5 prefix phrases (`lovel` finds Lovelace, as one types), so quotes and operators
    cannot make a syntax error."""
    return " ".join('"' + w.replace('"', '""') + '"*' for w in text.split())


def fts_table(kind: Kind) -> str:
    return f"{kind.table}_fts"


def search(conn: Any, query: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
    """The newest matches per table (id, title, date and a snippet) on a connection that sees `*_fts` tables.

    Newest first rather than by rank: ranking a common word scores every match,
    seconds on a million rows; walking rowids backwards stops after `limit`.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in Kind:
        fts = fts_table(kind)
        cursor = conn.execute(
            f"SELECT snippet({fts}, -1, '[', ']', ' … ', 12), t.* FROM {fts} "
            f"JOIN {kind.table} t ON t.rowid = {fts}.rowid WHERE {fts} MATCH ? ORDER BY {fts}.rowid DESC LIMIT ?",
            (query, limit),
        )
        names = [d[0] for d in cursor.description][1:]
        out[kind.table] = [_hit(kind, row[0], dict(zip(names, row[1:], strict=True))) for row in cursor.fetchall()]
    return out


def _hit(kind: Kind, snippet: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A match as a person recognises it: the record's name, subject or title, and its date."""
    return {"id": fields["id"], "snippet": snippet, "title": record_title(kind, fields),
            "when": record_when(kind, fields)}
