"""WhatsApp "Export chat" text files (Android and iOS), as chat messages.

A message starts with a line carrying its date and time, in one of the shapes the
apps write depending on phone and language:

    Android  05/03/2024, 09:12 - Ada Lovelace: Hello           (en-GB)
             3/5/24, 9:12\u202fAM - Ada Lovelace: Hello              (en-US, narrow no-break space)
             05.03.24, 09:12 - Ada: Hallo                      (de)
             05/03/2024 à 09:12 - Ada : Bonjour                (fr)
    iOS      [05/03/2024, 09:12:45] Ada Lovelace: Hello
             \u200e[05.03.24, 09:13:01] Ada: \u200e<Anhang: 00000012-PHOTO-2024-03-05-09-13-01.jpg>

Lines that do not start that way continue the message before. Whether 03/05
is the 3rd of May or the 5th of March is decided once per chat from all its
dates, never from how one app writes them (an iPhone and an Android phone
export the same chat with different brackets and clocks): the order under
which every date exists wins; if both do, the one under which the messages run
in time order and closest together; if that is a tie too, dots or zero-padded
four-digit years mean day first, US-style `3/5/24 … AM` month first, else day
first. Whenever no date settles it, a warning says how it was read and
`--date-order dmy|mdy` overrides it. The times are the phone's wall clock: they
are read in `--tz` (default: this machine's zone, recorded with the import, as
every option is) and `date` is ISO 8601 with that offset.

The export has no message ids: a message's source id is a hash of the chat, its
wall-clock time, sender and text, numbered when the same one occurs twice in a minute. Where version 1
of this importer read a chat's day/month order otherwise, the id it gave is passed on as a previous source id,
so a re-import corrects those records instead of adding new ones.
Media appear as placeholders ("<Media omitted>", "image omitted", "IMG-….jpg
(file attached)", "<attached: …>"); the file is attached when it lies beside
the chat text, in its folder or in the zip WhatsApp shares (read through ingest/safezip.py).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import zipfile
from itertools import pairwise
from dataclasses import dataclass, field
from datetime import date as Date, datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ingest
from ingest import bounded_lines, check_text_file, decode_text, safezip, text_head
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import Attachment, BadRecord, ImportOption, Input, Notice, SourceRecord, hookimpl

_MARKS = "\u200e\u200f\ufeff"
_HEADER = re.compile(
    r"^[\u200e\u200f\ufeff]*(?:\[(?P<d1>\d{1,4}[./-]\d{1,2}[./-]\d{1,4}),?\s(?P<t1>[\d:.]+)(?:[\s\u202f\u00a0]*(?P<ap1>[AaPp]\.?\s?[Mm]\.?))?\]\s"
    r"|(?P<d2>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})(?:,\s|\s(?:à|um|a las)\s|\s)(?P<t2>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)(?:[\s\u202f\u00a0]*(?P<ap2>[AaPp]\.?\s?[Mm]\.?))?\s[-–]\s)"
    r"(?P<rest>.*)$"
)
_SENDER = re.compile(r"^(?P<name>[^:\"]{1,80}?)\s?:\s(?P<text>.*)$", re.S)
_OMITTED = re.compile(
    r"^<(?:Media omitted|Medien ausgeschlossen|Multimedia omitido|Médias omis|Mídia oculta|Media omessi|"
    r"Media weggelaten)>$|^(?:image|video|audio|sticker|GIF|document|Contact card|Bild|Video|Audio|Sticker|"
    r"imagen|vídeo|image absente|vidéo absente) (?:omitted|weggelassen|omitido|omitida|absente?)$",
    re.I,
)
_ATTACHED = re.compile(
    r"^(?:<(?:attached|Anhang|adjunto|pièce jointe|allegato|anexado)\s?:\s(?P<ios>[^>]+)>"
    r"|(?P<android>\S.*?\.\w{2,5}) \((?:file attached|Datei angehängt|archivo adjunto|fichier joint|"
    r"file allegato|arquivo anexado)\))$",
    re.I,
)
_EDITED = re.compile(r"\s*<(?:This message was edited|Diese Nachricht wurde bearbeitet|Se editó este mensaje|"
                     r"Ce message a été modifié)>$")
_DELETED = {"This message was deleted", "You deleted this message", "Diese Nachricht wurde gelöscht",
            "Du hast diese Nachricht gelöscht", "Se eliminó este mensaje", "Ce message a été supprimé"}


@dataclass
class _Pending:
    line: int
    date: str
    rest: str
    more: list[str] = field(default_factory=list)
    size: int = 0
    broken: str = ""  # why its text cannot be read (not UTF-8), or ""
    date1: str | None = None  # the wall-clock time as importer version 1 read it, when that differs


def _line(raw: bytes, n: int) -> tuple[str, str]:
    """A line as text, and why it is not UTF-8 ("" when it is): its message is skipped, never guessed."""
    try:
        return raw.decode("utf-8").rstrip("\r\n"), ""
    except UnicodeDecodeError as e:
        why = f"line {n} is not UTF-8 (byte 0x{raw[e.start]:02x}), so the message was skipped, not guessed"
        return raw.decode("utf-8", "replace").rstrip("\r\n"), why


def _numbers(date: str) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in re.split(r"[./-]", date))
    return a, b, c


def local_zone() -> str:
    """This machine's time zone by name ($TZ, else /etc/localtime's target), else its current UTC offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.path.realpath("/etc/localtime")
            name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
        except OSError:
            name = ""
    if name and _zone(name) is not None:
        return name
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zone(name: str) -> tzinfo | None:
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", name)
    if m:
        minutes = int(m[2]) * 60 + int(m[3])
        return timezone(timedelta(minutes=-minutes if m[1] == "-" else minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _day(date: str, day_first: bool) -> Date | None:
    a, b, c = _numbers(date)
    day, month = (a, b) if day_first else (b, a)
    try:
        return Date(c + 2000 if c < 100 else c, month, day)
    except ValueError:
        return None


def _score(dates: list[str], day_first: bool) -> tuple[int, int, int]:
    """(dates that do not exist, steps back in time, days from first to last) under one order."""
    days = [_day(d, day_first) for d in dates]
    real = [d for d in days if d is not None]
    back = sum(1 for x, y in pairwise(real) if y < x)
    span = sum((y - x).days for x, y in pairwise(real) if y > x)
    return len(days) - len(real), back, span


def _version1(dates: list[str], hints: dict[str, bool]) -> bool:
    """How importer version 1 read the order (the first date with a number above 12, else dots or a 24-hour
    clock mean day first): only to find the records it made when this version reads the dates otherwise."""
    for a, b, _ in map(_numbers, dates):
        if a > 12 or b > 12:
            return a > 12
    return hints["dots"] or not hints["ampm"]


def _date_order(src: "_ChatSource") -> tuple[bool, Notice | None, bool]:
    """Whether this chat's dates are day first, a warning when no date settles it, and version 1's reading."""
    dates: list[str] = []
    first_line, hints = 0, {"dots": False, "us": False, "padded": False, "ampm": False}
    with src.open_text() as f:
        for n, raw in enumerate(bounded_lines(f, src.path, ingest.MAX_LINE), 1):
            m = _HEADER.match(raw.decode("utf-8", "replace").rstrip("\r\n"))
            if not m or len(re.split(r"[./-]", m["d1"] or m["d2"])[0]) == 4:  # year first: y-m-d, no question
                continue
            date = m["d1"] or m["d2"]
            dates.append(date)
            first_line = first_line or n
            parts = re.split(r"[./-]", date)
            hints["dots"] |= "." in date
            hints["padded"] |= len(parts[0]) == 2 and len(parts[2]) == 4
            hints["us"] |= bool(m["ap1"] or m["ap2"]) and len(parts[2]) == 2
            hints["ampm"] |= bool(m["ap1"] or m["ap2"])
    if not dates:
        return True, None, True
    dmy, mdy = _score(dates, True), _score(dates, False)
    if dmy[0] != mdy[0]:
        return dmy[0] < mdy[0], None, _version1(dates, hints)  # some date exists only one way round: settled
    if dmy != mdy:
        day_first, how = dmy < mdy, "by the order of the messages in time"
    else:
        day_first = hints["dots"] or hints["padded"] or not hints["us"]
        how = "by how the dates are written"
    order, other = ("day/month", "mdy") if day_first else ("month/day", "dmy")
    return day_first, Notice(f"line {first_line}", f"no date in this chat settles whether {dates[0]} is day/month "
                             f"or month/day; read as {order} ({how}); import again with --date-order {other} "
                             "if that is wrong"), _version1(dates, hints)


def _instant(date: str, time: str, ampm: str | None, day_first: bool) -> str:
    """ISO 8601 wall-clock time, without a zone; ValueError for a date that does not exist."""
    a, b, c = _numbers(date)
    if len(re.split(r"[./-]", date)[0]) == 4:
        year, month, day = a, b, c
    else:
        year = c + 2000 if c < 100 else c
        day, month = (a, b) if day_first else (b, a)
    parts = [int(x) for x in re.split(r"[:.]", time)]
    hour, minute, second = parts[0], parts[1], parts[2] if len(parts) > 2 else 0
    if ampm:
        pm = ampm.lower().startswith("p")
        if not 1 <= hour <= 12:
            raise ValueError(f"{hour} is not an hour on a 12-hour clock")
        hour = hour % 12 + (12 if pm else 0)
    return datetime(year, month, day, hour, minute, second).isoformat()


def _chat_name(path: PurePosixPath) -> str:
    stem = path.stem
    for prefix in ("WhatsApp Chat with ", "WhatsApp Chat mit ", "WhatsApp Chat - ", "Chat de WhatsApp con ",
                   "Discussion WhatsApp avec "):
        if stem.startswith(prefix):
            return stem[len(prefix):]
    if stem == "_chat" and path.parent.name:  # iOS: _chat.txt inside "WhatsApp Chat - Name"
        return _chat_name(path.parent)
    return stem


@dataclass
class _ChatSource:
    """Where a chat's text and media come from: a file, a folder or a zip."""

    path: Input  # what the user named, for messages
    text_name: str  # the chat text's own name ("_chat.txt", "WhatsApp Chat with Ada.txt")
    open_text: Callable[[], IO[bytes]]
    media: Callable[[str], bytes | None]
    file: Input | None = None  # the chat text as a file of its own (None inside a zip)


def _pick(path: Input, names: list[str]) -> str:
    chosen = [n for n in names if PurePosixPath(n).name == "_chat.txt"] or names
    if len(chosen) != 1:
        raise IngestError(path, None, "a WhatsApp export needs exactly one chat .txt file beside its media")
    return chosen[0]


def _from_input(src: Input) -> _ChatSource:
    """The chat of a folder or a text file; a text held in memory comes without media."""
    if src.path is None:
        return _ChatSource(src, src.name, src.open, lambda name: None, src)
    path = src.path
    folder = path if path.is_dir() else path.parent
    text = folder / _pick(src, sorted(p.name for p in folder.glob("*.txt"))) if path.is_dir() else path

    def media(name: str) -> bytes | None:
        file = folder / name
        ok = file.is_file() and file.stat().st_size <= ingest.MAX_RECORD
        return file.read_bytes() if ok else None

    return _ChatSource(src, f"{text.parent.name}/{text.name}", lambda: text.open("rb"), media, Input.from_path(text))


def _from_zip(path: Input, zf: zipfile.ZipFile) -> _ChatSource:
    files = safezip.members(path, zf)
    name = _pick(path, sorted(n for n in files if n.lower().endswith(".txt") and "/" not in n))

    def media(wanted: str) -> bytes | None:
        return safezip.read_member(path, zf, files[wanted]) if wanted in files else None

    return _ChatSource(path, f"{path.stem}/{name}", lambda: zf.open(files[name]), media)


class WhatsappImporter:
    """Reads a chat exported with WhatsApp's "Export chat": the .txt, its folder with the media, or the zip."""

    name = "whatsapp"
    version = "2"  # 2: day/month order per chat from all its dates; dates carry the zone's offset
    options = (
        ImportOption("date_order", "day/month or month/day, when the chat's dates leave it open",
                     ("dmy", "mdy")),
        ImportOption("tz", "the time zone the phone's clock was in (IANA name or +HH:MM)", default=local_zone),
    )
    description = "WhatsApp \"Export chat\" (Android and iOS): .txt, folder or .zip; media beside it attached"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        src = Input.of(source)
        try:
            text = None
            if src.is_file():
                with src.open() as f:
                    if zipfile.is_zipfile(f):
                        with zipfile.ZipFile(f) as zf, _from_zip(src, zf).open_text() as t:
                            text = decode_text(t.read(8192))
            if text is None:
                text = text_head(_from_input(src).file or src)
        except (IngestError, OSError, zipfile.BadZipFile):
            return False
        lines = [line for line in text.splitlines()[:6] if line.strip()]
        return bool(lines) and sum(bool(_HEADER.match(line)) for line in lines) >= min(2, len(lines))

    def read(self, source: Input | Path, date_order: str | None = None,
             tz: str | None = None) -> Iterator[SourceRecord | BadRecord | Notice]:
        src = Input.of(source)
        zone = _zone(tz or local_zone())
        if zone is None:
            raise IngestError(src, None, f"--tz {tz} is not a time zone (use a name like Europe/Paris, or +02:00)")
        if src.is_file():
            with src.open() as f:
                if zipfile.is_zipfile(f):
                    with zipfile.ZipFile(f) as zf:
                        yield from self._read(_from_zip(src, zf), date_order, zone)
                    return
        chat = _from_input(src)
        check_text_file(chat.file or src, "a WhatsApp chat export")
        yield from self._read(chat, date_order, zone)

    def _read(self, src: _ChatSource, date_order: str | None, zone: tzinfo) -> Iterator[SourceRecord | BadRecord | Notice]:
        decided, notice, version1 = _date_order(src)
        if date_order:
            decided = date_order == "dmy"
        elif notice:
            yield notice
        chat = _chat_name(PurePosixPath(src.text_name))
        yield from _ChatReader(src, chat, decided, zone, None if version1 == decided else version1).records()


def _source_id(seen: dict[str, int], parts: list[str]) -> str:
    """A hash of the message's chat, wall-clock time, sender, text and media, numbered from its second time."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}#{seen[digest]}"


class _ChatReader:
    def __init__(self, src: _ChatSource, chat: str, day_first: bool, zone: tzinfo, version1: bool | None) -> None:
        self.src, self.path, self.chat, self.day_first, self.zone = src, src.path, chat, day_first, zone
        self.version1 = version1  # version 1's reading of the order, when it differs from this one
        self.seen: dict[str, int] = {}
        self.seen1: dict[str, int] = {}
        self.found = False

    def records(self) -> Iterator[SourceRecord | BadRecord]:
        pending: _Pending | None = None
        skipping = False  # the lines after a bad date line belong to the skipped message
        orphan = 0  # the first line of text that belongs to no message
        with self.src.open_text() as f:
            for n, raw in enumerate(bounded_lines(f, self.path, ingest.MAX_LINE), 1):
                line, broken = _line(raw, n)
                m = _HEADER.match(line)
                if m:
                    if pending:
                        yield self.finish(pending)
                    started = self.start(n, m)
                    skipping = isinstance(started, BadRecord)
                    if isinstance(started, BadRecord):
                        yield started
                        pending = None
                    else:
                        started.broken = broken
                        pending = started
                elif pending:
                    pending.broken = pending.broken or broken
                    pending.more.append(line)
                    pending.size += len(raw)
                    if pending.size > ingest.MAX_RECORD:
                        raise IngestError(self.path, f"line {pending.line}", "one message is longer than "
                                          f"{ingest.MAX_RECORD >> 20} MB; this is not a real chat export")
                elif line.strip(_MARKS + " \t") and not orphan and not skipping:
                    orphan = n
                    yield BadRecord(f"line {n}", "text that belongs to no message (no date and time before it)")
        if pending:
            yield self.finish(pending)
        if not self.found:
            raise IngestError(self.path, None, "no line starts with a date and time, so it is not a WhatsApp chat export")

    def start(self, n: int, m: re.Match[str]) -> _Pending | BadRecord:
        date, time, ampm = (m["d1"], m["t1"], m["ap1"]) if m["d1"] else (m["d2"], m["t2"], m["ap2"])
        try:
            when = _instant(date, time, ampm, self.day_first)
        except ValueError as e:
            return BadRecord(f"line {n}", f"'{date} {time}' is not a real date and time ({e})")
        pending = _Pending(n, when, m["rest"])
        if self.version1 is not None:
            try:
                pending.date1 = _instant(date, time, ampm, self.version1)
            except ValueError:
                pass  # version 1 could not read it either: it made no record for it
        return pending

    def finish(self, p: _Pending) -> SourceRecord | BadRecord:
        self.found = True
        if p.broken:
            return BadRecord(f"line {p.line}", p.broken)
        text = "\n".join([p.rest, *p.more])
        when = datetime.fromisoformat(p.date).replace(tzinfo=self.zone).isoformat()
        fields: dict[str, Any] = {"kind": "chat", "thread": self.chat, "date": when}
        sender = _SENDER.match(text)
        if sender:
            fields["from"] = sender["name"].strip(_MARKS + " ")
            text = sender["text"]
            if fields["from"] == self.chat and text.startswith("\u200e"):  # iOS: group events, marked
                fields["system"] = True
        else:
            fields["system"] = True  # "Messages and calls are end-to-end encrypted", "Ada added Grace", …
        files = self.media(text.strip(_MARKS), fields)
        text = fields.pop("_text")
        if _EDITED.search(text):
            text, fields["edited"] = _EDITED.sub("", text), True
        if text in _DELETED:
            fields["deleted"] = True
        if text:
            fields["body"] = text
        rest = [fields.get("from", ""), text, fields.get("media", "")]
        source_id = _source_id(self.seen, [self.chat, p.date, *rest])
        previous = (_source_id(self.seen1, [self.chat, p.date1, *rest]),) if p.date1 else ()
        return SourceRecord(Kind.MESSAGE, source_id, fields, tuple(files), f"line {p.line}",
                            previous_source_ids=previous)

    def media(self, text: str, fields: dict[str, Any]) -> list[Attachment]:
        """Take a media placeholder off the first line into `media`; attach the file if it is here."""
        first, _, caption = text.partition("\n")
        first = first.strip(_MARKS + " ")
        fields["_text"] = text
        if _OMITTED.match(first):
            fields["media"], fields["_text"] = "omitted", caption
            return []
        m = _ATTACHED.match(first)
        if not m:
            return []
        name = (m["ios"] or m["android"]).strip(_MARKS + " ")
        fields["media"], fields["_text"] = name, caption
        data = None if "/" in name or "\\" in name else self.src.media(name)
        if data is None:
            return []
        return [Attachment("attachments", data, name, mimetypes.guess_type(name)[0])]


@hookimpl
def register_importers(register):
    register(WhatsappImporter())
