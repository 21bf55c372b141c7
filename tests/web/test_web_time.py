"""The time machine and the forms in-process: dates in the "as of" control, the moments page, timelines in
words with bring-back, and adding and editing contacts and notes (source web, CSRF and same-origin checked)."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from vault import Kind, Source, Vault
from vault.formats.importing import import_file
from vault.domain.instants import human_time, to_us
from vault.web import LiveVault
from vault.web.site.login import set_password
from vault.web.site.server import Site, create_app

DATE_RE = re.compile(r"As it was on \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}")
SAME = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada-1\r\nFN:Ada Lovelace\r\nTEL;TYPE=WORK:+44 20 7946 0000\r\nEND:VCARD\r\n"


def local_us(text: str) -> int:
    return to_us(datetime.fromisoformat(text).astimezone())


@pytest.fixture
def data(vault: Vault, tmp_path: Path) -> dict[str, Any]:
    """A note written on 1 Mar 2025, a contact imported from contacts.vcf on 3 Mar, edited in the CLI, deleted."""
    with vault.transaction() as tx:
        note = tx.create(Kind.NOTE, {"title": "Garden", "tags": ["home"]}, Source("cli"),
                         recorded_at=local_us("2025-03-01T10:00"))
    (tmp_path / "contacts.vcf").write_text(CARD)
    imported = import_file(vault, tmp_path / "contacts.vcf")
    (ada, _), = vault.projection.state(Kind.CONTACT)
    vault.update(ada, {"name": "Ada King"}, Source("cli"))
    vault.delete(ada, Source("cli"))
    return {"note": note, "ada": ada, "import": imported, "imported_at": vault.projection.seq - 2}


@pytest.fixture
def client(site: Site) -> TestClient:
    return TestClient(site, base_url="http://127.0.0.1", headers=SAME)


def csrf(client: TestClient, page: str) -> str:
    return re.search(r'name="csrftoken" value="([^"]+)"', client.get(page).text).group(1)


def box(page: str) -> str:
    return html.unescape(re.search(r'id="lv-asof-at"[^>]*value="([^"]*)"', page, re.S).group(1))


# -- the "as of" control speaks dates ----------------------------------------------------------------
def test_a_typed_date_stays_a_date_and_the_banner_shows_the_date_and_time(client, data):
    r = client.get("/-/as-of", params={"at": "2025-03-02", "next": "/vault/notes"})
    assert r.url.path == "/asof_1/notes"  # the note (event 1) was the whole vault on 2 Mar 2025
    assert "Garden" in r.text and box(r.text) == "2025-03-02"
    assert f"As it was on {human_time(local_us('2025-03-01T10:00'))}" in r.text and "event 1 of 4" in r.text
    # the slider and experts' seq:N still work, and the box then says what was typed
    r = client.get("/-/as-of", params={"at": "seq:2", "next": "/vault/contacts"})
    assert r.url.path == "/asof_2/contacts" and box(r.text) == "seq:2" and "Ada Lovelace" in r.text
    # arriving by a link (a moment), the box shows the state's date and time, which resubmitted stays put
    r = client.get("/-/as-of", params={"seq": "1", "next": "/vault/notes"})
    shown = box(r.text)
    assert re.fullmatch(r"2025-03-01 10:00:00", shown)
    again = client.get("/-/as-of", params={"at": shown, "shown": shown, "shown_seq": "1", "next": "/vault/notes"})
    assert again.url.path == "/asof_1/notes"


def test_now_says_when_the_last_change_was(client, site):
    page = client.get("/vault/contacts").text
    last = site.live.read(lambda v: v.log.recorded_at(v.log.head().seq))
    assert f"last change {human_time(last)}, event 4" in page and box(page) == ""
    r = client.get("/-/as-of", params={"at": "2999-01-01", "next": "/vault/contacts"})  # after the last change
    assert r.url.path == "/vault/contacts" and "Now" in r.text and box(r.text) == "2999-01-01"
    r = client.get("/-/as-of", params={"at": "now", "next": "/vault/contacts"})
    assert box(r.text) == ""


# -- moments -----------------------------------------------------------------------------------------
def test_moments_list_the_import_and_open_the_vault_just_before_it(client, data):
    page = client.get("/-/moments").text
    assert "Import of contacts.vcf" in page and "1 added" in page and "Changes on 1 Mar 2025" in page
    before = re.search(r'class="lv-open-before" href="([^"]+)"', page).group(1)
    r = client.get(html.unescape(before))
    assert r.url.path == "/asof_1/vault" or r.url.path == "/asof_1"
    assert "Ada" not in client.get("/asof_1/contacts").text  # before the import: no Ada yet
    after = html.unescape(re.search(r'class="lv-open-after" href="([^"]+)"', page).group(1))
    assert client.get(after).url.path.startswith(f"/asof_{data['imported_at']}")
    assert "Ada Lovelace" in client.get(f"/asof_{data['imported_at']}/contacts").text


# -- timelines in words, bring back --------------------------------------------------------------------
def test_the_timeline_says_who_did_what_when_and_brings_a_record_back(client, site, data):
    ada = data["ada"]
    page = html.unescape(client.get(f"/-/record/{ada}").text)
    assert "Created as Ada Lovelace by import of contacts.vcf" in page
    assert "Renamed from Ada Lovelace to Ada King from the command line" in page
    assert '["' not in page and "[{" not in page  # no raw JSON lists
    token = csrf(client, f"/-/record/{ada}")
    seq = re.search(r'class="lv-revert lv-bring-back">.*?name="seq" value="(\d+)"', page, re.S).group(1)
    r = client.post(f"/-/record/{ada}/revert", data={"seq": seq, "csrftoken": token})
    assert "Brought back Ada King to how it was on" in html.unescape(r.text)
    assert site.live.read(lambda v: v.get(ada))["name"] == "Ada King"
    assert "Brought back to how it was on" in html.unescape(client.get(f"/-/record/{ada}").text)


# -- add and edit ----------------------------------------------------------------------------------------
def test_the_add_forms_are_linked_from_the_menu_and_their_tables(client):
    assert '/-/add/contact' in client.get("/vault/contacts").text and '/-/add/note' in client.get("/vault/notes").text
    assert '/-/moments' in client.get("/").text  # the menu, on every page


def test_add_then_edit_a_note_in_the_browser(client, site):
    token = csrf(client, "/-/add/note")
    r = client.post("/-/add/note", data={"csrftoken": token, "title": "Reading list", "body": "- SICP\r\n- TAOCP",
                                         "tags": "books, home"}, follow_redirects=False)
    assert r.status_code == 302
    rid = r.headers["location"].rsplit("/", 1)[1]
    assert site.live.read(lambda v: v.get(rid)) == {"title": "Reading list", "body": "- SICP\n- TAOCP",
                                                    "tags": ["books", "home"]}
    form = client.get(f"/-/record/{rid}/edit").text
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    assert 'value="books, home"' in form
    r = client.post(f"/-/record/{rid}/edit", data={"csrftoken": token, "version": version, "title": "Reading list",
                                                   "body": "- SICP\n- TAOCP\n- HtDP", "tags": "books"})
    assert "Saved Reading list." in r.text
    history = site.live.read(lambda v: v.history(rid))
    assert [h["event"] for h in history] == ["created", "updated"]
    assert all(h["source"] == {"via": "web", "name": "browser"} for h in history)  # an open site: no login name
    assert history[-1]["data"] == {"title": "Reading list", "body": "- SICP\n- TAOCP\n- HtDP", "tags": ["books"]}


def test_editing_a_contact_keeps_what_the_form_does_not_show(client, site, vault):
    rid = site.live.write(lambda v: v.add(Kind.CONTACT, {
        "name": "Grace Hopper", "photo": {"blob": v.put_blob(b"jpeg"), "name": "g.jpg"},
        "phones": [{"value": "+1 555 0100", "types": ["work", "voice"], "label": None, "pref": 1,
                    "params": {"X-SERVICE-TYPE": ["Skype"]}}]}, Source("cli")))
    token = csrf(client, f"/-/record/{rid}/edit")
    form = client.get(f"/-/record/{rid}/edit").text
    assert 'value="work, voice"' in form and "Kept as they are: Photo." in form
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    client.post(f"/-/record/{rid}/edit", data={
        "csrftoken": token, "version": version, "name": "Grace Hopper", "phones.0.value": "+1 555 0100",
        "phones.0.label": "work, voice", "phones.1.value": "+1 555 0199", "phones.1.label": "Boat",
        "emails.0.value": "grace@example.org", "emails.0.label": "home", "addresses.0.city": "Arlington"})
    got = site.live.read(lambda v: v.get(rid))
    assert got["phones"] == [{"value": "+1 555 0100", "types": ["work", "voice"], "label": None, "pref": 1,
                              "params": {"X-SERVICE-TYPE": ["Skype"]}},
                             {"value": "+1 555 0199", "types": [], "label": "Boat", "pref": None}]
    assert got["emails"] == [{"value": "grace@example.org", "types": ["home"], "label": None, "pref": None}]
    assert got["addresses"] == [{"city": "Arlington", "types": [], "label": None, "pref": None}]
    assert got["photo"]["name"] == "g.jpg"


def test_a_refused_save_shows_the_sentence_and_keeps_what_was_typed(client, site, data):
    token = csrf(client, "/-/add/contact")
    r = client.post("/-/add/contact", data={"csrftoken": token, "name": " ", "phones.0.value": ""})
    assert r.status_code == 400 and "The contact is empty: a contact has name, " in r.text  # the schema's sentence
    r = client.post("/-/add/note", data={"csrftoken": token, "nmae": "Ada", "title": "Kept"})  # a misspelled field
    assert r.status_code == 400 and "Note field 'nmae' is unknown: a note has title, body, tags" in html.unescape(r.text)
    assert 'value="Kept"' in r.text
    note = data["note"]
    form = client.get(f"/-/record/{note}/edit").text
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    site.live.write(lambda v: v.update(note, {"title": "Garden plan"}, Source("cli")))  # meanwhile, elsewhere
    r = client.post(f"/-/record/{note}/edit", data={"csrftoken": token, "version": version, "title": "Roses",
                                                    "tags": "home, roses"})
    assert r.status_code == 400 and "was changed since this form was opened" in r.text
    assert 'value="Roses"' in r.text and 'value="home, roses"' in r.text  # the input is kept
    assert site.live.read(lambda v: v.get(note))["title"] == "Garden plan"


@pytest.mark.parametrize("headers", [{"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9"}])
def test_a_cross_site_form_post_cannot_add_or_edit(site, vault, data, headers):
    client = TestClient(site, base_url="http://127.0.0.1")
    token = csrf(client, "/-/add/note")  # even holding the cookie and a good token
    head = vault.log.head().seq
    forged = [("/-/add/note", {"title": "forged"}), (f"/-/record/{data['note']}/edit", {"title": "forged", "version": "1"})]
    for path, form in forged:
        r = client.post(path, data={**form, "csrftoken": token}, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (path, r.text)
    assert vault.log.head().seq == head
    for path, form in forged:  # the same posts from the site's own page go through
        r = client.post(path, data={**form, "csrftoken": token}, headers=SAME, follow_redirects=False)
        assert r.status_code == 302, (path, r.text)
    assert vault.get(data["note"])["title"] == "forged" and vault.log.head().seq == head + 2


def test_forms_need_the_login_when_one_is_set(vault, data):
    set_password("a long login password here")
    client = TestClient(create_app(LiveVault(vault), host="0.0.0.0"), base_url="http://127.0.0.1", headers=SAME)
    for path in ("/-/add/note", f"/-/record/{data['note']}/edit", "/-/moments"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/-/login", path


def test_a_banner_does_not_wait_for_a_long_write(client, site, data):
    """While a long import holds the vault's lock, pages still answer: the event number leads instead of the date."""
    import threading

    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with site.live.lock:
            holding.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        holding.wait(10)
        page = client.get(f"/-/record/{data['note']}", params={"at": "seq:3"}).text  # event 3 never shown before
        assert "As it was on event 3" in page and box(page) == "seq:3"
    finally:
        release.set()
        t.join()
    page = client.get(f"/-/record/{data['note']}", params={"at": "seq:3"}).text
    assert "As it was on event 3" not in page and DATE_RE.search(page)
