"""Debian chromium (Playwright) on a real `lifevault serve`: the time machine and the forms, as the owner uses them.

Open "moments", go back to just before an import, see the contact it removed as it was, bring it back; add a
note and then edit it. Every page on the way shows dates, and no internal table name nor raw JSON list.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import PASSPHRASE
from helpers.served import CHROMIUM, CHROMIUM_ARGS, Served

from vault import Kind, Vault
from vault.formats.importing import import_file
from vault.web.site.login import set_password

LOGIN = "a browser test password"
DATE = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}\b")  # 3 Mar 2025, 14:05
INTERNAL = re.compile(r"_history|_projection|_fts\b|_text\b|asof_\d|sqlite_")
RAW_JSON_LIST = re.compile(r'\[\s*["{\[]')

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


def card(uid: str, name: str, phone: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nTEL;TYPE=CELL:{phone}\r\nEND:VCARD\r\n"


def readable(page, shots: Path, name: str) -> str:
    """The page's visible text, after checking it speaks dates and shows no internals; a screenshot is kept."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    text = page.inner_text("body")
    assert not INTERNAL.search(text), (name, INTERNAL.search(text))
    assert not RAW_JSON_LIST.search(text), (name, RAW_JSON_LIST.search(text))
    return text


def test_moments_before_an_import_bring_back_then_add_and_edit_a_note(tmp_path: Path, created, lifevault_home: Path):
    old, new = tmp_path / "phone.vcf", tmp_path / "contacts.vcf"
    old.write_text(card("ada", "Ada Lovelace", "+44 20 7946 0000") + card("grace", "Grace Hopper", "+1 555 0100"))
    new.write_text(card("grace", "Grace Hopper", "+1 555 0100") + card("hedy", "Hedy Lamarr", "+1 555 0199"))
    with Vault.open(created[0], PASSPHRASE) as v:
        import_file(v, old)
        import_file(v, new, mirror=True)  # Ada is not in the new file: the import removes her
        ada = next(rid for rid, f in v.projection.state(Kind.CONTACT, 2) if f["name"] == "Ada Lovelace")
        assert v.projection.status(Kind.CONTACT, ada) == "deleted"
    set_password(LOGIN)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    server = Served(tmp_path, created[0], lifevault_home, PASSPHRASE)
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(server.url + "/-/moments")
            assert page.url.endswith("/-/login")  # the time machine needs the login like every page
            page.fill("input[name=username]", "owner")
            page.fill("input[name=password]", LOGIN)
            page.click("form.password-login [type=submit]")
            page.wait_for_url(server.url + "/")

            # moments: the import of contacts.vcf, with its counts; open the vault just before it
            page.goto(server.url + "/-/moments")
            text = readable(page, shots, "moments")
            assert "Import of contacts.vcf: 1 added, 1 removed" in text and "Import of phone.vcf: 2 added" in text
            assert DATE.search(text)
            moment = page.locator(".lv-moment", has_text="Import of contacts.vcf")
            moment.locator("a.lv-open-before").click()
            page.wait_for_url("**/asof_2")
            assert "As it was on " in page.inner_text(".lv-asof") and DATE.search(page.inner_text(".lv-asof"))
            page.goto(page.url + "/contacts")
            assert "Ada Lovelace" in page.inner_text("body")  # as she was before the import removed her
            page.click("a[href^='/-/record/%s']" % ada)
            page.wait_for_url(f"**/-/record/{ada}?at=seq:2")
            text = readable(page, shots, "before-import")
            assert "Deleted by import of contacts.vcf (no longer in the file)" in text
            assert "Created as Ada Lovelace by import of phone.vcf" in text and "+44 20 7946 0000" in text

            # bring her back, from the record page
            page.click("form.lv-bring-back button")
            page.wait_for_url(f"**/-/record/{ada}")
            text = readable(page, shots, "brought-back")
            assert "Brought back Ada Lovelace to how it was on" in text and "live now" in text
            page.goto(server.url + "/vault/contacts")
            assert "Ada Lovelace" in page.inner_text("body")

            # add a note, then edit it
            page.goto(server.url + "/-/add/note")
            page.fill("#lv-f-title", "Reading list")
            page.fill("#lv-f-body", "- SICP\n- TAOCP")
            page.fill("#lv-f-tags", "books, home")
            readable(page, shots, "add-note")
            page.click("button.lv-save")
            page.wait_for_url("**/-/record/n_*")
            note = page.url.rsplit("/", 1)[1]
            assert "Added Reading list." in page.inner_text("body")
            page.click("a.lv-edit")
            page.wait_for_url(f"**/-/record/{note}/edit")
            assert page.input_value("#lv-f-tags") == "books, home"
            page.fill("#lv-f-title", "Reading list 2026")
            page.fill("#lv-f-tags", "books")
            page.click("button.lv-save")
            page.wait_for_url(f"**/-/record/{note}")
            text = readable(page, shots, "note-edited")
            assert "Saved Reading list 2026." in text
            assert "Renamed from Reading list to Reading list 2026 in the browser" in text
            assert "Tag home removed in the browser" in text and DATE.search(text)
            browser.close()
    except Exception as e:
        raise AssertionError(f"{e}\n--- server output ---\n{server.output()}") from e
    finally:
        server.stop()
    assert all((shots / f"{n}.png").stat().st_size > 1000 for n in
               ("moments", "before-import", "brought-back", "add-note", "note-edited"))
    with Vault.open(created[0], PASSPHRASE) as v:
        assert v.get(ada)["name"] == "Ada Lovelace"
        assert v.get(note) == {"title": "Reading list 2026", "body": "- SICP\n- TAOCP", "tags": ["books"]}
        assert [h["source"] for h in v.history(note)] == [{"via": "web", "name": "owner"}] * 2
