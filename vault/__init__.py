"""lifevault: an encrypted, event-sourced vault for contacts, messages and notes.

The library's public surface: the front door (`Vault`), the domain's types, the errors a caller can catch,
and what a format plugin needs (`hookimpl` and the format contract). The sub-packages behind it, lowest
layer first: `domain` (kinds, events, instants), `store` (the vault file), `state` (the decrypted
projection and its queries), `formats` and `replica`; `cli` and `web` are thin front ends over them.
"""

from vault.domain.events import Event, EventType, Recorded, Source
from vault.domain.kinds import FieldSpec, Kind, KindSpec, register_kind, unregister_kind
from vault.domain.instants import Instant, parse_instant
from vault.errors import (
    AlreadyExists, BadInstant, CannotWrite, DamagedFile, IngestError, InvalidRecord, NewerFormat, NotAVault,
    NotFound, RolledBack, TamperDetected, VaultError, VaultLocked, WrongSecret,
)
from vault.formats import (
    Attachment, BadRecord, Exporter, ExportRecord, Importer, ImportOption, Input, Notice, SourceRecord, hookimpl,
)
from vault.vault import Transaction, Vault

__all__ = [
    "AlreadyExists", "Attachment", "BadInstant", "BadRecord", "CannotWrite", "DamagedFile", "Event", "EventType",
    "ExportRecord", "Exporter", "FieldSpec", "ImportOption", "Importer", "IngestError", "Input", "Instant",
    "InvalidRecord", "Kind", "KindSpec", "NewerFormat", "NotAVault", "NotFound", "Notice", "Recorded", "RolledBack",
    "Source", "SourceRecord",
    "TamperDetected", "Transaction", "Vault", "VaultError", "VaultLocked", "WrongSecret", "hookimpl",
    "parse_instant", "register_kind", "unregister_kind",
]
__version__ = "0.1.0"
