"""A real `lifevault serve` on a free loopback port while CLI processes write to the same vault."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from vault import Kind, Source, Vault

from conftest import PASSPHRASE
from helpers.served import Served
from helpers.scan import files_holding

SECRET_WORDS = ["Xanthippe Quarrington", "quokka-lunch-7731", "Zebulon Imported", "Marisol Apiwrite"]


@pytest.fixture
def server(tmp_path: Path, created, lifevault_home: Path) -> Iterator[Served]:
    with Vault.open(created[0], PASSPHRASE) as v:
        v.add(Kind.CONTACT, {"name": SECRET_WORDS[0]}, Source("cli"))
    s = Served(tmp_path, created[0], lifevault_home, PASSPHRASE)
    yield s
    s.stop()


def test_cli_writes_while_serving_appear_and_nothing_is_lost(server: Served, tmp_path: Path, created, lifevault_home):
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
