"""A real `lifevault serve` pushes to every replica after changes (debounced, in the background)."""

from __future__ import annotations

from pathlib import Path

import httpx

from vault import Vault
from vault.replica import add_replica, verify

from conftest import PASSPHRASE
from helpers.served import Served, replica_head, wait_until
from helpers.replica import SECRET, assert_no_plaintext


def test_serve_pushes_after_changes(created, tmp_path: Path, lifevault_home: Path) -> None:
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
        keys = v.keys
    server = Served(tmp_path, path, lifevault_home, PASSPHRASE)
    try:
        wait_until(lambda: replica_head(tmp_path / "usb") == 0, "the start-up push", server.log)
        for seq in (1, 2):  # another process appends; the server sees it and pushes
            assert server.cli("add", "note", "--json", f'{{"title": "{SECRET} {seq}"}}').returncode == 0
            wait_until(lambda seq=seq: replica_head(tmp_path / "usb") == seq, f"the push of event {seq}", server.log)
    finally:
        server.stop()
    assert verify(path, "usb", keys).events == 2
    assert_no_plaintext(tmp_path / "usb")


def test_health_shows_failing_replica_pushes(created, tmp_path: Path, lifevault_home: Path) -> None:
    """Issue 15: a replica whose pushes fail while serving turns /api/health "degraded" (a count, no names: the
    route is open) and is named, with its error, on the owner's pages."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
        add_replica(v.log.vault_id, "gone", str(tmp_path / "gone"))
    (tmp_path / "gone").rmdir()  # an unmounted drive: every push to it fails
    server = Served(tmp_path, path, lifevault_home, PASSPHRASE)
    seen: list[dict] = []

    def degraded() -> bool:
        assert server.proc.poll() is None, server.output()
        try:
            seen.append(httpx.get(f"{server.url}/api/health", timeout=2).json())
        except httpx.TransportError:
            return False
        return seen[-1].get("status") == "degraded"

    try:
        wait_until(degraded, "health reports the failing replica", server.log)
        assert seen[-1] == {"status": "degraded", "replicas_failing": 1}
        # the other replica is pushed all the same, by its own pusher thread (not necessarily before health)
        wait_until(lambda: replica_head(tmp_path / "usb") == 0, "the push to usb", server.log)
        page = httpx.get(f"{server.url}/vault", timeout=10).text  # no password: the owner's own pages
        assert "Replica gone is not being updated:" in page and "Replica usb" not in page
        (tmp_path / "gone").mkdir()  # the drive is back: the retry succeeds and health is ok again
        wait_until(lambda: degraded() is False and seen[-1] == {"status": "ok"}, "health ok again", server.log,
                   timeout=90)
        assert "is not being updated" not in httpx.get(f"{server.url}/vault", timeout=10).text
    finally:
        server.stop()
