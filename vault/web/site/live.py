"""The vault a server shares: one lock, the state file its readers open, a refresh loop.

The Vault's projection lives in the encrypted state file (vault/state_file.py),
shared through SQLite's WAL: Datasette's read-only connections (web/site/state_db.py)
see every commit of the vault's writer connection, and of other processes
appending, without a copy. Every use of the Vault object itself (appends,
blobs, refresh) happens under `lock`: it owns one connection.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from vault.state.file import connect_reader
from vault.vault import Vault

T = TypeVar("T")
log = logging.getLogger("lifevault.web")
REFRESH_SECONDS = 0.5  # how often the log's head is checked for other processes' appends


class LiveVault:
    """An unlocked vault served to many readers; `write` and `refresh` keep them current.

    It is also the API's holder: `.vault` used only while holding `.lock`.

    `on_change` callbacks get the new head seq after every change the server sees
    (its own writes or another process's appends): the hook for replica pushes.
    """

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.lock = threading.RLock()
        self.state_path: Path = vault.state_path
        self.state_key: bytes = vault.keys.state
        self.on_change: list[Callable[[int], None]] = []
        self._seen = vault.projection.seq  # opens (or rebuilds) the state file now, before serving
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LiveVault({self.vault!r})"

    @property
    def seq(self) -> int:
        return self.vault.projection.seq

    def reader(self) -> Any:
        """A new read-only connection to the state file."""
        return connect_reader(self.state_path, self.state_key)

    def write(self, fn: Callable[[Vault], T]) -> T:
        """Run `fn(vault)` alone (appends, blob reads), then tell `on_change` what changed."""
        with self.lock:
            try:
                return fn(self.vault)
            finally:
                self._notify()

    read = write  # reads through the Vault object need the same lock: it owns one connection

    def refresh(self) -> int:
        """Catch up with events other processes appended; returns how many."""
        with self.lock:
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
        """Stop refreshing and close the vault."""
        self.stop()
        with self.lock:
            self.vault.close()
