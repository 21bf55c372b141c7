"""Named in-memory SQLite databases (SQLite's memdb VFS): where decrypted state lives.

A memdb with a name is shared by every connection of this process that opens
it and never touches disk (its journal is kept in memory too). Three things
Python's sqlite3 does not expose are reached through ctypes, on the very
library Python's sqlite3 uses, so both see the same named databases:
lifting SQLite's 1 GiB cap on a memdb, reading a memdb's pages without copying
them (to seal a snapshot part by part), and filling a memdb from a
serialization with one copy instead of three. Where that library is out of
reach the same results come from the plain API, with more copies and the cap.
"""

from __future__ import annotations

import _sqlite3
import ctypes
import functools
import secrets
import sqlite3
from typing import Any, Iterable, Iterator

BUSY_TIMEOUT_MS = 10_000
MAX_BYTES = 1 << 40  # no cap short of the machine's memory
_OPEN_READWRITE, _OPEN_CREATE, _OPEN_URI = 0x2, 0x4, 0x40
_FCNTL_SIZE_LIMIT, _SERIALIZE_NOCOPY = 36, 0x1
_DESERIALIZE_FREEONCLOSE, _DESERIALIZE_RESIZEABLE = 0x1, 0x2


def new_name(prefix: str = "lifevault") -> str:
    """A fresh memdb name, unguessable so no other code in the process opens it by chance."""
    return f"{prefix}-{secrets.token_hex(8)}"


def uri(name: str, *, readonly: bool = False) -> str:
    """The URI of a named in-memory database shared inside this process."""
    return f"file:/{name}?vfs=memdb" + ("&mode=ro" if readonly else "")


def connect(name: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to a named memdb; read-only ones refuse every write, writable ones lift the 1 GiB cap."""
    conn = sqlite3.connect(uri(name, readonly=readonly), uri=True, isolation_level=None, check_same_thread=False)
    if not readonly:
        size_limit(name, MAX_BYTES)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA temp_store = MEMORY")  # sorts never spill to a temp file
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


def size_limit(name: str, new: int = -1) -> int | None:
    """Set (or with -1 just read) the byte limit of a named memdb; None if SQLite's C API is out of reach."""
    lib = _lib()
    if lib is None:
        return None
    with _c_connection(lib, name) as db:
        value = ctypes.c_int64(new)
        if db is None or lib.sqlite3_file_control(db, b"main", _FCNTL_SIZE_LIMIT, ctypes.byref(value)) != 0:
            return None
        return value.value


def pieces(conn: sqlite3.Connection, name: str, size: int) -> Iterator[bytes]:
    """The serialized database in pieces of `size` bytes, without a second whole copy.

    The caller must keep writers off `name` until the iterator is exhausted.
    """
    lib = _lib()
    if lib is not None:
        with _c_connection(lib, name) as db:
            n = ctypes.c_int64()
            ptr = lib.sqlite3_serialize(db, b"main", ctypes.byref(n), _SERIALIZE_NOCOPY) if db else None
            if ptr:
                for start in range(0, max(n.value, 1), size):
                    yield ctypes.string_at(ptr + start, min(size, n.value - start))
                return
    data = memoryview(conn.serialize())
    for start in range(0, max(len(data), 1), size):
        yield bytes(data[start : start + size])


def load(name: str, parts: Iterable[bytes], capacity: int) -> sqlite3.Connection:
    """A new memdb `name` holding the database serialized in `parts` (about `capacity` bytes in all).

    Raises sqlite3.DatabaseError if the bytes are not a database.
    """
    conn = connect(name)
    lib = _lib()
    if lib is None:
        staged = sqlite3.connect(":memory:")
        staged.deserialize(b"".join(parts))
        staged.backup(conn)
        staged.close()
        return conn
    try:
        _c_load(lib, name, parts, capacity)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _c_load(lib: Any, name: str, parts: Iterable[bytes], capacity: int) -> None:
    """Copy `parts` once into memory SQLite owns, open it as a private memdb, back it up into `name`."""
    buf, used = lib.sqlite3_malloc64(max(capacity, 1)), 0
    if not buf:
        raise MemoryError("SQLite could not allocate the decrypted state")
    staged = ctypes.c_void_p()
    try:
        for part in parts:
            if used + len(part) > capacity:
                capacity = max(capacity * 2, used + len(part))
                grown = lib.sqlite3_realloc64(buf, capacity)
                if not grown:
                    raise MemoryError("SQLite could not allocate the decrypted state")
                buf = grown
            ctypes.memmove(buf + used, part, len(part))
            used += len(part)
        lib.sqlite3_open_v2(b":memory:", ctypes.byref(staged), _OPEN_READWRITE | _OPEN_CREATE, None)
        rc = lib.sqlite3_deserialize(staged, b"main", buf, used, capacity, _DESERIALIZE_FREEONCLOSE | _DESERIALIZE_RESIZEABLE)
        buf = None  # SQLite owns it now, even when deserialize failed
        if rc != 0:
            raise sqlite3.DatabaseError(f"deserialize failed ({rc})")
        with _c_connection(lib, name) as dest:
            backup = lib.sqlite3_backup_init(dest, b"main", staged, b"main")
            if not backup:
                raise sqlite3.DatabaseError(lib.sqlite3_errmsg(dest).decode())
            lib.sqlite3_backup_step(backup, -1)
            if lib.sqlite3_backup_finish(backup) != 0:
                raise sqlite3.DatabaseError(lib.sqlite3_errmsg(dest).decode())
    finally:
        if buf:
            lib.sqlite3_free(buf)
        lib.sqlite3_close(staged)


class _c_connection:
    """A short-lived C-level connection to a named memdb (None inside if it cannot be opened)."""

    def __init__(self, lib: Any, name: str) -> None:
        self.lib, self.name, self.db = lib, name, ctypes.c_void_p()

    def __enter__(self) -> ctypes.c_void_p | None:
        rc = self.lib.sqlite3_open_v2(uri(self.name).encode(), ctypes.byref(self.db), _OPEN_READWRITE | _OPEN_URI, None)
        return self.db if rc == 0 else None

    def __exit__(self, *exc: object) -> None:
        self.lib.sqlite3_close(self.db)


@functools.cache
def _lib() -> Any:
    """Python's own SQLite library through ctypes, or None where it cannot be reached."""
    try:
        lib = ctypes.CDLL(_sqlite3.__file__)  # resolves to the SQLite that Python's sqlite3 itself uses
        p, i64, s = ctypes.c_void_p, ctypes.c_int64, ctypes.c_char_p
        for fn, args, res in [
            ("sqlite3_open_v2", [s, ctypes.POINTER(p), ctypes.c_int, s], ctypes.c_int),
            ("sqlite3_close", [p], ctypes.c_int),
            ("sqlite3_file_control", [p, s, ctypes.c_int, p], ctypes.c_int),
            ("sqlite3_serialize", [p, s, ctypes.POINTER(i64), ctypes.c_uint], p),
            ("sqlite3_deserialize", [p, s, p, i64, i64, ctypes.c_uint], ctypes.c_int),
            ("sqlite3_malloc64", [ctypes.c_uint64], p),
            ("sqlite3_realloc64", [p, ctypes.c_uint64], p),
            ("sqlite3_free", [p], None),
            ("sqlite3_backup_init", [p, s, p, s], p),
            ("sqlite3_backup_step", [p, ctypes.c_int], ctypes.c_int),
            ("sqlite3_backup_finish", [p], ctypes.c_int),
            ("sqlite3_errmsg", [p], s),
        ]:
            f = getattr(lib, fn)
            f.argtypes, f.restype = args, res
        return lib
    except (OSError, AttributeError):
        return None
