"""`lifevault token create|list|revoke`: bearer tokens for the HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vault.cli.options import echo_json, json_option, open_vault, passphrase_option, vault_option
from vault.domain.instants import iso
from vault.store import tokens


@click.group()
def token() -> None:
    """Bearer tokens for the HTTP API (`lifevault serve` mounts it under /api).

    Example: lifevault token create phone
    """


@token.command("create")
@click.argument("name")
@click.option("--append-only", is_flag=True, help="The token can add and change records but never read them.")
@vault_option
@passphrase_option
def create(name: str, append_only: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Make a token and print it alone on stdout; it is shown only this once.

    Example: lifevault token create phone --append-only > phone-token.txt
    """
    secret = tokens.create_token(open_vault(vault_path, passphrase_file).log, name, append_only=append_only)
    kind = "append-only token" if append_only else "token"
    click.echo(f"Created {kind} {name!r}; it is shown only this once (send it as `Authorization: Bearer …`).", err=True)
    click.echo(secret)


@token.command("list")
@json_option
@vault_option
@passphrase_option
def list_(as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """List tokens by name: when made, append-only or not, revoked or not (never the tokens themselves).

    Example: lifevault token list
    """
    found = tokens.list_tokens(open_vault(vault_path, passphrase_file).log)
    rows = [{"name": t.name, "created_at": iso(t.created_at), "append_only": t.append_only,
             "revoked_at": iso(t.revoked_at) if t.revoked_at else None} for t in found]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No tokens yet; `lifevault token create NAME` makes one.", err=True)
    for r in rows:
        status = f"revoked {r['revoked_at']}" if r["revoked_at"] else "live"
        access = "append-only" if r["append_only"] else "read-write"
        click.echo(f"{r['name']:<24} {access:<12} created {r['created_at']}  {status}")


@token.command("revoke")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True,
              help="Revoke every token, even when the token rows no longer match the vault's seal.")
@vault_option
@passphrase_option
def revoke(name: str | None, every: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Revoke a token (or --all) at once; a running server refuses it from its next request.

    Example: lifevault token revoke phone
    """
    if every == bool(name):
        raise click.UsageError("Give a token NAME or --all (not both).")
    vault = open_vault(vault_path, passphrase_file)
    if every:
        n = tokens.revoke_all(vault.log)
        click.echo(f"Revoked every token ({n} were live); `lifevault token create NAME` makes new ones.", err=True)
        return
    tokens.revoke_token(vault.log, name or "")
    click.echo(f"Revoked token {name!r}.", err=True)
