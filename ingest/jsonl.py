"""JSON Lines of the vault's own records: the lossless archive format (import and export).

Line 1 is a header, `{"lifevault": "records", "version": 1}`; every other line
is one record, `{"kind": "contact", "id": "c_…", "fields": {…}}`, plus
`"blobs": {"<blob id>": "<base64>"}` holding the content of the attachments
its top-level fields reference. Records keep their ids; blobs are re-keyed
for the vault they are imported into.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import ingest
from ingest import bounded_lines, check_text_file, text_head
from vault.errors import IngestError, InvalidRecord
from vault.domain.events import Kind, kind_of
from vault.formats import Attachment, BadRecord, ExportRecord, Exporter, Importer, Input, SourceRecord, hookimpl

HEADER = {"lifevault": "records", "version": 1}


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("blob"), str)


def _refs(fields: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field, reference) for every blob reference held by a top-level field, in order."""
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            if _is_ref(v):
                yield name, v


class JsonlImporter:
    name = "jsonl"
    version = "1"
    description = "JSON Lines of lifevault records (the lossless archive)"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        first = text_head(source, 512).lstrip().split("\n", 1)[0]
        return first.startswith("{") and '"lifevault"' in first and '"records"' in first

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord]:
        src = Input.of(source)
        check_text_file(src, "a JSON Lines file")
        with src.open() as f:
            for n, line in enumerate(bounded_lines(f, src, ingest.MAX_RECORD), 1):
                if not line.strip():
                    continue
                if not line.endswith(b"\n") and not _parses(line):
                    raise IngestError(src, f"line {n}", "the file ends in the middle of a record (truncated?)")
                try:
                    obj = json.loads(line)
                except RecursionError:
                    yield BadRecord(f"line {n}", "JSON nested too deeply")
                    continue
                except ValueError as e:
                    if n == 1:
                        raise IngestError(src, "line 1", "not JSON Lines") from None
                    yield BadRecord(f"line {n}", f"not JSON ({getattr(e, 'msg', e)})")
                    continue
                if n == 1 and isinstance(obj, dict) and "lifevault" in obj:
                    if obj != HEADER:
                        raise IngestError(src, "line 1", f"an archive header this lifevault does not know: {obj}")
                    continue
                yield _record(obj, f"line {n}")


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except (ValueError, RecursionError):
        return False


def _record(obj: Any, where: str) -> SourceRecord | BadRecord:
    if not isinstance(obj, dict) or not isinstance(obj.get("fields"), dict):
        return BadRecord(where, "a record needs an object with kind, id and fields")
    try:
        kind, rid = Kind(obj.get("kind")), str(obj.get("id"))
        if kind_of(rid) is not kind:
            return BadRecord(where, f"id {rid} is not a {kind.value} id")
    except (ValueError, InvalidRecord) as e:
        return BadRecord(where, f"bad kind or id ({str(e).rstrip('.')})")
    fields, blobs = dict(obj["fields"]), obj.get("blobs") or {}
    attachments = []
    for name, ref in list(_refs(fields)):
        if ref["blob"] not in blobs:
            continue  # a reference without content stays as it is
        try:
            data = base64.b64decode(blobs[ref["blob"]], validate=True)
        except (binascii.Error, TypeError):
            return BadRecord(where, f"blob {ref['blob'][:12]}… is not base64")
        attachments.append(Attachment(name, data, ref.get("name"), ref.get("type")))
        value = fields[name]
        fields[name] = [v for v in value if v is not ref] if isinstance(value, list) else None
        if fields[name] in (None, []):
            del fields[name]
    return SourceRecord(kind, rid, fields, tuple(attachments), where, record_id=rid)


class JsonlExporter:
    name = "jsonl"
    description = "JSON Lines of lifevault records with their attachments (lossless)"

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        n = 0
        with out.open("w", encoding="utf-8") as f:
            f.write(json.dumps(HEADER) + "\n")
            for r in records:
                line: dict[str, Any] = {"kind": r.kind.value, "id": r.record_id, "fields": r.fields}
                blobs = {ref["blob"]: base64.b64encode(get_blob(ref["blob"])).decode() for _, ref in _refs(r.fields)}
                if blobs:
                    line["blobs"] = blobs
                f.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        return n


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(JsonlImporter())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    register(JsonlExporter())
