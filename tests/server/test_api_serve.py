"""The API over real HTTP: a real `lifevault serve` on a free loopback port, tokens made and revoked by the CLI."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from vault import Kind, Vault

from conftest import PASSPHRASE
from helpers.served import Served
from helpers.scan import files_holding

CANARIES = ["Ottoline Apiserve", "upload-canary-4417", "batch-canary-9902"]


@pytest.fixture
def server(tmp_path: Path, created, lifevault_home: Path) -> Iterator[Served]:
    s = Served(tmp_path, created[0], lifevault_home, PASSPHRASE)
    yield s
    s.stop()


def _raw_request(port: int, head: str) -> str:
    """Send only a request head (no body) and read the status line: what a server answers before reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_tokens_writes_uploads_and_limits_over_real_http(server: Served, created, lifevault_home: Path) -> None:
    made = server.cli("token", "create", "phone")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    h = {"Authorization": f"Bearer {token}"}
    ao = server.cli("token", "create", "scanner", "--append-only").stdout.strip()
    api = server.url + "/api"

    assert httpx.get(api + "/contacts", timeout=10).status_code == 401
    assert httpx.get(api + "/docs", timeout=10).status_code == 200
    r = httpx.post(api + "/contacts", json={"name": CANARIES[0]}, headers={"Authorization": f"Bearer {ao}"}, timeout=10)
    assert r.status_code == 202 and r.json()["status"] == "accepted", r.text + server.output()
    assert httpx.get(api + f"/contacts/{r.json()['id']}", headers={"Authorization": f"Bearer {ao}"},
                     timeout=10).status_code == 403

    batch = {"batch_id": "real-1", "operations": [{"op": "create", "kind": "note", "fields": {"title": CANARIES[2]}}]}
    first = httpx.post(api + "/batch", json=batch, headers=h, timeout=10).json()
    again = httpx.post(api + "/batch", json=batch, headers=h, timeout=10).json()
    assert again == {**first, "replayed": True}

    card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{CANARIES[1]}\r\nEND:VCARD\r\n".encode()
    chunks = iter([card[:20], card[20:]])  # sent chunked, without a length
    r = httpx.post(api + "/import", params={"filename": "people.vcf"}, content=chunks, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["created"] == 1, r.text + server.output()
    server.wait_for("/vault/contacts", CANARIES[1])

    status = _raw_request(server.port, f"POST /api/import?filename=huge.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       f"Authorization: Bearer {token}\r\nContent-Length: {10**12}\r\n\r\n")
    assert " 413 " in status, status + server.output()
    status = _raw_request(server.port, "POST /api/notes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
    assert " 401 " in status, status

    assert server.cli("token", "revoke", "phone").returncode == 0  # another process, while serving
    assert httpx.get(api + "/changes", headers=h, timeout=10).status_code == 401

    dirs = [server.cwd, server.tmpdir, lifevault_home, server.log,
            *[p for p in created[0].parent.iterdir() if p.name.startswith(created[0].name)]]
    assert files_holding(dirs, CANARIES) == []
    server.stop()
    assert server.proc.returncode == 0, server.output()
    with Vault.open(created[0], PASSPHRASE) as v:
        names = {f.get("name") for _, f in v.projection.state(Kind.CONTACT)}
        titles = [f.get("title") for _, f in v.projection.state(Kind.NOTE)]
    assert {CANARIES[0], CANARIES[1]} <= names and titles.count(CANARIES[2]) == 1
