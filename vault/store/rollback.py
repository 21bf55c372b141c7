"""The highest head this machine has seen of each vault file, kept outside it.

An older copy of a vault file put back in its place (a restored backup, a synced
folder that went back in time, someone undoing a revocation) is self-consistent:
its chain, head and seal all verify. Only a memory kept elsewhere can tell.
`LIFEVAULT_HOME/seen-heads.json` (0600) holds, per vault id and file path, the
seq, chain hash and seal counter last seen there, each entry MACed with a
data-key subkey. It is raised whenever the vault is opened with the passphrase
or written, never lowered. Entries are per path as well as per id because copies
of one vault (a clone, a backup being checked) legitimately stand elsewhere at
other heads; an older copy put back is an older copy at the same path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from vault.store import crypto, schema, seal
from vault.store.crypto import Keys
from vault.store.log import EventLog
from vault.paths import home_dir, private_dir, private_file

FILE_NAME = "seen-heads.json"


def memory_path() -> Path:
    return home_dir() / FILE_NAME


@dataclass(frozen=True)
class Seen:
    """A head as remembered: seq, chain hash, seal counter (0: unsealed)."""

    seq: int
    hash: bytes
    counter: int


@dataclass(frozen=True)
class Behind:
    """Why a vault file is behind what this machine saw of it; `message` is the sentence to show."""

    path: str
    seen: Seen
    seq: int
    counter: int
    reason: str

    @property
    def message(self) -> str:
        return f"{self.path} {self.reason}"


def _file_key(path: Path | str) -> str:
    return str(Path(path).resolve())


def _mac(keys: Keys, vault_id: bytes, where: str, seen: Seen) -> bytes:
    msg = vault_id + where.encode() + b"\0" + struct.pack(">QQ", seen.seq, seen.counter) + seen.hash
    return crypto.blake2b(msg, key=keys.seen, person=b"lv-seen-head")


def _load() -> dict[str, Any]:
    try:
        data = json.loads(memory_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def seen(path: Path | str, vault_id: bytes, keys: Keys | None = None) -> Seen | None:
    """What this machine remembers of the vault file at `path`; with `keys`, only an entry whose MAC holds
    (without them, e.g. for `status` or `verify --blind`, the entry as written)."""
    entry = _load().get(vault_id.hex(), {}).get(_file_key(path))
    try:
        found = Seen(int(entry["seq"]), bytes.fromhex(entry["hash"]), int(entry["counter"]))
        mac = bytes.fromhex(entry["mac"])
    except (TypeError, KeyError, ValueError):
        return None
    if keys is not None and not hmac.compare_digest(mac, _mac(keys, vault_id, _file_key(path), found)):
        return None
    return found


def check(path: Path | str, vault_id: bytes, seq: int, counter: int, hash_at: Callable[[int], bytes],
          keys: Keys | None = None) -> Behind | None:
    """Whether the file (head `seq`, seal `counter`) is behind what this machine saw of it, or holds
    another history; None when it is at or ahead of it (or was never seen)."""
    last = seen(path, vault_id, keys)
    if last is None:
        return None
    where = str(path)
    if seq < last.seq:
        return Behind(where, last, seq, counter,
                      f"is behind the newest state this machine has seen of it: it ends at event {seq} but was at "
                      f"event {last.seq} (an older copy put back?); run `lifevault status` and pull the missing "
                      "events from a replica.")
    if hash_at(last.seq) != last.hash:
        return Behind(where, last, seq, counter,
                      f"holds another history than the one this machine saw: its event {last.seq} differs from the "
                      "one seen there (an older copy put back, then written to?); run `lifevault status` before "
                      "writing more.")
    if seq == last.seq and counter < last.counter:
        return Behind(where, last, seq, counter,
                      f"is behind the newest state this machine has seen of it: at event {seq} its tokens or keys are "
                      f"from an older copy (seal {counter}, this machine saw seal {last.counter}); run `lifevault "
                      "status`, and revoke and recreate API tokens if unsure.")
    return None


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    home = private_dir(home_dir())
    fd = os.open(private_file(home / f"{FILE_NAME}.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remember(path: Path | str, vault_id: bytes, keys: Keys, seq: int, last_hash: bytes, counter: int) -> None:
    """Raise the remembered head of the file at `path` to (seq, hash, counter) unless it is already there or
    higher; written to a temporary file (0600) and renamed, under a lock shared by every process."""
    new = Seen(seq, last_hash, counter)
    with _locked():
        data = _load()
        where = _file_key(path)
        last = seen(path, vault_id, keys)
        if last is not None and (last.seq > seq or (last.seq == seq and last.counter >= counter)):
            return
        data.setdefault(vault_id.hex(), {})[where] = {
            "seq": seq, "hash": last_hash.hex(), "counter": counter, "mac": _mac(keys, vault_id, where, new).hex()}
        _write(data)


def _write(data: dict[str, Any]) -> None:
    """Replace the memory file (under `_locked`): a 0600 temporary file renamed over it."""
    tmp = memory_path().with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, memory_path())


def forget(path: Path | str, vault_id: bytes) -> None:
    """Drop what this machine remembers of the vault file at `path`, for an owner who put an older copy back on
    purpose (and has nothing newer to pull): its next open with the passphrase remembers it as it is."""
    with _locked():
        data = _load()
        if data.get(vault_id.hex(), {}).pop(_file_key(path), None) is None:
            return
        _write(data)


def check_file(path: Path | str) -> Behind | None:
    """`check` for a vault file read without its passphrase (for `status`): the memory's entry is taken as
    written, since its MAC needs the key."""
    conn = schema.connect(Path(path))
    try:
        log = EventLog(conn, Path(path), None)
        head, found = log.head(), seal.read(conn)
        return check(path, log.vault_id, head.seq, found.counter if found else 0, log.hash_at)
    finally:
        conn.close()
