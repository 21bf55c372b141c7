"""A real `lifevault serve` pushes to every replica after changes (debounced, in the background)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from vault import Vault
from vault.replica import add_replica, verify
from vault.replica.manifest import parse

from conftest import PASSPHRASE
from test_replica import SECRET, assert_no_plaintext


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica_head(folder: Path) -> int:
    try:
        return parse((folder / "manifest.json").read_bytes(), "test").head_seq
    except FileNotFoundError:
        return -1


def _wait(cond, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}\n{log.read_text(errors='replace')}"
        time.sleep(0.2)


def test_serve_pushes_after_changes(created, tmp_path: Path, lifevault_home: Path) -> None:
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
        keys = v.keys
    port, log = _port(), tmp_path / "serve.log"
    env = dict(os.environ, LIFEVAULT_HOME=str(lifevault_home), LIFEVAULT_PATH=str(path),
               LIFEVAULT_PASSPHRASE=PASSPHRASE, LIFEVAULT_KDF_COST="min")
    cmd = [sys.executable, "-c", "from vault.cli import cli; cli()"]
    proc = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait(up, "the server answered", log)
        _wait(lambda: _replica_head(tmp_path / "usb") == 0, "the start-up push", log)
        for seq in (1, 2):  # another process appends; the server sees it and pushes
            subprocess.run([*cmd, "add", "note", "--json", f'{{"title": "{SECRET} {seq}"}}'], env=env, check=True,
                           capture_output=True)
            _wait(lambda: _replica_head(tmp_path / "usb") == seq, f"the push of event {seq}", log)
    finally:
        proc.terminate()
        proc.wait(30)
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
    port, log = _port(), tmp_path / "serve.log"
    env = dict(os.environ, LIFEVAULT_HOME=str(lifevault_home), LIFEVAULT_PATH=str(path),
               LIFEVAULT_PASSPHRASE=PASSPHRASE, LIFEVAULT_KDF_COST="min")
    proc = subprocess.Popen([sys.executable, "-c", "from vault.cli import cli; cli()", "serve", "--port", str(port)],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    seen: list[dict] = []

    def degraded() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            seen.append(httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json())
        except httpx.TransportError:
            return False
        return seen[-1].get("status") == "degraded"

    try:
        _wait(degraded, "health reports the failing replica", log)
        assert seen[-1] == {"status": "degraded", "replicas_failing": 1}
        assert _replica_head(tmp_path / "usb") == 0  # the other replica was pushed all the same
        page = httpx.get(f"http://127.0.0.1:{port}/vault", timeout=10).text  # no password: the owner's own pages
        assert "Replica gone is not being updated:" in page and "Replica usb" not in page
        (tmp_path / "gone").mkdir()  # the drive is back: the retry succeeds and health is ok again
        _wait(lambda: degraded() is False and seen[-1] == {"status": "ok"}, "health ok again", log, timeout=90)
        assert "is not being updated" not in httpx.get(f"http://127.0.0.1:{port}/vault", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(30)
