"""The exceptions lifevault raises.

    VaultError                      base; every error a user can see
    ├── NotAVault(path)             the file is missing or is not a lifevault vault
    ├── NewerFormat(path, version)  written by a newer lifevault
    ├── AlreadyExists(path)         a command would overwrite a file
    ├── CannotWrite(path, reason)   an output file cannot be written there
    ├── VaultLocked(path)           another process holds the write lock too long
    ├── WrongSecret                 passphrase or recovery key does not unlock the vault
    ├── TamperDetected(seq, reason) the log, a blob, the head or the seal fails a check
    ├── DamagedFile(path, what)     the file cannot be read as SQLite (bad pages, undecodable text)
    ├── RolledBack(path, reason)    the vault is behind the newest state this machine saw of it
    ├── NotFound(record_id)         no such record (now, or at the instant asked)
    ├── BadInstant(text)            an instant that cannot be parsed or is out of range
    ├── InvalidRecord(reason)       fields or a patch that the domain refuses
    ├── WeakPassphrase(score, advice)  a new passphrase is too easy to guess (in passphrase.py, beside zxcvbn)
    └── IngestError(path, location, reason)  an input file that cannot be read

Each class carries `http_status` so an HTTP layer can map it without a table.
Secrets never appear in messages.
"""

from __future__ import annotations

from pathlib import Path


class VaultError(Exception):
    """Base class: the message is one sentence fit to show a user."""

    http_status = 400


class NotAVault(VaultError):
    http_status = 404

    def __init__(self, path: Path | str, why: str = "is not a lifevault vault") -> None:
        self.path = str(path)
        super().__init__(f"{self.path} {why}.")


class NewerFormat(VaultError):
    http_status = 409

    def __init__(self, path: Path | str, version: int) -> None:
        self.path, self.version = str(path), version
        super().__init__(
            f"{self.path} uses vault format {version}, newer than this lifevault understands; upgrade lifevault."
        )


class AlreadyExists(VaultError):
    http_status = 409

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path} already exists; refusing to overwrite it.")


class VaultLocked(VaultError):
    http_status = 503

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path} is locked by another process; try again when it has finished.")


class CannotWrite(VaultError):
    http_status = 500

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"Cannot write {self.path}: {reason}.")


class WrongSecret(VaultError):
    http_status = 401

    def __init__(self, what: str = "passphrase") -> None:
        self.what = what
        super().__init__(f"Wrong {what}: it does not unlock this vault.")


class TamperDetected(VaultError):
    http_status = 500

    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq, self.reason = seq, reason
        where = f"event {seq}" if seq is not None else "the vault"
        super().__init__(f"Tampering detected at {where}: {reason}.")


class DamagedFile(VaultError):
    http_status = 500

    def __init__(self, path: Path | str, what: str) -> None:
        self.path, self.what = str(path), what
        super().__init__(f"{self.path} is damaged: {what}; restore it from a replica or backup "
                         "(`lifevault verify` names what it finds).")


class RolledBack(VaultError):
    http_status = 409

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path} {reason}")


class NotFound(VaultError):
    http_status = 404

    def __init__(self, record_id: str, when: str = "") -> None:
        self.record_id = record_id
        super().__init__(f"No record {record_id!r}{when}.")


class BadInstant(VaultError):
    def __init__(self, text: str, why: str) -> None:
        self.text = text
        super().__init__(f"Bad instant {text!r}: {why}.")


class InvalidRecord(VaultError):
    http_status = 422


class IngestError(VaultError):
    http_status = 422

    def __init__(self, path: Path | str | object, location: str | None, reason: str) -> None:
        # `path`: anything whose str names the input (a Path, or a format Input: its path or upload name)
        self.path, self.location, self.reason = str(path), location, reason
        at = f" ({location})" if location else ""
        super().__init__(f"{self.path}{at}: {reason}.")
