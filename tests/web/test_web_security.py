"""What no other web page can do to the vault through the owner's browser, in three tiers:
in-process (TestClient), a real `lifevault serve` (raw HTTP), and Debian chromium (Playwright).

- DNS rebinding: a Host the server does not serve gets 421 and no data, from Datasette or the API.
- Cross-site writes: a state-changing request from another site, or without the CSRF cookie and token,
  changes nothing, on every route that accepts one.
- The headers: a strict CSP (no third-party origin) and no sniffing, framing or referrer, on every page;
  /api/docs renders with the outside network blocked.
- An append-only token's write answers are the same whether or not the write changed anything.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import PASSPHRASE
from fastapi.routing import APIRoute
from helpers.served import CHROMIUM, CHROMIUM_ARGS, Served
from starlette.testclient import TestClient

from vault import Kind, Source, Vault
from vault.store import tokens
from vault.web import LiveVault
from vault.web.api.routes import VaultHolder, create_api
from vault.web.site.login import set_password
from vault.web.site.server import Site, create_app

SECRET = "Xenia Rebindova"  # a contact name no refused answer may carry
ATTACKER = "http://attacker.example"
LOGIN = "a login password for these tests"
SAME = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def data(vault: Vault) -> dict[str, Any]:
    """A contact deleted after one edit (a revert would bring it back), a live one, an API token."""
    cli = Source("cli")
    doomed = vault.add(Kind.CONTACT, {"name": SECRET}, cli)
    before = vault.projection.seq
    vault.delete(doomed, cli)
    live = vault.add(Kind.NOTE, {"title": "Groceries"}, cli)
    return {"doomed": doomed, "before": before, "live": live, "live_version": vault.projection.seq,
            "token": tokens.create_token(vault.log, "phone")}


def _site(vault: Vault, **kw: Any) -> Site:
    return create_app(LiveVault(vault), **kw)


@pytest.fixture
def site(vault: Vault, data: dict[str, Any]) -> Iterator[Site]:
    site = _site(vault)
    yield site
    site.asof.close()


def _client(site: Site, host: str = "127.0.0.1") -> TestClient:
    return TestClient(site, base_url=f"http://{host}")


def _state(vault: Vault, doomed: str) -> tuple[int, str, bool]:
    """What a write would change: the log's head, the deleted contact's status, whether its name is live."""
    return (vault.log.head().seq, vault.projection.status(Kind.CONTACT, doomed),
            SECRET in str(list(vault.projection.state(Kind.CONTACT))))


# -- 1. DNS rebinding -------------------------------------------------------------------------
def _reads(data: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    bearer = {"Authorization": f"Bearer {data['token']}"}
    return [("/vault.json?sql=select+data+from+contacts_history", {}), ("/vault/contacts_history.json", {}),
            (f"/-/record/{data['doomed']}", {}), ("/-/search?q=Xenia", {}), ("/", {}),
            (f"/api/contacts/{data['doomed']}/history", bearer), ("/api/changes", bearer), ("/api/docs", {}),
            ("/api/openapi.json", {})]


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8001", "127.0.0.1.nip.io", "localhost.evil",
                                  "[::2]", "", "bad host"])
def test_an_unserved_host_gets_421_and_no_data(site: Site, data, host: str) -> None:
    client = _client(site)
    for path, headers in _reads(data):
        r = client.get(path, headers={**headers, "Host": host})
        assert r.status_code == 421, (host, path, r.text[:200])
        assert SECRET not in r.text and data["doomed"] not in r.text
        assert "--allow-host" in r.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8001", "localhost", "LOCALHOST:80", "[::1]:8001"])
def test_loopback_names_are_served_on_any_port(site: Site, data, host: str) -> None:
    client = _client(site)
    for path, headers in _reads(data):
        r = client.get(path, headers={**headers, "Host": host})
        assert r.status_code == 200, (host, path, r.text[:200])
    assert SECRET in client.get(_reads(data)[0][0], headers={"Host": host}).text  # the refusal above is the Host's doing


def test_allow_host_and_the_bound_host_are_served(vault: Vault, data) -> None:
    set_password(LOGIN)  # a non-loopback --host needs a login
    site = _site(vault, host="192.0.2.7", allow_hosts=["vault.home.arpa", "fe80::1"])
    client = _client(site)
    for host in ("192.0.2.7:8001", "vault.home.arpa", "Vault.Home.Arpa.:443", "[fe80::1]:8001", "localhost"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    for host in ("vault.home.arpa.evil", "home.arpa", "192.0.2.8"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 421, host


def test_allow_host_refuses_what_is_not_a_host_name(run) -> None:
    r = run("serve", "--allow-host", "http://vault.home.arpa/")
    assert r.exit_code == 2 and "is not a host name" in r.output


# -- 2. cross-site writes -----------------------------------------------------------------------
def _targets(data: dict[str, Any]) -> list[str]:
    """A path for every route of the site: every one must refuse a cross-site write."""
    rid, blob = data["doomed"], "ab" * 32
    return ["/-/as-of", "/-/search", f"/-/record/{rid}", f"/-/record/{rid}/revert", f"/-/blob/{blob}",
            "/-/moments", "/-/add/contact", "/-/add/note", f"/-/record/{data['live']}/edit",
            "/-/password-tool", "/-/login", "/", "/favicon.ico", "/-/static/app.css", "/:memory:", "/-/metadata",
            "/-/versions", "/-/plugins", "/-/settings", "/-/config.json", "/-/config", "/-/threads", "/-/databases",
            "/-/actor", "/-/auth-token", "/-/logout", "/-/permissions", "/-/messages", "/-/allow-debug",
            "/-/patterns", "/vault.db", "/vault", "/vault/contacts", f"/vault/contacts/{rid}", "/vault/contacts/1",
            "/-/thread"]


def _api_writes(data: dict[str, Any]) -> list[tuple[str, str]]:
    app = create_api(VaultHolder(None))  # type: ignore[arg-type]  # building routes never touches the vault
    ids = {"{record_id}": data["live"], "{blob_id}": "ab" * 32}
    out = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods - {"GET", "HEAD"}:
                path = route.path
                for slot, value in ids.items():
                    path = path.replace(slot, value)
                out.append((method, "/api" + path))
    return out


def test_the_targets_cover_every_route(site: Site, data) -> None:
    """If Datasette, a plugin or lifevault adds a route, this fails until the route is in the cross-site tests."""
    paths = _targets(data)
    for regex, _ in site.datasette._routes():
        assert any(regex.match(p) for p in paths), f"no cross-site test posts to {regex.pattern}"
    assert len(_api_writes(data)) >= 10


def _form(data: dict[str, Any], path: str) -> dict[str, str]:
    if path.endswith("/revert"):
        return {"seq": str(data["before"])}
    if path == "/-/login":
        return {"username": "owner", "password": LOGIN}
    if path.startswith("/-/add/") or path.endswith("/edit"):  # a form that would save, were it let through
        return {"name": "forged", "title": "forged", "version": str(data["live_version"])}
    return {"message": "hello", "message_type": "INFO", "sql": "select 1"}


CROSS_SITE = {
    "cross-site page": {"Origin": ATTACKER, "Sec-Fetch-Site": "cross-site"},
    "same-site other port": {"Origin": "http://127.0.0.1:9", "Sec-Fetch-Site": "same-site"},
    "opaque origin": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    "opaque origin, nothing else": {"Origin": "null"},
    "no Origin nor Sec-Fetch-Site": {},
    "same origin, no cookie": SAME,
}


@pytest.mark.parametrize("how", CROSS_SITE)
def test_a_cross_site_or_cookie_less_post_changes_nothing_anywhere(site: Site, vault: Vault, data, how: str) -> None:
    client = _client(site)  # loopback, no password: browsing is open, as in the finding
    before = _state(vault, data["doomed"])
    let_through, logged_in = [], []
    for path in _targets(data):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            client.cookies.clear()  # cookie-less, as a forged request from another site may well be
            r = client.request(method, path, data=_form(data, path), headers=CROSS_SITE[how], follow_redirects=False)
            let_through += [] if r.status_code == 403 else [(method, path, r.status_code)]
            logged_in += [path] if "ds_actor" in r.headers.get("set-cookie", "") else []
    for method, path in _api_writes(data):
        r = client.request(method, path, json={"title": "forged"}, headers=CROSS_SITE[how])
        let_through += [] if r.status_code in (401, 403) else [(method, path, r.status_code)]
    assert _state(vault, data["doomed"]) == before  # the revert did not happen
    assert logged_in == [] and let_through == []


@pytest.mark.parametrize("how", CROSS_SITE)
def test_a_cross_site_login_with_the_right_password_logs_nobody_in(vault: Vault, data, how: str) -> None:
    set_password(LOGIN)
    client = _client(_site(vault))
    r = client.post("/-/login", data={"username": "owner", "password": LOGIN}, headers=CROSS_SITE[how],
                    follow_redirects=False)
    assert r.status_code == 403 and "ds_actor" not in r.headers.get("set-cookie", "")
    client.get("/-/login")  # now with the CSRF cookie a browser would hold; the forged form cannot know its token
    r = client.post("/-/login", data={"username": "owner", "password": LOGIN}, headers=CROSS_SITE[how],
                    follow_redirects=False)
    assert r.status_code == 403 and "ds_actor" not in r.headers.get("set-cookie", "")


def test_same_origin_posts_need_the_csrf_cookie_and_its_token(site: Site, vault: Vault, data) -> None:
    client = _client(site)
    before = _state(vault, data["doomed"])
    page = client.get(f"/-/record/{data['doomed']}").text  # sets the CSRF cookie
    token = re.search(r'name="csrftoken" value="([^"]+)"', page).group(1)
    revert = f"/-/record/{data['doomed']}/revert"
    for form, headers in [({"seq": str(data["before"])}, SAME),  # cookie, no token
                          ({"seq": str(data["before"]), "csrftoken": "forged" + token[6:]}, SAME),  # wrong token
                          ({"seq": str(data["before"]), "csrftoken": token}, {**SAME, "Authorization": "Bearer x"}),
                          ({"seq": str(data["before"]), "csrftoken": token}, {"Origin": ATTACKER})]:  # right token, wrong origin
        r = client.post(revert, data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (form, headers, r.text[:200])
    assert _state(vault, data["doomed"]) == before
    for headers in (SAME, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "same-origin"}):
        ok = client.post(revert, data={"seq": str(data["before"]), "csrftoken": token}, headers=headers,
                         follow_redirects=False)
        assert ok.status_code == 302, ok.text[:200]
    assert vault.projection.status(Kind.CONTACT, data["doomed"]) == "live"


def test_bearer_token_api_clients_need_no_origin_nor_cookie(site: Site, vault: Vault, data) -> None:
    r = _client(site).post("/api/notes", json={"title": "from a script"},
                           headers={"Authorization": f"Bearer {data['token']}"})
    assert r.status_code == 201, r.text
    assert vault.get(r.json()["id"]) == {"title": "from a script"}


# -- 3. headers on every page ---------------------------------------------------------------------
def _csp_sources(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def _check_headers(r: Any, where: str) -> None:
    csp = _csp_sources(r.headers.get("content-security-policy", ""))
    assert csp.get("default-src") in (["'self'"], ["'none'"]), (where, csp)
    for directive, sources in csp.items():
        for source in sources:  # only keywords and hashes: no host, scheme or wildcard
            assert source.startswith("'") or (directive, source) == ("img-src", "data:"), (where, directive, source)
        assert "'unsafe-inline'" not in sources or directive == "style-src", (where, directive)
        assert "'unsafe-eval'" not in sources, where
    assert r.headers["x-content-type-options"] == "nosniff", where
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer", where
    assert csp.get("frame-ancestors") == ["'none'"] or "sandbox" in csp, where


def test_every_page_has_a_strict_csp_and_the_security_headers(site: Site, data) -> None:
    client = _client(site)
    bearer = {"Authorization": f"Bearer {data['token']}"}
    paths = [*(p for p, _ in _reads(data)), "/vault/contacts", "/vault?sql=select+1", "/no-such-page", "/api/health",
             "/api/notes", "/api/docs-assets/swagger-ui-bundle.js", "/-/static/app.css"]
    for path in paths:
        _check_headers(client.get(path, headers=bearer if path.startswith("/api/notes") else {}), path)
    _check_headers(client.get("/", headers={"Host": "attacker.example"}), "a 421")
    _check_headers(client.post(f"/-/record/{data['doomed']}/revert", headers={"Origin": ATTACKER}), "a 403")


def test_api_docs_load_nothing_from_another_host(site: Site) -> None:
    page = _client(site).get("/api/docs").text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith("/api/docs-assets/") for u in urls), urls
    assert "cdn" not in page.lower() and "https://" not in page


# -- 11. append-only tokens are no oracle ------------------------------------------------------------
def test_an_append_only_tokens_writes_answer_the_same_whatever_changed(vault: Vault) -> None:
    client = TestClient(create_api(VaultHolder(vault)))
    ao = {"Authorization": f"Bearer {tokens.create_token(vault.log, 'scanner', append_only=True)}"}
    rid = vault.add(Kind.CONTACT, {"name": "Ada Lovelace", "title": "Countess"}, Source("cli"))

    def patch(title: str) -> Any:
        return client.patch(f"/contacts/{rid}", json={"title": title}, headers=ao)

    def batch(title: str) -> Any:
        return client.post("/batch", headers=ao, json={"batch_id": f"b-{title}", "operations": [
            {"op": "update", "id": rid, "fields": {"title": title}}]})

    def upload(title: str) -> Any:
        card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada\r\nFN:Ada\r\nTITLE:{title}\r\nEND:VCARD\r\n"
        return client.post("/import", params={"filename": "ada.vcf"}, content=card.encode(), headers=ao)

    def shown(r: Any) -> tuple[int, dict[str, Any]]:
        body = {k: v for k, v in r.json().items() if k not in ("batch_id", "import_id")}  # the client's own / fresh
        return r.status_code, body

    upload("Countess")  # the import's own record, so the next uploads compare against it
    for write, right, wrong in ((patch, "Countess", "Duchess"), (batch, "Duchess", "Marchioness"),
                                (upload, "Countess", "Duchess")):
        head = vault.log.head().seq
        unchanged = write(right)  # the guess matches the current value: nothing is recorded
        assert vault.log.head().seq == head, write.__name__
        changed = write(wrong)
        assert vault.log.head().seq == head + 1, write.__name__
        assert shown(unchanged) == shown(changed), write.__name__
        assert unchanged.status_code == 202 and "seq" not in unchanged.text and "unchanged" not in unchanged.text
    assert patch("x").json() == {"id": rid, "status": "accepted"}
    created = client.post("/notes", json={"title": "t"}, headers=ao)
    assert created.status_code == 202 and set(created.json()) == {"id", "status"}  # no seq: a gap would tell
    gone = client.delete(f"/notes/{created.json()['id']}", headers=ao)
    assert gone.status_code == 202 and gone.json() == {"id": created.json()["id"], "status": "accepted"}
    rw = {"Authorization": f"Bearer {tokens.create_token(vault.log, 'phone')}"}  # a reader may know what changed
    assert client.patch(f"/contacts/{rid}", json={"title": "x"}, headers=rw).json()["event"] == "unchanged"


# -- the real server: raw HTTP -----------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path, created, lifevault_home: Path) -> Iterator[tuple[Served, dict[str, Any]]]:
    with Vault.open(created[0], PASSPHRASE) as v:
        cli = Source("cli")
        doomed = v.add(Kind.CONTACT, {"name": SECRET}, cli)
        before = v.projection.seq
        v.delete(doomed, cli)
        token = tokens.create_token(v.log, "phone")
        live = v.add(Kind.NOTE, {"title": "Groceries"}, cli)
        live_version = v.projection.seq
    server = Served(tmp_path, created[0], lifevault_home, PASSPHRASE, "--allow-host", "vault.home.arpa")
    yield server, {"doomed": doomed, "before": before, "token": token, "live": live, "live_version": live_version}
    server.stop()


def _get(server: Served, path: str, host: str, token: str | None = None) -> tuple[int, bytes]:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    answer = server.raw(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode())
    return int(answer.split(b" ", 2)[1]), answer


def test_a_rebound_name_reads_nothing_from_the_real_server(served) -> None:
    server, d = served
    sql = "/vault.json?sql=select+data+from+contacts_history"
    history = f"/api/contacts/{d['doomed']}/history"
    for host in ("attacker.example", f"attacker.example:{server.port}"):
        for path, token in ((sql, None), (history, d["token"]), ("/", None)):
            status, answer = _get(server, path, host, token)
            assert status == 421 and SECRET.encode() not in answer, (host, path, answer[:300])
    for host in (f"127.0.0.1:{server.port}", "vault.home.arpa"):  # the same requests, to served names
        assert SECRET.encode() in _get(server, sql, host)[1], server.output()
        assert SECRET.encode() in _get(server, history, host, d["token"])[1]


def test_a_cookie_less_cross_site_revert_changes_nothing_on_the_real_server(served, created) -> None:
    server, d = served
    body = f"seq={d['before']}".encode()
    for headers in (f"Origin: {ATTACKER}\r\nSec-Fetch-Site: cross-site\r\n", ""):
        answer = server.raw(f"POST /-/record/{d['doomed']}/revert HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                            f"{headers}Content-Type: application/x-www-form-urlencoded\r\n"
                            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        assert answer.split(b" ", 2)[1] == b"403", answer[:300]
    server.stop()
    with Vault.open(created[0], PASSPHRASE) as v:
        assert v.projection.status(Kind.CONTACT, d["doomed"]) == "deleted"


# -- the real browser ------------------------------------------------------------------------------------
playwright_api = pytest.importorskip("playwright.sync_api")
needs_chromium = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


class Browser:
    """A chromium page that may only reach loopback: every other request is aborted and remembered."""

    def __init__(self, p: Any) -> None:
        self.browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page()
        self.page.set_default_timeout(20_000)
        self.requested: list[str] = []
        self.blocked: list[str] = []
        self.csp_errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@needs_chromium
def test_api_docs_render_offline_with_no_request_leaving_loopback(served) -> None:
    server, _ = served
    with playwright_api.sync_playwright() as p:
        b = Browser(p)
        b.page.goto(server.url + "/api/docs")
        b.page.wait_for_selector("#swagger-ui .opblock")
        operations = b.page.locator("#swagger-ui .opblock").count()
        summaries = b.page.locator(".opblock-summary-path").all_inner_texts()
        b.browser.close()
    assert operations >= 15 and "/contacts/{record_id}" in summaries, (operations, summaries)
    assert b.blocked == [] and b.requested, b.blocked  # nothing even tried to leave loopback
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in b.requested)
    assert b.csp_errors == [], b.csp_errors


@needs_chromium
def test_datasette_pages_work_under_the_csp_and_a_same_origin_revert_works(served, created) -> None:
    server, d = served
    with playwright_api.sync_playwright() as p:
        b = Browser(p)
        page = b.page
        page.goto(server.url + "/vault?sql=select+name+from+contacts")
        page.wait_for_selector(".CodeMirror")  # the SQL editor is built by scripts the CSP must allow
        page.goto(server.url + "/vault/contacts_history")
        page.wait_for_selector("th .dropdown-menu-icon, th svg", state="attached")  # table.js's column menus
        page.goto(server.url + "/-/search?q=Xenia")
        page.goto(server.url + "/vault/contacts")
        page.locator("#lv-asof-seq").evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                                              str(d["before"]))
        assert page.input_value("#lv-asof-at") == f"seq:{d['before']}"  # our own hashed inline script ran
        page.goto(server.url + f"/-/record/{d['doomed']}")
        page.click("form.lv-revert button")
        page.wait_for_url(f"**/-/record/{d['doomed']}")
        assert "live now" in page.content()
        b.browser.close()
    assert b.csp_errors == [], b.csp_errors
    assert b.blocked == []
    server.stop()
    with Vault.open(created[0], PASSPHRASE) as v:
        source = v.history(d["doomed"])[-1]["source"]  # a revert names the state it went back to
        assert (source["via"], source["name"], source["detail"]["revert_to"]) == ("web", "browser", d["before"])


@needs_chromium
@pytest.mark.parametrize("target", ["revert", "add", "edit"])
def test_another_sites_page_cannot_post_to_the_vault(served, created, target: str) -> None:
    """A page from attacker.example (served by the test inside the browser) auto-submits a revert, add or edit form."""
    server, d = served
    action, fields = {"revert": (f"/-/record/{d['doomed']}/revert", {"seq": d["before"]}),
                      "add": ("/-/add/note", {"title": "forged"}),
                      "edit": (f"/-/record/{d['live']}/edit", {"title": "forged", "version": d["live_version"]})}[target]
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    attack = (f'<form id="f" method="post" action="{server.url}{action}">{inputs}</form>'
              '<script>document.getElementById("f").submit()</script>')
    answers: list[int] = []
    with playwright_api.sync_playwright() as p:
        b = Browser(p)
        b.page.route(ATTACKER + "/**", lambda route: route.fulfill(status=200, content_type="text/html", body=attack))
        b.page.on("response", lambda r: answers.append(r.status) if r.url.endswith(action) else None)
        b.page.goto(server.url + f"/-/record/{d['doomed']}")  # the owner has the site open: it has its cookies
        b.page.goto(ATTACKER + "/innocent")
        b.page.wait_for_url(f"**{action}")
        b.browser.close()
    assert answers == [403], answers
    server.stop()
    with Vault.open(created[0], PASSPHRASE) as v:
        assert v.projection.status(Kind.CONTACT, d["doomed"]) == "deleted"
        assert v.log.head().seq == d["live_version"] and v.get(d["live"]) == {"title": "Groceries"}
