"""Google Contacts CSV export (contacts.google.com → Export → Google CSV): the importer (the exporter is in
google_csv_export.py).

Both header generations are read: the older one (`Given Name`, `Family Name`,
`E-mail 1 - Type`) and the one Google has written since 2023 (`First Name`,
`Last Name`, `E-mail 1 - Label`). Several values in one cell are joined by
` ::: ` and share the cell's label; `* ` before a label marks the primary value (pref 1); group labels
include system groups such as `* myContacts`. Columns no field holds (phonetic names, File As, …) are
kept verbatim in `google_columns` and written back.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ingest import bounded_lines, check_text_file, decode_text, guessed_windows_1252, text_head
from vault.domain.contacts import address, addresses, typed, typed_values
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import BadRecord, ExportRecord, Exporter, Importer, Input, Notice, SourceRecord, hookimpl

SEP = " ::: "
MAX_FIELD = 1024 * 1024  # one cell; csv's own guard against a runaway quoted field
_NUMBERED = re.compile(r"^(E-mail|Phone|Address|Website|Organization|Relation|Event|IM|Custom Field) (\d+) - (.+)$")
_NAME_COLS = {"given_name": ("First Name", "Given Name"), "middle_name": ("Middle Name", "Additional Name"),
              "family_name": ("Last Name", "Family Name"), "name_prefix": ("Name Prefix",),
              "name_suffix": ("Name Suffix",), "nickname": ("Nickname",), "birthday": ("Birthday",),
              "note": ("Notes",)}
_ORG_COLS = {"Name", "Title", "Department"}  # the rest of the legacy organization columns stay in google_columns
_TYPED = {"E-mail": "emails", "Phone": "phones", "Website": "urls", "IM": "impps", "Relation": "relations",
          "Event": "dates", "Custom Field": "custom_fields"}  # numbered column group -> typed-value field
# Google's own labels, as vCard TYPE values (the rest, e.g. "Main", "Google Voice" or custom ones, stay labels).
_LABEL_TYPES = {"Home Fax": ("home", "fax"), "Work Fax": ("work", "fax"), "Mobile": ("cell",), "Home": ("home",),
                "Work": ("work",), "Other": ("other",), "Pager": ("pager",)}
OWN_FIELD = "lifevault:"  # custom field label prefix for fields with no Google column (JSON value)
_ADR_COLS = {"Street": "street", "City": "city", "PO Box": "po_box", "Region": "region",
             "Postal Code": "code", "Country": "country", "Extended Address": "extended"}


def _split(cell: str) -> list[str]:
    return [v.strip() for v in cell.split(SEP) if v.strip()]


class GoogleCsvImporter:
    name = "google-csv"
    version = "2"  # 2: typed values with labels (vault/contacts.py), unmapped columns kept
    description = "Google Contacts CSV export"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        first = text_head(source, 4096).split("\n", 1)[0]
        return "E-mail 1 - Value" in first or ("Given Name" in first and "Family Name" in first) or \
            ("First Name" in first and "Last Name" in first and "Phone 1 - Value" in first)

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord | Notice]:
        src = Input.of(source)
        check_text_file(src, "a Google Contacts CSV file")
        last: list[str] = [""]  # the latest physical line: one without a line break ends the file
        guessed: list[int] = []  # lines that are not UTF-8, read as Windows-1252: said, never silent

        def lines(f: BinaryIO) -> Iterator[str]:
            for n, raw in enumerate(bounded_lines(f, src), 1):
                try:
                    last[0] = raw.decode("utf-8").lstrip("\ufeff")
                except UnicodeDecodeError:
                    guessed.append(n)
                    last[0] = decode_text(raw)
                yield last[0]

        def said() -> Iterator[Notice]:
            if guessed:
                yield guessed_windows_1252(f"line {guessed[0]}", guessed)
                guessed.clear()

        with src.open() as f:
            reader = csv.reader(lines(f), strict=True)
            old_limit = csv.field_size_limit(MAX_FIELD)
            try:
                for item in self._rows(src, reader, last):
                    yield from said()
                    yield item
                yield from said()
            except csv.Error as e:
                raise IngestError(src, f"line {reader.line_num}", f"broken CSV ({e})") from None
            finally:
                csv.field_size_limit(old_limit)

    def _rows(self, src: Input, reader: Any, last: list[str]) -> Iterator[SourceRecord | BadRecord]:
        header = next(reader, None)
        if not header or not any(h in header for h in ("First Name", "Given Name", "Name")):
            raise IngestError(src, "line 1", "not a Google Contacts CSV (no name columns in the header)")
        seen: dict[str, int] = {}
        for number, row in enumerate(reader, 1):
            where = f"row {number} (line {reader.line_num})"
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                if not last[0].endswith(("\n", "\r")):
                    raise IngestError(src, where, "the file ends in the middle of a row (truncated?)")
                yield BadRecord(where, f"{len(row)} columns where the header has {len(header)}")
                continue
            fields = row_fields(dict(zip(header, row, strict=True)))
            if not fields.get("name"):
                yield BadRecord(where, "the contact has no name, organization, email or phone")
                continue
            seen[fields["name"]] = seen.get(fields["name"], 0) + 1
            key = fields["name"] + (f"#{seen[fields['name']]}" if seen[fields["name"]] > 1 else "")
            yield SourceRecord(Kind.CONTACT, hashlib.sha256(key.encode()).hexdigest()[:24], fields, (), where)


def row_fields(row: dict[str, str]) -> dict[str, Any]:
    """The vault fields of one CSV row."""
    f: dict[str, Any] = {}
    used = {c for cols in _NAME_COLS.values() for c in cols} | {"Name", "Group Membership", "Labels"}
    for key, cols in _NAME_COLS.items():
        value = next((row[c].strip() for c in cols if row.get(c, "").strip()), "")
        if value:
            f[key] = value
    numbered: dict[tuple[str, str], dict[str, str]] = {}
    for col, value in row.items():
        m = _NUMBERED.match(col)
        if m and value.strip() and (m.group(1) != "Organization" or m.group(3) in _ORG_COLS):
            numbered.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = value
            used.add(col)
    typed_lists: dict[str, list[dict[str, Any]]] = {key: [] for key in _TYPED.values()}
    addresses = []
    for (what, _), cells in sorted(numbered.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
        types, label, pref = _label(cells.get("Label") or cells.get("Type") or "")
        if what in _TYPED:
            params = {"X-SERVICE-TYPE": [cells["Service"].strip()]} if cells.get("Service", "").strip() else None
            typed_lists[_TYPED[what]] += [typed(v, types, label, pref, params) for v in _split(cells.get("Value", ""))]
        elif what == "Address":
            parts = {dst: cells.get(src, "").strip() for src, dst in _ADR_COLS.items()}
            addresses.append(address({**parts, "formatted": cells.get("Formatted", "").strip()}, types, label, pref))
        elif what == "Organization" and "organization" not in f:
            for src, dst in (("Name", "organization"), ("Title", "title"), ("Department", "department")):
                if cells.get(src, "").strip():
                    f[dst] = cells[src].strip()
    for src, dst in (("Organization Name", "organization"), ("Organization Title", "title"),
                     ("Organization Department", "department"), ("Photo", "photo_url")):  # 2023+ columns
        used.add(src)
        if row.get(src, "").strip() and dst not in f:
            f[dst] = row[src].strip()
    f.update(typed_lists, addresses=[a for a in addresses if a])
    groups = _split(row.get("Group Membership", "") or row.get("Labels", ""))
    f["groups"] = [g for g in groups if not g.startswith("* ")]  # "* myContacts", "* starred" are Google's own
    if "* starred" in groups:
        f["starred"] = True
    _own_fields(f)
    f["google_columns"] = {c: v for c, v in row.items() if c not in used and v.strip()}
    display = row.get("Name", "").strip() or " ".join(
        str(f[k]) for k in ("name_prefix", "given_name", "middle_name", "family_name", "name_suffix") if k in f)
    f.setdefault("name", display or f.get("organization") or next(
        iter(v["value"] for v in typed_lists["emails"] + typed_lists["phones"]), ""))
    return {k: v for k, v in f.items() if v not in ("", [], None, {})}


def _label(cell: str) -> tuple[list[str], str | None, int | None]:
    """(types, label, pref) of a label cell: `* ` marks the primary value; Google's own labels are types."""
    pref = 1 if cell.startswith("* ") or cell.strip() == "*" else None
    text = cell[2:].strip() if cell.startswith("* ") else cell.strip().lstrip("*").strip()
    types = _LABEL_TYPES.get(text)
    return (list(types), None, pref) if types else ([], text or None, pref)


def _label_cell(v: dict[str, Any]) -> str:
    """The label cell for a typed value (or address): its label, else Google's name for its types."""
    text = v.get("label") or next((lab for lab, types in _LABEL_TYPES.items() if set(types) <= set(v["types"])), "")
    return ("* " if v.get("pref") == 1 else "") + text


def _own_fields(f: dict[str, Any]) -> None:
    """Fields a lifevault export put in `lifevault:<field>` custom fields come back as themselves."""
    kept = []
    for item in f.get("custom_fields") or []:
        label = item.get("label") or ""
        if label.startswith(OWN_FIELD):
            try:
                f[label[len(OWN_FIELD):]] = json.loads(item["value"])
                continue
            except ValueError:
                pass
        kept.append(item)
    f["custom_fields"] = kept


_BASE = ("First Name", "Middle Name", "Last Name", "Name Prefix", "Name Suffix", "Nickname", "Organization Name",
         "Organization Title", "Organization Department", "Birthday", "Notes", "Photo", "Labels")
_BASE_FIELDS = {"given_name": "First Name", "middle_name": "Middle Name", "family_name": "Last Name",
                "name_prefix": "Name Prefix", "name_suffix": "Name Suffix", "nickname": "Nickname",
                "organization": "Organization Name", "title": "Organization Title",
                "department": "Organization Department", "birthday": "Birthday", "note": "Notes", "photo_url": "Photo"}
_ADR_OUT = ("Formatted", *_ADR_COLS)
_WRITTEN = {*_TYPED, "Address"}  # numbered column groups the exporter writes (legacy Organization n columns are kept)


class GoogleCsvExporter:
    """Google's 2023+ CSV header. A field with no column goes in a `lifevault:<field>` custom field (JSON), so a
    round trip loses nothing; the photo itself (a blob) is not written: the CSV can only hold a photo URL."""

    name = "google-csv"
    description = "Google Contacts CSV (the 2023+ header), with email/phone/address labels"
    kinds = (Kind.CONTACT,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        rows = [export_row(r.fields) for r in records]
        mine = [(c, _NUMBERED.match(c)) for row in rows for c in row]
        extra = list(dict.fromkeys(c for c, m in mine if c not in _BASE and not (m and m.group(1) in _WRITTEN)))
        numbered = sorted({(m.group(1), int(m.group(2))) for _, m in mine if m and m.group(1) in _WRITTEN},
                          key=lambda k: (list(_TYPED).index(k[0]) if k[0] in _TYPED else -1, k[1]))
        header = [*_BASE, *extra]
        for what, n in numbered:
            parts = _ADR_OUT if what == "Address" else ("Service", "Value") if what == "IM" else ("Value",)
            header += [f"{what} {n} - Label"] + [f"{what} {n} - {p}" for p in parts]
        with out.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(header)
            w.writerows([row.get(c, "") for c in header] for row in rows)
        return len(rows)


def export_row(fields: dict[str, Any]) -> dict[str, str]:
    """One contact as CSV cells; whatever the importer would not read back the same rides in custom fields."""
    row = {col: str(fields[key]) for key, col in _BASE_FIELDS.items() if isinstance(fields.get(key), str)}
    groups = [str(g) for g in fields.get("groups") or []] + ["* starred"] * (fields.get("starred") is True)
    row["Labels"] = SEP.join(groups + ["* myContacts"])
    columns = fields.get("google_columns")
    row.update({str(k): str(v) for k, v in columns.items()} if isinstance(columns, dict) else {})
    cells: dict[str, list[tuple[str, str, list[str]]]] = {}
    for what, key in _TYPED.items():
        for v in typed_values(fields.get(key)):
            service = SEP.join((v.get("params") or {}).get("X-SERVICE-TYPE") or [])
            last = cells.setdefault(what, [])
            if last and last[-1][:2] == (_label_cell(v), service) and SEP not in v["value"]:
                last[-1][2].append(v["value"])  # consecutive values with one label share a cell, as Google writes them
            else:
                last.append((_label_cell(v), service, [v["value"]]))
    for what, items in cells.items():
        for n, (label, service, values) in enumerate(items, 1):
            row.update({f"{what} {n} - Label": label, f"{what} {n} - Value": SEP.join(values)})
            if what == "IM":
                row[f"{what} {n} - Service"] = service
    for n, a in enumerate(addresses(fields.get("addresses")), 1):
        row[f"Address {n} - Label"] = _label_cell(a)
        row.update({f"Address {n} - {col}": a.get(key, "") for col, key in
                    (("Formatted", "formatted"), *_ADR_COLS.items())})
    read_back = row_fields(row)
    own = [(k, v) for k, v in sorted(fields.items()) if k != "photo" and read_back.get(k) != v]
    start = len(cells.get("Custom Field", [])) + 1
    for n, (k, v) in enumerate(own, start):
        row[f"Custom Field {n} - Label"] = OWN_FIELD + k
        row[f"Custom Field {n} - Value"] = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return row


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(GoogleCsvImporter())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    register(GoogleCsvExporter())
