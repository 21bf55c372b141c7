"""lifevault: an encrypted, event-sourced vault for contacts, messages and notes.

The public surface; the modules behind it are private to the package.
"""

from .errors import (
    AlreadyExists, BadInstant, IngestError, InvalidRecord, NewerFormat, NotAVault, NotFound,
    TamperDetected, VaultError, VaultLocked, WrongSecret,
)
from .events import Event, EventType, Kind, Recorded, Source
from .instants import Instant, parse_instant
from .vault import Transaction, Vault

__all__ = [
    "AlreadyExists", "BadInstant", "Event", "EventType", "IngestError", "Instant", "InvalidRecord", "Kind",
    "NewerFormat", "NotAVault", "NotFound", "Recorded", "Source", "TamperDetected", "Transaction", "Vault",
    "VaultError", "VaultLocked", "WrongSecret", "parse_instant",
]
__version__ = "0.1.0"
