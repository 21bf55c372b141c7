"""Datasette hooks for lifevault: the "as of" control, record timelines, revert, search, attachments.

Registered once with Datasette's plugin manager; every hook looks up the Site
serving the Datasette instance it is called for and does nothing elsewhere.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from datasette import hookimpl
from datasette.plugins import pm
from datasette.utils.asgi import NotFound as PageNotFound
from datasette.utils.asgi import Response
from markupsafe import Markup

from vault.errors import VaultError
from vault.domain.events import Kind, Source, kind_of
from vault.domain.instants import Instant, iso, parse_instant
from vault.replica.pusher import push_failures
from vault.state.query import StateQuery
from vault.web.browse.asof import TYPED_COOKIE, EventTimes, banner, seq_of, typed_cookie, typed_text
from vault.web.browse.cells import thread_url
from vault.web.browse.forms import EDITABLE, add_links, add_view, edit_view
from vault.web.browse.moments import moments_view
from vault.web.browse.pages import COLUMNS as LISTS
from vault.web.browse.rendering import (
    INLINE_TYPES, TYPED_COLUMNS, content_type, render_attachments, render_markdown, render_typed_values,
)
from vault.web.browse.timeline import bring_back_version, record_versions, revert_message

if TYPE_CHECKING:
    from vault.web.site.server import Site

_SITES: "weakref.WeakKeyDictionary[Any, Site]" = weakref.WeakKeyDictionary()
LIVE_DB = "vault"
RECORD_TABLES = {k.table for k in Kind}
_EVENT_TIMES: "weakref.WeakKeyDictionary[Any, EventTimes]" = weakref.WeakKeyDictionary()  # per served Datasette
ATTACHMENT_COLUMNS = {"attachments", "photo"}


def register(site: "Site") -> None:
    """Serve `site.datasette` with these hooks."""
    _SITES[site.datasette] = site
    module = sys.modules[__name__]
    if not pm.is_registered(module):
        pm.register(module, name="lifevault")


def _site(datasette: Any) -> "Site | None":
    return _SITES.get(datasette)


async def served_site(datasette: Any, request: Any) -> "Site":
    """The lifevault site behind a page route, once the request may view it (404 on a plain Datasette)."""
    site = _site(datasette)
    if site is None:
        raise PageNotFound("Not a lifevault site")
    await datasette.ensure_permissions(request.actor, ["view-instance"])
    return site


def _local_path(path: str | None) -> str:
    """Only same-site paths, never `//host` or a scheme: no open redirects."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def retarget(next_path: str, database: str, seq: int | None) -> str:
    """`next_path` as seen in another database (the live one or a past state)."""
    parts = urlsplit(_local_path(next_path))
    query = dict(parse_qsl(parts.query))
    segments = parts.path.split("/")
    if parts.path.startswith("/-/record/"):
        query.pop("at", None)
        if seq is not None:
            query["at"] = f"seq:{seq}"
    elif parts.path == "/-/search":
        query["db"] = database
    elif len(segments) > 1 and (segments[1] == LIVE_DB or seq_of(segments[1]) is not None):
        segments[1] = database
    else:
        return f"/{database}"
    path = "/".join(segments)
    return path + (f"?{urlencode(query)}" if query else "")


# -- hooks ---------------------------------------------------------------------------------
@hookimpl
def extra_template_vars(database: str | None, request: Any, datasette: Any) -> Any:
    site = _site(datasette)
    if site is None or (site.requires_login and not (request and request.actor)):
        return {}  # no control (nor even the event count) before login
    seq = seq_of(database) if database else None
    if seq is None and request is not None and request.path.startswith("/-/record/"):
        at = request.args.get("at", "")
        seq = int(at[4:]) if at.startswith("seq:") and at[4:].isdigit() else None
    if seq is None and request is not None and request.path == "/-/search":
        seq = seq_of(request.args.get("db", ""))
    here = request.path + (f"?{request.query_string}" if request and request.query_string else "") if request else "/"
    cookie = request.cookies.get(TYPED_COOKIE) if request is not None else None

    async def template_vars() -> dict[str, Any]:
        head = site.live.seq
        shown = head if seq is None else min(seq, head)
        typed = typed_text(cookie, shown)
        found, at = await asyncio.to_thread(
            _EVENT_TIMES.setdefault(datasette, EventTimes()).get, site.live.lock, shown,
            lambda n: iso(site.live.vault.log.recorded_at(n)) if n else None)
        return {"lv_asof": {**banner(seq, head, at, typed, known=found), "next": here},
                "lv_push_failures": push_failures(site.live.vault.path)}

    return template_vars


@hookimpl
def render_cell(value: Any, column: str, table: str | None, database: str, datasette: Any) -> Any:
    if table is None or value is None or table in LISTS or _site(datasette) is None:
        return None  # the lists' cells are pages.py's (pluggy runs every plugin's hook for each cell even so)
    base = table.removesuffix("_history")
    if base not in RECORD_TABLES:
        return None
    if column == "id" and isinstance(value, str):
        seq = seq_of(database)
        href = f"/-/record/{value}" + (f"?at=seq:{seq}" if seq is not None else "")
        return Markup('<a href="{}">{}</a>').format(href, value)
    if column in ATTACHMENT_COLUMNS:
        return render_attachments(value)
    if base == Kind.CONTACT.table and column in TYPED_COLUMNS:
        return render_typed_values(column, value)
    if base == Kind.MESSAGE.table and column == "thread" and isinstance(value, str):
        return Markup('<a href="{}">{}</a>').format(thread_url(database if base == table else LIVE_DB, value), value)
    if base == Kind.NOTE.table and column == "body" and isinstance(value, str):
        return Markup('<div class="lv-markdown">{}</div>').format(render_markdown(value))
    return None


@hookimpl
def forbidden(datasette: Any, request: Any) -> Any:
    site = _site(datasette)
    if site is not None and site.requires_login and not request.actor:
        return Response.redirect("/-/login")
    return None


@hookimpl
def menu_links(datasette: Any) -> list[dict[str, str]] | None:
    if _site(datasette) is None:
        return None
    return [{"href": "/-/search", "label": "Search everything"}, {"href": f"/{LIVE_DB}", "label": "Vault now"},
            {"href": "/-/moments", "label": "Moments to go back to"}, *add_links()]


@hookimpl
def table_actions(datasette: Any, database: str, table: str) -> list[dict[str, str]] | None:
    if _site(datasette) is None or database != LIVE_DB:
        return None
    return add_links(table)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [
        (r"^/-/as-of$", as_of_view),
        (r"^/-/search$", search_view),
        (r"^/-/record/(?P<record_id>[a-z]{1,8}_[a-z0-9]{1,64})$", record_view),
        (r"^/-/record/(?P<record_id>[a-z]{1,8}_[a-z0-9]{1,64})/revert$", revert_view),
        (r"^/-/blob/(?P<blob>[0-9a-f]{1,128})$", blob_view),
        (r"^/-/moments$", moments_view),
        (r"^/-/add/(?P<kind>contact|note)$", add_view),
        (r"^/-/record/(?P<record_id>[cn]_[a-z0-9]{1,64})/edit$", edit_view),
        (rf"^/(?P<database>[a-z0-9_]+)/(?P<table>{'|'.join(sorted(RECORD_TABLES))})/(?P<rowid>[0-9]{{1,18}})$",
         row_view),
    ]


# -- routes --------------------------------------------------------------------------------
async def as_of_view(request: Any, datasette: Any) -> Response:
    """Move every page to the state at `at` (ISO 8601, a date, seq:N, or now), remembering the text typed so the
    box shows it again; `seq=N` (the moments page's links) moves to event N exactly."""
    site = await served_site(datasette, request)
    text = (request.args.get("at") or "now").strip()
    next_path = _local_path(request.args.get("next"))
    exact = request.args.get("seq") or (request.args.get("shown_seq") if text == request.args.get("shown") else None)
    try:
        instant = Instant(seq=int(exact)) if exact and exact.isdigit() else parse_instant(text)
        seq = await asyncio.to_thread(site.live.read, lambda v: v.seq_for(instant))
    except VaultError as e:
        datasette.add_message(request, str(e), datasette.ERROR)
        return Response.redirect(next_path)
    if seq >= site.live.seq:  # a date since the last change: the vault now (while nothing changes)
        response = Response.redirect(retarget(next_path, LIVE_DB, None))
    else:
        response = Response.redirect(retarget(next_path, await site.as_of(seq), seq))
    if not request.args.get("seq"):  # typed (or "now", which forgets what was typed)
        remembered = "" if text.lower() == "now" else typed_cookie(seq, text)
        response.set_cookie(TYPED_COOKIE, remembered, path="/", httponly=True, samesite="strict",
                            max_age=None if remembered else 0)
    return response


async def search_view(request: Any, datasette: Any) -> Response:
    """Full-text search across contacts, messages and notes, now or in a past state."""
    site = await served_site(datasette, request)
    q = (request.args.get("q") or "").strip()
    dbname = request.args.get("db") or LIVE_DB
    if dbname != LIVE_DB and (seq := seq_of(dbname)) is not None:
        await site.as_of(seq)
    elif dbname != LIVE_DB:
        raise PageNotFound(f"No database {dbname!r}")
    seq = seq_of(dbname)
    results: dict[str, list[dict[str, str]]] = {}
    if q:
        hits = await datasette.get_database(LIVE_DB).execute_fn(lambda conn: StateQuery(conn).search(q, seq))
        results = {kind.table: [] for kind in Kind}
        for hit in hits:
            results[hit.kind.table].append({"id": hit.id, "name": hit.name, "date": hit.date, "snippet": hit.snippet})
    return Response.html(await datasette.render_template(
        "lifevault_search.html",
        {"q": q, "db": dbname, "results": results, "at": f"seq:{seq}" if seq is not None else ""},
        request=request))


async def record_view(request: Any, datasette: Any) -> Response:
    """One record's timeline: every version, what made it, the field diff; revert buttons."""
    await served_site(datasette, request)
    rid = request.url_vars["record_id"]
    kind = Kind.by_prefix(rid.partition("_")[0])
    if kind is None:  # the route takes any prefix; the kinds registered decide
        raise PageNotFound(f"No record {rid!r}")
    at_text = request.args.get("at", "")
    at = int(at_text[4:]) if at_text.startswith("seq:") and at_text[4:].isdigit() else None
    found = await datasette.get_database(LIVE_DB).execute_fn(lambda conn: StateQuery(conn).versions(kind, rid))
    if not found:
        raise PageNotFound(f"No record {rid!r}")
    versions = record_versions(rid, found, at)  # newest first
    shown = next((v for v in versions if v["selected"]), versions[0])
    return Response.html(await datasette.render_template("lifevault_record.html", {
        "record_id": rid, "kind": kind.value, "table": kind.table, "versions": versions,
        "shown": shown,
        "status": "deleted" if versions[0]["deleted"] else "live", "at": at,
        "bring_back": bring_back_version(versions), "editable": kind in EDITABLE and not versions[0]["deleted"],
        "thread_link": thread_url(LIVE_DB, shown["data"]["thread"])
        if kind is Kind.MESSAGE and isinstance((shown["data"] or {}).get("thread"), str) else None,
    }, request=request))


async def row_view(request: Any, datasette: Any) -> Response:
    """A list row's own address (Datasette's row page) leads to the record's page, at the same past state."""
    await served_site(datasette, request)
    database, table, rowid = (request.url_vars[k] for k in ("database", "table", "rowid"))
    try:
        db = datasette.get_database(route=database)
    except KeyError:
        raise PageNotFound(f"No database {database!r}") from None
    kind = next(k for k in Kind if k.table == table)
    found = await db.execute_fn(lambda conn: StateQuery(conn).record_of_version(kind, int(rowid)))
    if found is None:
        raise PageNotFound(f"No row {rowid} in {table}")
    seq = seq_of(database)
    return Response.redirect(f"/-/record/{found}" + (f"?at=seq:{seq}" if seq is not None else ""))


async def revert_view(request: Any, datasette: Any) -> Response:
    """POST (CSRF-checked by Datasette): bring the record back to how it was after event `seq`."""
    site = await served_site(datasette, request)
    rid = request.url_vars["record_id"]
    back = f"/-/record/{rid}"
    if request.method != "POST":
        return Response.redirect(back)
    form = await request.post_vars()
    seq_text = form.get("seq", "")
    if not seq_text.isdigit():
        datasette.add_message(request, "Choose a version to revert to.", datasette.ERROR)
        return Response.redirect(back)
    who = (request.actor or {}).get("id") or "browser"

    def revert(v: Any) -> tuple[list[Any], dict[str, Any] | None, int]:
        recorded = v.revert(rid, Instant(seq=int(seq_text)), Source("web", name=who))
        seq = v.seq_for(Instant(seq=int(seq_text)))
        return recorded, v.projection.record(kind_of(rid), rid, seq), v.log.recorded_at(seq) if seq else 0

    try:
        recorded, then, at = await asyncio.to_thread(site.live.write, revert)
    except VaultError as e:
        datasette.add_message(request, str(e), datasette.ERROR)
        return Response.redirect(back)
    message = revert_message(rid, then, at, any(r.event.type.value == "revived" for r in recorded))
    if not recorded:
        message = f"Nothing to do: it is already as it was then. ({message})"
    datasette.add_message(request, message, datasette.INFO)
    return Response.redirect(back)


async def blob_view(request: Any, datasette: Any) -> Response:
    """An attachment: images shown inline, everything else downloaded; never sniffed or scripted."""
    site = await served_site(datasette, request)
    name = request.args.get("name") or request.url_vars["blob"][:12]
    try:
        data = await asyncio.to_thread(site.live.read, lambda v: v.get_blob(request.url_vars["blob"]))
    except VaultError as e:
        raise PageNotFound(str(e)) from e
    ctype = content_type(name)
    inline = ctype in INLINE_TYPES and not request.args.get("download")
    ascii_name = "".join(c for c in name if c.isascii() and c.isprintable() and c not in '"\\/;') or "attachment"
    disposition = f"{'inline' if inline else 'attachment'}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    return Response(data, content_type=ctype if inline else "application/octet-stream", headers={
        "content-disposition": disposition, "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox", "cache-control": "private, no-store",
    })
