"""Add and edit contacts and notes in the browser: forms built from the kind's fields, every save one event.

The form lists the kind's declared fields (vault/domain/kinds.py) in order, each typed as its type asks:
phones, emails and the other typed values (vault/domain/contacts.py) a row per value with its label, addresses
a row per address, lists of text a comma-separated box, text a box. Fields a browser cannot sensibly type
(photos, attachments, an import's timestamps, JSON) are kept as they are. A save is `Vault.add` or
`Vault.update` with Source("web", name=<who>), checked by the library like any other write (the kind's
schema); a refusal shows the form again with the sentence and everything typed. Like revert, a save is a POST that the gate (same origin) and Datasette (CSRF token) check.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from datasette.utils.asgi import NotFound as PageNotFound
from datasette.utils.asgi import Response

from vault.domain.contacts import ADDRESS_PARTS, address, addresses, typed, typed_values
from vault.errors import VaultError
from vault.domain.events import Kind, Source, kind_of
from vault.state.timeline import FIELD_WORDS, record_label
from vault.web.browse import plugin as plugin

EDITABLE = (Kind.CONTACT, Kind.NOTE)
# How each field type (vault/domain/kinds.py) is typed in a form; the other types (attachments, an import's
# timestamps, JSON) are not typed in a browser and are kept as they are.
WIDGETS = {"text": "text", "date": "text", "texts": "words", "typed_values": "typed", "addresses": "addresses"}
LONG_TEXT = frozenset({"note", "body"})
ADDRESS_FORM_PARTS = ("street", "city", "region", "code", "country")
SPARE_ROWS = 2  # empty rows under a list's values, to add new ones without script
# vCard TYPE words: a label made only of these is stored as types (`work, voice`), anything else as a label.
TYPE_WORDS = frozenset({"home", "work", "cell", "mobile", "voice", "fax", "pager", "text", "video", "textphone",
                        "main", "other", "internet", "x400", "pref", "postal", "parcel", "dom", "intl"})


def _types(kind: Kind) -> dict[str, str]:
    return {f.name: f.type for f in kind.spec.fields}


def widget(kind: Kind, name: str) -> str:
    w = WIDGETS.get(_types(kind).get(name, ""), "")
    return "long" if w == "text" and name in LONG_TEXT else w


def form_fields(kind: Kind) -> list[str]:
    """The kind's fields a form shows, in the kind's order."""
    return [f.name for f in kind.spec.fields if widget(kind, f.name)]


def field_label(kind: Kind, name: str) -> str:
    word = FIELD_WORDS.get(name, name.replace("_", " "))
    return (word + ("es" if word.endswith("ss") else "s") if widget(kind, name) in ("typed", "addresses", "words")
            else word).capitalize()


def add_links(table: str | None = None) -> list[dict[str, str]]:
    """Links to the add forms (all of them, or the one for `table`'s kind)."""
    return [{"href": f"/-/add/{k.value}", "label": f"Add a {k.value}"} for k in EDITABLE
            if table is None or table == k.table]


# -- the form's rows, from a record or from what was posted ----------------------------------------
def _label_text(item: Mapping[str, Any]) -> str:
    return item.get("label") or ", ".join(item.get("types") or [])


def rows_from_record(kind: Kind, data: Mapping[str, Any]) -> dict[str, Any]:
    """What each form field shows for a stored record."""
    out: dict[str, Any] = {}
    for name in form_fields(kind):
        value, w = data.get(name), widget(kind, name)
        if w == "typed":
            items = [{"value": v["value"], "label": _label_text(v)} for v in typed_values(value)]
            out[name] = items + [{"value": "", "label": ""}] * SPARE_ROWS
        elif w == "addresses":
            items = [{**{p: a.get(p, "") for p in ADDRESS_FORM_PARTS}, "label": _label_text(a)} for a in addresses(value)]
            out[name] = items + [dict.fromkeys((*ADDRESS_FORM_PARTS, "label"), "")] * SPARE_ROWS
        elif w == "words":
            out[name] = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value or "")
        else:
            out[name] = value if isinstance(value, str) else "" if value is None else str(value)
    return out


def _indexed(form: Mapping[str, str], name: str, parts: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows `name.0.part`, `name.1.part`, … as posted, in order."""
    rows = []
    i = 0
    while any(f"{name}.{i}.{p}" in form for p in parts):
        rows.append({p: form.get(f"{name}.{i}.{p}", "").strip() for p in parts})
        i += 1
    return rows


def rows_from_post(kind: Kind, form: Mapping[str, str]) -> dict[str, Any]:
    """What each form field shows again after a refused save: exactly what was typed."""
    out: dict[str, Any] = {}
    for name in form_fields(kind):
        w = widget(kind, name)
        if w == "typed":
            out[name] = _indexed(form, name, ("value", "label"))
        elif w == "addresses":
            out[name] = _indexed(form, name, (*ADDRESS_FORM_PARTS, "label"))
        else:
            out[name] = form.get(name, "")
    return out


# -- what a posted form stores -------------------------------------------------------------------
def _qualifiers(text: str, old: Mapping[str, Any] | None) -> tuple[list[str], str | None]:
    """(types, label) for a row's label box: unchanged keeps the stored ones; TYPE words become types."""
    if old is not None and text == _label_text(old):
        return list(old.get("types") or []), old.get("label")
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words and all(w in TYPE_WORDS for w in words):
        return words, None
    return [], text or None


def _typed_from_rows(rows: list[dict[str, str]], stored: Any) -> list[dict[str, Any]]:
    old = typed_values(stored)
    out = []
    for i, row in enumerate(rows):
        if not row["value"]:
            continue
        before = old[i] if i < len(old) else None
        types, label = _qualifiers(row["label"], before)
        same = before is not None and before["value"] == row["value"]  # pref, params, group stay with their value
        out.append(typed(row["value"], types, label, before.get("pref") if before else None,
                         before.get("params") if same and before else None,
                         before.get("group") if same and before else None))
    return out


def _addresses_from_rows(rows: list[dict[str, str]], stored: Any) -> list[dict[str, Any]]:
    old = addresses(stored)
    out = []
    for i, row in enumerate(rows):
        parts = {p: row[p] for p in ADDRESS_FORM_PARTS if row[p]}
        if not parts:
            continue
        before = old[i] if i < len(old) else {}
        unchanged = all(before.get(p, "") == row[p] for p in ADDRESS_FORM_PARTS)
        kept = {p: before[p] for p in ADDRESS_PARTS if p not in ADDRESS_FORM_PARTS and before.get(p)}
        if unchanged and before.get("formatted"):
            kept["formatted"] = before["formatted"]  # lines written by the source, still true
        types, label = _qualifiers(row["label"], before or None)
        out.append(address({**kept, **parts}, types, label, before.get("pref"), before.get("params"), before.get("group")))
    return out


def unknown_posted(kind: Kind, form: Mapping[str, str]) -> dict[str, str]:
    """Posted names the form does not have (a hand-made or stale form), as fields: the library refuses them
    in the sentence every write path gives, rather than the form dropping them unseen."""
    known = set(form_fields(kind)) | {"csrftoken", "version"}
    return {name: value for name, value in form.items() if name.split(".", 1)[0] not in known}


def fields_from_post(kind: Kind, form: Mapping[str, str], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields as the record should hold them (empty ones left out); `stored` is the record
    being edited ({} when adding), whose types, preferences and source details stay with their values."""
    posted = rows_from_post(kind, form)
    out: dict[str, Any] = {}
    for name in form_fields(kind):
        w, value = widget(kind, name), posted[name]
        if w == "typed":
            out[name] = _typed_from_rows(value, stored.get(name))
        elif w == "addresses":
            out[name] = _addresses_from_rows(value, stored.get(name))
        elif w == "words":
            out[name] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            out[name] = value.strip() if w == "text" else value.replace("\r\n", "\n").strip("\n")
    return {k: v for k, v in out.items() if v not in ("", [])}


def patch_for(kind: Kind, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The update that makes the form's fields as wanted (None removes one); other fields are left alone."""
    patch: dict[str, Any] = {}
    for name in form_fields(kind):
        if name in wanted and wanted[name] != stored.get(name):
            patch[name] = wanted[name]
        elif name not in wanted and name in stored:
            patch[name] = None
    return patch


# -- routes --------------------------------------------------------------------------------------
def _who(request: Any) -> str:
    return (request.actor or {}).get("id") or "browser"


async def _page(datasette: Any, request: Any, kind: Kind, rows: dict[str, Any], *, record_id: str | None = None,
                version: int | None = None, error: str | None = None, data: Mapping[str, Any] | None = None) -> Response:
    fields = [{"name": n, "label": field_label(kind, n), "widget": widget(kind, n), "value": rows[n]}
              for n in form_fields(kind)]
    kept = [field_label(kind, n) for n in kind.spec.field_names if n not in form_fields(kind) and data and n in data]
    html = await datasette.render_template("lifevault_form.html", {
        "kind": kind.value, "table": kind.table, "fields": fields, "record_id": record_id, "version": version,
        "error": error, "kept": kept, "heading": (f"Edit {record_label(record_id, data)}" if record_id
                                                  else f"Add a {kind.value}"),
        "action": f"/-/record/{record_id}/edit" if record_id else f"/-/add/{kind.value}",
    }, request=request)
    return Response.html(html, status=400 if error else 200)


async def add_view(request: Any, datasette: Any) -> Response:
    """GET: an empty form for a new contact or note. POST: store it (one `created` event, source web)."""
    site = await plugin.served_site(datasette, request)
    kind = Kind(request.url_vars["kind"])
    if request.method != "POST":
        return await _page(datasette, request, kind, rows_from_record(kind, {}))
    form = await request.post_vars()
    fields = {**fields_from_post(kind, form, {}), **unknown_posted(kind, form)}
    try:  # the library refuses an empty record, an unknown field or a wrong type, in one sentence
        rid = await asyncio.to_thread(site.live.write, lambda v: v.add(kind, fields, Source("web", name=_who(request))))
    except VaultError as e:
        return await _page(datasette, request, kind, rows_from_post(kind, form), error=str(e))
    datasette.add_message(request, f"Added {record_label(rid, fields)}.", datasette.INFO)
    return Response.redirect(f"/-/record/{rid}")


async def edit_view(request: Any, datasette: Any) -> Response:
    """GET: the record's form. POST: store what changed (one `updated` event, source web), unless the record
    changed since the form was opened (then the form comes back with what was typed, to be checked again)."""
    site = await plugin.served_site(datasette, request)
    rid = request.url_vars["record_id"]
    kind = kind_of(rid)

    def current(v: Any) -> tuple[dict[str, Any] | None, int | None]:
        versions = v.projection.versions(kind, rid)
        last = versions[-1] if versions else None
        return (last["data"], last["seq_from"]) if last else (None, None)

    stored, version = await asyncio.to_thread(site.live.read, current)
    if stored is None:
        raise PageNotFound(f"No live record {rid!r}: it does not exist or was deleted (its timeline can bring it back).")
    if request.method != "POST":
        return await _page(datasette, request, kind, rows_from_record(kind, stored), record_id=rid, version=version,
                           data=stored)
    form = await request.post_vars()
    again = rows_from_post(kind, form)
    if form.get("version") != str(version):
        return await _page(datasette, request, kind, again, record_id=rid, version=version, data=stored, error=(
            f"{record_label(rid, stored)} was changed since this form was opened: check the fields and save again."))
    patch = {**patch_for(kind, stored, fields_from_post(kind, form, stored)), **unknown_posted(kind, form)}
    if not patch:
        datasette.add_message(request, "Nothing changed.", datasette.INFO)
        return Response.redirect(f"/-/record/{rid}")
    try:
        await asyncio.to_thread(site.live.write, lambda v: v.update(rid, patch, Source("web", name=_who(request))))
    except VaultError as e:
        return await _page(datasette, request, kind, again, record_id=rid, version=version, data=stored, error=str(e))
    datasette.add_message(request, f"Saved {record_label(rid, {**stored, **patch})}.", datasette.INFO)
    return Response.redirect(f"/-/record/{rid}")
