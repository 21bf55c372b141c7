"""Background pushing for a long-running process (`lifevault serve`).

`Pusher.notify_changed()` is cheap and may be called after every write; a
daemon thread waits until changes have been quiet for `debounce` seconds, then
marks every replica due. Each replica is pushed on a thread of its own, over
its own connection to the vault file, so a slow or frozen remote (whose rclone
calls time out on their own) never delays the others. A replica that fails is
retried with exponential back-off (up to `max_backoff`). Failures never touch
the vault.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.store import schema
from vault.store.crypto import Keys
from vault.errors import VaultError
from vault.store.log import EventLog
from vault.replica import registry
from vault.replica.errors import UnknownReplica
from vault.replica.sync import PushResult, push

logger = logging.getLogger("lifevault.replica")
_running: dict[str, "Pusher"] = {}  # by vault file, so a health check can ask without holding the Pusher


def push_failures(vault_path: Path | str) -> dict[str, str]:
    """Replica name -> the last push error, for each replica the running Pusher of this vault file currently
    fails to push to (empty if none runs)."""
    pusher = _running.get(str(Path(vault_path).resolve()))
    if pusher is None:
        return {}
    with pusher._wake:
        return {name: s.last_error for name, s in pusher.states.items() if s.last_error is not None}


def failing_replicas(vault_path: Path | str) -> int:
    """How many replicas the running Pusher of this vault file currently fails to push to (0 if none runs)."""
    return len(push_failures(vault_path))


@dataclass
class _State:
    due: float = 0.0  # monotonic time of the next attempt; 0 = not due
    running: bool = False  # a push to this replica is under way on its own thread
    failures: int = 0
    last_error: str | None = None
    last_result: PushResult | None = None


class Pusher:
    """Debounced, retrying pushes to every replica of one vault file, each replica on its own thread."""

    def __init__(self, vault_path: Path | str, keys: Keys, *, debounce: float = 2.0,
                 first_backoff: float = 5.0, max_backoff: float = 300.0) -> None:
        self.path, self._keys = Path(vault_path), keys
        self.debounce, self.first_backoff, self.max_backoff = debounce, first_backoff, max_backoff
        self._wake = threading.Condition()
        self._changed_at: float | None = None
        self._stopping = False
        self.states: dict[str, _State] = {}
        self._workers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="lifevault-pusher", daemon=True)

    def start(self) -> Pusher:
        _running[str(self.path.resolve())] = self
        self._thread.start()
        return self

    def notify_changed(self) -> None:
        """Something was written: push everywhere once writes have been quiet for `debounce` seconds."""
        with self._wake:
            self._changed_at = time.monotonic()
            self._wake.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling; wait (up to `timeout` in all) for pushes under way, which a frozen remote may outlast."""
        _running.pop(str(self.path.resolve()), None)
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
            workers = list(self._workers)
        deadline = time.monotonic() + timeout
        for t in [self._thread, *workers]:
            t.join(max(deadline - time.monotonic(), 0.0))

    def _next_wait(self) -> float | None:
        now, waits = time.monotonic(), []
        if self._changed_at is not None:
            waits.append(self._changed_at + self.debounce - now)
        waits += [s.due - now for s in self.states.values() if s.due and not s.running]
        return max(min(waits), 0.0) if waits else None

    def _run(self) -> None:
        with self._wake:
            while True:
                while not self._stopping and (wait := self._next_wait()) != 0.0:
                    self._wake.wait(wait)
                if self._stopping:
                    return
                if self._changed_at is not None and time.monotonic() >= self._changed_at + self.debounce:
                    self._changed_at = None
                    for rep in registry.replicas(self._vault_id()):
                        self.states.setdefault(rep.name, _State()).due = time.monotonic()
                self._start_due()

    def _vault_id(self) -> bytes:
        conn = schema.connect(self.path)
        try:
            return EventLog(conn, self.path, None).vault_id
        finally:
            conn.close()

    def _start_due(self) -> None:
        """Start a thread for each replica that is due and not being pushed already (called under the lock)."""
        now = time.monotonic()
        for name, state in self.states.items():
            if state.due and state.due <= now and not state.running:
                state.due, state.running = 0.0, True
                worker = threading.Thread(target=self._push_one, args=(name, state), name=f"lifevault-push-{name}",
                                          daemon=True)
                self._workers = [t for t in self._workers if t.is_alive()] + [worker]
                worker.start()

    def _push_one(self, name: str, state: _State) -> None:
        result, error, gone = None, None, False
        try:
            conn = schema.connect(self.path)
            try:
                result = push(EventLog(conn, self.path, self._keys), name)
            finally:
                conn.close()
        except UnknownReplica:
            gone = True  # removed meanwhile
        except (VaultError, OSError) as e:  # includes an unreachable remote: retry later, never touch the vault
            error = e
        with self._wake:
            state.running = False
            if gone:
                self.states.pop(name, None)
            elif error is None:
                state.last_result, state.failures, state.last_error = result, 0, None
            else:
                state.failures += 1
                state.last_error = str(error)
                backoff = min(self.first_backoff * 2 ** (state.failures - 1), self.max_backoff)
                state.due = max(state.due, time.monotonic() + backoff) if state.due else time.monotonic() + backoff
                logger.warning("push to %s failed (retry in %.0f s): %s", name, backoff, error)
            self._wake.notify_all()


def push_on_change(live: Any, **options: float) -> Pusher:
    """Start a Pusher for a served vault and hook it to `live.on_change` (a vault.web LiveVault, or
    anything with `.vault` and an `.on_change` list); one push starts now to catch up."""
    pusher = Pusher(live.vault.path, live.vault.keys, **options).start()
    live.on_change.append(lambda seq: pusher.notify_changed())
    pusher.notify_changed()
    return pusher
