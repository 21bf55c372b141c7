"""Where lifevault keeps things: one function each, honouring the environment."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home_dir() -> Path:
    """`LIFEVAULT_HOME`, else the user's data dir (e.g. ~/.local/share/lifevault)."""
    env = os.environ.get("LIFEVAULT_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("lifevault"))


def default_vault_path() -> Path:
    """`LIFEVAULT_PATH`, else `vault.db` in the home dir."""
    env = os.environ.get("LIFEVAULT_PATH")
    return Path(env).expanduser() if env else home_dir() / "vault.db"


# Every file lifevault creates is the owner's alone, whatever the umask: the
# umask is left alone (the library runs inside other people's processes), so
# each creation site makes its file or folder through these first. SQLite
# gives -wal, -shm and -journal files the mode of their database (tests/store/test_file_modes.py checks it).
def private_dir(path: Path) -> Path:
    """Make `path` and any missing parents as 0o700 folders; folders already there are left as they are."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:  # made meanwhile by another process: theirs to set
            continue
        os.chmod(p, 0o700)  # the umask could have taken owner bits too
    return path


def private_file(path: Path) -> Path:
    """Make `path` a 0o600 file (empty if new) before a writer or SQLite opens it; returns it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def make_private(path: Path) -> None:
    """Set 0o600 on `path` (or, for a folder, 0o700 on it and everything in it): for what a plugin wrote."""
    if path.is_symlink():
        return
    if not path.is_dir():
        os.chmod(path, 0o600)
        return
    os.chmod(path, 0o700)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                os.chmod(p, 0o700 if name in dirs else 0o600)
