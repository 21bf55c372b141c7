"""`lifevault list` and `lifevault search`: finding records without reading the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vault import Kind, parse_instant
from vault.errors import InvalidRecord
from vault.cli.options import echo_json, json_option, open_vault, passphrase_option, vault_option
from vault.state.query import Order
from vault.domain.titles import name_of
from vault.vault import Vault

_TITLE_WIDTH = 60


class KindType(click.ParamType):
    """A registered kind by its name or its table (`contact`, `contacts`), read when the command runs, so a
    kind a plugin registers is one too."""

    name = "kind"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Kind:
        if isinstance(value, Kind):
            return value
        text = str(value).lower()
        for kind in Kind:
            if text == kind.table:
                return kind
        try:
            return Kind(text)
        except InvalidRecord as e:
            self.fail(str(e), param, ctx)


at_option = click.option("--at", "at", default=None,
                         help="As it was then: ISO 8601 (naive = local) or seq:N. Default: now.")


def _order(kind: Kind) -> tuple[Order, bool]:
    """Records with a date newest first (messages, notes), others by name (contacts), else by id."""
    if kind.spec.date_field:
        return "date", True
    return ("title", False) if kind.spec.title_fields else ("id", False)


def _seq(vault: Vault, at: str | None) -> int | None:
    return None if at is None else vault.seq_for(parse_instant(at))


def _when(iso: str) -> str:
    """An ISO instant to the minute, for a table."""
    return iso[:16].replace("T", " ") if len(iso) >= 16 and iso[10] == "T" else iso


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TITLE_WIDTH else text[: _TITLE_WIDTH - 1] + "…"


@click.command("list")
@click.argument("kind", type=KindType(), metavar="KIND")
@at_option
@json_option
@vault_option
@passphrase_option
def list_records(kind: Kind, at: str | None, as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """List the contacts, messages or notes (KIND): id, name (subject, title) and date.

    Records with a date (messages, notes) come newest first, others (contacts) by name.

    Example: lifevault list contacts --at 2024-05-01
    """
    vault = open_vault(vault_path, passphrase_file)
    order, descending = _order(kind)
    records = vault.projection.listing(kind, _seq(vault, at), order=order, descending=descending)
    if as_json:
        echo_json([{"id": r.id, **r.fields} for r in records])
        return
    lines = [f"{r.id:<18} {_when(r.date):<16}  {_short(name_of(kind, r.fields))}" for r in records]
    if lines:
        click.echo("\n".join(lines))
    else:
        click.echo(f"No {kind.table}{'' if at is None else ' then'}.", err=True)


@click.command()
@click.argument("text")
@click.option("--kind", "kind", type=KindType(), default=None, help="Only this kind of record.")
@at_option
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="At most this many matches of each kind (newest first).")
@json_option
@vault_option
@passphrase_option
def search(text: str, kind: Kind | None, at: str | None, limit: int, as_json: bool, vault_path: Path | None,
           passphrase_file: Any) -> None:
    """Full-text search of contacts, messages and notes, now or as they were at an instant.

    Example: lifevault search "lovelace" --kind contact
    """
    vault = open_vault(vault_path, passphrase_file)
    hits = vault.projection.search(text, _seq(vault, at), [kind] if kind else None, limit)
    if as_json:
        echo_json([{"id": h.id, "kind": h.kind.value, "name": h.name, "date": h.date, "snippet": h.snippet}
                   for h in hits])
        return
    if not hits:
        click.echo("No matches.", err=True)
        return
    click.echo("\n".join(f"{h.id:<18} {_when(h.date):<16}  {_short(h.name)}\n"
                         f"{'':<18} {' '.join(h.snippet.split())}" for h in hits))


COMMANDS = (list_records, search)
