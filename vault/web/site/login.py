"""The browser login: one password, hashed by datasette-auth-passwords, kept in a 0o600 file.

The hash (never the password) lives in `$LIFEVAULT_HOME/web-login.json`, not
in the vault, so it is not copied to replicas. On a loopback address browsing
may be open; anywhere else the server refuses to start without a password.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from datasette_auth_passwords.utils import hash_password

from vault.errors import VaultError
from vault.paths import home_dir, private_dir

DEFAULT_USERNAME = "owner"


class LoginRequired(VaultError):
    http_status = 403

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"Serving on {host} (not a loopback address) needs a login password: run `lifevault password set` first."
        )


class BadLoginFile(VaultError):
    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(f"{path} {why}; run `lifevault password set` to write it again.")


def login_file() -> Path:
    return home_dir() / "web-login.json"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def set_password(password: str, username: str = DEFAULT_USERNAME) -> Path:
    """Store the hash of a new login password (replacing any old one); returns the file."""
    if not password:
        raise VaultError("The login password is empty.")
    path = login_file()
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"username": username, "password_hash": hash_password(password)}, f)
    os.replace(tmp, path)
    return path


def load_login() -> dict[str, str] | None:
    """{"username", "password_hash"} if a password is set, else None."""
    path = login_file()
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not data.get("username") or not data.get("password_hash"):
            raise ValueError
    except ValueError:
        raise BadLoginFile(path, "is not a lifevault login file") from None
    return {"username": data["username"], "password_hash": data["password_hash"]}


def login_policy(host: str) -> dict[str, Any] | None:
    """The login to require when serving on `host`: None means browsing is open (loopback, no password)."""
    login = load_login()
    if login is None and not is_loopback(host):
        raise LoginRequired(host)
    return login


def datasette_metadata(login: dict[str, str] | None) -> dict[str, Any]:
    """The metadata that makes Datasette demand that login (empty when open); no hash in it."""
    return {} if login is None else {"allow": {"id": login["username"]}}


def auth_passwords_config(login: dict[str, str] | None) -> dict[str, str]:
    """datasette-auth-passwords' configuration, handed to it directly so /-/metadata never shows the hash."""
    return {} if login is None else {f"{login['username']}_password_hash": login["password_hash"]}
