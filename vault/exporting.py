"""The export engine: the vault's state at any instant, written by a registered exporter.

The exporter writes to a hidden sibling of OUT which is renamed into place only
when it has finished, so a failed or interrupted export leaves no half file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

from . import plugins
from .errors import AlreadyExists, VaultError
from .events import Kind
from .formats import ExportRecord
from .instants import Instant
from .vault import Vault


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
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        n = exporter.write(records_at(vault, kinds, seq), tmp, vault.referenced_blob)
        if out.exists():
            raise AlreadyExists(out)
        tmp.rename(out)
    except VaultError:
        raise
    except Exception as e:
        raise ExportError(f"The {fmt} exporter could not write {out}: {e}.") from e
    finally:
        _remove(tmp)
    return n


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
