"""Kinds as a registry (vault/domain/kinds.py): one KindSpec declares a kind, and CLI, API and restore follow."""

from __future__ import annotations

import json
import pickle
import sqlite3
import warnings
from pathlib import Path
from typing import Iterator

import pytest

from vault import FieldSpec, Kind, KindSpec, Vault, register_kind, unregister_kind
from vault.domain.events import kind_of, new_record_id
from vault.domain.contacts import typed
from vault.domain.kinds import from_texts, record_id_pattern
from vault.errors import InvalidRecord
from vault.store import tokens
from vault.web import LiveVault
from vault.web.site.server import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx2
    from fastapi.testclient import TestClient

from conftest import PASSPHRASE

BOOKMARK = KindSpec(
    "bookmark", "b", 200,
    (FieldSpec("url", "text", "url", "The address."), FieldSpec("title", "text", "title"),
     FieldSpec("tags", "texts", "tag", "A tag (repeatable).")),
    fts=("title", "url"), title_fields=("title",),
)


@pytest.fixture
def bookmark() -> Iterator[Kind]:
    """The throwaway kind, registered for one test and taken back after it, whatever happens."""
    kind = register_kind(BOOKMARK)
    try:
        yield kind
    finally:
        unregister_kind("bookmark")
    assert "bookmark" not in Kind and Kind.by_prefix("b") is None


def test_the_built_in_kinds_keep_their_names_prefixes_codes_and_tables() -> None:
    # the codes are in every stored event header: vaults written before the registry must still open
    assert [(str(k), k.prefix, k.code, k.table) for k in Kind] == [
        ("contact", "c", 1, "contacts"), ("message", "m", 2, "messages"), ("note", "n", 3, "notes")]
    assert Kind("contact") is Kind.CONTACT and Kind.CONTACT == "contact" and Kind.NOTE.value == "note"
    assert pickle.loads(pickle.dumps(Kind.MESSAGE)) is Kind.MESSAGE
    assert json.dumps({"kind": Kind.NOTE}) == '{"kind": "note"}'


def test_a_kind_cannot_take_another_kinds_prefix_code_or_table() -> None:
    fields = (FieldSpec("when"),)
    with pytest.raises(ValueError, match="prefix is already kind 'contact'"):
        register_kind(KindSpec("calendar", "c", 201, fields, fts=("when",)))  # `value[0]` would have given c_
    with pytest.raises(ValueError, match="code is already kind 'note'"):
        register_kind(KindSpec("calendar", "cal", 3, fields, fts=("when",)))
    with pytest.raises(ValueError, match="table is already kind 'message'"):
        register_kind(KindSpec("calendar", "cal", 201, fields, fts=("when",), table="messages"))
    with pytest.raises(ValueError, match="not among its fields"):
        register_kind(KindSpec("calendar", "cal", 201, fields, fts=("where",)))
    with pytest.raises(ValueError, match="field names must be distinct"):
        register_kind(KindSpec("calendar", "cal", 201, (FieldSpec("id"),), fts=("id",)))
    with pytest.raises(ValueError, match="registered at run time"):
        unregister_kind("contact")
    assert "calendar" not in Kind and len(Kind) == 3


def test_unknown_kinds_and_ids_are_one_sentence() -> None:
    with pytest.raises(InvalidRecord, match=r"^'event' is not a kind of record; the kinds are contact, message and note\.$"):
        Kind("event")
    with pytest.raises(InvalidRecord, match=r"^'b_abc' is not a record id \(like c_…, m_… or n_…\)\.$"):
        kind_of("b_abc")


def test_a_registered_kind_has_ids_of_its_own(bookmark: Kind) -> None:
    rid = new_record_id(bookmark)
    assert rid.startswith("b_") and kind_of(rid) is bookmark
    assert "b" in record_id_pattern() and list(Kind)[-1] is bookmark


def test_a_throwaway_kind_round_trips_through_cli_api_and_restore(bookmark: Kind, run, created, tmp_path: Path) -> None:
    # CLI: its declared flags (a repeatable one for the list), then show
    r = run("add", "bookmark", "--url", "https://example.org/a", "--title", "Example", "--tag", "web", "--tag", "read")
    assert r.exit_code == 0, r.output
    bid = r.stdout.strip()
    assert kind_of(bid) is bookmark
    shown = json.loads(run("show", bid, "--json").stdout)
    assert shown == {"id": bid, "url": "https://example.org/a", "title": "Example", "tags": ["web", "read"]}
    r = run("add", "bookmark", "--json", '{"titel": "x"}')
    assert r.exit_code == 1 and r.output == (
        "Error: Bookmark field 'titel' is unknown: a bookmark has url, title, tags "
        "(other fields are kept only when asked for: allow_extra, --allow-extra).\n")

    # API, under /api of the served app, with a token
    with Vault.open(created[0], PASSPHRASE) as vault:
        token = tokens.create_token(vault.log, "phone")
        h = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(LiveVault(vault)), base_url="http://127.0.0.1") as client:
            r = client.post("/api/bookmarks", json={"url": "https://example.org/b", "title": "Second"}, headers=h)
            assert r.status_code == 201, r.text
            second = r.json()["id"]
            assert second.startswith("b_")
            r = client.get(f"/api/bookmarks/{second}", headers=h)
            assert r.status_code == 200 and r.json()["fields"] == {"url": "https://example.org/b", "title": "Second"}
            assert r.json()["kind"] == "bookmark"
            r = client.get("/api/bookmarks", headers=h)
            assert sorted(x["id"] for x in r.json()["records"]) == sorted([bid, second])
            r = client.post("/api/bookmarks", json={"url": 42}, headers=h)
            assert r.status_code == 422 and r.json()["detail"].startswith("Bookmark field 'url' must be text, not a number")
        head = vault.log.head().seq

    # restore: the restored file has the kind's table, columns and full-text index
    out = tmp_path / "restored.db"
    r = run("restore", "--at", f"seq:{head}", "--out", str(out))
    assert r.exit_code == 0, r.output
    db = sqlite3.connect(out)
    rows = db.execute("SELECT id, url, title, tags FROM bookmarks ORDER BY title").fetchall()
    assert rows == [(bid, "https://example.org/a", "Example", '["web","read"]'),
                    (second, "https://example.org/b", "Second", None)]
    assert db.execute("SELECT rowid FROM bookmarks_fts WHERE bookmarks_fts MATCH 'Second'").fetchall()
    db.close()


def test_what_a_person_types_becomes_the_fields_value() -> None:
    """The CLI's flags use it, and so can a form: one text, a list, or typed values for a contact."""
    by_name = Kind.CONTACT.spec.by_name
    assert from_texts(by_name["name"], ["Ada"]) == "Ada"
    assert from_texts(by_name["groups"], ["a", "b"]) == ["a", "b"]
    assert from_texts(by_name["emails"], ["ada@example.org"]) == [typed("ada@example.org")]
    with pytest.raises(ValueError, match="not entered as text"):
        from_texts(by_name["photo"], ["me.jpg"])
