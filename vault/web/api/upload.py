"""An uploaded export file, held in memory only and handed to the importer as a byte stream.

An upload is someone's plaintext: it must not touch disk. Importers read an
`Input` (vault.formats.contract), which may be bytes, so the body is gathered
in this process's memory (no more than the route's `max_upload`, enforced
while it arrives) and read from there; nothing is ever written to a file
system, on any platform.
"""

from __future__ import annotations

import re
from typing import AsyncIterator

from vault.errors import IngestError
from vault.formats import Input

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_filename(name: str | None) -> str:
    """A plain file name from what the client sent: no folders, no odd characters."""
    base = _SAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return base[:128] or "upload"


async def read_upload(chunks: AsyncIterator[bytes], name: str) -> Input:
    """The body as an Input named `name` (already made safe); IngestError when it is empty."""
    parts = [chunk async for chunk in chunks if chunk]
    if not parts:
        raise IngestError(name, None, "the upload is empty")
    return Input.from_bytes(b"".join(parts), name)
