"""The site's gate: an ASGI middleware in front of every route (Datasette, the API, the docs).

It answers before any handler runs:

- a Host the server does not serve -> 421, so a page whose name was rebound to
  127.0.0.1 (DNS rebinding) cannot read the vault through the owner's browser;
- a state-changing request from another site, or a browser form post without
  the CSRF cookie -> 403, so no other page can revert, log in or post a form
  (asgi-csrf, inside Datasette, skips requests without cookies: here they never
  reach it, so it always compares the form's token with the cookie's);

and adds the security headers to every answer: a strict Content-Security-Policy
(unless the route set its own), nosniff, no framing, no referrer.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of this site's own requests
CSRF_COOKIE = "ds_csrftoken"  # Datasette's asgi-csrf cookie
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_INLINE_SCRIPT = re.compile(r"<script(?:\s[^>]*)?>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def host_name(value: str) -> str | None:
    """The lower-case name (no port, no brackets, no trailing dot) of a Host header or --host, or None if malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        if parts.port == 0:  # reading .port raises ValueError on a malformed one
            return None
    except ValueError:
        return None
    name = (parts.hostname or "").rstrip(".")
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    try:
        return str(ipaddress.ip_address(name))  # one spelling per address: [0:0::1] is ::1
    except ValueError:
        return name


def name_of(value: str) -> str | None:
    """host_name() of a --host or --allow-host value, which may be a bare IPv6 address."""
    return host_name(f"[{value}]" if value.count(":") > 1 and not value.startswith("[") else value)


def served_names(host: str, allow_hosts: Iterable[str] = ()) -> frozenset[str]:
    """The Host names a server bound to `host` answers: loopback names, `host` itself, and `allow_hosts`."""
    names = set(LOOPBACK_NAMES)
    for value in (host, *allow_hosts):
        name = name_of(value)
        if name:
            names.add(name)
    return frozenset(names)


def script_hash(script: str) -> str:
    """A CSP source allowing exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def inline_script_hashes(html: str) -> list[str]:
    """CSP sources for the inline scripts of a page this code wrote (never for pages holding user data)."""
    return [script_hash(body) for body in _INLINE_SCRIPT.findall(html) if body.strip()]


def template_script_hashes(folders: Iterable[Path], values: dict[str, Iterable[str]]) -> list[str]:
    """Hashes of the inline scripts in these Jinja template folders, each `{{ name }}` in `values` expanded
    to every value it can take; scripts with other template code are left out (the browser blocks them)."""
    hashes: set[str] = set()
    for folder in folders:
        for path in sorted(folder.glob("*.html")):
            for body in _INLINE_SCRIPT.findall(path.read_text(encoding="utf-8")):
                hashes.update(script_hash(s) for s in _expand(body, values))
    return sorted(hashes)


def _expand(body: str, values: dict[str, Iterable[str]]) -> list[str]:
    variants = [body]
    for name, options in values.items():
        slot = "{{ " + name + " }}"
        variants = [v.replace(slot, o) for v in variants for o in options] if slot in body else variants
    return [v for v in variants if v.strip() and "{{" not in v and "{%" not in v]


def content_security_policy(script_hashes: Iterable[str] = ()) -> str:
    """default-src 'self', scripts only from this site or with a listed hash; styles may be inline
    (Datasette's templates colour pages with style attributes and <style> blocks built per page)."""
    directives = [
        "default-src 'self'", " ".join(["script-src 'self'", *script_hashes]), "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",  # Datasette's stylesheet draws icons from data: URLs
        "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


class Gate:
    """Wraps an ASGI app: refuses unserved Host names and cross-site or token-less browser writes;
    adds the security headers. `api_prefix` paths are the bearer-token API (no CSRF cookie there)."""

    def __init__(self, app: Callable, *, names: frozenset[str], csp: str, api_prefix: str = "/api") -> None:
        self.app, self.names, self.api_prefix = app, names, api_prefix
        self.headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        headers = _headers(scope)
        refusal = self._misdirected(headers) or self._cross_site(scope, headers)
        if refusal is not None:
            await self._refuse(scope, send, *refusal)
            return
        await self.app(scope, receive, self._with_headers(send))

    def _misdirected(self, headers: dict[str, str]) -> tuple[int, str] | None:
        name = host_name(headers.get("host", ""))
        if name in self.names:
            return None
        return 421, (f"This server does not serve the host name {name or headers.get('host', '')!r}; "
                     "start it with `lifevault serve --allow-host NAME` to serve that name.")

    def _cross_site(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return None
        fetch_site, origin = headers.get("sec-fetch-site"), headers.get("origin")
        if fetch_site is not None and fetch_site not in SAME_ORIGIN_FETCH:
            return 403, f"Refused a {fetch_site} request: changes are only accepted from this site's own pages."
        # Chromium sends `Origin: null` on its own form posts when Referrer-Policy is no-referrer (ours):
        # then Sec-Fetch-Site alone vouches, and a browser that sends neither is refused.
        foreign = "Refused a request from another origin: changes are only accepted from this site's own pages."
        if origin == "null" and fetch_site is None:
            return 403, foreign
        if origin not in (None, "null") and not _same_origin(origin, headers.get("host", ""), scope.get("scheme", "http")):
            return 403, foreign
        path = scope.get("path", "")
        if path == self.api_prefix or path.startswith(self.api_prefix + "/"):
            return None  # bearer tokens, checked by the API; a browser cannot add one cross-site
        if fetch_site is None and origin is None:
            return 403, "Refused a form post that does not say where it comes from (no Origin nor Sec-Fetch-Site)."
        if CSRF_COOKIE not in _cookie_names(headers.get("cookie", "")) or "authorization" in headers:
            return 403, "Refused a form post without this site's CSRF cookie: reload the page and try again."
        return None

    async def _refuse(self, scope: dict, send: Callable, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), *self.headers]})
        await send({"type": "http.response.body", "body": message.encode() + b"\n"})

    def _with_headers(self, send: Callable) -> Callable:
        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]  # a route's own CSP wins
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return send_with_headers


def _headers(scope: dict) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones; cookies joined)."""
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        if name == "cookie" and name in out:
            out[name] += "; " + text
        else:
            out.setdefault(name, text)
    return out


def _cookie_names(cookie: str) -> set[str]:
    return {part.split("=", 1)[0].strip() for part in cookie.split(";") if "=" in part}


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether an Origin header names this site: same scheme, host name and port as the request."""
    parts = urlsplit(origin.strip())
    served = urlsplit(f"{scheme}://{host}")
    try:
        return (parts.scheme == scheme and parts.hostname is not None and parts.hostname == served.hostname
                and (parts.port or DEFAULT_PORTS.get(parts.scheme)) == (served.port or DEFAULT_PORTS.get(scheme)))
    except ValueError:  # a malformed port
        return False
