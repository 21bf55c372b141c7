"""Background pushing for a long-running process (`lifevault serve`).

`Pusher.notify_changed()` is cheap and may be called after every write; a
daemon thread waits until changes have been quiet for `debounce` seconds, then
pushes to every replica over its own connection to the vault file. A replica
that fails is retried with exponential back-off (up to `max_backoff`); the
others are not held up. Failures never touch the vault.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import schema
from ..crypto import Keys
from ..errors import VaultError
from ..log import EventLog
from . import registry
from .errors import UnknownReplica
from .sync import PushResult, push

logger = logging.getLogger("lifevault.replica")


@dataclass
class _State:
    due: float = 0.0  # monotonic time of the next attempt; 0 = not due
    failures: int = 0
    last_error: str | None = None
    last_result: PushResult | None = None


class Pusher:
    """Debounced, retrying pushes to every replica of one vault file."""

    def __init__(self, vault_path: Path | str, keys: Keys, *, debounce: float = 2.0,
                 first_backoff: float = 5.0, max_backoff: float = 300.0) -> None:
        self.path, self._keys = Path(vault_path), keys
        self.debounce, self.first_backoff, self.max_backoff = debounce, first_backoff, max_backoff
        self._wake = threading.Condition()
        self._changed_at: float | None = None
        self._stopping = False
        self.states: dict[str, _State] = {}
        self._thread = threading.Thread(target=self._run, name="lifevault-pusher", daemon=True)

    def start(self) -> "Pusher":
        self._thread.start()
        return self

    def notify_changed(self) -> None:
        """Something was written: push everywhere once writes have been quiet for `debounce` seconds."""
        with self._wake:
            self._changed_at = time.monotonic()
            self._wake.notify()

    def stop(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)

    def _next_wait(self) -> float | None:
        now, waits = time.monotonic(), []
        if self._changed_at is not None:
            waits.append(self._changed_at + self.debounce - now)
        waits += [s.due - now for s in self.states.values() if s.due]
        return max(min(waits), 0.0) if waits else None

    def _run(self) -> None:
        conn = schema.connect(self.path)
        try:
            log = EventLog(conn, self.path, self._keys)
            while True:
                with self._wake:
                    while not self._stopping and (wait := self._next_wait()) != 0.0:
                        self._wake.wait(wait)
                    if self._stopping:
                        return
                    if self._changed_at is not None and time.monotonic() >= self._changed_at + self.debounce:
                        self._changed_at = None
                        for rep in registry.replicas(log.vault_id):
                            self.states.setdefault(rep.name, _State()).due = time.monotonic()
                self._push_due(log)
        finally:
            conn.close()

    def _push_due(self, log: EventLog) -> None:
        for name, state in list(self.states.items()):
            if not state.due or state.due > time.monotonic():
                continue
            try:
                state.last_result = push(log, name)
                state.due, state.failures, state.last_error = 0.0, 0, None
            except UnknownReplica:
                del self.states[name]  # removed meanwhile
            except (VaultError, OSError) as e:  # includes an unreachable remote: retry later, never touch the vault
                state.failures += 1
                state.last_error = str(e)
                backoff = min(self.first_backoff * 2 ** (state.failures - 1), self.max_backoff)
                state.due = time.monotonic() + backoff
                logger.warning("push to %s failed (retry in %.0f s): %s", name, backoff, e)


def push_on_change(live: Any, **options: float) -> Pusher:
    """Start a Pusher for a served vault and hook it to `live.on_change` (a vault.web LiveVault, or
    anything with `.vault` and an `.on_change` list); one push starts now to catch up."""
    pusher = Pusher(live.vault.path, live.vault.keys, **options).start()
    live.on_change.append(lambda seq: pusher.notify_changed())
    pusher.notify_changed()
    return pusher
