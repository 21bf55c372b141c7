"""A real browser walks the daily tasks (issue 13): find a contact by part of a name and see how to call them,
read a mail thread, open a note; no page shows an internal table name or a raw JSON list."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.domain.contacts import typed
from vault.web.site.login import set_password

from conftest import PASSPHRASE
from helpers.served import CHROMIUM, CHROMIUM_ARGS, Served

LOGIN = "a browser walk password"
# Whole names only: random ids may hold the same letters (`c_fts…`).
INTERNAL = re.compile(r"\w+_(history|fts|text)\b|_projection\b|_memory\b|\bsqlite_\w|\basof_\d")
RAW_JSON = ('["', '[{"')

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


def _fill(path: Path) -> dict[str, str]:
    with Vault.open(path, PASSPHRASE) as v:
        cli = Source("cli")
        ada = v.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": [typed("ada@example.org", ["home"])],
                                   "phones": [typed("+44 20 7946 0001", ["cell"], "Mobile")]}, cli)
        v.add(Kind.CONTACT, {"name": "Charles Babbage", "emails": ["charles@example.org"]}, cli)
        v.add(Kind.MESSAGE, {"kind": "email", "thread": "<engine@x>", "message_id": "<engine@x>",
                             "subject": "The Analytical Engine", "from": "Charles <charles@example.org>",
                             "to": ["ada@example.org"], "date": "2025-03-03T14:05:00+00:00",
                             "body": "Would you translate Menabrea's paper?"}, cli)
        v.add(Kind.MESSAGE, {"kind": "email", "thread": "<engine@x>", "message_id": "<notes@x>",
                             "in_reply_to": "<engine@x>", "subject": "Re: The Analytical Engine",
                             "from": "ada@example.org", "to": ["Charles <charles@example.org>"],
                             "date": "2025-03-05T09:30:00+00:00", "body": "Yes, and I will add some notes."}, cli)
        note = v.add(Kind.NOTE, {"title": "Note G", "body": "# Bernoulli numbers\n\nA *method* for the engine.",
                                 "tags": ["maths", "engine"]}, cli)
    return {"ada": ada, "note": note}


def _plain(page, name: str) -> None:
    html = re.sub(r"<script.*?</script>", "", page.content(), flags=re.S)
    assert not INTERNAL.search(html), f"{name} shows {INTERNAL.search(html).group(0)!r}"
    for raw in RAW_JSON:
        assert raw not in html, f"{name} shows raw JSON {raw!r}"


def test_find_call_read_a_thread_open_a_note(tmp_path: Path, created, lifevault_home: Path) -> None:
    ids = _fill(created[0])
    set_password(LOGIN)
    server = Served(tmp_path, created[0], lifevault_home, PASSPHRASE)
    shots = tmp_path / "shots"
    shots.mkdir()
    blocked: list[str] = []
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)

            page.goto(server.url + "/")
            page.fill("input[name=username]", "owner")
            page.fill("input[name=password]", LOGIN)
            page.click("form.password-login [type=submit]")
            page.wait_for_url(server.url + "/")
            _plain(page, "home")
            assert page.locator("a.lv-card").all_inner_texts() == ["Contacts\n2", "Messages\n2", "Notes\n1"]
            page.screenshot(path=str(shots / "home.png"))

            # find a contact by typing part of a name, and call them
            page.fill("#lv-home-q", "lovel")
            page.press("#lv-home-q", "Enter")
            page.wait_for_url("**/-/search?*")
            _plain(page, "search")
            page.click(".lv-results-contacts a:has-text('Ada Lovelace')")
            page.wait_for_url(f"**/-/record/{ids['ada']}")
            _plain(page, "contact")
            assert page.locator("h1.lv-record-title").inner_text().startswith("Ada Lovelace")
            assert page.locator("a[href^='tel:']").get_attribute("href") == "tel:+442079460001"
            page.screenshot(path=str(shots / "contact.png"), full_page=True)

            page.click("a:has-text('All contacts')")
            page.wait_for_url("**/vault/contacts")
            _plain(page, "contacts")
            assert page.locator("td.col-name").all_inner_texts() == ["Ada Lovelace", "Charles Babbage"]
            page.fill("#_search", "babb")  # the list's own search box matches the start of words too
            page.press("#_search", "Enter")
            page.wait_for_url("**/vault/contacts?*_search=babb*")
            _plain(page, "contacts found")
            assert page.locator("td.col-name").all_inner_texts() == ["Charles Babbage"]
            page.go_back()
            page.wait_for_url("**/vault/contacts")
            assert page.locator("td.col-phones a[href='tel:+442079460001']").inner_text() == "+44 20 7946 0001"
            page.screenshot(path=str(shots / "contacts.png"), full_page=True)

            # read a mail thread
            page.goto(server.url + "/")
            page.click("a.lv-card:has-text('Messages')")
            page.wait_for_url("**/vault/messages")
            _plain(page, "messages")
            assert page.locator("td.col-from").all_inner_texts() == ["Ada Lovelace", "Charles Babbage"]  # newest first
            page.locator("td.col-thread a").first.click()
            page.wait_for_url("**/-/thread?*")
            _plain(page, "thread")
            assert page.locator("h1").inner_text() == "The Analytical Engine"
            bodies = page.locator(".lv-message .lv-body").all_inner_texts()
            assert bodies == ["Would you translate Menabrea's paper?", "Yes, and I will add some notes."]
            assert page.locator(".lv-message .lv-from").all_inner_texts() == ["Charles Babbage", "Ada Lovelace"]
            first, reply = (page.locator(".lv-message").nth(i).bounding_box() for i in (0, 1))
            assert reply["x"] > first["x"]  # the reply is indented under what it answers
            page.screenshot(path=str(shots / "thread.png"), full_page=True)

            # open a note
            page.goto(server.url + "/vault/notes")
            _plain(page, "notes")
            assert page.locator(".facet-info").first.is_visible()  # tags as facets
            page.click("td.col-title a")
            page.wait_for_url(f"**/-/record/{ids['note']}")
            _plain(page, "note")
            assert page.locator("h1.lv-record-title").inner_text().startswith("Note G")
            assert page.locator(".lv-markdown h1").all_inner_texts() == ["Bernoulli numbers"]
            assert page.locator(".lv-markdown em").inner_text() == "method"
            page.screenshot(path=str(shots / "note.png"), full_page=True)
            browser.close()
    except Exception as e:
        raise AssertionError(f"{e}\n--- server output ---\n{server.output()}") from e
    finally:
        server.stop()
    assert blocked == []  # the pages need no script the CSP forbids
    assert sorted(p.name for p in shots.iterdir()) == ["contact.png", "contacts.png", "home.png", "note.png",
                                                        "thread.png"]
    assert all(p.stat().st_size > 1000 for p in shots.iterdir())


def test_the_readme_screenshots_are_made_from_the_demo_vault(tmp_path: Path, monkeypatch) -> None:
    """scripts/screenshots.py: every picture README shows is taken from a fresh demo vault."""
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "scripts"))
    screenshots = importlib.import_module("screenshots")
    written = screenshots.take(tmp_path / "img")
    assert [p.name for p in written] == [shot.name for shot in screenshots.SHOTS] and "contacts.png" in \
        [p.name for p in written]
    assert all(p.stat().st_size > 10_000 for p in written)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert all(f"docs/img/{shot.name}" in readme for shot in screenshots.SHOTS)
