"""A real browser (Debian chromium via Playwright) logs in, searches, goes back in time, and reverts a deletion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.web.site.login import set_password

from conftest import PASSPHRASE
from helpers.served import Served

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOGIN = "a browser test password"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


def test_login_search_as_of_timeline_revert(tmp_path: Path, created, lifevault_home: Path):
    with Vault.open(created[0], PASSPHRASE) as v:
        cli = Source("cli")
        v.add(Kind.CONTACT, {"name": "Grace Hopper"}, cli)
        doomed = v.add(Kind.CONTACT, {"name": "Hedy Lamarr", "emails": ["hedy@example.org"]}, cli)
        v.add(Kind.MESSAGE, {"subject": "Frequency hopping", "body": "The torpedo guidance idea works", "thread": "radio"}, cli)
        before = v.projection.seq
        v.delete(doomed, cli)
    set_password(LOGIN)
    server = Served(tmp_path, created[0], lifevault_home, PASSPHRASE)
    shot = tmp_path / "reverted.png"
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(20_000)

            page.goto(server.url + "/vault/contacts")
            assert page.url.endswith("/-/login"), page.url  # login is required once a password is set
            page.fill("input[name=username]", "owner")
            page.fill("input[name=password]", LOGIN)
            page.click("form.password-login [type=submit]")
            page.wait_for_url(server.url + "/")

            page.goto(server.url + "/-/search")
            page.fill("#lv-search-q", "torpedo")
            page.click("form[action='/-/search'] button[type=submit]")
            assert "[torpedo]" in page.locator(".lv-results-messages").inner_text()

            page.goto(server.url + "/vault/contacts")
            assert "Hedy Lamarr" not in page.content()
            slider = page.locator("#lv-asof-seq")  # move the as-of control to just before the deletion
            slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(before))
            assert page.input_value("#lv-asof-at") == f"seq:{before}"
            page.click("form.lv-asof button[type=submit]")
            page.wait_for_url(f"**/asof_{before}/contacts")
            assert "Hedy Lamarr" in page.content()

            page.click(f"a[href^='/-/record/{doomed}']")
            page.wait_for_url(f"**/-/record/{doomed}*")
            assert "deleted now" in page.content()
            page.click("form.lv-revert button")
            page.wait_for_url(f"**/-/record/{doomed}")
            assert "live now" in page.content() and "revived" in page.content()
            page.screenshot(path=str(shot), full_page=True)

            page.goto(server.url + "/vault/contacts")
            assert "Hedy Lamarr" in page.content()
            browser.close()
    except Exception as e:
        raise AssertionError(f"{e}\n--- server output ---\n{server.output()}") from e
    finally:
        server.stop()
    assert shot.stat().st_size > 1000
    with Vault.open(created[0], PASSPHRASE) as v:
        assert v.get(doomed)["name"] == "Hedy Lamarr"
        source = v.history(doomed)[-1]["source"]  # a revert names the state it went back to
        created = v.history(doomed)[0]["seq_from"]  # the version brought back
        assert (source["via"], source["name"], source["detail"]["revert_to"]) == ("web", "owner", created)
