"""What every `lifevault` command shares: the error-mapping group class, options, opening the vault, JSON output."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable

import click

from vault import Source, Vault, VaultError
from vault.store.crypto import DEFAULT_KDF_COST, KDF_COSTS
from vault.paths import default_vault_path

CLI_SOURCE = Source("cli")


_STATE_FILE = "lifevault.state_file"  # ctx.meta key: the state file the command's vault uses
_VAULT_FILE = "lifevault.vault_file"  # ctx.meta key: the vault file the command reads
_AS_JSON = "lifevault.as_json"  # ctx.meta key: the command was asked for JSON, refusals included


class VaultGroup(click.Group):
    """Maps library errors to one-line messages and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as e:
            if ctx.meta.get(_AS_JSON):  # a script asked for JSON: the refusal is JSON on stdout too
                cause = e.__cause__ if isinstance(e.__cause__, VaultError) else None
                echo_json({"error": refusal(cause) if cause else {"type": type(e).__name__,
                                                                   "message": e.format_message(), "status": 400}})
            raise

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VaultError as e:
            raise click.ClickException(str(e)) from e
        except Exception as e:
            state = ctx.meta.get(_STATE_FILE)
            if state is not None:
                from vault.state import file as state_file

                if state_file.is_damage(e):
                    state_file.remove(state)  # only a cache: the log is the record
                    raise click.ClickException(f"The state file {state} did not read back ({e}), so it was deleted; "
                                               "run the command again to rebuild it from the log.") from e
            if isinstance(e, (sqlite3.DatabaseError, UnicodeDecodeError)):  # met reading the vault file
                from vault.store.schema import damaged

                raise click.ClickException(str(damaged(ctx.meta.get(_VAULT_FILE, "the vault file"), e))) from e
            raise



# -- shared options --------------------------------------------------------------
def vault_option(fn: Callable) -> Callable:
    return click.option(
        "--vault", "vault_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Vault file (default: $LIFEVAULT_PATH, else vault.db in $LIFEVAULT_HOME or your data dir).",
    )(fn)


def passphrase_option(fn: Callable) -> Callable:
    return click.option(
        "--passphrase-file", type=click.File("r"), default=None,
        help="Read the passphrase from this file's first line (else $LIFEVAULT_PASSPHRASE, else a hidden prompt).",
    )(fn)


def kdf_option(fn: Callable) -> Callable:
    return click.option(
        "--kdf-cost", type=click.Choice(list(KDF_COSTS)), default=DEFAULT_KDF_COST, envvar="LIFEVAULT_KDF_COST",
        show_default=True, help="Argon2id cost for a new passphrase; lower only for tests.",
    )(fn)


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_AS_JSON] = True
    return value


def json_option(fn: Callable) -> Callable:
    return click.option(
        "--json", "as_json", is_flag=True, is_eager=True, callback=_remember_json,
        help="Print JSON (a refusal too: {\"error\": {...}} on stdout, exit code 1).",
    )(fn)


def refusal(e: VaultError) -> dict[str, Any]:
    """A library error as the JSON object `--json` prints: type, sentence, HTTP status, and what it names."""
    out: dict[str, Any] = {"type": type(e).__name__, "message": str(e), "status": e.http_status}
    out.update({k: v for k in ("path", "location", "reason", "record_id", "seq")
                if (v := getattr(e, k, None)) is not None})
    return out
weak_ok_option = click.option("--weak-passphrase-ok", "weak_ok", is_flag=True,
                              help="Accept a new passphrase that is easy to guess (refused otherwise).")


new_passphrase_option = click.option(
    "--new-passphrase-file", type=click.File("r"), default=None,
    help="Read the new passphrase from this file (else $LIFEVAULT_NEW_PASSPHRASE, else a prompt).")


def read_new_passphrase(file: Any) -> str:
    """The passphrase that replaces the old one, asked twice when prompted (passwd and recover)."""
    return read_secret(file, "LIFEVAULT_NEW_PASSPHRASE", "New passphrase", confirm=True)


def read_secret(file: Any, env: str, prompt: str, *, confirm: bool = False) -> str:
    """A secret from a file, an environment variable, or a hidden prompt; never echoed."""
    if file is not None:
        secret = file.readline().rstrip("\r\n")
    elif os.environ.get(env):
        secret = os.environ[env]
    else:
        secret = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    if not secret:
        raise click.ClickException(f"The {prompt.lower()} is empty.")
    return secret


def resolve_path(vault_path: Path | None) -> Path:
    return vault_path or default_vault_path()


def open_vault(vault_path: Path | None, passphrase_file: Any) -> Vault:
    """Unlock the vault and close it when the command ends; why its state file is rebuilt, if it is, goes to stderr."""
    path = resolve_path(vault_path)
    from vault.store.schema import connect  # fail on a missing file before asking for a passphrase

    click.get_current_context().meta[_VAULT_FILE] = path
    connect(path).close()
    secret = read_secret(passphrase_file, "LIFEVAULT_PASSPHRASE", "Passphrase")
    return opened_for_command(Vault.open(path, secret))


def opened_for_command(vault: Vault) -> Vault:
    """A vault unlocked by a passphrase or the recovery key, made the command's: its rebuild sentences and
    the rollback warning go to stderr, a damaged state file is named, and it is closed when the command ends."""
    vault.notify = lambda sentence: click.echo(sentence, err=True)
    warn_if_behind(vault)
    click.get_current_context().meta[_STATE_FILE] = vault.state_path
    click.get_current_context().call_on_close(vault.close)
    return vault


def warn_if_behind(vault: Vault) -> None:
    """One sentence on stderr when the vault is behind what this machine saw of it (rollback.py)."""
    if vault.rollback is not None:
        click.echo(f"Warning: {vault.rollback.message}", err=True)


def parse_json_arg(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.ClickException(f"--json is not valid JSON ({what}): {e.msg} at line {e.lineno} column {e.colno}.") from e
    except RecursionError:
        raise click.ClickException(f"--json is nested too deeply ({what}).") from None
    if not isinstance(value, dict):
        raise click.ClickException(f"--json must be a JSON object ({what}).")
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


