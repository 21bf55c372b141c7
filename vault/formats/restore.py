"""Writing the state at an instant to a standalone, plaintext SQLite file.

The file has tables `contacts`, `messages` and `notes` (one column per known
field, lists as JSON), full-text indexed, plus `attachments` holding every
blob those records point to, so `datasette state.db` needs nothing else.
Only ever written because the user asked for it, and readable only by its owner (0o600).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from vault.errors import AlreadyExists, CannotWrite
from vault.domain.kinds import Kind
from vault.domain.instants import iso
from vault.paths import private_file

from vault.state.query import table_columns
from vault.vault import Vault

def restore_to_file(vault: Vault, seq: int, out: Path | str) -> dict[str, int]:
    """Write the state after event `seq` to a new SQLite file; returns row counts."""
    out = Path(out)
    if out.exists():
        raise AlreadyExists(out)
    if not out.parent.is_dir():
        raise CannotWrite(out, f"the folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.restoring")
    counts: dict[str, int] = {}
    referenced: set[str] = set()
    try:
        tmp.unlink(missing_ok=True)  # left by a crash of a process with our pid
        db = sqlite_utils.Database(private_file(tmp))  # plaintext: the owner's alone, and so its -journal
        for kind in Kind:
            table = db.table(kind.table)
            table.create({c: str for c in table_columns(kind, times=False)}, pk="id")
            table.insert_all(vault.projection.rows(kind, seq), batch_size=1000)  # streamed, never listed
            referenced |= vault.projection.blobs_referenced(kind, seq)
            table.enable_fts(list(kind.spec.fts), create_triggers=True)
            counts[kind.table] = table.count
        db.table("attachments").create({"blob": str, "content": bytes}, pk="blob")
        db.table("attachments").insert_all(
            ({"blob": b, "content": vault.referenced_blob(b)} for b in sorted(referenced)), batch_size=100
        )
        db.table("restored").insert({"vault": str(vault.path), "seq": seq,
                               "recorded_at": iso(vault.log.recorded_at(seq)) if seq else None})
        db.conn.commit()
        db.close()
        os.link(tmp, out)
    except FileExistsError:
        raise AlreadyExists(out) from None
    except (OSError, sqlite3.Error) as e:  # a full disk, a read-only folder
        raise CannotWrite(out, str(e)) from e
    finally:
        tmp.unlink(missing_ok=True)
    return counts
