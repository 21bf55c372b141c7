"""A real `lifevault serve` on a free loopback port, for tests that need real HTTP or a real browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

from vault.replica.manifest import parse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], bool], what: str, log: Path, timeout: float = 60) -> None:
    """Poll `cond` until it holds; after `timeout` s fail, naming `what` and attaching the server's log."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}\n{log.read_text(errors='replace')}"
        time.sleep(0.2)


def replica_head(folder: Path) -> int:
    """The last event a folder replica's manifest names (-1 before its first push)."""
    try:
        return parse((folder / "manifest.json").read_bytes(), "test").head_seq
    except FileNotFoundError:
        return -1


class Served:
    """`lifevault serve ARGS…` as a subprocess; `output()` is its log, for failure messages.

    It runs in a working folder and TMPDIR of its own under `tmp` (`.cwd`, `.tmpdir`), so a test can search
    everything the server could have written."""

    def __init__(self, tmp: Path, vault_path: Path, home: Path, passphrase: str, *args: str,
                 umask: int = -1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd, self.tmpdir = tmp / f"serve-{self.port}-cwd", tmp / f"serve-{self.port}-tmp"
        self.cwd.mkdir()
        self.tmpdir.mkdir()
        self.env = dict(os.environ, LIFEVAULT_HOME=str(home), LIFEVAULT_PATH=str(vault_path),
                        LIFEVAULT_PASSPHRASE=passphrase, LIFEVAULT_KDF_COST="min", TMPDIR=str(self.tmpdir))
        self.log = tmp / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from vault.cli import cli; cli()", "serve", "--port", str(self.port), *args],
            cwd=self.cwd, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, umask=umask)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"server exited:\n{self.output()}"
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server did not answer in 60 s:\n{self.output()}"
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from vault.cli import cli; cli()", *args],
                              cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120, check=False)

    def wait_for(self, path: str, text: str) -> str:
        """The page once it shows `text` (the refresh loop polls every 0.5 s); fails after 20 s."""
        deadline = time.monotonic() + 20
        while True:
            page = httpx.get(self.url + path, timeout=10).text
            if text in page:
                return page
            assert time.monotonic() < deadline, f"{path} never showed {text!r}:\n{self.output()}"
            time.sleep(0.2)

    def raw(self, request: bytes) -> bytes:
        """Send bytes as they are (any Host header) and return the whole answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(request)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # uvicorn shuts down cleanly on SIGTERM; the vault is closed
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
