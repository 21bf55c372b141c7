"""A real `lifevault serve` on a free loopback port while CLI processes write to the same vault."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from vault import Kind, Source, Vault

from conftest import PASSPHRASE

SECRET_WORDS = ["Xanthippe Quarrington", "quokka-lunch-7731", "Zebulon Imported", "Marisol Apiwrite"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`lifevault serve` as a subprocess; its output is attached to any failure."""

    def __init__(self, tmp: Path, vault_path: Path, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd, self.tmpdir = tmp / "cwd", tmp / "tmpdir"
        self.cwd.mkdir()
        self.tmpdir.mkdir()
        self.env = dict(os.environ, LIFEVAULT_HOME=str(home), LIFEVAULT_PATH=str(vault_path),
                        LIFEVAULT_PASSPHRASE=PASSPHRASE, LIFEVAULT_KDF_COST="min", TMPDIR=str(self.tmpdir))
        self.log = tmp / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from vault.cli import cli; cli()", "serve", "--port", str(self.port)],
            cwd=self.cwd, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
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
                              cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120)

    def wait_for(self, path: str, text: str) -> str:
        """The page once it shows `text` (the refresh loop polls every 0.5 s); fails after 20 s."""
        deadline = time.monotonic() + 20
        while True:
            page = httpx.get(self.url + path, timeout=10).text
            if text in page:
                return page
            assert time.monotonic() < deadline, f"{path} never showed {text!r}:\n{self.output()}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # uvicorn shuts down cleanly on SIGTERM; the vault is closed
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server(tmp_path: Path, created, lifevault_home: Path) -> Iterator[Server]:
    with Vault.open(created[0], PASSPHRASE) as v:
        v.add(Kind.CONTACT, {"name": SECRET_WORDS[0]}, Source("cli"))
    s = Server(tmp_path, created[0], lifevault_home)
    yield s
    s.stop()


def files_holding(dirs: list[Path], words: list[str]) -> list[str]:
    """Every file in or under `dirs` whose bytes contain any of `words`."""
    hits = []
    for d in dirs:
        for p in [d, *d.rglob("*")] if d.is_dir() else [d]:
            if p.is_file():
                data = p.read_bytes()
                hits += [f"{p}: {w}" for w in words if w.encode() in data]
    return hits


def test_cli_writes_while_serving_appear_and_nothing_is_lost(server: Server, tmp_path: Path, created, lifevault_home):
    server.wait_for("/vault/contacts", SECRET_WORDS[0])
    added = server.cli("add", "note", "--json", '{"title": "%s", "body": "seen by the server"}' % SECRET_WORDS[1])
    assert added.returncode == 0, added.stderr + server.output()
    (tmp_path / "input").mkdir()
    vcf = tmp_path / "input" / "people.vcf"
    vcf.write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{SECRET_WORDS[2]}\r\nN:Imported;Zebulon;;;\r\nEND:VCARD\r\n")
    imported = server.cli("import", str(vcf))
    has_import = "No such command" not in imported.stderr
    if has_import:
        assert imported.returncode == 0, imported.stderr + server.output()
    server.wait_for("/vault/notes", SECRET_WORDS[1])
    if has_import:
        server.wait_for("/vault/contacts", SECRET_WORDS[2])
    server.wait_for("/-/search?q=quokka", "[quokka]-lunch-7731")  # the search index follows too

    # A write through the API while the CLI also writes.
    token = server.cli("token", "create", "serve-test")
    assert token.returncode == 0, token.stderr
    r = httpx.post(server.url + "/api/contacts", json={"name": SECRET_WORDS[3]},
                   headers={"Authorization": f"Bearer {token.stdout.strip()}"}, timeout=10)
    assert r.status_code == 201, r.text + server.output()
    server.wait_for("/vault/contacts", SECRET_WORDS[3])
    for page in ("/", "/vault/contacts", "/vault/messages", "/vault/notes", "/-/search?q=xanthippe"):
        assert httpx.get(server.url + page, timeout=10).status_code == 200

    # No plaintext anywhere on disk while serving, nor after the server has stopped.
    vault_files = [p for p in created[0].parent.iterdir() if p.name.startswith(created[0].name)]
    dirs = [*vault_files, server.cwd, server.tmpdir, lifevault_home, server.log]
    words = SECRET_WORDS if has_import else [w for w in SECRET_WORDS if w != SECRET_WORDS[2]]
    assert files_holding(dirs, words) == []
    server.stop()
    assert server.proc.returncode == 0, server.output()
    assert files_holding(dirs, words) == []

    with Vault.open(created[0], PASSPHRASE) as v:
        names = {f.get("name") for _, f in v.projection.state(Kind.CONTACT)}
        titles = {f.get("title") for _, f in v.projection.state(Kind.NOTE)}
    assert {SECRET_WORDS[0], SECRET_WORDS[3]} <= names and SECRET_WORDS[1] in titles
    if has_import:
        assert SECRET_WORDS[2] in names
