"""Named in-memory SQLite databases (SQLite's memdb VFS): where decrypted state lives.

A memdb with a name is shared by every connection of this process that opens
it and never touches disk (its journal is kept in memory too). Python's
sqlite3 does not expose what is reached here through ctypes, on the very
library Python's sqlite3 uses (so both see the same named databases): the
file control that raises a memdb's 1 GiB cap (to just under the 2 GiB one
memdb can hold), and SQLite's own file object for the memdb, through which a
snapshot is read and loaded a part at a time without a whole second copy.
Where that library is out of reach the plain API does the same with more
copies and the 1 GiB cap.
"""

from __future__ import annotations

import _sqlite3
import contextlib
import ctypes
import functools
import secrets
import sqlite3
from typing import Any, Iterable, Iterator

BUSY_TIMEOUT_MS = 10_000
# SQLite holds a memdb in one allocation, and refuses any single allocation near 2 GiB; a memdb
# grows by doubling (capped at its limit), so the limit must sit just under that or growing past
# 1 GiB would ask for too much at once.
MAX_BYTES = 0x7FFF0000
_OPEN_READWRITE, _OPEN_CREATE, _OPEN_URI = 0x2, 0x4, 0x40
_FCNTL_FILE_POINTER, _FCNTL_SIZE_LIMIT = 7, 36


def new_name(prefix: str = "lifevault") -> str:
    """A fresh memdb name, unguessable so no other code in the process opens it by chance."""
    return f"{prefix}-{secrets.token_hex(8)}"


def uri(name: str, *, readonly: bool = False) -> str:
    """The URI of a named in-memory database shared inside this process."""
    return f"file:/{name}?vfs=memdb" + ("&mode=ro" if readonly else "")


def connect(name: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to a named memdb; read-only ones refuse every write, writable ones raise its 1 GiB cap to MAX_BYTES."""
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

    The pages are read through SQLite's own file object for the memdb (a
    named memdb cannot hand out its buffer). The caller keeps writers off
    `name` until the iterator is exhausted.
    """
    lib = _lib()
    with _c_connection(lib, name) if lib else contextlib.nullcontext() as db:
        f = _file(lib, db)
        if f is not None:
            io, total = f.contents.methods.contents, ctypes.c_int64()
            io.file_size(f, ctypes.byref(total))
            buf = ctypes.create_string_buffer(size)
            for start in range(0, max(total.value, 1), size):
                n = min(size, total.value - start)
                if io.read(f, buf, n, start) != 0:
                    raise sqlite3.DatabaseError(f"reading the in-memory database {name} failed")
                yield buf.raw[:n]
            return
    yield from serialized_pieces(conn, size)


def serialized_pieces(conn: sqlite3.Connection, size: int) -> Iterator[bytes]:
    """Any database serialized with the plain API (one whole copy), in pieces of `size` bytes."""
    data = memoryview(conn.serialize())
    for start in range(0, max(len(data), 1), size):
        yield bytes(data[start : start + size])


class _IoMethods(ctypes.Structure):
    """The head of SQLite's sqlite3_io_methods (a stable, documented C struct)."""

    _fields_ = [
        ("version", ctypes.c_int),
        ("close", ctypes.c_void_p),
        ("read", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64)),
        ("write", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int64)),
        ("truncate", ctypes.c_void_p),
        ("sync", ctypes.c_void_p),
        ("file_size", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64))),
    ]


class _File(ctypes.Structure):
    """SQLite's sqlite3_file: a pointer to its methods."""

    _fields_ = [("methods", ctypes.POINTER(_IoMethods))]


def load(name: str, parts: Iterable[bytes]) -> sqlite3.Connection:
    """A new memdb `name` holding the database serialized in `parts`; one copy, straight into it.

    The bytes go in through SQLite's own file object for the memdb before any
    connection has read it, as if a database file were copied into place.
    Raises sqlite3.DatabaseError if the bytes are not a database.
    """
    conn = connect(name)  # keeps the memdb alive; it reads nothing until the file is complete
    try:
        lib = _lib()
        with _c_connection(lib, name) if lib else contextlib.nullcontext() as db:
            f = _file(lib, db)
            if f is None:
                staged = sqlite3.connect(":memory:")
                staged.deserialize(b"".join(parts))
                staged.backup(conn)
                staged.close()
            else:
                offset = 0
                for part in parts:
                    if f.contents.methods.contents.write(f, part, len(part), offset) != 0:
                        raise MemoryError(f"the in-memory database {name} could not grow")
                    offset += len(part)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _file(lib: Any, db: ctypes.c_void_p | None) -> Any:
    """SQLite's file object behind a C-level connection's main database, or None."""
    f = ctypes.POINTER(_File)()
    if not db or lib.sqlite3_file_control(db, b"main", _FCNTL_FILE_POINTER, ctypes.byref(f)) != 0 or not f:
        return None
    return f


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
        p, s = ctypes.c_void_p, ctypes.c_char_p
        for fn, args, res in [
            ("sqlite3_open_v2", [s, ctypes.POINTER(p), ctypes.c_int, s], ctypes.c_int),
            ("sqlite3_close", [p], ctypes.c_int),
            ("sqlite3_file_control", [p, s, ctypes.c_int, p], ctypes.c_int),
        ]:
            f = getattr(lib, fn)
            f.argtypes, f.restype = args, res
        return lib
    except (OSError, AttributeError):
        return None
