"""The export engine: the vault's state at any instant, written by a registered exporter.

The exporter writes into a hidden 0o700 folder beside OUT; what it wrote is
made the owner's alone (0o600 files, 0o700 folders: it is plaintext) and
renamed into place only when it has finished, so a failed or interrupted
export leaves no half file and nothing others could read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from vault.formats import registry as plugins
from vault.errors import AlreadyExists, CannotWrite, VaultError
from vault.domain.events import Kind
from vault.formats.contract import ExportRecord
from vault.domain.instants import Instant
from vault.paths import make_private
from vault.vault import Vault


class ExportError(VaultError):
    http_status = 500


def records_at(vault: Vault, kinds: tuple[Kind, ...], seq: int) -> Iterator[ExportRecord]:
    """Every live record of these kinds after event `seq`, kind by kind, by id."""
    for kind in kinds:
        for rid, fields in vault.projection.state(kind, seq):
            yield ExportRecord(kind, rid, fields)


def export_file(vault: Vault, fmt: str, out: Path | str, at: Instant | None = None,
                registry: plugins.Registry | None = None) -> int:
    """Write the state at `at` (default: now) to `out` in format `fmt`; returns how many records."""
    out = Path(out)
    exporter = (registry or plugins.registry()).exporter(fmt)
    if out.exists():
        raise AlreadyExists(out)
    seq = vault.projection.seq if at is None else vault.seq_for(at)
    kinds = tuple(getattr(exporter, "kinds", None) or Kind)
    try:  # a 0o700 folder: nobody else can open what the exporter makes before it is made private
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise CannotWrite(out, e.strerror or str(e)) from e
    tmp = staging / out.name
    try:
        n = exporter.write(records_at(vault, kinds, seq), tmp, vault.referenced_blob)
        make_private(tmp)  # plaintext: 0o600 files, 0o700 folders, whatever the exporter and the umask did
        if out.exists():
            raise AlreadyExists(out)
        tmp.rename(out)
    except VaultError:
        raise
    except Exception as e:
        raise ExportError(f"The {fmt} exporter could not write {out}: {e}.") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return n

