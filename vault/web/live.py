"""The vault a server shares: one lock, the projection in a named in-memory database, a refresh loop.

The Vault's projection already lives in a SQLite "memdb" database with a name,
so any number of read-only connections (Datasette's) open it by that name and
see it live while the vault keeps writing to it; memdb never touches disk. Every use of the Vault object
itself (appends, blobs, refresh) happens under `lock`: it owns one connection.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable, TypeVar

from .. import memdb
from ..errors import VaultError
from ..projection import Projection
from ..vault import Vault

T = TypeVar("T")
log = logging.getLogger("lifevault.web")
REFRESH_SECONDS = 0.5  # how often the log's head is checked for other processes' appends


class LiveVault:
    """An unlocked vault served to many readers; `write` and `refresh` keep them current.

    It is also the API's holder: `.vault` used only while holding `.lock`.

    `on_change` callbacks get the new head seq after every change the server sees
    (its own writes or another process's appends): the hook for replica pushes.
    `on_publish` callbacks get the projection's writer connection whenever it is
    (re)placed in shared memory, so derived indexes can attach to it.
    """

    def __init__(self, vault: Vault) -> None:
        if vault.state_file:
            raise VaultError(f"{vault.path} is open with its state in a file; serving needs it in memory.")
        self.vault = vault
        self.lock = threading.RLock()
        self.name = vault.projection.name  # readers open it by name; a reloaded projection is copied into it
        self.on_change: list[Callable[[int], None]] = []
        self.on_publish: list[Callable[[sqlite3.Connection], None]] = []
        self._conn = vault.projection.conn
        vault.projection.eager_live = True  # readers see the live tables directly
        vault.projection.refresh_live()
        self._seen = vault.projection.seq
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LiveVault({self.vault!r})"

    @property
    def seq(self) -> int:
        return self.vault.projection.seq

    def reader(self) -> sqlite3.Connection:
        """A new read-only connection to the live projection."""
        return memdb.connect(self.name, readonly=True)

    # -- keeping the shared projection current ---------------------------------
    def _publish(self) -> None:
        """After the vault reloaded its projection (a failed commit), copy it into the served memdb."""
        fresh = self.vault.projection.conn
        if fresh is self._conn:
            return
        try:
            self.vault.projection.refresh_live()
            fresh.backup(self._conn)
        except sqlite3.OperationalError as e:  # e.g. the memdb cap could not be lifted on this platform
            raise VaultError(f"The decrypted state of {self.vault.path} cannot be served from memory: {e}.") from e
        self.vault.projection = Projection(self.name, self._conn)
        self.vault.projection.eager_live = True
        fresh.close()
        for fn in self.on_publish:
            fn(self._conn)  # the served projection's writer connection, as before the reload

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
            self._conn.close()
