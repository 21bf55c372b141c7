"""What imports did, read from the sources the versions keep.

Every imported event's source names the import (id, importer, namespace, file and the record's
fingerprint), so the import engine asks these questions of the state instead of keeping tables of
its own: how a record was last changed, what the last import said of it, which records a namespace
or an import touched.
"""

from __future__ import annotations

from typing import Any

from vault.domain.events import Kind
from vault.store.codec import loads


class ImportQueries:
    """The import engine's questions over the state's tables on `conn`."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def last_source(self, kind: Kind, record_id: str) -> dict[str, Any]:
        """The source of the record's current version (its tombstone's, if deleted); {} if it never existed."""
        row = self.conn.execute(
            f"SELECT source FROM {kind.table}_history WHERE id = ? AND seq_to IS NULL", (record_id,)).fetchone()
        return loads(row[0]) if row else {}

    def last_import_detail(self, kind: Kind, record_id: str) -> dict[str, Any]:
        """The detail of the latest import event that set this record's fields (fingerprint, field names…)."""
        row = self.conn.execute(
            f"SELECT json_extract(source, '$.detail') FROM {kind.table}_history WHERE id = ? "
            "AND json_extract(source, '$.detail.fingerprint') IS NOT NULL ORDER BY seq_from DESC LIMIT 1",
            (record_id,)).fetchone()
        return loads(row[0]) if row else {}

    def last_import_file(self, kind: Kind, record_id: str) -> str | None:
        """The name of the file the latest import that set this record's fields read it from."""
        row = self.conn.execute(
            f"SELECT json_extract(source, '$.file') FROM {kind.table}_history WHERE id = ? "
            "AND json_extract(source, '$.detail.fingerprint') IS NOT NULL ORDER BY seq_from DESC LIMIT 1",
            (record_id,)).fetchone()
        return row[0] if row else None

    def ids_imported_by(self, kind: Kind, namespace: str) -> list[str]:
        """Every record of the kind some import of this namespace ever touched."""
        rows = self.conn.execute(
            f"SELECT DISTINCT id FROM {kind.table}_history WHERE json_extract(source, '$.detail.namespace') = ?",
            (namespace,))
        return [r[0] for r in rows]

    def touched_by(self, import_id: str) -> list[dict[str, Any]]:
        """Per record an import touched: kind, id, its first and last seq in that import, the importer and the
        file (as named in its first event there), in the order the import reached them."""
        out = []
        for kind in Kind:
            rows = self.conn.execute(
                f"SELECT id, MIN(seq_from), MAX(seq_from), json_extract(MIN(source), '$.name'), "
                f"json_extract(MIN(source), '$.file') FROM {kind.table}_history "
                "WHERE json_extract(source, '$.detail.import_id') = ? GROUP BY id ORDER BY MIN(seq_from)",
                (import_id,)).fetchall()
            out += [{"kind": kind, "id": r[0], "first": r[1], "last": r[2], "importer": r[3], "file": r[4]}
                    for r in rows]
        return sorted(out, key=lambda t: t["first"])
