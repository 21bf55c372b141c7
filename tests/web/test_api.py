"""The /api FastAPI app, in process: every route, the 401/403 matrix, validation, 413, batches, as-of reads."""

from __future__ import annotations

import io
import json
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.routing import APIRoute

from vault import Kind, Source, Vault
from vault.errors import NotFound
from vault.formats.importing import import_file
from vault.store import tokens
from vault.web.api.routes import VaultHolder, create_api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx2
    from fastapi.testclient import TestClient

from conftest import PASSPHRASE

FIXTURES = Path(__file__).parent.parent / "fixtures"

OPEN_ROUTES = {("GET", "/health")}  # documented in vault/web/api/routes.py: says nothing about the vault


def _routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves: a new route is in the matrix below without anyone adding it."""
    app = create_api(VaultHolder(None))  # type: ignore[arg-type]  # building routes never touches the vault
    return sorted((m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods)


ROUTES = _routes()
GUARDED = [r for r in ROUTES if r not in OPEN_ROUTES]


@dataclass
class Api:
    client: TestClient
    vault: Vault
    holder: VaultHolder
    token: str  # read-write, named "phone"
    append_only: str  # named "scanner"
    revoked: str
    ids: dict[Kind, str]  # one live record of each kind

    def h(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


def _make_api(vault: Vault, **kw: Any) -> tuple[TestClient, VaultHolder]:
    holder = VaultHolder(vault)
    return TestClient(create_api(holder, **kw), raise_server_exceptions=True), holder


@pytest.fixture
def api(vault: Vault) -> Iterator[Api]:
    token = tokens.create_token(vault.log, "phone")
    append_only = tokens.create_token(vault.log, "scanner", append_only=True)
    revoked = tokens.create_token(vault.log, "old-laptop")
    tokens.revoke_token(vault.log, "old-laptop")
    ids = {
        Kind.CONTACT: vault.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@example.org"]}, Source("cli")),
        Kind.MESSAGE: vault.add(Kind.MESSAGE, {"subject": "Engines", "body": "The analytical one"}, Source("cli")),
        Kind.NOTE: vault.add(Kind.NOTE, {"title": "Groceries", "body": "tea"}, Source("cli")),
    }
    client, holder = _make_api(vault)
    with client:
        yield Api(client, vault, holder, token, append_only, revoked, ids)


def _request(api: Api, method: str, path: str, headers: dict[str, str]):
    """A plausible request for a route: a fresh record of the right kind in the path, a small valid body."""
    kind = next((k for k in Kind if path.startswith(f"/{k.table}")), Kind.NOTE)
    first = {Kind.NOTE: "title", Kind.MESSAGE: "subject"}.get(kind, "name")  # a field each kind knows
    rid = api.vault.add(kind, {first: "matrix"}, Source("cli"))
    url = path.replace("{record_id}", rid).replace("{blob_id}", api.vault.put_blob(b"matrix blob " + rid.encode()))
    if path == "/blobs":
        return api.client.post(url, content=b"attachment " + rid.encode(), headers=headers)
    if path == "/import":
        card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Matrix {rid}\r\nEND:VCARD\r\n".encode()
        return api.client.post(url, params={"filename": "m.vcf"}, content=card, headers=headers)
    body: Any = None
    if method in ("POST", "PATCH"):
        body = {first: "from the matrix"}
        if path == "/batch":
            body = {"batch_id": f"b-{rid}", "operations": [{"op": "create", "kind": "note", "fields": {"title": "m"}}]}
    return api.client.request(method, url, headers=headers, json=body)


BAD_AUTH = {
    "none": {},
    "empty bearer": {"Authorization": "Bearer "},
    "basic": {"Authorization": "Basic cGhvbmU6eA=="},
    "malformed": {"Authorization": "Bearer not-a-token"},
    "unknown": {"Authorization": "Bearer lvt_" + "A" * 43},
}


# -- the 401/403 matrix ----------------------------------------------------------------
def test_the_route_list_is_what_the_docs_say() -> None:
    paths = {p for _, p in ROUTES}
    for table in ("contacts", "messages", "notes"):
        assert {f"/{table}", f"/{table}/{{record_id}}", f"/{table}/{{record_id}}/history"} <= paths
    assert {"/batch", "/changes", "/health", "/import", "/blobs", "/blobs/{blob_id}"} <= paths


@pytest.mark.parametrize("method,path", GUARDED)
def test_every_route_checks_its_token(api: Api, method: str, path: str) -> None:
    """No, bad or revoked token -> 401 and nothing written; append-only on a read -> 403; else served."""
    for auth, headers in {**BAD_AUTH, "revoked": api.h(api.revoked)}.items():
        head = api.vault.log.head().seq
        r = _request(api, method, path, headers)
        assert r.status_code == 401, (auth, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["detail"]
        assert api.vault.log.head().seq == head + 1  # only _request's own record

    r = _request(api, method, path, api.h(api.append_only))
    if method == "GET":
        assert r.status_code == 403, r.text
        assert "append-only" in r.json()["detail"]
    else:
        assert r.status_code < 300, r.text
        assert "matrix" not in r.text.lower()  # write responses carry ids and seqs, never field values

    r = _request(api, method, path, api.h())
    assert r.status_code < 300, r.text


def test_health_is_open_and_says_nothing_about_the_vault(api: Api) -> None:
    r = api.client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_openapi_docs_are_served_and_declare_the_bearer_scheme(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    schema = api.client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" not in schema["paths"]["/health"]["get"]
    assert schema["paths"]["/contacts"]["get"]["security"] == [{"HTTPBearer": []}]


def test_a_token_made_or_revoked_by_another_process_counts_at_the_next_request(api: Api, created) -> None:
    with Vault.open(created[0], PASSPHRASE) as other:  # as `lifevault token create` would, while serving
        fresh = tokens.create_token(other.log, "tablet")
    assert api.client.get("/notes", headers=api.h(fresh)).status_code == 200
    with Vault.open(created[0], PASSPHRASE) as other:
        tokens.revoke_token(other.log, "tablet")
    assert api.client.get("/notes", headers=api.h(fresh)).status_code == 401


# -- records --------------------------------------------------------------------------
def test_create_read_update_delete_a_contact(api: Api) -> None:
    r = api.client.post("/contacts", json={"name": "Grace Hopper", "emails": ["grace@example.org"], "pronouns": "she"},
                        params={"allow_extra": "true"}, headers=api.h())  # "pronouns" is no contact field
    assert r.status_code == 201
    created = r.json()
    cid = created["id"]
    assert cid.startswith("c_") and created["event"] == "created" and created["seq"] == api.vault.log.head().seq
    r = api.client.get(f"/contacts/{cid}", headers=api.h())
    assert r.json()["fields"] == {"name": "Grace Hopper", "emails": ["grace@example.org"], "pronouns": "she"}

    r = api.client.patch(f"/contacts/{cid}", json={"emails": None, "title": "Rear Admiral"}, headers=api.h())
    assert r.status_code == 200 and r.json()["event"] == "updated"
    assert api.vault.get(cid) == {"name": "Grace Hopper", "pronouns": "she", "title": "Rear Admiral"}
    r = api.client.patch(f"/contacts/{cid}", json={"title": "Rear Admiral"}, headers=api.h())
    assert r.json() == {"id": cid, "seq": None, "event": "unchanged"}

    r = api.client.delete(f"/contacts/{cid}", headers=api.h())
    assert r.status_code == 200 and r.json()["event"] == "deleted"
    r = api.client.get(f"/contacts/{cid}", headers=api.h())
    assert r.status_code == 404 and "deleted" in r.json()["detail"]


def test_every_write_is_recorded_with_the_token_name(api: Api) -> None:
    nid = api.client.post("/notes", json={"title": "t"}, headers=api.h(api.append_only)).json()["id"]
    api.client.patch(f"/notes/{nid}", json={"body": "b"}, headers=api.h())
    api.client.delete(f"/notes/{nid}", headers=api.h())
    sources = [v["source"] for v in api.vault.history(nid)]
    assert sources == [{"via": "api", "name": "scanner"}, {"via": "api", "name": "phone"}, {"via": "api", "name": "phone"}]
    r = api.client.get(f"/notes/{nid}/history", headers=api.h())
    assert [v["event"] for v in r.json()] == ["created", "updated", "deleted"]
    assert r.json()[1]["fields"] == {"title": "t", "body": "b"} and r.json()[2]["fields"] is None


def test_list_pages_by_id(api: Api) -> None:
    for i in range(5):
        api.vault.add(Kind.NOTE, {"title": f"note {i}"}, Source("cli"))
    seen, after = [], ""
    while True:
        page = api.client.get("/notes", params={"limit": 2, "after": after}, headers=api.h()).json()
        seen += [rec["id"] for rec in page["records"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == sorted(seen) and len(seen) == 6


def test_reads_see_appends_made_by_another_process(api: Api, created) -> None:
    with Vault.open(created[0], PASSPHRASE) as other:
        nid = other.add(Kind.NOTE, {"title": "from the CLI"}, Source("cli"))
    r = api.client.get(f"/notes/{nid}", headers=api.h())
    assert r.status_code == 200 and r.json()["fields"] == {"title": "from the CLI"}


# -- as of ----------------------------------------------------------------------------
def test_state_as_of_a_seq_and_a_time(api: Api) -> None:
    cid = api.ids[Kind.CONTACT]
    before = api.vault.log.head().seq
    when = api.client.get("/changes", params={"since": before - 1}, headers=api.h()).json()["events"][0]["recorded_at"]
    api.client.patch(f"/contacts/{cid}", json={"name": "Augusta Ada King"}, headers=api.h())
    api.client.delete(f"/contacts/{cid}", headers=api.h())

    assert api.client.get(f"/contacts/{cid}", headers=api.h()).status_code == 404
    for at in (f"seq:{before}", when):
        r = api.client.get(f"/contacts/{cid}", params={"at": at}, headers=api.h())
        assert r.status_code == 200, r.text
        assert r.json()["fields"]["name"] == "Ada Lovelace" and r.json()["seq"] == before
    page = api.client.get("/contacts", params={"at": f"seq:{before + 1}"}, headers=api.h()).json()
    assert [rec["fields"]["name"] for rec in page["records"]] == ["Augusta Ada King"]
    assert api.client.get("/contacts", headers=api.h()).json()["records"] == []
    r = api.client.get(f"/contacts/{cid}", params={"at": "seq:0"}, headers=api.h())
    assert r.status_code == 404 and "at seq 0" in r.json()["detail"]


@pytest.mark.parametrize("at,message", [
    ("yesterday-ish", "use ISO 8601"),
    ("seq:x", "seq:N needs a whole number"),
    ("seq:999", "the log only has"),
    ("0001-01-01T00:00+05:00", "range"),
])
def test_bad_instants_are_400_with_a_reason(api: Api, at: str, message: str) -> None:
    r = api.client.get("/notes", params={"at": at}, headers=api.h())
    assert r.status_code == 400 and message in r.json()["detail"]


# -- the changes feed -----------------------------------------------------------------
def test_changes_feed_pages_through_the_log(api: Api) -> None:
    nid = api.client.post("/notes", json={"title": "sync me"}, headers=api.h()).json()["id"]
    api.client.patch(f"/notes/{nid}", json={"title": None, "body": "x"}, headers=api.h())
    head = api.vault.log.head().seq
    events, since = [], 0
    while True:
        page = api.client.get("/changes", params={"since": since, "limit": 2}, headers=api.h()).json()
        assert page["head"] == head and len(page["events"]) <= 2
        events += page["events"]
        if page["next_since"] == since:
            break
        since = page["next_since"]
    assert [e["seq"] for e in events] == list(range(1, head + 1))
    assert events[-1] == {**events[-1], "type": "updated", "kind": "note", "id": nid,
                          "changes": {"title": None, "body": "x"}, "source": {"via": "api", "name": "phone"}}
    r = api.client.get("/changes", params={"since": head + 1}, headers=api.h())
    assert r.status_code == 400 and f"only has {head} events" in r.json()["detail"]


# -- validation -----------------------------------------------------------------------
@pytest.mark.parametrize("body,status,message", [
    ({"title": None}, 422, "Field 'title' is null"),
    ({"id": "n_x"}, 422, "'id' is not a usable field name"),
    ({"bad name": 1}, 422, "not a usable field name"),
    ([1, 2], 422, "valid dictionary"),
    ("just text", 422, "valid dictionary"),
])
def test_create_bodies_are_validated(api: Api, body: Any, status: int, message: str) -> None:
    head = api.vault.log.head().seq
    r = api.client.post("/notes", json=body, headers=api.h())
    assert r.status_code == status and message in json.dumps(r.json())
    assert api.vault.log.head().seq == head


def test_malformed_json_is_422_naming_the_position(api: Api) -> None:
    r = api.client.post("/notes", content=b'{"title": ', headers={**api.h(), "content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.text


@pytest.mark.parametrize("raw,message", [
    (b'{"title": "\\ud800"}', "lone surrogate"),
    (b'{"title": "t", "score": NaN}', "NaN and Infinity are not JSON"),
    (b'{"nested": {"deep": [1, -Infinity]}}', "NaN and Infinity are not JSON"),
])
def test_what_json_cannot_carry_is_refused_not_stored(api: Api, raw: bytes, message: str) -> None:
    head = api.vault.log.head().seq
    r = api.client.post("/notes", content=raw, headers={**api.h(), "content-type": "application/json"})
    assert r.status_code == 422 and message in r.text
    batch = b'{"batch_id": "b", "operations": [{"op": "create", "kind": "note", "fields": ' + raw + b'}]}'
    r = api.client.post("/batch", content=batch, headers={**api.h(), "content-type": "application/json"})
    assert r.status_code == 422 and message in r.text
    assert api.vault.log.head().seq == head


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_ids_of_another_kind_or_shape(api: Api, method: str) -> None:
    cid = api.ids[Kind.CONTACT]
    r = api.client.request(method, f"/messages/{cid}", headers=api.h(), json={"subject": "x"} if method == "PATCH" else None)
    assert r.status_code == 404 and "it is a contact id" in r.json()["detail"]
    r = api.client.request(method, "/messages/NOT-AN-ID", headers=api.h(), json={"subject": "x"} if method == "PATCH" else None)
    assert r.status_code == 422 and "record_id" in r.text
    r = api.client.request(method, "/messages/m_nosuchrecord", headers=api.h(), json={"subject": "x"} if method == "PATCH" else None)
    assert r.status_code == 404 and "m_nosuchrecord" in r.json()["detail"]


def test_query_limits_are_validated(api: Api) -> None:
    assert api.client.get("/notes", params={"limit": 0}, headers=api.h()).status_code == 422
    assert api.client.get("/changes", params={"since": -1}, headers=api.h()).status_code == 422
    assert api.client.get("/changes", params={"limit": 100_000}, headers=api.h()).status_code == 422


# -- 413 --------------------------------------------------------------------------------
def test_oversize_bodies_are_413_before_anything_is_stored(vault: Vault) -> None:
    secret = tokens.create_token(vault.log, "phone")
    client, _ = _make_api(vault, max_body=1000)
    h = {"Authorization": f"Bearer {secret}"}
    with client:
        big = {"title": "x" * 2000}
        r = client.post("/notes", json=big, headers=h)
        assert r.status_code == 413 and "limit of 1000 bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"title": "'
            for _ in range(20):
                yield b"y" * 100
            yield b'"}'

        r = client.post("/notes", content=chunks(), headers={**h, "content-type": "application/json"})
        assert r.status_code == 413 and "limit of 1000 bytes" in r.json()["detail"]
        r = client.post("/batch", json={"batch_id": "b", "operations": [{"op": "create", "kind": "note", "fields": big}]},
                        headers=h)
        assert r.status_code == 413
        assert client.post("/notes", json={"title": "small"}, headers=h).status_code == 201
    assert vault.log.head().seq == 1


def test_an_unauthenticated_oversize_body_is_401(vault: Vault) -> None:
    client, _ = _make_api(vault, max_body=10)
    with client:
        assert client.post("/notes", json={"title": "x" * 100}).status_code == 401


# -- batches ----------------------------------------------------------------------------
def _batch(batch_id: str, **extra: Any) -> dict[str, Any]:
    return {"batch_id": batch_id, "operations": [
        {"op": "create", "kind": "contact", "fields": {"name": "Charles Babbage"}},
        {"op": "create", "kind": "note", "fields": {"title": "chosen id"}, "id": "n_clientchosen1"},
        {"op": "update", "id": "n_clientchosen1", "fields": {"body": "then edited"}},
        {"op": "delete", "id": extra.get("delete", "m_placeholder")},
    ]}


def test_batch_applies_all_in_one_go(api: Api) -> None:
    head = api.vault.log.head().seq
    r = api.client.post("/batch", json=_batch("b-1", delete=api.ids[Kind.MESSAGE]), headers=api.h())
    assert r.status_code == 200, r.text
    out = r.json()
    assert not out["replayed"]
    assert [x["event"] for x in out["results"]] == ["created", "created", "updated", "deleted"]
    assert [x["seq"] for x in out["results"]] == [head + 1, head + 2, head + 3, head + 4]
    assert api.vault.get("n_clientchosen1") == {"title": "chosen id", "body": "then edited"}
    assert api.vault.get(out["results"][0]["id"]) == {"name": "Charles Babbage"}


def test_a_retried_batch_is_stored_once_even_after_a_restart(api: Api, created) -> None:
    body = _batch("phone-2024-05-01-0001", delete=api.ids[Kind.MESSAGE])
    first = api.client.post("/batch", json=body, headers=api.h()).json()
    head = api.vault.log.head().seq
    again = api.client.post("/batch", json=body, headers=api.h()).json()
    assert again["replayed"] and again["results"] == first["results"]
    assert api.vault.log.head().seq == head

    with Vault.open(created[0], PASSPHRASE) as reopened:  # a new server process
        client, _ = _make_api(reopened)
        with client:
            r = client.post("/batch", json=body, headers=api.h())
            assert r.json()["replayed"] and r.json()["results"] == first["results"]
            assert reopened.log.head().seq == head
            other = {**body, "operations": body["operations"][:1]}
            r = client.post("/batch", json=other, headers=api.h())
            assert r.status_code == 409 and "already used for a different batch" in r.json()["detail"]


def test_batch_ids_belong_to_a_token(api: Api) -> None:
    body = {"batch_id": "same", "operations": [{"op": "create", "kind": "note", "fields": {"title": "t"}}]}
    a = api.client.post("/batch", json=body, headers=api.h()).json()
    b = api.client.post("/batch", json=body, headers=api.h(api.append_only)).json()
    assert not a["replayed"] and not b["replayed"] and a["results"] != b["results"]


def test_a_failing_operation_stores_nothing_and_names_itself(api: Api) -> None:
    head = api.vault.log.head().seq
    body = _batch("b-fails", delete="m_doesnotexist")
    r = api.client.post("/batch", json=body, headers=api.h())
    assert r.status_code == 404
    assert r.json()["detail"].startswith("Operation 4 (delete m_doesnotexist) was refused, so nothing in the batch was stored")
    assert api.vault.log.head().seq == head
    with pytest.raises(NotFound):
        api.vault.get("n_clientchosen1")
    # the id was not used up: the corrected batch goes through under it
    r = api.client.post("/batch", json=_batch("b-fails", delete=api.ids[Kind.MESSAGE]), headers=api.h())
    assert r.status_code == 200 and not r.json()["replayed"]


@pytest.mark.parametrize("body,message", [
    ({"batch_id": "x", "operations": []}, "at least 1 item"),
    ({"batch_id": "", "operations": [{"op": "delete", "id": "c_x"}]}, "batch_id"),
    ({"batch_id": "x", "operations": [{"op": "explode", "id": "c_x"}]}, "'create', 'update', 'delete'"),
    ({"batch_id": "x", "operations": [{"op": "delete", "id": "c_x", "extra": 1}]}, "Extra inputs are not permitted"),
    ({"batch_id": "x", "operations": [{"op": "create", "kind": "event", "fields": {}}]}, "the kinds are contact, message and note"),
    ({"batch_id": "x", "operations": [{"op": "create", "kind": "note", "fields": {}, "id": "c_wrongkind"}]},
     "not a note id"),
    ({"batch_id": "x", "operations": [{"op": "create", "kind": "note", "fields": {"a": None}}]}, "Field 'a' is null"),
])
def test_batch_bodies_are_validated(api: Api, body: dict[str, Any], message: str) -> None:
    head = api.vault.log.head().seq
    r = api.client.post("/batch", json=body, headers=api.h())
    assert r.status_code == 422 and message in r.text, r.text
    assert api.vault.log.head().seq == head


def test_nothing_secret_or_plaintext_reaches_the_vault_file(api: Api) -> None:
    api.client.post("/batch", json={"batch_id": "a-secretive-batch-id", "operations": [
        {"op": "create", "kind": "note", "fields": {"title": "Plaintext canary 7f3a"}}]}, headers=api.h())
    api.client.post("/notes", json={"title": "Another canary 9c1e"}, headers=api.h())
    api.vault.conn.execute("PRAGMA wal_checkpoint(FULL)")
    on_disk = b"".join(p.read_bytes() for p in api.vault.path.parent.glob(api.vault.path.name + "*"))
    for secret in (api.token, api.append_only, "a-secretive-batch-id", "Plaintext canary 7f3a", "Another canary 9c1e"):
        assert secret.encode() not in on_disk


def test_errors_from_the_library_keep_their_status(api: Api) -> None:
    r = api.client.post("/batch", json={"batch_id": "dup", "operations": [
        {"op": "create", "kind": "note", "fields": {"title": "a"}, "id": "n_twice"},
        {"op": "create", "kind": "note", "fields": {"title": "b"}, "id": "n_twice"}]}, headers=api.h())
    assert r.status_code == 422 and re.search(r"Operation 2 .*already exists", r.json()["detail"])


# -- uploads ----------------------------------------------------------------------------
def _upload(api: Api, data: bytes, filename: str, token: str | None = None, **params: Any):
    return api.client.post("/import", params={"filename": filename, **params}, content=data, headers=api.h(token))


def test_upload_imports_like_the_cli(api: Api, tmp_path: Path) -> None:
    data = (FIXTURES / "vcard" / "contacts.vcf").read_bytes()
    r = _upload(api, data, "contacts.vcf")  # read-write: the counts (append-only tokens get none)
    assert r.status_code == 200, r.text
    got = r.json()
    with Vault.create(tmp_path / "cli.db", PASSPHRASE, kdf_cost="min")[0] as other:
        expected = import_file(other, FIXTURES / "vcard" / "contacts.vcf").as_dict()
    assert got["import_id"].startswith("imp_") and got["file"] == "contacts.vcf" and got["format"] == "vcard"
    assert {k: got[k] for k in ("created", "updated", "unchanged", "deleted", "skipped")} == \
           {k: expected[k] for k in ("created", "updated", "unchanged", "deleted", "skipped")}
    assert got["created"] > 0
    last = api.vault.log.event(api.vault.log.head().seq).event.source
    assert (last.via, last.name, last.file, last.detail["api_token"]) == ("import", "vcard", "contacts.vcf", "phone")

    again = _upload(api, data, "contacts.vcf").json()  # a re-import finds the same records
    assert again["created"] == 0 and again["unchanged"] == got["created"]


def test_upload_format_by_name_and_by_suffix(api: Api) -> None:
    r = _upload(api, b"# Plans\n\nWrite the API.\n", "plans.md")
    assert r.status_code == 200 and r.json()["format"] == "markdown" and r.json()["created"] == 1
    r = _upload(api, b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Named Format\r\nEND:VCARD\r\n", "x.txt", format="vcard")
    assert r.status_code == 200 and r.json()["format"] == "vcard"


@pytest.mark.parametrize("data,filename,params,status,message", [
    (b"\x00\x01 not an export", "blob.bin", {}, 422, "blob.bin: no importer recognises this content"),
    (b"BEGIN:VCARD", "x.vcf", {"format": "nope"}, 404, "No importer named 'nope'"),
    (b"", "empty.vcf", {}, 422, "empty.vcf: the upload is empty"),
    (b"BEGIN:VCARD\r\nFN:cut", "cut.vcf", {"format": "vcard"}, 422, "cut.vcf (card 1"),
    (None, "one-bad.vcf", {"strict": "true"}, 422, "one-bad.vcf (card 2 (line 6))"),
])
def test_bad_uploads_store_nothing_and_say_why(api: Api, data: bytes | None, filename: str, params: dict,
                                               status: int, message: str) -> None:
    data = (FIXTURES / "vcard" / filename).read_bytes() if data is None else data
    head = api.vault.log.head().seq
    r = _upload(api, data, filename, **params)
    assert r.status_code == status and r.json()["detail"].startswith(message), r.text
    assert "lifevault-upload" not in r.text  # the in-memory path never leaks into messages
    assert api.vault.log.head().seq == head


def test_a_zip_upload_is_read_from_memory(api: Api) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted((FIXTURES / "keep" / "Takeout").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(FIXTURES / "keep").as_posix())
    r = _upload(api, buf.getvalue(), "takeout-20240305.zip")
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "keep" and r.json()["created"] > 0


def test_a_folder_format_refuses_an_upload_in_one_sentence(api: Api) -> None:
    r = _upload(api, b"From: a@example.org\r\n\r\nhi\r\n", "mail", format="maildir")
    assert r.status_code == 422
    assert r.json()["detail"] == ("mail: the maildir importer reads only files and folders on disk, not bytes; "
                                  "import it with `lifevault import`.")


def test_a_bad_record_is_skipped_and_reported_when_not_strict(api: Api) -> None:
    r = _upload(api, (FIXTURES / "vcard" / "one-bad.vcf").read_bytes(), "one-bad.vcf")
    assert r.status_code == 200 and r.json()["created"] == 2
    assert [s["location"] for s in r.json()["skipped"]] == ["card 2 (line 6)"]


def test_upload_file_names_are_reduced_to_a_plain_name(api: Api) -> None:
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Path Games\r\nEND:VCARD\r\n"
    r = _upload(api, card, "../../etc/passwd.vcf")
    assert r.status_code == 200 and r.json()["file"] == "passwd.vcf"


def test_oversize_uploads_are_413(vault: Vault) -> None:
    secret = tokens.create_token(vault.log, "phone")
    client, _ = _make_api(vault, max_upload=2000)
    h = {"Authorization": f"Bearer {secret}"}
    cards = b"".join(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person %d\r\nEND:VCARD\r\n" % i for i in range(100))
    with client:
        r = client.post("/import", params={"filename": "big.vcf"}, content=cards, headers=h)
        assert r.status_code == 413 and "limit of 2000 bytes" in r.json()["detail"]
        r = client.post("/import", params={"filename": "big.vcf"}, content=iter([cards[:1500], cards[1500:]]), headers=h)
        assert r.status_code == 413 and "limit of 2000 bytes" in r.json()["detail"]
        assert client.post("/import", params={"filename": "small.vcf"}, content=cards[:200], headers=h).status_code == 200
    assert vault.projection.count(Kind.CONTACT) == 4


def test_uploads_never_reach_a_file_system(api: Api) -> None:
    canary = b"Upload canary 5d2f0a"
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:" + canary + b"\r\nEND:VCARD\r\n"
    places = [Path(tempfile.gettempdir()), Path("/dev/shm"), Path.cwd()]

    def entries() -> set[Path]:
        return {p for place in places if place.is_dir() for p in place.iterdir()}

    before = entries()
    assert _upload(api, card, "canary.vcf").status_code == 200
    api.vault.conn.execute("PRAGMA wal_checkpoint(FULL)")
    for new in entries() - before:
        files = [new] if new.is_file() else [f for f in new.rglob("*") if f.is_file()] if new.is_dir() else []
        for f in files:
            try:
                assert canary not in f.read_bytes(), f
            except OSError:
                pass
    assert not any(p.name.startswith("lifevault-upload-") for p in entries() - before)
    on_disk = b"".join(p.read_bytes() for p in api.vault.path.parent.glob(api.vault.path.name + "*"))
    assert canary not in on_disk


# -- attachments ------------------------------------------------------------------------
def test_attachments_go_up_into_a_record_and_come_back(api: Api) -> None:
    photo = bytes(range(256)) * 40 + b"Attachment canary 3e8b"
    r = api.client.post("/blobs", params={"name": "../holiday.jpg", "type": "image/jpeg"}, content=photo,
                        headers=api.h(api.append_only))
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["size"] == len(photo) and ref["name"] == "holiday.jpg" and ref["type"] == "image/jpeg"
    again = api.client.post("/blobs", content=photo, headers=api.h()).json()
    assert again == {"blob": ref["blob"], "size": len(photo)}  # stored once; no name given this time
    nid = api.client.post("/notes", json={"title": "Holiday", "attachments": [ref]}, headers=api.h()).json()["id"]
    assert api.client.get(f"/notes/{nid}", headers=api.h()).json()["fields"]["attachments"] == [ref]
    r = api.client.get(f"/blobs/{ref['blob']}", headers=api.h())
    assert r.status_code == 200 and r.content == photo
    assert r.headers["content-type"] == "application/octet-stream"
    assert api.client.get(f"/blobs/{ref['blob']}", headers=api.h(api.append_only)).status_code == 403
    api.vault.conn.execute("PRAGMA wal_checkpoint(FULL)")
    on_disk = b"".join(p.read_bytes() for p in api.vault.path.parent.glob(api.vault.path.name + "*"))
    assert b"Attachment canary 3e8b" not in on_disk


def test_attachment_errors(api: Api, vault: Vault) -> None:
    r = api.client.post("/blobs", content=b"", headers=api.h())
    assert r.status_code == 422 and "attachment is empty" in r.json()["detail"]
    r = api.client.get("/blobs/" + "0" * 64, headers=api.h())
    assert r.status_code == 404 and "0000" in r.json()["detail"]
    assert api.client.get("/blobs/not-hex", headers=api.h()).status_code == 422
    client, _ = _make_api(vault, max_upload=100)
    with client:
        r = client.post("/blobs", content=b"x" * 101, headers=api.h())
        assert r.status_code == 413 and "limit of 100 bytes" in r.json()["detail"]



def test_batch_results_follow_the_operations_in_order(api: Api) -> None:
    """Runs of creates and deletes are appended together; seqs and events still follow the operations."""
    head = api.vault.log.head().seq
    ops = [
        {"op": "create", "kind": "note", "fields": {"title": "a"}, "id": "n_ordera"},
        {"op": "create", "kind": "contact", "fields": {"name": "b"}},
        {"op": "update", "id": "n_ordera", "fields": {"title": "a2"}},
        {"op": "update", "id": "n_ordera", "fields": {"title": "a2"}},
        {"op": "create", "kind": "note", "fields": {"title": "c"}, "id": "n_orderc"},
        {"op": "delete", "id": "n_orderc"},
        {"op": "delete", "id": api.ids[Kind.MESSAGE]},
        {"op": "update", "id": "n_ordera", "fields": {"body": "last"}},
    ]
    out = api.client.post("/batch", json={"batch_id": "order", "operations": ops}, headers=api.h()).json()["results"]
    assert [r["event"] for r in out] == ["created", "created", "updated", "unchanged", "created", "deleted",
                                         "deleted", "updated"]
    assert [r["seq"] for r in out] == [head + 1, head + 2, head + 3, None, head + 4, head + 5, head + 6, head + 7]
    feed = api.client.get("/changes", params={"since": head}, headers=api.h()).json()["events"]
    assert [(e["type"], e["id"]) for e in feed] == [(r["event"], r["id"]) for r in out if r["seq"]]
    assert api.vault.get("n_ordera") == {"title": "a2", "body": "last"}


@pytest.mark.parametrize("ops,index,message", [
    ([{"op": "delete", "id": "n_twicedel"}, {"op": "delete", "id": "n_twicedel"}], 2, "is deleted"),
    ([{"op": "create", "kind": "contact", "fields": {"name": "x"}}, {"op": "delete", "id": "c_neverwas"}], 2,
     "No record 'c_neverwas'"),
    ([{"op": "create", "kind": "note", "fields": {"title": "x"}, "id": "m_wrongkind"}], 1, "not a note id"),
    ([{"op": "delete", "id": "n_twicedel"}, {"op": "update", "id": "n_twicedel", "fields": {"a": 1}}], 2,
     "is deleted"),
])
def test_a_refused_operation_in_a_run_is_named(api: Api, ops: list, index: int, message: str) -> None:
    api.vault.add(Kind.NOTE, {"title": "t"}, Source("cli"))
    with api.vault.transaction() as tx:
        tx.create(Kind.NOTE, {"title": "to delete"}, Source("cli"), record_id="n_twicedel")
    head = api.vault.log.head().seq
    r = api.client.post("/batch", json={"batch_id": "refused", "operations": ops}, headers=api.h())
    assert r.status_code in (404, 422), r.text
    assert r.json()["detail"].startswith(f"Operation {index} ") and message in r.json()["detail"], r.text
    assert api.vault.log.head().seq == head
