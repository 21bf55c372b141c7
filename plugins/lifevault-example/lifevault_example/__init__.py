"""An example lifevault plugin: todo.txt task lists imported as notes.

It is found through the entry point `todotxt = "lifevault_example"` in the group `lifevault` and uses
only lifevault's public surface: `hookimpl`, the format contract, `Kind` and the errors, all from `vault`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Iterator

from vault import BadRecord, IngestError, Input, Kind, SourceRecord, hookimpl

__version__ = "0.1.0"
MAX_LINE = 64 * 1024
_TASK = re.compile(r"^(?:(?P<done>x) (?:(?P<completed>\d{4}-\d\d-\d\d) )?)?(?:\((?P<pri>[A-Z])\) )?"
                   r"(?:(?P<created>\d{4}-\d\d-\d\d) )?(?P<text>.+)$")
_LOOKS_LIKE_TASK = re.compile(r"^(x \d{4}-\d\d-\d\d |\([A-Z]\) |\d{4}-\d\d-\d\d )")


def parse_task(line: str) -> dict[str, object]:
    """The fields of one todo.txt line; ValueError when a date in it is not a real date."""
    m = _TASK.match(line)
    if not m:
        raise ValueError("not a task")
    text = m["text"].strip()
    fields: dict[str, object] = {"title": text, "done": bool(m["done"])}
    for key in ("completed", "created"):
        if m[key]:
            dt.date.fromisoformat(m[key])
            fields[key] = m[key]
    if m["pri"]:
        fields["priority"] = m["pri"]
    words = text.split()
    if projects := [w[1:] for w in words if w.startswith("+") and len(w) > 1]:
        fields["projects"] = projects
    if contexts := [w[1:] for w in words if w.startswith("@") and len(w) > 1]:
        fields["contexts"] = contexts
    for w in words:
        key, sep, value = w.partition(":")
        if sep and value and re.fullmatch(r"[a-z][a-z0-9_]*", key) and "/" not in value:
            if key == "due":
                dt.date.fromisoformat(value)
            fields.setdefault(key, value)
    return fields


class TodoTxtImporter:
    name = "todotxt"
    version = __version__
    description = "todo.txt task lists (one task per line), as notes"
    streams = True  # reads an Input: a file, or bytes (an upload) alike

    def detect(self, source: Input) -> bool:
        if not source.is_file():
            return False
        if source.name.lower() in ("todo.txt", "done.txt"):
            return True
        with source.open() as f:
            first = f.readline(MAX_LINE).decode("utf-8", errors="replace")
        return bool(_LOOKS_LIKE_TASK.match(first))

    def read(self, source: Input) -> Iterator[SourceRecord | BadRecord]:
        if not source.is_file() or source.size() == 0:
            raise IngestError(source, None, "not a todo.txt file (missing, a folder, or empty)")
        with source.open() as f:
            for n, raw in enumerate(iter(lambda: f.readline(MAX_LINE + 1), b""), 1):
                if len(raw) > MAX_LINE or b"\x00" in raw:
                    raise IngestError(source, f"line {n}", "not a todo.txt file (binary or an absurdly long line)")
                line = raw.decode("utf-8", errors="replace").strip()
                if not line:
                    continue
                try:
                    fields = parse_task(line)
                except ValueError as e:
                    yield BadRecord(f"line {n}", f"bad task ({e})")
                    continue
                source_id = f"{fields.get('created', '')} {fields['title']}"
                yield SourceRecord(Kind.NOTE, source_id, fields, (), f"line {n}")


@hookimpl
def register_importers(register):
    register(TodoTxtImporter())
