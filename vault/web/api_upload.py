"""An uploaded export file, held in memory only, given a path the importers can open.

Importers read paths (and some look at the suffix), but an upload is someone's
plaintext: it must not touch disk. The bytes go into an anonymous in-memory file
(Linux memfd); a symlink named like the upload, in a private folder on the RAM
filesystem when there is one, points at it. Only the name is ever on a file
system; the content vanishes with the descriptor, even if the process dies.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

from vault.errors import VaultError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadsUnsupported(VaultError):
    http_status = 501

    def __init__(self) -> None:
        super().__init__("Uploads need in-memory files (Linux memfd), which this system lacks; import with the CLI.")


def safe_filename(name: str | None) -> str:
    """A plain file name from what the client sent: no folders, no odd characters."""
    base = _SAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return base[:128] or "upload"


async def write_body(chunks: AsyncIterator[bytes], fd: int) -> int:
    """Copy an async byte stream into a file descriptor; returns how many bytes."""
    total = 0
    async for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        total += len(chunk)
    return total


@contextmanager
def memory_file(name: str) -> Iterator[tuple[int, Path]]:
    """An in-memory file and a path named `name` that opens it; both gone on exit."""
    if not hasattr(os, "memfd_create"):
        raise UploadsUnsupported()
    fd = os.memfd_create("lifevault-upload", os.MFD_CLOEXEC)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="lifevault-upload-", dir=shm)  # 0o700; holds a symlink, never content
    try:
        path = Path(folder) / name
        os.symlink(f"/proc/{os.getpid()}/fd/{fd}", path)
        yield fd, path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
