"""`lifevault moments`: the points worth going back to, as the web's moments page lists them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vault.cli.options import echo_json, json_option, open_vault, passphrase_option, vault_option
from vault.state.moments import moments as list_moments


@click.command()
@json_option
@vault_option
@passphrase_option
def moments(as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """List each import (file, records added/changed/removed), undo, revert and day with changes, newest first;
    `--at seq:N` (show, restore, export) opens the vault as it was just after one.

    Example: lifevault moments --json
    """
    found = list_moments(open_vault(vault_path, passphrase_file).projection.conn)
    if as_json:
        echo_json([m.as_dict() for m in found])
        return
    for m in found:
        summary = f": {m.summary}" if m.summary else ""
        before = "" if m.kind == "day" else f" (just before: seq:{m.before})"
        click.echo(f"{m.when:<19} seq:{m.seq:<7} {'' if m.kind == 'day' else '  '}{m.title}{summary}{before}")
