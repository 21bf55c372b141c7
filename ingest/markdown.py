"""A folder of Markdown notes with optional YAML front matter (Obsidian-style), import and export.

Each `.md` file is a note. Its front matter is kept whole, keys verbatim
(`título`, `key with spaces`) and in order, in the one field `properties`,
because field names must be identifiers; keys without a value are kept as
null. Values are read as Obsidian reads them, not by YAML 1.1: only
true/false are booleans, only ~/null/nothing is null, and a number is a number
only when writing it back gives the same text (`42`, `3.5`); everything else
stays the text as written (`NO`, `0755`, `12:30`, `2024-03-05`, `1e3`). PyYAML
(already a dependency) does the parsing with these resolvers in place of its
YAML 1.1 ones: a YAML 1.2 loader such as ruamel.yaml would still turn `0755`
into 755. `title`, `tags`, `created` and `updated` are also derived into the
vault's own fields; `body` is the text after the front matter, byte for byte;
`path` keeps the file's place in the folder.

Embedded files (`![[diagram.png]]`, `![alt](img/plot.png)`) are attachments,
named by their path in the folder, so an export writes them back there. A
note, folder or embed that leads outside the folder (a symbolic link, `../`)
is refused with one line each and never read. Hidden folders (`.obsidian`,
`.trash`) are skipped. A note that is not UTF-8 is skipped with a line naming
where (Obsidian writes UTF-8; guessing would silently garble it).
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote

import yaml

import ingest
from ingest import looks_binary
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import Attachment, BadRecord, ExportRecord, Exporter, Importer, Input, SourceRecord, hookimpl

MAX_FRONT_MATTER = 64 * 1024
MAX_SAFE_INT = 2**53  # beyond this a number does not survive JavaScript (Obsidian): kept as text
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)?^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)
_DERIVED = ("title", "tags", "created", "updated")
_ID_KEY = "lifevault_id"
_WIKI_EMBED = re.compile(r"!\[\[([^\]|#^\n]+)[^\]\n]*\]\]")
_MD_EMBED = re.compile(r"!\[[^\]\n]*\]\(\s*(<[^>\n]+>|[^)\s]+)(?:\s+\"[^\"\n]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class _FrontLoader(yaml.SafeLoader):
    """Obsidian's reading of plain scalars (see the module docstring); no aliases (a few bytes of them can
    expand to gigabytes)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed in front matter")
        return super().compose_node(parent, index)

    def as_written(self, node: Any, value: Any) -> Any:
        text = self.construct_scalar(node)
        same = repr(value) == text if isinstance(value, float) else str(value) == text and abs(value) <= MAX_SAFE_INT
        return value if same else text


_FrontLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))
_FrontLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"),
                                   ["~", "n", "N", ""])
_FrontLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^-?[0-9]+$"), list("-0123456789"))
_FrontLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^-?[0-9]+\.[0-9]+$"), list("-0123456789"))


def _int_as_written(loader: _FrontLoader, node: yaml.ScalarNode) -> Any:
    return loader.as_written(node, loader.construct_yaml_int(node))


def _float_as_written(loader: _FrontLoader, node: yaml.ScalarNode) -> Any:
    return loader.as_written(node, loader.construct_yaml_float(node))


_FrontLoader.add_constructor("tag:yaml.org,2002:int", _int_as_written)
_FrontLoader.add_constructor("tag:yaml.org,2002:float", _float_as_written)


class _FrontDumper(yaml.SafeDumper):
    """Writes what _FrontLoader reads back unchanged. Strings that YAML 1.1 would misread (`NO`, `0755`)
    are quoted, so other tools read them right too; null is written as nothing, as `key:` was."""


_FrontDumper.add_representer(type(None), lambda d, _v: d.represent_scalar("tag:yaml.org,2002:null", ""))


def _plain(value: Any) -> Any:
    """YAML values as JSON values: explicit !!timestamp values become ISO text, keys text."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _tags(value: Any) -> list[str]:
    items = value if isinstance(value, list) else re.split(r"[,\s]+", str(value or ""))
    return [str(t).strip().lstrip("#") for t in items if str(t).strip().lstrip("#")]


def derived(props: dict[str, Any], rel: str) -> dict[str, Any]:
    """The vault's own note fields that the front matter (or the file name) implies."""
    out: dict[str, Any] = {"title": str(props.get("title") or PurePosixPath(rel).stem)}
    if _tags(props.get("tags")):
        out["tags"] = _tags(props.get("tags"))
    for key in ("created", "updated"):
        if props.get(key) not in (None, ""):
            out[key] = str(props[key])
    return out


def parse_note(text: str, rel: str) -> tuple[dict[str, Any], str | None]:
    """The fields of one note and the vault id its front matter carries, if any."""
    props: dict[str, Any] = {}
    body = text
    m = _FRONT.match(text)
    if m:
        if len(m.group(1)) > MAX_FRONT_MATTER:
            raise ValueError("the front matter is larger than 64 KiB")
        loaded = yaml.load(m.group(1), Loader=_FrontLoader)  # noqa: S506 - a SafeLoader subclass
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError("the front matter is not a YAML mapping")
        props, body = _plain(loaded or {}), text[m.end():]
    rid = props.pop(_ID_KEY, None)
    fields: dict[str, Any] = {"path": rel, "body": body, **derived(props, rel)}
    if props:
        fields["properties"] = props
    return fields, str(rid) if rid else None


def _inside(p: Path, root: Path) -> bool:
    """Whether `p`, every link followed, lies in the folder `root` (already resolved)."""
    try:
        return p.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop
        return False


def _walk(root: Path) -> Iterator[tuple[str, bool]]:
    """(relative path, inside the folder) of every non-hidden file, sorted; links are never followed out."""
    real = root.resolve()
    found = []
    for folder, dirs, files in os.walk(root):  # never descends into a linked folder
        base = Path(folder)
        for d in [d for d in dirs if not d.startswith(".") and (base / d).is_symlink()]:
            if not _inside(base / d, real):
                found.append(((base / d).relative_to(root).as_posix(), False))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [((base / f).relative_to(root).as_posix(), _inside(base / f, real))
                  for f in files if not f.startswith(".")]
    yield from sorted(found)


def _note_names(root: Path) -> Iterator[tuple[str, bool]]:
    return ((rel, ok) for rel, ok in _walk(root) if rel.endswith(".md") or not ok)


class _Folder:
    """The vault folder: finds the file an embed names, as Obsidian does (path, beside the note, by name).
    A note held in memory has none: its embeds are not looked for."""

    def __init__(self, root: Path | None) -> None:
        self.root, self.real = root, root.resolve() if root is not None else None
        self._by_name: dict[str, list[str]] | None = None

    def by_name(self, name: str) -> list[str]:
        if self._by_name is None and self.root is not None:
            self._by_name = {}
            for rel, ok in sorted(_walk(self.root), key=lambda t: (t[0].count("/"), t[0])):
                if ok:
                    self._by_name.setdefault(PurePosixPath(rel).name, []).append(rel)
        return (self._by_name or {}).get(name, [])

    def embeds(self, rel: str, body: str) -> Iterator[Attachment | BadRecord]:
        """Each file the note embeds, once; a line for one outside the folder or too large."""
        if self.root is None or self.real is None:
            return
        done: set[str] = set()
        note_dir = PurePosixPath(rel).parent
        targets = [(m.group(1).strip(), True) for m in _WIKI_EMBED.finditer(body)]
        targets += [(unquote(m.group(1).strip("<>")), False) for m in _MD_EMBED.finditer(body)]
        for target, wiki in targets:
            if _SCHEME.match(target) or not PurePosixPath(target).suffix or target.endswith(".md"):
                continue  # a web address, or a note embedded in a note
            candidates = [str(note_dir / target), target]
            if wiki and "/" not in target:
                candidates += self.by_name(target)
            for cand in candidates:
                path = self.root / cand
                if not _inside(path, self.real):
                    yield BadRecord(rel, f"the embed {target} leads outside the folder; it was not read")
                    break
                if path.is_file():
                    name = path.resolve().relative_to(self.real).as_posix()
                    if name not in done:
                        done.add(name)
                        yield self._attachment(rel, path, name)
                    break

    def _attachment(self, rel: str, path: Path, name: str) -> Attachment | BadRecord:
        if path.stat().st_size > ingest.MAX_RECORD:
            return BadRecord(rel, f"the embedded {name} is larger than {ingest.MAX_RECORD // ingest.MiB} MiB; not read")
        return Attachment("attachments", path.read_bytes(), name, mimetypes.guess_type(name)[0])


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"line {line} is not UTF-8 (byte 0x{data[e.start]:02x}); it was not guessed") from None


class MarkdownImporter:
    name = "markdown"
    version = "2"  # 2: front matter kept whole in `properties`, as Obsidian reads it; embeds attached
    description = "a folder of Markdown notes with optional YAML front matter (Obsidian vault)"

    streams = True  # one note as bytes (its embeds are not looked for); a folder needs its path

    def detect(self, source: Input | Path) -> bool:
        src = Input.of(source)
        if src.is_dir() and src.path is not None:
            return any(ok for _, ok in _note_names(src.path))
        return src.suffix.lower() in (".md", ".markdown") and not looks_binary(src.head())

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord]:
        src = Input.of(source)
        if not src.exists():
            raise IngestError(src, None, "no such folder")
        if not src.is_dir() or src.path is None:
            if src.suffix.lower() not in (".md", ".markdown"):
                raise IngestError(src, None, "not a Markdown note (.md) or a folder of them")
            yield from self._note(_Folder(src.path.parent if src.path else None), src.name, src)
            return
        names = list(_note_names(src.path))
        if not any(ok for _, ok in names):
            raise IngestError(src, None, "no Markdown (.md) notes in this folder")
        folder = _Folder(src.path)
        for rel, ok in names:
            if not ok:
                yield BadRecord(rel, "a link to outside the folder; it was not followed")
                continue
            yield from self._note(folder, rel, Input.from_path(src.path / rel))

    def _note(self, folder: _Folder, rel: str, note: Input) -> Iterator[SourceRecord | BadRecord]:
        if note.size() > ingest.MAX_RECORD:
            yield BadRecord(rel, f"the note is larger than {ingest.MAX_RECORD // ingest.MiB} MiB")
            return
        with note.open() as f:
            data = f.read()
        if looks_binary(data):
            yield BadRecord(rel, "binary data, not a Markdown note")
            return
        try:
            fields, rid = parse_note(_utf8(data), rel)
        except (yaml.YAMLError, RecursionError) as e:
            yield BadRecord(rel, f"bad front matter ({str(e).splitlines()[0]})")
            return
        except ValueError as e:
            yield BadRecord(rel, str(e))
            return
        files = []
        for item in folder.embeds(rel, fields["body"]):
            if isinstance(item, BadRecord):
                yield item
            else:
                files.append(item)
        yield SourceRecord(Kind.NOTE, rel, fields, tuple(files), rel, record_id=rid)


def front_matter(r: ExportRecord, rel: str) -> dict[str, Any]:
    """The note's properties as read, with the vault's own fields written over them where they now differ."""
    meta = dict(r.fields.get("properties") or {})
    implied = derived(meta, rel)
    for key, value in r.fields.items():
        if key not in ("body", "path", "properties", "attachments") and implied.get(key) != value:
            meta[key] = value
    meta[_ID_KEY] = r.record_id
    return meta


def note_text(r: ExportRecord, rel: str) -> str:
    """A note as Markdown: front matter (the properties, in their order) and the body as it was."""
    front = yaml.dump(front_matter(r, rel), Dumper=_FrontDumper, allow_unicode=True, sort_keys=False,
                      default_flow_style=False, width=2**31 - 1)
    return f"---\n{front}---\n{r.fields.get('body', '')}"


def _safe_rel(path: Any) -> str | None:
    """`path` when it is a relative path that stays inside the folder, else None."""
    if not isinstance(path, str) or not path:
        return None
    pure = PurePosixPath(path)
    bad = pure.is_absolute() or ".." in pure.parts or "\\" in path or pure.parts[0].startswith(".")
    return None if bad else path


def _target(r: ExportRecord, used: set[str]) -> str:
    """Where a note goes: its `path` if it is a safe relative one, else a name from its title."""
    path = _safe_rel(r.fields.get("path"))
    if path and path.endswith(".md") and path not in used:
        return path
    stem = re.sub(r"[^\w\- ]+", "", str(r.fields.get("title") or "")).strip()[:80] or r.record_id
    name, n = f"{stem}.md", 1
    while name in used:
        n += 1
        name = f"{stem} ({n}).md"
    return name


class MarkdownExporter:
    name = "markdown"
    description = "a folder of Markdown notes with YAML front matter, embedded files beside them"
    kinds = (Kind.NOTE,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        out.mkdir(parents=True)
        used: set[str] = set()
        files: set[str] = set()
        for r in records:
            rel = _target(r, used)
            used.add(rel)
            self._put(out, rel, note_text(r, rel).encode("utf-8"))
            for ref in r.fields.get("attachments") or []:
                name = _safe_rel(ref.get("name") if isinstance(ref, dict) else None)
                if name and name not in files and name not in used:
                    files.add(name)
                    self._put(out, name, get_blob(ref["blob"]))
        return len(used)

    @staticmethod
    def _put(out: Path, rel: str, data: bytes) -> None:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(MarkdownImporter())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    register(MarkdownExporter())
