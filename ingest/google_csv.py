"""Google Contacts CSV export (contacts.google.com → Export → Google CSV), import only.

Both header generations are read: the older one (`Given Name`, `Family Name`,
`E-mail 1 - Type`) and the one Google has written since 2023 (`First Name`,
`Last Name`, `E-mail 1 - Label`). Several values in one cell are joined by
` ::: `; group labels include system groups such as `* myContacts`.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ingest import bounded_lines, check_text_file, decode_text, text_head
from vault.errors import IngestError
from vault.events import Kind
from vault.formats import BadRecord, Importer, SourceRecord
from vault.hookspecs import hookimpl

SEP = " ::: "
MAX_FIELD = 1024 * 1024  # one cell; csv's own guard against a runaway quoted field
_NUMBERED = re.compile(r"^(E-mail|Phone|Address|Website|Organization|Relation|Event|IM|Custom Field) (\d+) - (.+)$")
_NAME_COLS = {"given_name": ("First Name", "Given Name"), "middle_name": ("Middle Name", "Additional Name"),
              "family_name": ("Last Name", "Family Name"), "name_prefix": ("Name Prefix",),
              "name_suffix": ("Name Suffix",), "nickname": ("Nickname",), "birthday": ("Birthday",),
              "note": ("Notes",)}
_ADR_COLS = {"Street": "street", "City": "city", "PO Box": "po_box", "Region": "region",
             "Postal Code": "code", "Country": "country", "Extended Address": "extended"}


def _split(cell: str) -> list[str]:
    return [v.strip() for v in cell.split(SEP) if v.strip()]


class GoogleCsvImporter:
    name = "google-csv"
    version = "1"
    description = "Google Contacts CSV export"

    def detect(self, path: Path) -> bool:
        first = text_head(path, 4096).split("\n", 1)[0]
        return "E-mail 1 - Value" in first or ("Given Name" in first and "Family Name" in first) or \
            ("First Name" in first and "Last Name" in first and "Phone 1 - Value" in first)

    def read(self, path: Path) -> Iterator[SourceRecord | BadRecord]:
        check_text_file(path, "a Google Contacts CSV file")
        last: list[str] = [""]  # the latest physical line: one without a line break ends the file

        def lines(f: BinaryIO) -> Iterator[str]:
            for raw in bounded_lines(f, path):
                last[0] = decode_text(raw)
                yield last[0]

        with path.open("rb") as f:
            reader = csv.reader(lines(f), strict=True)
            old_limit = csv.field_size_limit(MAX_FIELD)
            try:
                yield from self._rows(path, reader, last)
            except csv.Error as e:
                raise IngestError(path, f"line {reader.line_num}", f"broken CSV ({e})") from None
            finally:
                csv.field_size_limit(old_limit)

    def _rows(self, path: Path, reader: Any, last: list[str]) -> Iterator[SourceRecord | BadRecord]:
        header = next(reader, None)
        if not header or not any(h in header for h in ("First Name", "Given Name", "Name")):
            raise IngestError(path, "line 1", "not a Google Contacts CSV (no name columns in the header)")
        seen: dict[str, int] = {}
        for number, row in enumerate(reader, 1):
            where = f"row {number} (line {reader.line_num})"
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                if not last[0].endswith(("\n", "\r")):
                    raise IngestError(path, where, "the file ends in the middle of a row (truncated?)")
                yield BadRecord(where, f"{len(row)} columns where the header has {len(header)}")
                continue
            fields = row_fields(dict(zip(header, row)))
            if not fields.get("name"):
                yield BadRecord(where, "the contact has no name, organization, email or phone")
                continue
            seen[fields["name"]] = seen.get(fields["name"], 0) + 1
            key = fields["name"] + (f"#{seen[fields['name']]}" if seen[fields["name"]] > 1 else "")
            yield SourceRecord(Kind.CONTACT, hashlib.sha256(key.encode()).hexdigest()[:24], fields, (), where)


def row_fields(row: dict[str, str]) -> dict[str, object]:
    """The vault fields of one CSV row."""
    f: dict[str, object] = {}
    for key, cols in _NAME_COLS.items():
        value = next((row[c].strip() for c in cols if row.get(c, "").strip()), "")
        if value:
            f[key] = value
    numbered: dict[tuple[str, str], dict[str, str]] = {}
    for col, value in row.items():
        m = _NUMBERED.match(col)
        if m and value.strip():
            numbered.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = value
    emails, phones, urls, addresses = [], [], [], []
    for (what, _), cells in sorted(numbered.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
        if what == "E-mail":
            emails += _split(cells.get("Value", ""))
        elif what == "Phone":
            phones += _split(cells.get("Value", ""))
        elif what == "Website":
            urls += _split(cells.get("Value", ""))
        elif what == "Address":
            addresses.append(_address(cells))
        elif what == "Organization" and "organization" not in f:
            for src, dst in (("Name", "organization"), ("Title", "title"), ("Department", "department")):
                if cells.get(src, "").strip():
                    f[dst] = cells[src].strip()
    for src, dst in (("Organization Name", "organization"), ("Organization Title", "title"),
                     ("Organization Department", "department"), ("Photo", "photo_url")):  # 2023+ columns
        if row.get(src, "").strip() and dst not in f:
            f[dst] = row[src].strip()
    f.update(emails=list(dict.fromkeys(emails)), phones=list(dict.fromkeys(phones)), urls=urls,
             addresses=[a for a in addresses if a])
    groups = _split(row.get("Group Membership", "") or row.get("Labels", ""))
    f["groups"] = [g for g in groups if not g.startswith("* ")]  # "* myContacts", "* starred" are Google's own
    if "* starred" in groups:
        f["starred"] = True
    display = row.get("Name", "").strip() or " ".join(
        str(f[k]) for k in ("name_prefix", "given_name", "middle_name", "family_name", "name_suffix") if k in f)
    f["name"] = display or f.get("organization") or next(iter(emails + phones), "")
    return {k: v for k, v in f.items() if v not in ("", [], None)}


def _address(cells: dict[str, str]) -> dict[str, str]:
    out = {dst: cells[src].strip() for src, dst in _ADR_COLS.items() if cells.get(src, "").strip()}
    if not out and cells.get("Formatted", "").strip():
        out["formatted"] = cells["Formatted"].strip()
    label = (cells.get("Type") or cells.get("Label") or "").strip().lstrip("* ").lower()
    if out and label:
        out["type"] = label
    return out


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(GoogleCsvImporter())
