"""Google Keep from a Google Takeout export: one JSON file per note, as notes.

Takes the Takeout .zip as downloaded (read through ingest/safezip.py), the
unpacked folder (Takeout/Keep/…), or one note's .json. Takeout names a note's file after its title (or its
time when untitled); the note's source id is its creation time in microseconds
when the JSON has one (newer Takeouts), else the file's path. A checklist
becomes `- [ ] item` / `- [x] item` lines in `body` and is also kept as
`checklist`. Attachments are found beside the JSON; Takeout sometimes names the
file `.jpeg` where the JSON says `.jpg`, so a file with the same stem is used.

A note in Keep's trash (`isTrashed`) comes in as a deleted record: its content
is stored (in history, where `lifevault history` and `revert` reach it) and then
deleted, as Keep holds it. Skipping it would lose a note the Takeout still
holds; importing it live would show a note its owner threw away. Restored in
Keep and imported again, it comes back; emptied from the trash, it stays as it
was. It keeps `trashed: true`.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

import ingest
from ingest import check_text_file, safezip
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import Attachment, BadRecord, Input, SourceRecord, hookimpl

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NOTE_KEYS = {"userEditedTimestampUsec", "textContent", "listContent", "isTrashed", "isArchived"}
_SIBLING_TYPES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".3gp", ".m4a", ".mp3", ".amr")


def _usec(value: Any) -> str | None:
    if isinstance(value, int) and value > 0:
        return (_EPOCH + timedelta(microseconds=value)).isoformat()
    return None


class _Bad(ValueError):
    pass


def note_fields(note: Any) -> dict[str, Any]:
    """A Keep note's JSON object -> the note's fields."""
    if not isinstance(note, dict) or not _NOTE_KEYS & note.keys():
        raise _Bad("is JSON but not a Google Keep note")
    fields: dict[str, Any] = {}
    if isinstance(note.get("title"), str) and note["title"].strip():
        fields["title"] = note["title"].strip()
    items = note.get("listContent")
    if isinstance(items, list) and items:
        checklist = [{"text": str(i.get("text", "")), "checked": bool(i.get("isChecked"))}
                     for i in items if isinstance(i, dict)]
        fields["checklist"] = checklist
        fields["body"] = "\n".join(f"- [{'x' if i['checked'] else ' '}] {i['text']}" for i in checklist)
    elif isinstance(note.get("textContent"), str) and note["textContent"]:
        fields["body"] = note["textContent"]
    labels = [lb.get("name") for lb in note.get("labels") or [] if isinstance(lb, dict) and lb.get("name")]
    if labels:
        fields["tags"] = labels
    for key, source in (("created", "createdTimestampUsec"), ("updated", "userEditedTimestampUsec")):
        when = _usec(note.get(source))
        if when:
            fields[key] = when
    for key, source in (("pinned", "isPinned"), ("archived", "isArchived"), ("trashed", "isTrashed")):
        if note.get(source) is True:
            fields[key] = True
    if note.get("color") not in (None, "", "DEFAULT"):
        fields["color"] = str(note["color"]).lower()
    links = [{k: a[k] for k in ("url", "title") if a.get(k)} for a in note.get("annotations") or []
             if isinstance(a, dict) and a.get("url")]
    if links:
        fields["links"] = links
    shared = [s["email"] for s in note.get("sharees") or [] if isinstance(s, dict) and s.get("email")]
    if shared:
        fields["shared_with"] = shared
    return fields


class _Source:
    """The note files of a folder or a zip, and a way to fetch a file beside one."""

    def __init__(self, names: list[str], read: Callable[[str], bytes], exists: Callable[[str], bool]) -> None:
        self.names, self.read, self.exists = names, read, exists

    def sibling(self, json_name: str, wanted: str) -> str | None:
        folder = PurePosixPath(json_name).parent
        exact = str(folder / wanted)
        if self.exists(exact):
            return exact
        stem = PurePosixPath(wanted).stem
        return next((str(folder / (stem + ext)) for ext in _SIBLING_TYPES if self.exists(str(folder / (stem + ext)))),
                    None)


def _bounded_read(open_member: Callable[[], Any], path: Input | Path, name: str) -> bytes:
    with open_member() as f:
        data = f.read(ingest.MAX_RECORD + 1)
    if len(data) > ingest.MAX_RECORD:
        raise IngestError(path, name, f"a file in it is larger than {ingest.MAX_RECORD >> 20} MB; "
                                      "this is not a real Takeout")
    return data


def _keep_only(names: list[str]) -> list[str]:
    """In a whole Takeout, only the Keep folder's files (other products write JSON too)."""
    keep = [n for n in names if "Keep" in PurePosixPath(n).parts[:-1]]
    return keep or names


def _from_zip(path: Input, zf: zipfile.ZipFile) -> _Source:
    files = safezip.members(path, zf)
    names = _keep_only(sorted(n for n in files if n.lower().endswith(".json")))
    return _Source(names, lambda n: safezip.read_member(path, zf, files[n]), files.__contains__)


def _from_folder(path: Path) -> _Source:
    names = _keep_only(sorted(p.relative_to(path).as_posix() for p in path.rglob("*.json") if p.is_file()))

    def read(name: str) -> bytes:
        return _bounded_read(lambda: (path / name).open("rb"), path, name)

    return _Source(names, read, lambda n: (path / n).is_file())


def _one_note(src: Input) -> _Source:
    """One note's JSON; the files it attaches are looked for beside it when it is a file on disk."""
    folder = src.path.parent if src.path is not None else None

    def read(name: str) -> bytes:
        if name == src.name or folder is None:
            return _bounded_read(src.open, src, name)
        return _bounded_read(lambda: (folder / name).open("rb"), src, name)

    return _Source([src.name], read, lambda n: n == src.name or (folder is not None and (folder / n).is_file()))


class KeepImporter:
    """Reads Google Keep notes from a Takeout zip, its unpacked folder, or one note's JSON."""

    name = "keep"
    version = "2"  # 2: trashed notes are deleted records
    description = "Google Keep notes from Google Takeout (zip, folder, or one .json)"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        src = Input.of(source)
        try:
            if src.is_dir() and src.path is not None:
                return any(self._is_note(p.read_bytes()[:65536]) for p in sorted(src.path.rglob("*.json"))[:5])
            with src.open() as f:
                if zipfile.is_zipfile(f):
                    with zipfile.ZipFile(f) as zf:
                        return any("/Keep/" in "/" + n and n.endswith(".json") for n in zf.namelist())
            return src.suffix.lower() == ".json" and self._is_note(src.head(65536))
        except (OSError, zipfile.BadZipFile):
            return False

    @staticmethod
    def _is_note(data: bytes) -> bool:
        return data.lstrip().startswith(b"{") and any(k.encode() in data for k in _NOTE_KEYS)

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord]:
        src = Input.of(source)
        if src.is_dir() and src.path is not None:
            yield from self._notes(src, _from_folder(src.path))
            return
        if src.is_file():
            with src.open() as f:
                if zipfile.is_zipfile(f):
                    try:
                        with zipfile.ZipFile(f) as zf:
                            yield from self._notes(src, _from_zip(src, zf))
                    except zipfile.BadZipFile as e:
                        raise IngestError(src, None, f"the zip is damaged ({e})") from None
                    return
        check_text_file(src, "a Google Keep note (.json) or a Takeout zip")
        if src.suffix.lower() != ".json":
            raise IngestError(src, None, "is neither a Takeout zip, a folder, nor a Keep note's .json")
        yield from self._notes(src.path.parent if src.path is not None else src, _one_note(src))

    def _notes(self, path: Input | Path, src: _Source) -> Iterator[SourceRecord | BadRecord]:
        if not src.names:
            raise IngestError(path, None, "holds no .json files, so it has no Google Keep notes")
        found = False
        for name in src.names:
            record = self._note(src, name)
            found = found or isinstance(record, SourceRecord)
            yield record
        if not found:
            raise IngestError(path, None, "none of its .json files is a Google Keep note")

    def _note(self, src: _Source, name: str) -> SourceRecord | BadRecord:
        try:
            note = json.loads(src.read(name).decode("utf-8-sig"))
            fields = note_fields(note)
        except RecursionError:
            return BadRecord(name, "its JSON is nested too deeply to be a Keep note")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return BadRecord(name, f"is not valid JSON ({e})")
        except _Bad as e:
            return BadRecord(name, str(e))
        files = []
        for att in note.get("attachments") or []:
            wanted = att.get("filePath") if isinstance(att, dict) else None
            found = src.sibling(name, wanted) if isinstance(wanted, str) and "/" not in wanted else None
            if found:
                files.append(Attachment("attachments", src.read(found), PurePosixPath(found).name,
                                        att.get("mimetype") or None))
            elif wanted:
                fields.setdefault("missing_attachments", []).append(wanted)
        created = note.get("createdTimestampUsec")
        source_id = f"created:{created}" if isinstance(created, int) and created > 0 else "file:" + PurePosixPath(name).name
        return SourceRecord(Kind.NOTE, source_id, fields, tuple(files), name, deleted=note.get("isTrashed") is True)


@hookimpl
def register_importers(register):
    register(KeepImporter())
