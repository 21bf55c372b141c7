"""The pages a person uses: Contacts, Messages and Notes, their record pages and conversation threads.

Datasette keeps browsing, facets, search, export and SQL; this plugin shapes
it with Datasette's own tools: table metadata (labels, default sorts, facets,
hidden tables), `render_cell` (values as a person reads them, never raw JSON),
template variables for the home, table and record pages, and the thread page.
"""

from __future__ import annotations

import sys
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from datasette import hookimpl
from datasette.plugins import pm
from datasette.filters import FilterArguments
from datasette.utils import to_css_class
from datasette.utils.asgi import BadRequest
from datasette.utils.asgi import NotFound as PageNotFound
from datasette.utils.asgi import Response
from markupsafe import Markup
from urllib.parse import urlencode

from vault.domain.contacts import TYPED_FIELDS
from vault.domain.events import Kind, kind_of
from vault.domain.titles import record_title, record_when
from vault.state.query import StateQuery
from vault.state.people import Directory, contacts_stamp, directory
from vault.state.threads import MAX_MESSAGES, thread_messages
from vault.web.browse import cells
from vault.web.browse.asof import seq_of
from vault.web.browse.rendering import render_attachments, render_markdown
from vault.state.search import fts_query, fts_table, list_search_param, list_search_where, matches_function

if TYPE_CHECKING:
    from vault.web.site.server import Site

LIVE_DB = "vault"
_SITES: "weakref.WeakKeyDictionary[Any, Site]" = weakref.WeakKeyDictionary()
_DIRECTORIES_KEPT = 4  # address books of the states browsed last (one per state: now, or a past one)

LABELS = {Kind.CONTACT: "Contacts", Kind.MESSAGE: "Messages", Kind.NOTE: "Notes"}


def label(kind: Kind) -> str:
    """A kind's name on pages: its list's heading (a kind registered by a plugin: its table's name)."""
    return LABELS.get(kind) or kind.table.replace("_", " ").capitalize()

# The columns each list shows, in order, with their headings (every column stays in JSON, CSV and SQL).
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "contacts": [("photo", ""), ("name", "Name"), ("phones", "Phone"), ("emails", "Email"),
                 ("addresses", "Address"), ("organization", "Organization"), ("updated_at", "Changed")],
    "messages": [("date", "Date"), ("from", "From"), ("to", "To"), ("subject", "Subject"), ("body", "Text"),
                 ("kind", "Kind"), ("thread", "Thread"), ("attachments", "Attachments")],
    "notes": [("title", "Title"), ("body", "Text"), ("tags", "Tags"), ("updated_at", "Changed")],
}
# A record page lists these first, then any other field by name.
FIELD_ORDER: dict[Kind, list[tuple[str, str]]] = {
    Kind.CONTACT: [("photo", "Photo"), ("name", "Name"), ("phones", "Phone"), ("emails", "Email"),
                   ("addresses", "Address"), ("organization", "Organization"), ("title", "Job title"),
                   ("birthday", "Birthday"), ("urls", "Web"), ("impps", "Chat"), ("groups", "Groups"),
                   ("note", "Note")],
    Kind.MESSAGE: [("date", "Date"), ("from", "From"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"),
                   ("subject", "Subject"), ("body", "Text"), ("attachments", "Attachments"), ("kind", "Kind")],
    Kind.NOTE: [("title", "Title"), ("tags", "Tags"), ("body", "Text"), ("attachments", "Attachments"),
                ("created", "Created"), ("updated", "Updated")],
}
_TIME_COLUMNS = {"date", "created_at", "updated_at", "created", "updated", "birthday", "valid_from", "valid_to"}
_TITLE_COLUMN = {"contacts": "name", "notes": "title"}  # messages link from their subject or text
_KINDS = {"contacts": Kind.CONTACT, "messages": Kind.MESSAGE, "notes": Kind.NOTE}  # the lists of COLUMNS
_NOT_SHOWN = {"html"}  # a mail's HTML part: kept in the vault, shown as its text instead


def register(site: "Site") -> None:
    """Shape `site.datasette`'s pages with these hooks."""
    _SITES[site.datasette] = site
    module = sys.modules[__name__]
    if not pm.is_registered(module):
        pm.register(module, name="lifevault-browse")


def table_metadata() -> dict[str, Any]:
    """Datasette metadata for the live views and past states: labels, sorts, facets, search; internals hidden."""
    # No facet on messages by default: counting 100,000 messages by kind outruns Datasette's facet time limit
    # on every page (200 ms of work, then no facet shown); `_facet=kind` still asks for it.
    sorts: dict[str, dict[str, Any]] = {"contacts": {"sort": "name"}, "messages": {"sort_desc": "date"},
             "notes": {"sort_desc": "updated_at", "facets": [{"array": "tags"}]}}
    out: dict[str, Any] = {}
    for kind in Kind:
        shape = sorts.get(kind.table) or ({"sort": kind.spec.sort} if kind.spec.sort else {})
        out[kind.table] = {"title": label(kind), **shape}  # searched by filters_from_request below, not Datasette
        for internal in (f"{kind.table}_history", f"{kind.table}_text", fts_table(kind)):
            out[internal] = {"hidden": True}
    out["_projection"] = {"hidden": True}
    return out


def _route(datasette: Any, database: str) -> str:
    try:
        return datasette.get_database(database).route or database
    except KeyError:
        return database


# -- the address book behind sender and recipient names ---------------------------------------
# Per site: the address books of the states browsed last (a past state's never changes; the live one's is kept
# until a contact changes), and the live state's contacts stamp at the seq it was read at.
_directories: "weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, int], Directory]]" = weakref.WeakKeyDictionary()
_live_stamps: "weakref.WeakKeyDictionary[Any, tuple[int, int]]" = weakref.WeakKeyDictionary()


def _kept_directory(datasette: Any, database: str) -> Directory | None:
    """The address book of `database` if one is kept and still current: no query, no await (a list's
    sender and recipient cells ask for it 150 times a page)."""
    site = _SITES.get(datasette)
    if site is None:
        return None
    stamp = seq_of(database)
    if stamp is None:
        live_seq, stamp = _live_stamps.get(datasette, (-1, 0))
        if live_seq != site.live.seq:
            return None
    kept = _directories.get(datasette)
    return kept.get((database, stamp)) if kept is not None else None


async def _directory(datasette: Any, database: str) -> Directory | None:
    site = _SITES.get(datasette)
    if site is None:
        return None
    seq, db = seq_of(database), datasette.get_database(database)
    if seq is not None:
        stamp = seq
    else:
        live_seq, stamp = _live_stamps.get(datasette, (-1, 0))
        if live_seq != site.live.seq:
            live_seq, stamp = site.live.seq, await db.execute_fn(contacts_stamp)
            _live_stamps[datasette] = (live_seq, stamp)
    kept = _directories.setdefault(datasette, OrderedDict())
    found = kept.get((database, stamp))
    if found is None:
        found = kept[(database, stamp)] = await db.execute_fn(directory)
        while len(kept) > _DIRECTORIES_KEPT:
            kept.popitem(last=False)
    kept.move_to_end((database, stamp))
    return found


# -- hooks ---------------------------------------------------------------------------------
_SHOWN = {table: {name for name, _ in columns} for table, columns in COLUMNS.items()}
_PEOPLE_COLUMNS = {"from", "to", "cc", "bcc", "reply_to"}


@hookimpl(tryfirst=True)  # before plugin.py's cells: a list's cells are all answered here
def render_cell(row: Any, value: Any, column: str, table: str | None, database: str, datasette: Any) -> Any:
    if table not in _SHOWN or datasette not in _SITES:
        return None
    if column not in _SHOWN[table]:
        # A column the list does not show (its page draws only COLUMNS): "" ends the plugins' turn and leaves
        # the cell to Datasette's plain text, so no time goes into cells nobody sees (most of a message's).
        return ""
    if table == "messages" and column in _PEOPLE_COLUMNS and value is not None:
        people = _kept_directory(datasette, database)
        if people is None:  # the address book is read once per state (and contacts change), then kept
            async def with_people() -> Any:
                return cells.people(value, await _directory(datasette, database), seq_of(database))
            return with_people
        return cells.people(value, people, seq_of(database))
    return _cell(row, value, column, table, database, datasette)


def _cell(row: Any, value: Any, column: str, table: str, database: str, datasette: Any) -> Any:
    seq = seq_of(database)
    rid = row["id"]
    if rid and column == _TITLE_COLUMN.get(table):  # every row links to its record page
        kind = _KINDS[table]
        title = record_title(kind, dict(zip(row.keys(), row, strict=True)))
        return cells.link(cells.record_url(rid, seq), Markup("<strong>{}</strong>").format(title))
    if value is None:
        return None
    if column in _TIME_COLUMNS and (stamp := cells.when(value)):
        return stamp
    if table == "contacts":
        if column == "photo":
            return cells.photo(value)
        if column == "addresses":
            return cells.address_list(value)
        if column in TYPED_FIELDS:
            return cells.typed_list(column, value)
    if table == "messages":
        if column == "subject" and rid:
            return cells.link(cells.record_url(rid, seq), value)
        if column == "body":
            text = cells.snippet(value)
            return cells.link(cells.record_url(rid, seq), text) if rid and not row["subject"] else text
        if column == "thread" and isinstance(value, str):
            return cells.link(cells.thread_url(_route(datasette, database), value), "conversation")
    if column == "attachments":
        return render_attachments(value)
    if table == "notes":
        if column == "body":
            return cells.snippet(value)
        if column == "tags":
            route = _route(datasette, database)
            return cells.tags(value, lambda t: f"/{route}/notes?" + urlencode({"tags__arraycontains": t}))
    return cells.plain(value)


@hookimpl
def extra_template_vars(template: str, database: str | None, table: str | None, datasette: Any,
                        request: Any) -> Any:
    site = _SITES.get(datasette)
    if site is None or (site.requires_login and not (request and request.actor)):
        return None
    if template == "table.html" and table in COLUMNS:
        # A list, not a database object: no "(view)", no view SQL naming the tables behind it.
        return {"lv_columns": [(name, text, to_css_class(name)) for name, text in COLUMNS[table]], "is_view": False, "view_definition": None,
                "allow_execute_sql": False}
    if template in ("index.html", "database.html"):
        async def home() -> dict[str, Any]:
            db = database if database and _is_ours(database) else LIVE_DB
            return {"lv_home": await _home(datasette, db)}
        return home
    return None


def _is_ours(database: str) -> bool:
    return database == LIVE_DB or seq_of(database) is not None


async def _home(datasette: Any, database: str) -> dict[str, Any]:
    db, seq = datasette.get_database(database), seq_of(database)
    counts = await db.execute_fn(lambda conn: [StateQuery(conn).count(k, seq) for k in Kind])
    route = db.route or database
    return {"route": route, "seq": seq,
            "lists": [{"label": label(k), "href": f"/{route}/{k.table}", "count": n} for k, n in zip(Kind, counts, strict=True)]}


@hookimpl
def prepare_jinja2_environment(env: Any, datasette: Any) -> None:
    if datasette not in _SITES:
        return
    env.filters["lv_when"] = lambda value: cells.when(value) or ("" if value is None else value)
    env.filters["lv_cells"] = lambda row: {cell["column"]: cell["value"] for cell in row}  # a list row's cells by name
    env.globals["lv_record"] = lv_record
    env.globals["lv_record_fields"] = _fields_global(datasette)


def lv_record(record_id: str, data: dict[str, Any] | None, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """What heads a record page: the record's title and date (a deleted record keeps its last name; `versions`
    are newest first, as the page lists them)."""
    kind = kind_of(record_id)
    named = data or next((v["data"] for v in versions if v.get("data")), None)
    return {"title": record_title(kind, named), "when": record_when(kind, named), "label": label(kind)}


def _fields_global(datasette: Any) -> Callable[..., Awaitable[list[tuple[str, Any]]]]:
    async def lv_record_fields(record_id: str, data: dict[str, Any] | None, at: int | None) -> list[tuple[str, Any]]:
        return await record_fields(datasette, kind_of(record_id), data or {}, at)
    return lv_record_fields


async def record_fields(datasette: Any, kind: Kind, data: dict[str, Any], at: int | None) -> list[tuple[str, Any]]:
    """(label, Markup) per field: the kind's main fields first, then the rest by name; the note's body rendered."""
    order = FIELD_ORDER.get(kind, [])
    known = {name for name, _ in order}
    names = [(n, label) for n, label in order if n in data] + [
        (n, n.replace("_", " ").capitalize()) for n in sorted(data) if n not in known and n not in _NOT_SHOWN]
    people = await _directory(datasette, LIVE_DB) if kind is Kind.MESSAGE else None
    out = []
    for name, label in names:
        value = data[name]
        shown: Any
        if kind is Kind.NOTE and name == "body" and isinstance(value, str):
            shown = Markup('<div class="lv-markdown">{}</div>').format(render_markdown(value))
        elif kind is Kind.MESSAGE and name == "body" and isinstance(value, str):
            shown = Markup('<div class="lv-body" style="white-space:pre-wrap">{}</div>').format(value)
        elif kind is Kind.MESSAGE and name in ("from", "to", "cc", "bcc", "reply_to"):
            shown = cells.people(value, people, at)
        elif name in ("attachments",):
            shown = render_attachments(value)
        elif name == "photo":
            shown = cells.photo(value, "8em")
        elif name == "addresses":
            shown = cells.address_list(value)
        elif kind is Kind.CONTACT and name in TYPED_FIELDS:
            shown = cells.typed_list(name, value)
        elif name == "tags":
            shown = cells.tags(value, lambda t: f"/{LIVE_DB}/notes?" + urlencode({"tags__arraycontains": t}))
        else:
            shown = None
        out.append((label, shown if shown is not None else cells.plain(value)))
    return out


@hookimpl
def menu_links(datasette: Any) -> list[dict[str, str]] | None:
    if datasette not in _SITES:
        return None
    return [{"href": f"/{LIVE_DB}/{k.table}", "label": label(k)} for k in Kind]


@hookimpl(trylast=True)  # after Datasette's own search filter: its "no search here" (no fts_table) is replaced
def filters_from_request(request: Any, database: str, table: str, datasette: Any) -> Any:
    """A list's search box (`_search`, `_search_COLUMN`, `_searchmode=raw`), as Datasette's own but planned
    for the size of the answer (vault/state/search.py's list_search_where)."""
    kind = next((k for k in Kind if k.table == table), None)
    if kind is None or datasette not in _SITES:
        return None

    async def inner() -> FilterArguments:
        raw = request.args.get("_searchmode") == "raw"
        db, wheres, params, words = datasette.get_database(database), [], {}, []
        searches = [(key, request.args[key]) for key in request.args if key.startswith("_search") and key != "_searchmode"]
        for i, (key, text) in enumerate(searches):
            column = key.removeprefix("_search_") if key != "_search" else None
            if column is not None and column not in kind.spec.fts:
                raise BadRequest("Cannot search by that column")
            if not text.strip():
                continue
            param = f"search_{i}"
            matches, token = await db.search_matches(kind, text, column, raw)
            request.scope.setdefault("lifevault.matches", {})[token] = matches  # kept while the request runs
            params[param] = text  # unused by the SQL, kept for what Datasette's JSON says was asked
            params[f"{param}_matches"] = list_search_param(matches, token)
            wheres.append(list_search_where(matches, f"{param}_matches"))
            words.append(f'search {f"column {column!r} " if column else ""}matches "{text}"')
        shown = request.args.get("_search") or next((text for _, text in searches), "")
        return FilterArguments(wheres, params, words, {"supports_search": True, "search": shown})

    return inner


@hookimpl(trylast=True)  # after Datasette's own `escape_fts`, which this one replaces
def prepare_connection(conn: Any, database: str, datasette: Any) -> None:
    """A list's search box (Datasette's `_search`) matches the start of words too, like the search page."""
    if datasette in _SITES:
        conn.create_function("escape_fts", 1, fts_query)
        db = datasette.get_database(database)
        if hasattr(db, "matches_named"):  # a lifevault database: its list searches' matches
            conn.create_function("lv_matches", 1, matches_function(db.matches_named), deterministic=True)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/-/thread$", thread_view)]


async def thread_view(request: Any, datasette: Any) -> Response:
    """A conversation: every message of a thread, oldest first, replies indented under what they answer."""
    site = _SITES.get(datasette)
    if site is None:
        raise PageNotFound("Not a lifevault site")
    await datasette.ensure_permissions(request.actor, ["view-instance"])
    key = request.args.get("key") or ""
    route = request.args.get("db") or LIVE_DB
    seq = seq_of(route)
    if seq is not None:
        route = await site.as_of(seq)
    elif route != LIVE_DB:
        raise PageNotFound(f"No database {route!r}")
    db = datasette.get_database(route=route)
    messages = await db.execute_fn(lambda conn: thread_messages(conn, key))
    if not messages:
        raise PageNotFound("No messages in this thread.")
    people = await _directory(datasette, db.name)
    for m in messages:
        m["sender"] = cells.people(m["from"], people, seq)
        m["recipients"] = cells.people(m["to"], people, seq)
        m["files"] = render_attachments(m["attachments"]) if m["attachments"] else None
        m["href"] = cells.record_url(m["id"], seq)
    return Response.html(await datasette.render_template("lv_thread.html", {
        "messages": messages, "route": route, "seq": seq,
        "subject": next((m["subject"] for m in messages if m["subject"]), key),  # a chat: its name or number
        "cut": len(messages) == MAX_MESSAGES,
    }, request=request))
