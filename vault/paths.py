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
