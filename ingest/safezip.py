"""Reading exports that arrive as a zip (Google Takeout, WhatsApp on iOS) without trusting the zip.

A member whose path is absolute, has a drive letter or climbs out with `..`
refuses the whole file; no member is read past ingest.MAX_RECORD bytes,
whatever size its header claims (a zip bomb stops there).
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import ingest
from vault.errors import IngestError
from vault.formats import Input


def members(path: Input | Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's files by name; IngestError at the first name that points outside the zip."""
    out = {}
    for info in zf.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
            raise IngestError(path, info.filename, "the zip holds a path outside its own folder; refusing it")
        if not info.is_dir():
            out[info.filename] = info
    return out


def read_member(path: Input | Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, at most ingest.MAX_RECORD of them."""
    with zf.open(info) as f:
        data = f.read(ingest.MAX_RECORD + 1)
    if len(data) > ingest.MAX_RECORD:
        raise IngestError(path, info.filename, f"a file in it is larger than {ingest.MAX_RECORD >> 20} MB; "
                                               "this is not a real export")
    return data
