"""The served site in-process: Datasette pages over the live vault, as-of states, timelines, revert, login."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from vault import Kind, Source, Vault
from vault.web import LiveVault
from vault.web.site.login import LoginRequired, set_password
from vault.web.site.server import create_app
from vault.web.site.state_db import AsOfDatabase

from conftest import PASSPHRASE

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def data(vault: Vault) -> dict[str, str]:
    """A small history: a contact edited then deleted, a message with an image, a Markdown note."""
    cli = Source("cli")
    ada = vault.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@example.org"]}, cli)
    vault.update(ada, {"phones": ["+44 20 7946 0001"]}, Source("api", name="phone"))
    grace = vault.add(Kind.CONTACT, {"name": "Grace Hopper"}, Source("import", name="vcard", file="people.vcf"))
    with vault.transaction() as tx:
        blob = tx.put_blob(PNG)
        msg = tx.create(Kind.MESSAGE, {"subject": "Lunch", "body": "Shall we meet for lunch at the zeppelin cafe?",
                                       "thread": "lunch", "attachments": [{"blob": blob, "name": "menu.png"}]}, cli)
    note = vault.add(Kind.NOTE, {"title": "Garden", "body": "# Plan\n\n*roses* <script>alert(1)</script> "
                                                            "[bad](javascript:alert(2))"}, cli)
    before_delete = vault.projection.seq
    vault.delete(ada, cli)
    return {"ada": ada, "grace": grace, "msg": msg, "note": note, "blob": blob, "before_delete": str(before_delete)}


def csrf(client: TestClient, page: str) -> str:
    html = client.get(page).text
    return re.search(r'name="csrftoken" value="([^"]+)"', html).group(1)


def test_tables_pages_show_live_records_with_the_as_of_control(client, data):
    r = client.get("/vault/contacts")
    assert r.status_code == 200
    assert "Grace Hopper" in r.text and "Ada Lovelace" not in r.text  # Ada is deleted now
    assert 'action="/-/as-of"' in r.text
    for page in ("/", "/vault", "/vault/messages", "/vault/notes", "/vault/contacts_history", f"/-/record/{data['grace']}"):
        assert 'action="/-/as-of"' in client.get(page).text, page


def test_as_of_shows_the_deleted_contact_then_its_timeline(client, data):
    r = client.get("/-/as-of", params={"at": f"seq:{data['before_delete']}", "next": "/vault/contacts"},
                   follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == f"/asof_{data['before_delete']}/contacts"
    page = client.get(r.headers["location"]).text
    assert "Ada Lovelace" in page and "As it was on " in page  # the date and time first, the event a detail
    assert f"event {data['before_delete']} of " in page
    assert f"/-/record/{data['ada']}?at=seq:{data['before_delete']}" in page
    timeline = client.get(f"/-/record/{data['ada']}", params={"at": f"seq:{data['before_delete']}"}).text
    assert "deleted now" in timeline
    assert "through the API (token phone)" in timeline and "from the command line" in timeline  # what changed it
    assert "phones" in timeline and "+44 20 7946 0001" in timeline  # the field diff
    back = client.get("/-/as-of", params={"at": "now", "next": f"/asof_{data['before_delete']}/contacts"},
                      follow_redirects=False)
    assert back.headers["location"] == "/vault/contacts"


def test_as_of_a_bad_instant_says_why(client):
    r = client.get("/-/as-of", params={"at": "yesterday-ish", "next": "/vault/contacts"})
    assert r.status_code == 200 and "Bad instant" in r.text


def test_as_of_never_redirects_off_site(client):
    r = client.get("/-/as-of", params={"at": "now", "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/vault"


def test_revert_brings_a_deleted_contact_back(client, site, data):
    ada = data["ada"]
    token = csrf(client, f"/-/record/{ada}")
    r = client.post(f"/-/record/{ada}/revert", data={"seq": data["before_delete"], "csrftoken": token},
                    follow_redirects=False)
    assert r.status_code == 302
    assert site.live.read(lambda v: v.get(ada))["name"] == "Ada Lovelace"
    page = client.get(f"/-/record/{ada}").text
    assert "live now" in page and "revived" in page and "web owner" not in page  # open site: actor "browser"
    assert "Ada Lovelace" in client.get("/vault/contacts").text


def test_revert_without_csrf_token_is_refused(client, site, data):
    client.get(f"/-/record/{data['ada']}")
    r = client.post(f"/-/record/{data['ada']}/revert", data={"seq": data["before_delete"]})
    assert r.status_code == 403
    assert site.live.vault.projection.status(Kind.CONTACT, data["ada"]) == "deleted"


def test_search_across_all_three_and_table_search(client, data):
    r = client.get("/-/search", params={"q": "zeppelin"})
    assert data["msg"] in r.text and "[zeppelin]" in r.text
    assert "Grace" in client.get("/-/search", params={"q": 'grace "'}).text  # stray quote is no syntax error
    table = client.get("/vault/messages", params={"_search": "zeppelin"}).text
    assert "1 row" in table and "Lunch" in table


def test_changes_appear_in_search_without_rebuild(client, site):
    site.live.write(lambda v: v.add(Kind.NOTE, {"title": "Quokka facts", "body": "small"}, Source("cli")))
    assert "Quokka" in client.get("/-/search", params={"q": "quokka"}).text


def test_note_markdown_is_rendered_and_sanitized(client, data):
    # Changed with issue 13: the body is rendered once, on the note's own page; the list shows plain words.
    html = client.get(f"/-/record/{data['note']}").text
    assert "<h1>Plan</h1>" in html and "<em>roses</em>" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html  # the timeline shows the text as written, never as a link
    listed = client.get("/vault/notes").text
    assert "<h1>Plan</h1>" not in listed and "<em>" not in listed and "Plan roses" in listed
    assert "<script>alert(1)" not in listed


def test_attachment_is_viewable_and_downloadable(client, data):
    page = client.get("/vault/messages").text
    assert f"/-/blob/{data['blob']}?name=menu.png" in page
    view = client.get(f"/-/blob/{data['blob']}", params={"name": "menu.png"})
    assert view.status_code == 200 and view.content == PNG and view.headers["content-type"] == "image/png"
    assert view.headers["x-content-type-options"] == "nosniff"
    down = client.get(f"/-/blob/{data['blob']}", params={"name": "menu.png", "download": "1"})
    assert down.headers["content-disposition"].startswith("attachment") and down.content == PNG
    html = client.get(f"/-/blob/{data['blob']}", params={"name": "x.html"})
    assert html.headers["content-type"] == "application/octet-stream"  # never rendered as a page
    assert client.get("/-/blob/" + "0" * 64).status_code == 404
    odd = client.get(f"/-/blob/{data['blob']}", params={"name": 'Menü "final".png', "download": "1"})
    assert odd.status_code == 200 and "filename*=UTF-8''Men%C3%BC%20%22final%22.png" in odd.headers["content-disposition"]


def test_changes_by_another_process_appear_after_refresh(client, site, created):
    other = Vault.open(created[0], PASSPHRASE)
    other.add(Kind.CONTACT, {"name": "Katherine Johnson"}, Source("cli"))
    other.close()
    seen = []
    site.live.on_change.append(seen.append)
    assert site.live.refresh() == 1
    assert "Katherine Johnson" in client.get("/vault/contacts").text
    assert seen == [site.live.seq]


def test_api_is_mounted_under_api(client):
    assert client.get("/api/health").json()["status"] == "ok"


def test_non_loopback_without_password_refuses_to_start(vault):
    with pytest.raises(LoginRequired, match="lifevault password set"):
        create_app(LiveVault(vault), host="0.0.0.0")


def test_non_loopback_pages_need_login(vault, data):
    set_password("hunter2 but longer")
    site = create_app(LiveVault(vault), host="192.0.2.7")
    client = TestClient(site, base_url="http://192.0.2.7", headers={"Origin": "http://192.0.2.7"})
    for page in ("/", "/vault/contacts", f"/-/record/{data['grace']}", "/-/search?q=grace",
                 f"/-/blob/{data['blob']}", "/vault.json", "/-/metadata.json"):
        r = client.get(page, follow_redirects=False)
        assert r.status_code in (302, 403), page
        assert "Grace" not in r.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/-/login"
    token = csrf(client, "/-/login")
    bad = client.post("/-/login", data={"username": "owner", "password": "wrong", "csrftoken": token})
    assert "Invalid username or password" in bad.text
    ok = client.post("/-/login", data={"username": "owner", "password": "hunter2 but longer", "csrftoken": token},
                     follow_redirects=False)
    assert ok.status_code == 302 and "ds_actor" in ok.cookies
    assert "Grace Hopper" in client.get("/vault/contacts").text
    assert "pbkdf2" not in client.get("/-/metadata.json").text  # the hash is not shown even when logged in


def test_password_set_stores_only_a_hash(run, lifevault_home, monkeypatch):
    monkeypatch.setenv("LIFEVAULT_LOGIN_PASSWORD", "a long login password")
    r = run("password", "set")
    assert r.exit_code == 0, r.output
    stored = (lifevault_home / "web-login.json")
    assert "a long login password" not in stored.read_text() and "pbkdf2" in stored.read_text()
    assert stored.stat().st_mode & 0o777 == 0o600


def test_serve_refuses_non_loopback_without_password(run):
    r = run("serve", "--host", "0.0.0.0")
    assert r.exit_code != 0 and "needs a login password" in r.output


def test_demo_no_serve_prints_the_tour(tmp_path, run):
    r = run("demo", "--dir", str(tmp_path / "d"), "--records", "20", "--kdf-cost", "min", "--no-serve")
    assert r.exit_code == 0, r.output
    assert "Demo vault:" in r.stdout


def test_search_index_follows_every_change_and_every_past_state(vault, data):
    """The index inside the state file is kept current by each append: complete at once, no build."""
    from vault.state.query import StateQuery

    for i in range(6):
        vault.add(Kind.NOTE, {"title": f"walrus {i}"}, Source("cli"))
    live = LiveVault(vault)
    before = live.seq
    first = live.read(lambda v: next(rid for rid, f in v.projection.state(Kind.NOTE) if f["title"] == "walrus 0"))
    live.write(lambda v: v.delete(first, Source("cli")))
    live.write(lambda v: v.update(data["note"], {"title": "walrus now"}, Source("cli")))
    reader = live.reader()
    found = {h.id for h in StateQuery(reader).search("walrus", limit=100)}
    expected = {rid for rid, f in live.vault.projection.state(Kind.NOTE) if "walrus" in f["title"]}
    assert found == expected and len(found) == 6 and first not in found and data["note"] in found
    then = {rid for rid, _ in live.vault.projection.state(Kind.NOTE, before)}
    past = AsOfDatabase(None, live.state_path, live.state_key, before, None)._open()
    assert {r[0] for r in past.execute("SELECT id FROM notes")} == then
    assert {h.id for h in StateQuery(past).search("walrus", before, limit=100)} == {
        rid for rid, f in live.vault.projection.state(Kind.NOTE, before) if "walrus" in f["title"]}


def test_nothing_is_written_while_browsing_in_process(site, client, data, created, tmp_path):
    before = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    for page in ("/vault/contacts", "/vault/notes", f"/-/as-of?at=seq:{data['before_delete']}&next=/vault/contacts",
                 "/-/search?q=zeppelin", f"/-/record/{data['ada']}"):
        assert client.get(page).status_code == 200
    after = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # browsing, as-of states and search read the state file and write nothing


def test_a_past_state_link_works_after_it_was_dropped(client, site, data):
    page = f"/asof_{data['before_delete']}/contacts"
    assert "Ada Lovelace" in client.get(page).text  # never built through /-/as-of: built on first visit
    site.datasette.remove_database(site.datasette.get_database(route=f"asof_{data['before_delete']}").name)
    assert "Ada Lovelace" in client.get(page).text
    assert client.get(f"/asof_{site.live.seq + 5}/contacts").status_code == 404


def test_messages_link_to_their_thread(client, data):
    # Changed with issue 13: a thread has a page of its own (the conversation), not a filtered table.
    assert "/-/thread?db=vault&amp;key=lunch" in client.get("/vault/messages").text
    assert "/-/thread?db=vault&amp;key=lunch" in client.get(f"/-/record/{data['msg']}").text
    thread = client.get("/-/thread", params={"db": "vault", "key": "lunch"}).text
    assert "1 message," in thread and "Lunch" in thread and "zeppelin cafe" in thread
    assert client.get("/-/thread", params={"db": "vault", "key": "no such thread"}).status_code == 404


def test_past_states_are_searchable(client, site, data):
    seq = int(data["before_delete"])
    assert "Ada Lovelace" in client.get(f"/asof_{seq}/contacts").text
    assert "zeppelin" in client.get("/-/search", params={"q": "zeppelin", "db": f"asof_{seq}"}).text
    found = client.get(f"/asof_{seq}/contacts", params={"_search": "lovelace"}).text
    assert "1 row" in found and "Ada Lovelace" in found


def test_only_a_few_past_states_are_kept(client, site, monkeypatch):
    monkeypatch.setattr(site.asof, "keep", 2)
    for seq in (1, 2, 3):
        assert client.get(f"/-/as-of?at=seq:{seq}&next=/vault/contacts").status_code == 200
    kept = sorted(db.route for db in site.datasette.databases.values() if db.route.startswith("asof_"))
    assert kept == ["asof_2", "asof_3"]
    assert client.get("/asof_1/contacts").status_code == 200  # rebuilt on demand


def test_serve_on_a_port_in_use_says_so(run):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = run("serve", "--port", str(busy.getsockname()[1]))
    assert r.exit_code != 0 and "Cannot listen on 127.0.0.1 port" in r.output


# -- Datasette's own behaviour over SQLCipher connections (web/site/state_db.py) ---------------------------
def test_datasette_features_work_over_the_encrypted_state_file(client, data):
    assert "Grace Hopper" in client.get("/vault/contacts", params={"_sort": "name"}).text
    faceted = client.get("/vault/contacts.json", params={"_facet": "name", "_shape": "objects"}).json()
    assert {r["name"] for r in faceted["rows"]} == {"Grace Hopper"}
    assert faceted["facet_results"]["name"]["results"][0]["count"] == 1
    csv = client.get("/vault/contacts.csv")
    assert csv.status_code == 200 and csv.text.startswith("rowid,id,name,") and "Grace Hopper" in csv.text
    rows = client.get("/vault.json", params={"sql": "select name from contacts", "_shape": "array"}).json()
    assert rows == [{"name": "Grace Hopper"}]
    past = client.get(f"/asof_{data['before_delete']}.json", params={"sql": "select name from contacts order by name",
                                                                       "_shape": "array"}).json()
    assert past == [{"name": "Ada Lovelace"}, {"name": "Grace Hopper"}]


def test_datasette_sql_errors_and_time_limit_keep_their_own_pages(client, site):
    bad = client.get("/vault", params={"sql": "select nope from contacts"})
    assert bad.status_code == 400 and "no such column: nope" in bad.text
    refused = client.get("/vault", params={"sql": "delete from contacts"})
    assert refused.status_code == 400 and "Statement must be a SELECT" in refused.text
    site.datasette._settings["sql_time_limit_ms"] = 50
    slow = "with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n"
    r = client.get("/vault", params={"sql": slow})
    assert r.status_code == 400 and "SQL query took too long" in r.text
