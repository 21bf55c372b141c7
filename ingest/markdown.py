"""A folder of Markdown notes with optional YAML front matter (Obsidian-style), import and export.

Each `.md` file is a note: `title` from the front matter (else the file name),
`tags` (a list, or a comma/space separated string, `#` optional), `created`
and `updated`, and every other front-matter key as a field of its own; `body`
is the text after the front matter, byte for byte. `path` keeps the file's
place in the folder, so an export writes it back where it was. Hidden folders
(`.obsidian`, `.trash`) are skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator

import yaml

import ingest
from ingest import decode_text, looks_binary
from vault.errors import IngestError
from vault.events import Kind
from vault.formats import BadRecord, ExportRecord, Exporter, Importer, SourceRecord
from vault.hookspecs import hookimpl

MAX_FRONT_MATTER = 64 * 1024
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)?^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)
_FIELD = re.compile(r"[^A-Za-z0-9_]+")
_RESERVED = {"title", "tags", "created", "updated", "body", "path", "lifevault_id"}


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases: a few bytes of aliases can expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed in front matter")
        return super().compose_node(parent, index)


def _plain(value: Any) -> Any:
    """YAML values as JSON values: dates become ISO text."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _tags(value: Any) -> list[str]:
    items = value if isinstance(value, list) else re.split(r"[,\s]+", str(value or ""))
    return [str(t).strip().lstrip("#") for t in items if str(t).strip().lstrip("#")]


def parse_note(text: str, rel: str) -> tuple[dict[str, Any], str | None]:
    """The fields of one note and the vault id its front matter carries, if any."""
    meta: dict[str, Any] = {}
    body = text
    m = _FRONT.match(text)
    if m:
        if len(m.group(1)) > MAX_FRONT_MATTER:
            raise ValueError("the front matter is larger than 64 KiB")
        loaded = yaml.load(m.group(1), Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError("the front matter is not a YAML mapping")
        meta, body = _plain(loaded or {}), text[m.end():]
    fields: dict[str, Any] = {"path": rel, "body": body}
    fields["title"] = str(meta.get("title") or PurePosixPath(rel).stem)
    for key in ("created", "updated"):
        if meta.get(key) not in (None, ""):
            fields[key] = str(meta[key])
    if _tags(meta.get("tags")):
        fields["tags"] = _tags(meta.get("tags"))
    for key, value in meta.items():
        name = _FIELD.sub("_", str(key)).strip("_") or "field"
        if name[0].isdigit():
            name = "f_" + name
        if key not in _RESERVED and value is not None:
            fields[name[:64]] = value
    rid = meta.get("lifevault_id")
    return fields, str(rid) if rid else None


def _note_files(root: Path) -> Iterator[Path]:
    for p in sorted(root.rglob("*.md")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            yield p


class MarkdownImporter:
    name = "markdown"
    version = "1"
    description = "a folder of Markdown notes with optional YAML front matter (Obsidian vault)"

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return next(_note_files(path), None) is not None
        return path.suffix.lower() in (".md", ".markdown") and not looks_binary(ingest.head(path))

    def read(self, path: Path) -> Iterator[SourceRecord | BadRecord]:
        if not path.exists():
            raise IngestError(path, None, "no such folder")
        if path.is_file() and path.suffix.lower() not in (".md", ".markdown"):
            raise IngestError(path, None, "not a Markdown note (.md) or a folder of them")
        root, files = (path, list(_note_files(path))) if path.is_dir() else (path.parent, [path])
        if not files:
            raise IngestError(path, None, "no Markdown (.md) notes in this folder")
        for p in files:
            rel = p.relative_to(root).as_posix()
            yield self._note(p, rel)

    def _note(self, p: Path, rel: str) -> SourceRecord | BadRecord:
        if p.stat().st_size > ingest.MAX_RECORD:
            return BadRecord(rel, f"the note is larger than {ingest.MAX_RECORD // ingest.MiB} MiB")
        data = p.read_bytes()
        if looks_binary(data):
            return BadRecord(rel, "binary data, not a Markdown note")
        try:
            fields, rid = parse_note(decode_text(data), rel)
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            return BadRecord(rel, f"bad front matter ({str(e).splitlines()[0]})")
        return SourceRecord(Kind.NOTE, rel, fields, (), rel, record_id=rid)


def note_text(r: ExportRecord) -> str:
    """A note as Markdown with front matter (every field except body and path)."""
    meta = {k: v for k, v in r.fields.items() if k not in ("body", "path")}
    meta["lifevault_id"] = r.record_id
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=True, default_flow_style=False)
    return f"---\n{front}---\n{r.fields.get('body', '')}"


def _target(r: ExportRecord, used: set[str]) -> str:
    """Where a note goes: its `path` if it is a safe relative one, else a name from its title."""
    path = r.fields.get("path")
    if isinstance(path, str):
        pure = PurePosixPath(path)
        if path.endswith(".md") and not pure.is_absolute() and ".." not in pure.parts and path not in used:
            return path
    stem = re.sub(r"[^\w\- ]+", "", str(r.fields.get("title") or "")).strip()[:80] or r.record_id
    name, n = f"{stem}.md", 1
    while name in used:
        n += 1
        name = f"{stem} ({n}).md"
    return name


class MarkdownExporter:
    name = "markdown"
    description = "a folder of Markdown notes with YAML front matter"
    kinds = (Kind.NOTE,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        out.mkdir(parents=True)
        used: set[str] = set()
        for r in records:
            rel = _target(r, used)
            used.add(rel)
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(note_text(r).encode("utf-8"))
        return len(used)


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(MarkdownImporter())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    register(MarkdownExporter())
