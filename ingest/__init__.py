"""Built-in formats, one module per format; each is a lifevault plugin (see vault.formats.registry.DEFAULT_PLUGINS).

This package module holds the safe-reading helpers the formats share: a
bounded look at a file's head, a refusal of empty/binary/missing input, and a
line reader that never holds more than MAX_LINE bytes of one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterator

from vault.errors import IngestError
from vault.formats import Notice

MiB = 1024 * 1024
MAX_LINE = 16 * MiB  # one physical line; longer is hostile or not text
MAX_RECORD = 64 * MiB  # one record (a card, a note, a JSON line with its attachments)


def head(path: Path, size: int = 8192) -> bytes:
    """The first `size` bytes of a file (b"" for a folder or an unreadable file)."""
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError:
        return b""


def looks_binary(data: bytes) -> bool:
    return b"\x00" in data


def text_head(path: Path, size: int = 8192) -> str:
    """The head of a text file, decoded leniently, without a BOM; "" for binary or unreadable input."""
    data = head(path, size)
    if looks_binary(data):
        return ""
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def check_text_file(path: Path, what: str) -> None:
    """Refuse, with one sentence, a missing, empty, folder or binary file before parsing it."""
    if not path.exists():
        raise IngestError(path, None, "no such file")
    if path.is_dir():
        raise IngestError(path, None, f"is a folder, not {what}")
    if path.stat().st_size == 0:
        raise IngestError(path, None, f"is empty, not {what}")
    if looks_binary(head(path)):
        raise IngestError(path, None, f"is binary, not {what}")


def bounded_lines(f: IO[bytes], path: Path, limit: int | None = None) -> Iterator[bytes]:
    """Lines of a binary file, each at most `limit` (default MAX_LINE) bytes; IngestError at the first longer one."""
    limit = limit or MAX_LINE  # read at call time, so a test can lower it
    n = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n += 1
        if len(line) > limit:
            raise IngestError(path, f"line {n}", f"the line is longer than {limit // MiB} MiB; this is not a file to import")
        if b"\x00" in line:
            raise IngestError(path, f"line {n}", "binary data where text was expected")
        yield line


def guessed_windows_1252(location: str, lines: list[int]) -> Notice:
    """The warning for lines that are not UTF-8 and name no charset, read as Windows-1252: a guess, said."""
    many = len(lines) > 1
    return Notice(location, f"line{'s' * many} {', '.join(map(str, lines))} {'are' if many else 'is'} not UTF-8 and "
                            f"name{'' if many else 's'} no charset: read as Windows-1252 (a guess)")


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM stripped), falling back to Windows-1252 as old phone and desktop exports use."""
    try:
        return data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")

