"""Built-in formats, one module per format; each is a lifevault plugin (see vault.formats.registry.DEFAULT_PLUGINS).

This package module holds the safe-reading helpers the formats share: a
bounded look at an input's head, a refusal of empty/binary/missing input, and a
line reader that never holds more than MAX_LINE bytes of one line. They take an
Input (bytes or a file, see vault.formats.contract) or a plain path.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterator

from vault.errors import IngestError
from vault.formats import Input, Notice

MiB = 1024 * 1024
MAX_LINE = 16 * MiB  # one physical line; longer is hostile or not text
MAX_RECORD = 64 * MiB  # one record (a card, a note, a JSON line with its attachments)


def head(source: Input | Path, size: int = 8192) -> bytes:
    """The first `size` bytes of an input (b"" for a folder or an unreadable file)."""
    return Input.of(source).head(size)


def looks_binary(data: bytes) -> bool:
    return b"\x00" in data


def text_head(source: Input | Path, size: int = 8192) -> str:
    """The head of a text input, decoded leniently, without a BOM; "" for binary or unreadable input."""
    data = head(source, size)
    if looks_binary(data):
        return ""
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def check_text_file(source: Input | Path, what: str) -> None:
    """Refuse, with one sentence, a missing, empty, folder or binary input before parsing it."""
    src = Input.of(source)
    if not src.exists():
        raise IngestError(src, None, "no such file")
    if src.is_dir():
        raise IngestError(src, None, f"is a folder, not {what}")
    if src.size() == 0:
        raise IngestError(src, None, f"is empty, not {what}")
    if looks_binary(src.head()):
        raise IngestError(src, None, f"is binary, not {what}")


def bounded_lines(f: IO[bytes], path: Input | Path, limit: int | None = None) -> Iterator[bytes]:
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

