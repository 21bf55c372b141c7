"""The vault a server shares: one lock, the projection in a named in-memory database, a refresh loop.

The Vault's projection is moved into a SQLite "memdb" database with a name, so
any number of read-only connections (Datasette's) see it live while the vault
keeps writing to it; memdb never touches disk. Every use of the Vault object
itself (appends, blobs, refresh) happens under `lock`: it owns one connection.
"""

from __future__ import annotations

import _sqlite3
import ctypes
import functools
import logging
import secrets
import sqlite3
import threading
from typing import Any, Callable, TypeVar

from ..errors import VaultError
from ..projection import Projection
from ..vault import Vault

T = TypeVar("T")
log = logging.getLogger("lifevault.web")
BUSY_TIMEOUT_MS = 10_000
REFRESH_SECONDS = 0.5  # how often the log's head is checked for other processes' appends


def memdb_uri(name: str, *, readonly: bool = False) -> str:
    """The URI of a named in-memory database shared inside this process."""
    return f"file:/{name}?vfs=memdb" + ("&mode=ro" if readonly else "")


def memdb_size_limit(name: str, new: int = -1) -> int | None:
    """Set (or with -1 just read) the byte limit of a named memdb; None if SQLite's C API is out of reach.

    SQLite caps a memdb at 1 GiB by default, less than the projection of a few
    million events; the cap is a file control Python's sqlite3 does not expose,
    so it is set through a second, short-lived connection made with the same
    library (ctypes), which shares the named database.
    """
    lib = _libsqlite()
    if lib is None:
        return None
    db = ctypes.c_void_p()
    try:
        if lib.sqlite3_open_v2(memdb_uri(name).encode(), ctypes.byref(db), _OPEN_READWRITE | _OPEN_URI, None) != 0:
            return None
        value = ctypes.c_int64(new)
        if lib.sqlite3_file_control(db, b"main", _FCNTL_SIZE_LIMIT, ctypes.byref(value)) != 0:
            return None
        return value.value
    finally:
        lib.sqlite3_close(db)


_OPEN_READWRITE, _OPEN_URI, _FCNTL_SIZE_LIMIT = 0x2, 0x40, 36
MEMDB_MAX_BYTES = 1 << 40  # no cap short of the machine's memory


@functools.cache
def _libsqlite() -> Any:
    try:
        lib = ctypes.CDLL(_sqlite3.__file__)  # resolves to the SQLite that Python's sqlite3 itself uses
        lib.sqlite3_open_v2.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_char_p]
        lib.sqlite3_file_control.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        lib.sqlite3_close.argtypes = [ctypes.c_void_p]
        return lib
    except (OSError, AttributeError):
        return None


def connect_memdb(name: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to a named memdb; read-only ones refuse every write, writable ones lift the 1 GiB cap."""
    conn = sqlite3.connect(memdb_uri(name, readonly=readonly), uri=True, isolation_level=None, check_same_thread=False)
    if not readonly:
        memdb_size_limit(name, MEMDB_MAX_BYTES)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA temp_store = MEMORY")  # sorts never spill to a temp file
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


class LiveVault:
    """An unlocked vault served to many readers; `write` and `refresh` keep them current.

    It is also the API's holder: `.vault` used only while holding `.lock`.

    `on_change` callbacks get the new head seq after every change the server sees
    (its own writes or another process's appends): the hook for replica pushes.
    `on_publish` callbacks get the projection's writer connection whenever it is
    (re)placed in shared memory, so derived indexes can attach to it.
    """

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.lock = threading.RLock()
        self.name = "lifevault-" + secrets.token_hex(8)
        self.on_change: list[Callable[[int], None]] = []
        self.on_publish: list[Callable[[sqlite3.Connection], None]] = []
        self._conn: sqlite3.Connection | None = None
        self._seen = vault.projection.seq
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self.lock:
            self._publish()

    def __repr__(self) -> str:
        return f"LiveVault({self.vault!r})"

    @property
    def seq(self) -> int:
        return self.vault.projection.seq

    def reader(self) -> sqlite3.Connection:
        """A new read-only connection to the live projection."""
        return connect_memdb(self.name, readonly=True)

    # -- keeping the shared projection current ---------------------------------
    def _publish(self) -> None:
        """Copy the vault's projection into the named memdb and make the vault write there."""
        private = self.vault.projection.conn
        if private is self._conn:
            return
        conn = self._conn or connect_memdb(self.name)
        try:
            private.backup(conn)
        except sqlite3.OperationalError as e:  # e.g. the memdb cap could not be lifted on this platform
            raise VaultError(f"The decrypted state of {self.vault.path} cannot be served from memory: {e}.") from e
        self.vault.projection = Projection(conn)
        private.close()
        self._conn = conn
        for fn in self.on_publish:
            fn(conn)

    def write(self, fn: Callable[[Vault], T]) -> T:
        """Run `fn(vault)` alone (appends, blob reads), then tell `on_change` what changed."""
        with self.lock:
            try:
                return fn(self.vault)
            finally:
                self._publish()  # a failed commit makes the vault reload a private projection
                self._notify()

    read = write  # reads through the Vault object need the same lock: it owns one connection

    def refresh(self) -> int:
        """Catch up with events other processes appended; returns how many."""
        with self.lock:
            self._publish()
            n = 0
            if self.vault.log.head().seq != self.vault.projection.seq:
                n = self.vault.refresh()
            self._notify()  # also reports appends made straight through `.vault` (the API holds `.lock` itself)
            return n

    def _notify(self) -> None:
        seq = self.vault.projection.seq
        if seq == self._seen:
            return
        self._seen = seq
        for fn in list(self.on_change):
            try:
                fn(seq)
            except Exception:  # a failing hook (e.g. an unreachable replica) must not stop serving
                log.exception("on_change hook %r failed at seq %d", fn, seq)

    # -- the background refresh ----------------------------------------------------
    def start(self, interval: float = REFRESH_SECONDS) -> None:
        """Poll the log in a thread so other processes' appends appear within about `interval`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), name="lifevault-refresh", daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # keep serving what we have; the next poll retries
                log.exception("refreshing %s failed", self.vault.path)

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop refreshing, close the vault (it may write an encrypted snapshot), drop the memdb."""
        self.stop()
        with self.lock:
            self.vault.close()
            if self._conn is not None:
                self._conn.close()
