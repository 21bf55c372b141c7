"""The pages a person uses (issue 13): Contacts, Messages, Notes, their record pages, threads and search, in-process."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from vault import Kind, Source, Vault
from vault.domain.contacts import address, typed
from vault.web import LiveVault
from vault.web.site.server import create_app

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
# Whole names only: random ids (records', imports') may hold the same letters, e.g. `imp_ftsb755hr7`.
INTERNAL = re.compile(r"\w+_(history|fts|text)\b|_projection\b|_memory\b|\bsqlite_\w|\basof_\d")
RAW_JSON = ('["', '[{"', "{&#34;", "[&#34;", "[{&#34;")


@pytest.fixture
def data(vault: Vault) -> dict[str, str]:
    cli = Source("cli")
    with vault.transaction() as tx:
        photo = tx.put_blob(PNG)
        ada = tx.create(Kind.CONTACT, {
            "name": "Ada Lovelace", "emails": [typed("ada@example.org", ["home"], pref=1)],
            "phones": [typed("+44 20 7946 0001", ["cell"], "Mobile")],
            "addresses": [address({"street": "12 St James's Square", "city": "London"}, ["home"])],
            "photo": {"blob": photo, "type": "image/png"}}, cli)
    zed = vault.add(Kind.CONTACT, {"name": "Zed Shaw", "emails": ["zed@example.org"]}, cli)  # the old bare shape
    grace = vault.add(Kind.CONTACT, {"name": "Grace Hopper", "phones": ["020 7946 0002"]}, cli)
    first = vault.add(Kind.MESSAGE, {"kind": "email", "thread": "<1@x>", "message_id": "<1@x>", "subject": "Engines",
                                     "from": "Ada Lovelace <ada@example.org>", "to": ["grace@navy.example"],
                                     "date": "2025-03-03T14:05:00+00:00", "body": "Shall we build one?"}, cli)
    reply = vault.add(Kind.MESSAGE, {"kind": "email", "thread": "<1@x>", "message_id": "<2@x>",
                                     "in_reply_to": "<1@x>", "subject": "Re: Engines", "from": "zed@example.org",
                                     "to": ["Ada <ada@example.org>"], "date": "2025-03-04T09:00:00+00:00",
                                     "body": "Yes, with cards."}, cli)
    vault.add(Kind.MESSAGE, {"kind": "sms", "thread": "+442079460002", "from": "+44 20 7946 0002",
                             "date": "2025-01-01T08:00:00Z", "body": "Bug found in relay 70"}, cli)
    old = vault.add(Kind.NOTE, {"title": "Garden", "body": "# Plan\n\n*roses*", "tags": ["home", "garden"]}, cli)
    new = vault.add(Kind.NOTE, {"body": "# Shopping\n\n- cards", "tags": ["home"]}, cli)
    return {"ada": ada, "zed": zed, "grace": grace, "first": first, "reply": reply, "old": old, "new": new,
            "photo": photo}


def shown(html: str) -> str:
    """The page without its scripts (Datasette's own code mentions JSON) and the time-machine control."""
    return re.sub(r"<script.*?</script>", "", html, flags=re.S)


def assert_plain(html: str, page: str) -> None:
    text = shown(html)
    found = INTERNAL.search(text)
    assert found is None, f"{page} shows {found.group(0)!r}"
    for raw in RAW_JSON:
        assert raw not in text, f"{page} shows raw JSON {raw!r}"


def test_home_and_vault_pages_show_contacts_messages_notes_and_search(client) -> None:
    for page in ("/", "/vault"):
        html = client.get(page).text
        assert_plain(html, page)
        for label, href, count in (("Contacts", "/vault/contacts", 3), ("Messages", "/vault/messages", 3),
                                   ("Notes", "/vault/notes", 2)):
            assert re.search(rf'href="{href}"><strong>{label}</strong><span>{count}</span>', html), (page, label)
        assert 'action="/-/search"' in html
        assert "CodeMirror" not in html and 'name="sql"' not in html  # no SQL editor as the landing view
    assert client.get("/-/databases.json").json()[0]["name"] == "vault"  # Datasette's scratch `_memory` is gone
    # still reachable through SQL (open here: a loopback site without a password)
    rows = client.get("/vault.json", params={"sql": "select count(*) n from contacts_history", "_shape": "array"})
    assert rows.json() == [{"n": 3}]


def test_contacts_are_sorted_by_name_with_labelled_links_and_photos(client, data) -> None:
    html = client.get("/vault/contacts").text
    assert_plain(html, "/vault/contacts")
    names = re.findall(r'<a href="/-/record/c_\w+"><strong>([^<]+)</strong></a>', html)
    assert names == ["Ada Lovelace", "Grace Hopper", "Zed Shaw"]
    assert '<a href="tel:+442079460001">+44 20 7946 0001</a> <span class="lv-kind">Mobile</span>' in html
    assert '<a href="mailto:ada@example.org">ada@example.org</a> <span class="lv-kind">home, preferred</span>' in html
    assert '<a href="mailto:zed@example.org">zed@example.org</a>' in html
    assert "12 St James&#39;s Square, London" in html
    assert f'<img class="lv-photo" src="/-/blob/{data["photo"]}?name=photo.png"' in html
    assert client.get(f"/-/blob/{data['photo']}", params={"name": "photo.png"}).content == PNG


def test_messages_are_newest_first_with_senders_by_contact_name(client, data) -> None:
    html = client.get("/vault/messages").text
    assert_plain(html, "/vault/messages")
    assert html.index("Re: Engines") < html.index("Engines</a>") < html.index("Bug found")
    assert f'<a href="/-/record/{data["ada"]}" title="Ada Lovelace &lt;ada@example.org&gt;">Ada Lovelace</a>' in html
    assert 'title="+44 20 7946 0002">Grace Hopper</a>' in html  # a phone number, written another way
    assert "grace@navy.example" in html  # nobody known by this address: shown as written
    assert '<time datetime="2025-03-03T14:05:00+00:00" title="2025-03-03T14:05:00+00:00">' in html


def test_a_renamed_contact_is_named_anew_on_the_messages_page(client, site, data) -> None:
    assert ">Ada Lovelace</a>" in client.get("/vault/messages").text
    site.live.write(lambda v: v.add(Kind.MESSAGE, {"body": "another", "date": "2025-05-01T00:00:00Z"}, Source("cli")))
    client.get("/vault/messages")  # a change that is no contact's keeps the address book
    site.live.write(lambda v: v.update(data["ada"], {"name": "Ada King"}, Source("cli")))
    html = client.get("/vault/messages").text
    assert ">Ada King</a>" in html and ">Ada Lovelace</a>" not in html


def test_a_mail_thread_reads_as_a_conversation(client, data) -> None:
    page = client.get("/vault/messages").text
    link = re.search(r'href="(/-/thread\?db=vault&amp;key=%3C1%40x%3E)"', page).group(1).replace("&amp;", "&")
    html = client.get(link).text
    assert_plain(html, link)
    assert "<h1>Engines</h1>" in html and "2 messages, oldest first" in html
    assert html.index("Shall we build one?") < html.index("Yes, with cards.")
    assert re.search(r'margin-left: 1\.5em">\s*<div class="lv-head">\s*<strong class="lv-from"><a href="/-/record/'
                     + data["zed"], html)  # the reply, indented, from Zed by name
    assert client.get("/-/thread", params={"key": "<1@x>", "db": "elsewhere"}).status_code == 404


def test_notes_by_last_change_title_first_tags_as_facets(client, site, data) -> None:
    site.live.write(lambda v: v.update(data["old"], {"body": "# Plan\n\n*roses* and tulips"}, Source("cli")))
    html = client.get("/vault/notes").text
    assert_plain(html, "/vault/notes")
    titles = re.findall(r'<a href="/-/record/n_\w+"><strong>([^<]+)</strong></a>', html)
    assert titles == ["Garden", "Shopping"]  # Garden changed last; Shopping has no title: its first line
    assert "<h1>" not in html.split("lv-list")[1] and "Plan roses and tulips" in html
    facets = client.get("/vault/notes.json", params={"_shape": "objects"}).json()["facet_results"]
    assert {r["value"]: r["count"] for r in facets["tags"]["results"]} == {"home": 2, "garden": 1}
    assert 'href="/vault/notes?tags__arraycontains=garden"' in html
    assert "1 row" in client.get("/vault/notes", params={"tags__arraycontains": "garden"}).text


def test_record_pages_are_headed_by_name_and_show_fields_in_words(client, data) -> None:
    for rid, heading in ((data["ada"], "Ada Lovelace"), (data["reply"], "Re: Engines"), (data["new"], "Shopping")):
        html = client.get(f"/-/record/{rid}").text
        assert re.search(rf'<h1 class="lv-record-title">{re.escape(heading)} <small>', html), rid
        assert f"<title>{heading}" in html
        assert "[&#34;" not in html and "[{&#34;" not in html  # the timeline says values in words too
    ada = client.get(f"/-/record/{data['ada']}").text
    assert '<a href="tel:+442079460001">' in ada and 'src="/-/blob/' in ada
    note = client.get(f"/-/record/{data['new']}").text
    assert note.count("<h1>Shopping</h1>") == 1 and "<li>cards</li>" in note  # the body, rendered once


def test_a_list_search_matches_the_start_of_words(client, data) -> None:
    html = client.get("/vault/contacts", params={"_search": "lovel"}).text
    assert "1 row" in html and "Ada Lovelace" in html and "Zed Shaw" not in html
    assert "1 row" in client.get("/vault/contacts", params={"_search": 'zed "'}).text  # a stray quote: no error


@pytest.mark.parametrize("many", [False, True], ids=["few matches", "many matches"])
def test_a_list_search_finds_the_same_rows_in_the_same_order_however_many_match(client, site, data, monkeypatch,
                                                                              many) -> None:
    """Few matches are looked up one by one, many walk the list's own order (state/search.list_search_where):
    the answer is the same, now and in the past, by any column."""
    from vault.state import search

    monkeypatch.setattr(search, "LOOKUP_MATCHES", 0 if many else 10_000)
    site.live.write(lambda v: v.add(Kind.MESSAGE, {"kind": "email", "subject": "Engines again", "body": "later",
                                                   "date": "2025-03-05T10:00:00+00:00"}, Source("cli")))

    def found(path: str, **params: str) -> list[str]:
        r = client.get(path, params={**params, "_shape": "objects"})
        assert r.status_code == 200, r.text
        return [row["subject"] for row in r.json()["rows"]]

    assert found("/vault/messages.json", _search="engines") == ["Engines again", "Re: Engines", "Engines"]
    assert found("/vault/messages.json", _search="engines", _sort="subject") == ["Engines", "Engines again", "Re: Engines"]
    assert found("/vault/messages.json", _search_subject="re") == ["Re: Engines"]
    assert found("/vault/messages.json", _search="card") == ["Re: Engines"]  # in the body
    assert found("/vault/messages.json", _search="zeppelin") == []
    assert client.get("/vault/messages.json", params={"_search_nope": "x"}).status_code == 400
    before = site.live.seq - 1  # before "Engines again"
    assert found(f"/asof_{before}/messages.json", _search="engines") == ["Re: Engines", "Engines"]
    assert found(f"/asof_{before}/messages.json", _search_subject="again") == []
    html = client.get("/vault/messages", params={"_search": "engines"}).text
    assert "3 rows" in html and 'value="engines"' in html  # the list's own search box, filled in


def test_a_list_count_follows_every_change(client, site, data) -> None:
    """Counts are kept for the state they were made in (StateDatabase._counts): a change shows at once."""
    def count() -> int:
        return client.get("/vault/notes.json").json()["filtered_table_rows_count"]

    assert count() == count() == 2
    site.live.write(lambda v: v.add(Kind.NOTE, {"title": "Third", "body": "x"}, Source("cli")))
    assert count() == 3
    site.live.write(lambda v: v.delete(data["old"], Source("cli")))
    assert count() == 2


def test_clients_asking_the_same_count_at_once_share_one_counting(site, data, monkeypatch) -> None:
    """Ten visitors opening the same list search at once count its matches once, and all get the count."""
    import asyncio

    from datasette.database import Database

    counted: list[str] = []
    run = Database.execute

    async def execute(self, sql, *args, **kwargs):  # the real query, noted
        if sql.lower().startswith("select count(*)"):
            counted.append(sql)
        return await run(self, sql, *args, **kwargs)

    monkeypatch.setattr(Database, "execute", execute)
    db = site.datasette.get_database("vault")

    async def ten() -> list[int]:
        found = await asyncio.gather(*(db.execute("select count(*) from messages") for _ in range(10)))
        return [r.first()[0] for r in found]

    assert asyncio.run(ten()) == [3] * 10 and len(counted) == 1


@pytest.fixture
def evaluated(monkeypatch) -> list[str]:
    """The words of every list search evaluated against the index (state_db.StateDatabase.search_matches)."""
    from vault.web.site import state_db

    words: list[str] = []
    real = state_db.matching_versions

    def noted(conn, kind, text, *args):
        words.append(text)
        return real(conn, kind, text, *args)

    monkeypatch.setattr(state_db, "matching_versions", noted)
    return words


@pytest.mark.parametrize("many", [False, True], ids=["few matches", "many matches"])
def test_paging_through_a_list_search_evaluates_it_once_per_state(client, site, data, monkeypatch, evaluated,
                                                                  many) -> None:
    """Every page and the count of a list search reuse its matches while the vault stays the same; an append,
    an edit or a delete is searched again at once, and the count follows."""
    from vault.state import search

    monkeypatch.setattr(search, "LOOKUP_MATCHES", 0 if many else 10_000)

    def page(**params: str) -> tuple[list[str], int, str | None]:
        r = client.get("/vault/messages.json", params={"_search": "engines", "_shape": "objects", **params})
        assert r.status_code == 200, r.text
        body = r.json()
        return [row["subject"] for row in body["rows"]], body["filtered_table_rows_count"], body["next"]

    assert page() == (["Re: Engines", "Engines"], 2, None)
    asked = client.get("/vault/messages.json", params={"_search": "engines"}).json()["query"]["params"]
    assert asked["search_0"] == "engines"  # the JSON still says what was searched for
    first, count, after = page(_size="1")
    assert (first, count) == (["Re: Engines"], 2) and after is not None
    assert page(_size="1", _next=after)[:2] == (["Engines"], 2)
    csv = client.get("/vault/messages.csv", params={"_search": "engines", "_stream": "1", "_size": "1"}).text
    assert csv.count("Engines") == 2 and csv.startswith("rowid,id,")  # every row, a page at a time
    assert evaluated == ["engines"]  # four pages (and a CSV of them all) and their count: one evaluation
    site.live.write(lambda v: v.add(Kind.MESSAGE, {"kind": "email", "subject": "Engines again", "body": "later",
                                                   "date": "2025-03-05T10:00:00+00:00"}, Source("cli")))
    assert page() == (["Engines again", "Re: Engines", "Engines"], 3, None)
    site.live.write(lambda v: v.update(data["first"], {"subject": "Looms"}, Source("cli")))
    assert page() == (["Engines again", "Re: Engines"], 2, None)
    site.live.write(lambda v: v.delete(data["reply"], Source("cli")))
    assert page() == (["Engines again"], 1, None)
    assert evaluated == ["engines"] * 4


def test_visitors_searching_a_list_at_once_share_one_evaluation(site, data, evaluated) -> None:
    import asyncio

    db = site.datasette.get_database("vault")

    async def ten() -> list:
        return await asyncio.gather(*(db.search_matches(Kind.MESSAGE, "engines", None, False) for _ in range(10)))

    found = asyncio.run(ten())
    assert evaluated == ["engines"] and {id(m) for m, _ in found} == {id(found[0][0])} and found[0][0].count == 2


def test_a_list_search_past_the_time_limit_gets_datasettes_interrupted_page(client, site, data,
                                                                          monkeypatch) -> None:
    from vault.web.site import state_db

    def slow(conn, *args):  # an index too large to search in time, made with SQL that never ends
        conn.execute("with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n")

    monkeypatch.setattr(state_db, "matching_versions", slow)
    site.datasette._settings["sql_time_limit_ms"] = 50
    r = client.get("/vault/messages", params={"_search": "engines"})
    assert r.status_code == 400 and "SQL query took too long" in r.text


def test_a_lists_facet_counts_follow_every_change(client, site, data) -> None:
    """Facet counts are kept per state like row counts (StateDatabase._counts)."""
    def tags() -> dict[str, int]:
        facet = client.get("/vault/notes.json").json()["facet_results"]["tags"]["results"]
        return {f["value"]: f["count"] for f in facet}

    assert tags() == tags() == {"home": 2, "garden": 1}
    site.live.write(lambda v: v.add(Kind.NOTE, {"title": "Roses", "body": "x", "tags": ["garden"]}, Source("cli")))
    assert tags() == {"home": 2, "garden": 2}


def test_a_count_that_outran_its_few_ms_is_not_tried_again_in_the_same_state(site, data, monkeypatch) -> None:
    """Datasette gives a table's count on the database page (and a facet) a few ms; one that outran them is
    remembered for the state (state_db.StateDatabase.execute), and tried again once the state changes."""
    import asyncio

    from datasette.database import Database, QueryInterrupted

    ran: list[str] = []
    run = Database.execute

    async def execute(self, sql, *args, **kwargs):  # the real query, noted
        ran.append(sql)
        return await run(self, sql, *args, **kwargs)

    monkeypatch.setattr(Database, "execute", execute)
    db = site.datasette.get_database("vault")
    slow = "select count(*) from (with recursive n(i) as (select 1 union all select i + 1 from n) select i from n)"

    def outran() -> bool:
        try:
            asyncio.run(db.execute(slow, custom_time_limit=1))
        except QueryInterrupted:
            return True
        return False

    assert outran() and outran() and ran.count(slow) == 1
    site.live.write(lambda v: v.add(Kind.NOTE, {"title": "Later", "body": "x"}, Source("cli")))
    assert outran() and ran.count(slow) == 2
    site.datasette._settings["sql_time_limit_ms"] = 50
    with pytest.raises(QueryInterrupted):  # a list's own count (no custom limit) is never answered from memory
        asyncio.run(db.execute(slow.replace("select 1", "select 2"), custom_time_limit=None))
    assert db.size == site.live.state_path.stat().st_size  # a large state: Datasette's home page counts nothing


def test_search_hits_name_the_record_and_its_date(client, data) -> None:
    html = client.get("/-/search", params={"q": "lovel"}).text  # part of a name
    assert f'<a href="/-/record/{data["ada"]}"><strong>Ada Lovelace</strong></a>' in html
    mail = client.get("/-/search", params={"q": "cards"}).text
    assert "<strong>Re: Engines</strong></a> <span class=\"lv-kind\"><time" in mail
    assert f'<a href="/-/record/{data["new"]}"><strong>(untitled)</strong></a> <span class="lv-kind"><time' in mail


def test_deleted_record_keeps_its_name_as_heading(client, site, data) -> None:
    site.live.write(lambda v: v.update(data["zed"], {"name": "Zed A. Shaw"}, Source("cli")))
    site.live.write(lambda v: v.delete(data["zed"], Source("cli")))
    html = client.get(f"/-/record/{data['zed']}").text
    assert '<h1 class="lv-record-title">Zed A. Shaw <small>' in html and "deleted now" in html


def test_a_rows_own_address_leads_to_its_record_page_now_and_in_the_past(client, site, data) -> None:
    """Datasette gives every list row an address (/vault/contacts/7): a record's leads to its page, at the
    state the list showed; the row's JSON stays Datasette's (it answered 500 for the lists' views)."""
    def rowid(db: str, table: str, key: str) -> int:
        return client.get(f"/{db}/{table}.json", params={"_shape": "array", "id": data[key]}).json()[0]["rowid"]

    for key, table in (("ada", "contacts"), ("first", "messages"), ("old", "notes")):
        r = client.get(f"/vault/{table}/{rowid('vault', table, key)}", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == f"/-/record/{data[key]}", table
        row = client.get(f"/vault/{table}/{rowid('vault', table, key)}.json", params={"_shape": "array"})
        assert row.status_code == 200 and row.json()[0]["id"] == data[key]
    before = site.live.seq
    site.live.write(lambda v: v.update(data["ada"], {"name": "Ada King"}, Source("cli")))
    r = client.get(f"/asof_{before}/contacts/{rowid(f'asof_{before}', 'contacts', 'ada')}", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == f"/-/record/{data['ada']}?at=seq:{before}"
    assert client.get("/vault/contacts/987654", follow_redirects=False).status_code == 404
    assert client.get("/nowhere/contacts/1", follow_redirects=False).status_code == 404


def test_the_new_pages_need_login_like_the_others(vault: Vault, data) -> None:
    from vault.web.site.login import set_password

    set_password("a long enough password")
    site = create_app(LiveVault(vault), host="192.0.2.7")
    client = TestClient(site, base_url="http://192.0.2.7")
    for page in ("/", "/vault", "/-/thread?db=vault&key=%3C1%40x%3E", "/vault/contacts", f"/-/record/{data['ada']}"):
        r = client.get(page, follow_redirects=False)
        assert r.status_code in (302, 403) and "Ada" not in r.text and "Engines" not in r.text, page


@pytest.mark.parametrize("table, order, index", [("contacts", "name", "sort"), ("messages", "date desc", "sort"),
                                                 ("notes", "updated_at desc", "changed")])
def test_each_list_reads_its_first_page_in_index_order_now_and_in_the_past(site, table, order, index) -> None:
    """The default sorts stay fast on large vaults: no sort of every record (projection.SORT_INDEXES)."""
    from vault.web.site.state_db import AsOfDatabase

    live = site.live
    past = AsOfDatabase(None, live.state_path, live.state_key, 3, None)._open()
    for conn in (live.reader(), past):
        plan = " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT * FROM {table} ORDER BY {order} LIMIT 51"))
        assert f"USING INDEX {table}_history_{index}" in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan
    past.close()


def test_a_later_page_of_a_list_skips_rows_in_its_sort_index_alone(site, data) -> None:
    """Datasette pages a view by OFFSET: the sort index holds whether each version is open (now or then), so
    the versions skipped are never looked up; the rows are those of the whole sorted list, now and in the past.
    Counting the live records still reads the smaller index of open versions alone."""
    from vault.web.site.state_db import AsOfDatabase

    live = site.live
    for conn in (live.reader(), AsOfDatabase(None, live.state_path, live.state_key, live.seq - 1, None)._open()):
        held = {r[2] for r in conn.execute("PRAGMA index_info(messages_history_sort)")}
        assert {"seq_to", "deleted", "seq_from"} <= held, held
        whole = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY date DESC")]
        if conn.execute("PRAGMA database_list").fetchall()[0][2]:  # the live state (a past one counts by seq)
            plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM messages"))
            assert "COVERING INDEX messages_history_open" in plan, plan  # not the wider sort index
        assert [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY date DESC LIMIT 2 OFFSET 1")] == whole[1:3]
        conn.close()


FIXTURES = __import__("pathlib").Path(__file__).parent.parent / "fixtures"
IMPORTED = ["vcard/fidelity.vcf", "vcard/contacts.vcf", "vcard/grouped.vcf", "google_csv/labels.csv",
            "mail/sample.mbox", "mail/quirks.mbox", "mail/lunch-reply.eml", "sms/sms-20240305093012.xml",
            "whatsapp/WhatsApp Chat with Ada Lovelace.txt", "telegram/DataExport_2024-03-10", "keep/Takeout",
            "enex/notes.enex", "markdown/vault"]


def test_every_page_of_imported_data_reads_in_words(vault: Vault) -> None:
    """Real exports of every kind, imported as a person would: no list, record or thread page shows raw JSON or
    an internal name."""
    from vault.formats.importing import import_file

    for name in IMPORTED:
        import_file(vault, FIXTURES / name)
    site = create_app(LiveVault(vault))
    client = TestClient(site, base_url="http://127.0.0.1")
    pages = ["/", "/vault/contacts", "/vault/messages", "/vault/notes"]
    for kind in Kind:
        ids = [rid for rid, _ in vault.projection.state(kind)]
        assert ids, kind
        pages += [f"/-/record/{rid}" for rid in ids]
    listed = client.get("/vault/messages", params={"_size": "max"}).text
    pages += sorted({m.replace("&amp;", "&") for m in re.findall(r'href="(/-/thread\?[^"]+)"', listed)})
    assert any(p.startswith("/-/thread") for p in pages)
    for page in pages:
        r = client.get(page)
        assert r.status_code == 200, page
        assert_plain(r.text, page)
    site.asof.close()


def test_what_datasette_reads_of_the_schema_is_kept_until_the_schema_changes(client, site) -> None:
    """state_db.StateDatabase keeps its introspection between pages, and forgets it when the schema version moves."""
    assert client.get("/vault/contacts").status_code == 200
    assert client.get("/vault/extra_list.json").status_code == 404  # "no such table" is remembered too
    site.live.write(lambda v: v.projection.conn.execute("CREATE VIEW extra_list AS SELECT 1 AS one"))
    r = client.get("/vault/extra_list.json", params={"_shape": "array"})
    assert r.status_code == 200 and r.json() == [{"one": 1}]
