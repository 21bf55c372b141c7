"""A schema per kind: unknown fields, wrong types and empty records are refused on every write path, in one
sentence naming the kind's fields, unless the caller asks for extras; CLI flags made from the kind's spec."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from vault import Kind, Source, Vault
from vault.demo import DEMO_PASSPHRASE, HISTORY, build_demo
from vault.domain.contacts import typed
from vault.domain.instants import Instant
from vault.errors import InvalidRecord
from vault.store import tokens
from vault.web.api.routes import VaultHolder, create_api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx2
    from fastapi.testclient import TestClient

SRC = Source("cli")
CONTACT_FIELDS = ("name, given_name, family_name, nickname, emails, phones, addresses, birthday, organization, title, "
                  "urls, groups, note, photo, impps")
UNKNOWN = (f"Contact field 'nmae' is unknown: a contact has {CONTACT_FIELDS} "
           "(other fields are kept only when asked for: allow_extra, --allow-extra).")
WRONG_TYPE = f"Contact field 'name' must be text, not a number: a contact has {CONTACT_FIELDS}."
EMPTY = f"The contact is empty: a contact has {CONTACT_FIELDS}."


def refused(vault: Vault, call, message: str) -> None:
    """The call raises InvalidRecord with exactly `message` and appends nothing."""
    head = vault.log.head().seq
    with pytest.raises(InvalidRecord) as e:
        call()
    assert str(e.value) == message
    assert vault.log.head().seq == head


@pytest.mark.parametrize("fields,message", [
    ({"nmae": "Ada"}, UNKNOWN), ({"name": 42}, WRONG_TYPE), ({}, EMPTY), ({"name": " ", "emails": []}, EMPTY),
    ({"name": "Ada", "emails": "ada@example.org"}, "Contact field 'emails' must be a list of text or of "
     f'{{"value": text, ...}} objects, not text: a contact has {CONTACT_FIELDS}.'),
    ({"name": "Ada", "photo": "me.jpg"}, "Contact field 'photo' must be an attachment ({\"blob\": id, ...}), not text: "
     f"a contact has {CONTACT_FIELDS}."),
])
def test_the_library_refuses_what_the_schema_does_not_know(vault: Vault, fields: dict, message: str) -> None:
    refused(vault, lambda: vault.add(Kind.CONTACT, fields, SRC), message)


def test_extras_are_kept_when_asked_for_and_patches_are_checked(vault: Vault) -> None:
    cid = vault.add(Kind.CONTACT, {"name": "Ada", "shoe_size": 38}, SRC, allow_extra=True)
    assert vault.get(cid) == {"name": "Ada", "shoe_size": 38}
    refused(vault, lambda: vault.update(cid, {"nmae": "Ada L."}, SRC), UNKNOWN)
    refused(vault, lambda: vault.update(cid, {"name": 42}, SRC), WRONG_TYPE)
    vault.update(cid, {"shoe_size": None, "emails": ["ada@example.org", typed("a@x.org", ["work"])]}, SRC)
    assert vault.get(cid) == {"name": "Ada", "emails": ["ada@example.org", typed("a@x.org", ["work"])]}
    # a revert brings back what was stored, extras included: history is not held to today's schema
    vault.revert(cid, Instant(seq=vault.log.head().seq - 1), SRC)
    assert vault.get(cid) == {"name": "Ada", "shoe_size": 38}


def test_each_kind_checks_its_own_types(vault: Vault) -> None:
    note_fields = "title, body, tags, created, updated, attachments"
    refused(vault, lambda: vault.add(Kind.NOTE, {"title": "t", "tags": "home"}, SRC),
            f"Note field 'tags' must be a list of text, not text: a note has {note_fields}.")
    refused(vault, lambda: vault.add(Kind.MESSAGE, {"subject": "s", "to": [1]}, SRC),
            "Message field 'to' must be a list of text, not a list: a message has kind, thread, from, to, cc, date, "
            "subject, body, attachments, message_id, in_reply_to, bcc, reply_to, flags, headers, date_source, "
            "shares_source_id_with.")
    assert vault.add(Kind.MESSAGE, {"subject": "s", "headers": [["X-A", "1"]]}, SRC).startswith("m_")


# -- CLI ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["add", "contact", "--json", '{"nmae": "Ada"}'], UNKNOWN),
    (["add", "contact", "--json", '{"name": 42}'], WRONG_TYPE),
    (["add", "contact"], EMPTY),
])
def test_the_cli_refuses_in_one_sentence(run, created, args: list[str], message: str) -> None:
    before = created[0].read_bytes()
    r = run(*args)
    assert r.exit_code == 1 and r.output == f"Error: {message}\n"
    assert created[0].read_bytes() == before


def test_the_cli_keeps_extras_only_when_asked(run) -> None:
    cid = run("add", "contact", "--json", '{"name": "Ada", "pronouns": "she"}', "--allow-extra").stdout.strip()
    r = run("edit", cid, "--json", '{"pronunciation": "AY-da"}')
    assert r.exit_code == 1 and "Contact field 'pronunciation' is unknown" in r.output
    assert run("edit", cid, "--json", '{"pronunciation": "AY-da"}', "--allow-extra").exit_code == 0
    assert json.loads(run("show", cid, "--json").stdout) == {"id": cid, "name": "Ada", "pronouns": "she",
                                                            "pronunciation": "AY-da"}


def test_add_contact_and_note_with_flags(run) -> None:
    r = run("add", "contact", "--name", "Ada Lovelace", "--email", "ada@example.org", "--email", "ada@work.example",
            "--phone", "+44 20 7946 0000", "--birthday", "1815-12-10")
    assert r.exit_code == 0, r.output
    cid = r.stdout.strip()
    assert json.loads(run("show", cid, "--json").stdout) == {
        "id": cid, "name": "Ada Lovelace", "birthday": "1815-12-10",
        "emails": [typed("ada@example.org"), typed("ada@work.example")], "phones": [typed("+44 20 7946 0000")]}
    # --json and flags together: a flag wins over the same field in the JSON
    r = run("add", "note", "--json", '{"title": "Draft", "body": "x"}', "--title", "Groceries", "--tag", "home",
            "--tag", "food")
    nid = r.stdout.strip()
    assert json.loads(run("show", nid, "--json").stdout) == {"id": nid, "title": "Groceries", "body": "x",
                                                            "tags": ["home", "food"]}
    help_text = run("add", "note", "--help").stdout
    assert "--title" in help_text and "--tag" in help_text and "Example: lifevault add note" in help_text


# -- API ------------------------------------------------------------------------------------------------------
@pytest.fixture
def api(vault: Vault) -> Iterator[tuple[TestClient, dict[str, str]]]:
    h = {"Authorization": f"Bearer {tokens.create_token(vault.log, 'phone')}"}
    with TestClient(create_api(VaultHolder(vault))) as client:
        yield client, h


@pytest.mark.parametrize("body,message", [({"nmae": "Ada"}, UNKNOWN), ({"name": 42}, WRONG_TYPE), ({}, EMPTY)])
def test_the_api_refuses_in_one_sentence(vault: Vault, api, body: dict, message: str) -> None:
    client, h = api
    r = client.post("/contacts", json=body, headers=h)
    assert r.status_code == 422 and r.json() == {"detail": message}
    cid = vault.add(Kind.CONTACT, {"name": "Ada"}, SRC)
    if body:
        r = client.patch(f"/contacts/{cid}", json=body, headers=h)
        assert r.status_code == 422 and r.json() == {"detail": message}
    r = client.post("/batch", json={"batch_id": "b1", "operations": [
        {"op": "create", "kind": "note", "fields": {"title": "fine"}}, {"op": "create", "kind": "contact", "fields": body}]},
        headers=h)
    assert r.status_code == 422
    assert r.json()["detail"] == f"Operation 2 (create) was refused, so nothing in the batch was stored: {message}"
    assert vault.stats()["notes"] == 0


def test_the_api_keeps_extras_when_asked(vault: Vault, api) -> None:
    client, h = api
    r = client.post("/contacts", json={"name": "Ada", "pronouns": "she"}, params={"allow_extra": "true"}, headers=h)
    assert r.status_code == 201
    assert vault.get(r.json()["id"]) == {"name": "Ada", "pronouns": "she"}
    r = client.post("/batch", json={"batch_id": "b2", "operations": [
        {"op": "create", "kind": "note", "fields": {"title": "t", "mood": "fine"}, "allow_extra": True}]}, headers=h)
    assert r.status_code == 200, r.text


# -- the demo -------------------------------------------------------------------------------------------------
def test_the_demo_history_spans_two_years_and_ends_today(tmp_path: Path) -> None:
    build_demo(tmp_path, records=40, kdf_cost="min")
    with Vault.open(tmp_path / "demo.db", DEMO_PASSPHRASE) as vault:
        stamps = [r.recorded_at for r in vault.events()]
    first, last = (datetime.fromtimestamp(us / 1e6, timezone.utc) for us in (stamps[0], stamps[-1]))
    now = datetime.now(timezone.utc)
    assert last.astimezone().date() == now.astimezone().date() or now - last < timedelta(minutes=5)
    assert now - last < timedelta(hours=1)
    assert abs((last - first) - HISTORY) < timedelta(minutes=1)
    assert HISTORY == timedelta(days=730)  # README: "a demo vault with two years of history"
    assert "two years of history" in (Path(__file__).parent.parent.parent / "README.md").read_text()
