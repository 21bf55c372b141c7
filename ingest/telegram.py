"""Telegram Desktop's JSON export (`result.json`), as chat messages.

Telegram Desktop (Settings › Advanced › Export Telegram data, or a chat's
"Export chat history", format "Machine-readable JSON") writes one `result.json`
with the media in folders beside it. Both shapes are read: a whole account
(`chats.list` and `left_chats.list`) and one chat (`name`, `type`, `id`,
`messages`); the file or the folder that holds it may be named.

Each message is a record whose source id is its chat's id and its own (both
Telegram's, stable across exports). `date` is the exact instant
(`date_unixtime`, UTC); `date_local` keeps the wall-clock text the export
wrote. `text` comes as a string or as a list of plain strings and entity
objects (bold, link, mention…): `body` is the plain text, and the list itself
is kept as `text_parts`. Service messages (a group created, members invited, a
call) are `system: true` with their `actor`. Every other key of a message is
kept under its own name (Telegram's are all snake_case; `id` becomes
`telegram_id`). `photo`, `file` and `thumbnail` name files beside result.json:
they are attached when there, and a path leading outside the folder is refused
with a line; "(File not included…)" means the export was made without it.

The file is parsed whole (the standard library has no streaming JSON reader):
exports larger than MAX_EXPORT are refused with a sentence saying to export
chats in parts. The account's own data (personal information, contacts,
sessions) is not messages and is not read.
"""

from __future__ import annotations

import json
import mimetypes
import re
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

import ingest
from ingest import check_text_file, text_head
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import Attachment, BadRecord, Importer, Input, Notice, SourceRecord, hookimpl

MAX_EXPORT = 1 << 30  # parsed whole: about ten times this in memory at the peak
_NAME = "result.json"
_CHAT_TYPES = ("personal_chat", "private_group", "private_supergroup", "public_supergroup", "bot_chat",
               "saved_messages", "private_channel", "public_channel")
_MEDIA = ("photo", "file", "thumbnail")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_RENAMED = {"id": "telegram_id", "date": "date_local", "edited": "edited_local", "text": "text_parts", "type": "message_type",
            "kind": "telegram_kind", "message_id": "target_message_id", "thread": "telegram_thread", "body": "telegram_body"}


def plain_text(text: Any) -> str:
    """A message's text: a string, or a list of strings and entity objects with their own `text`."""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(t if isinstance(t, str) else str(t.get("text", "")) if isinstance(t, dict) else ""
                       for t in text)
    return ""


def _instant(msg: dict[str, Any]) -> str:
    """The message's instant as ISO 8601: UTC from `date_unixtime`, else the wall-clock `date` as written."""
    unix = msg.get("date_unixtime")
    if unix is not None:
        try:
            return datetime.fromtimestamp(int(unix), timezone.utc).isoformat()
        except (TypeError, ValueError, OverflowError, OSError):
            raise ValueError(f"its date_unixtime {unix!r} is not a time") from None
    try:
        return datetime.fromisoformat(str(msg.get("date"))).isoformat()
    except ValueError:
        raise ValueError(f"its date {msg.get('date')!r} is not a time") from None


def _result_file(src: Input) -> Input:
    return Input.from_path(src.path / _NAME) if src.is_dir() and src.path is not None else src


def _chats(data: Any, path: Input) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        raise IngestError(path, None, "is JSON but not a Telegram export (no chats in it)")
    if isinstance(data.get("messages"), list):
        return [data]
    chats = [c for part in ("chats", "left_chats") if isinstance(data.get(part), dict)
             for c in data[part].get("list") or [] if isinstance(c, dict)]
    if not chats and not isinstance(data.get("chats"), dict):
        raise IngestError(path, None, "is JSON but not a Telegram export (no chats in it)")
    return chats


class _Folder:
    """The files beside result.json, never one outside that folder (none for a result.json held in memory)."""

    def __init__(self, root: Path | None) -> None:
        self.root, self.real = root, root.resolve() if root is not None else None

    def media(self, rel: str) -> bytes | None | str:
        """The file's bytes, None when it is not there, or why it is refused."""
        if self.root is None or self.real is None:
            return None
        pure = PurePosixPath(rel)
        path = self.root / rel
        try:
            inside = not pure.is_absolute() and ".." not in pure.parts and path.resolve().is_relative_to(self.real)
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            return f"its {rel} leads outside the export folder; it was not read"
        if not path.is_file():
            return None
        if path.stat().st_size > ingest.MAX_RECORD:
            return f"its {rel} is larger than {ingest.MAX_RECORD >> 20} MiB; it was not read"
        return path.read_bytes()


class TelegramImporter:
    """Reads Telegram Desktop's machine-readable JSON export: result.json, or the folder holding it."""

    name = "telegram"
    version = "1"
    description = "Telegram Desktop JSON export (result.json, or its folder): chats, groups, media beside it"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        file = _result_file(Input.of(source))
        head = text_head(file, 4096).lstrip()
        if not head.startswith("{"):
            return False
        marked = any(f'"{t}"' in head for t in _CHAT_TYPES) or "Here is the data you requested" in head
        return marked or (file.name == _NAME and ('"messages"' in head or '"chats"' in head))

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord | Notice]:
        src = Input.of(source)
        file = _result_file(src)
        if src.is_dir() and not file.is_file():
            raise IngestError(src, None, f"holds no {_NAME}, so it is not a Telegram Desktop export")
        check_text_file(file, "a Telegram export")
        if file.size() > MAX_EXPORT:
            raise IngestError(file, None, f"is larger than {MAX_EXPORT >> 30} GiB, more than lifevault parses at "
                              "once; export the chats in parts (Telegram Desktop: Export chat history)")
        if not text_head(file, 512).lstrip().startswith("{"):
            raise IngestError(file, None, "is not JSON, so it is not a Telegram export")
        try:
            with file.open() as f:
                data = json.loads(f.read().decode("utf-8-sig"))
        except UnicodeDecodeError as e:
            raise IngestError(file, f"byte {e.start}", "it is not UTF-8, which Telegram always writes") from None
        except json.JSONDecodeError as e:
            raise IngestError(file, f"line {e.lineno}", f"it is not valid JSON ({e.msg})") from None
        folder = _Folder(file.path.parent if file.path is not None else None)
        for n, chat in enumerate(_chats(data, file), 1):
            yield from _ChatReader(chat, n, folder).records()


class _ChatReader:
    def __init__(self, chat: dict[str, Any], n: int, folder: _Folder) -> None:
        self.chat, self.folder = chat, folder
        self.id = chat.get("id")
        self.type = str(chat.get("type") or "")
        self.name = str(chat.get("name") or ("Saved Messages" if self.type == "saved_messages" else f"chat {n}"))

    def records(self) -> Iterator[SourceRecord | BadRecord | Notice]:
        messages = self.chat.get("messages")
        for i, msg in enumerate(messages if isinstance(messages, list) else [], 1):
            mid = msg.get("id") if isinstance(msg, dict) else None
            where = f"{self.name}, message {mid if isinstance(mid, int) else f'#{i}'}"
            if not isinstance(mid, int):
                yield BadRecord(where, "it has no message id")
                continue
            try:
                fields = self.fields(msg)
            except ValueError as e:
                yield BadRecord(where, str(e))
                continue
            files: list[Attachment] = []
            for key in _MEDIA:
                yield from self.media(msg, key, where, files)
            chat_key = self.id if self.id is not None else self.name
            yield SourceRecord(Kind.MESSAGE, f"{chat_key}:{mid}", fields, tuple(files), where)

    def fields(self, msg: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"kind": "chat", "thread": self.name, "date": _instant(msg)}
        if self.id is not None:
            fields["thread_id"] = self.id
        if self.type:
            fields["chat_type"] = self.type
        body = plain_text(msg.get("text"))
        if body:
            fields["body"] = body
        if msg.get("type") == "service":
            fields["system"] = True
            if msg.get("actor"):
                fields["from"] = msg["actor"]
        for key, value in msg.items():
            if key == "text" and not isinstance(value, list) or value is None:
                continue  # a string text is `body`
            name = _RENAMED.get(key, key)
            if _FIELD.match(name) and name not in fields:
                fields[name] = value
            elif not _FIELD.match(name):
                fields.setdefault("other", {})[key] = value
        if fields.get("edited_unixtime") is not None:
            fields["edited"] = _instant({"date_unixtime": fields["edited_unixtime"]})
        return fields

    def media(self, msg: dict[str, Any], key: str, where: str, files: list[Attachment]) -> Iterator[BadRecord | Notice]:
        rel = msg.get(key)
        if not isinstance(rel, str) or not rel or rel.startswith("("):  # "(File not included. …)"
            return
        got = self.folder.media(rel)
        if isinstance(got, str):
            yield BadRecord(where, got)
        elif got is None:
            yield Notice(where, f"its {key} {rel} is not in the export folder")
        else:
            kind = msg.get("mime_type") if key == "file" else None
            files.append(Attachment("attachments", got, rel, kind or mimetypes.guess_type(rel)[0]))


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(TelegramImporter())
