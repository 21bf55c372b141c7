"""`lifevault add KIND`: one subcommand per registered kind, its flags made from the kind's spec.

The subcommands are built when the command line is read, so a kind registered at run time (a plugin,
a test) gets `lifevault add KIND --json …` and its declared flags with no change here.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from vault.cli.options import CLI_SOURCE, open_vault, parse_json_arg, passphrase_option, vault_option
from vault.domain.kinds import TEXT_ENTERED, FieldSpec, Kind, from_texts

_LISTS = ("texts", "typed_values")  # types whose flag repeats


class AddGroup(click.Group):
    """Lists and builds a subcommand per kind in the registry."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [k.value for k in Kind]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return add_command(Kind(cmd_name)) if cmd_name in Kind else None


def _flagged(kind: Kind) -> list[FieldSpec]:
    return [f for f in kind.spec.fields if f.flag and f.type in TEXT_ENTERED]


def add_command(kind: Kind) -> click.Command:
    """`lifevault add KIND`: fields from --json, from the declared flags, or both (a flag wins)."""
    flagged = _flagged(kind)

    def run(fields_json: str | None, allow_extra: bool, vault_path: Path | None, passphrase_file: Any,
            **flags: Any) -> None:
        data = parse_json_arg(fields_json, kind.value) if fields_json is not None else {}
        for f in flagged:
            given = flags[f"field_{f.name}"]
            if given not in (None, ()):
                data[f.name] = from_texts(f, given if f.type in _LISTS else [given])
        vault = open_vault(vault_path, passphrase_file)
        click.echo(vault.add(kind, data, CLI_SOURCE, allow_extra=allow_extra))

    fn = vault_option(passphrase_option(run))
    for f in reversed(flagged):
        fn = click.option(f"--{f.flag}", f"field_{f.name}", multiple=f.type in _LISTS,
                          help=f.help or f"The {f.name} field.")(fn)
    fn = click.option("--allow-extra", is_flag=True, help="Keep fields the kind does not know (in `extra`).")(fn)
    fn = click.option("--json", "fields_json", default=None, help="The record's fields as a JSON object.")(fn)
    example = " ".join(f"--{f.flag} {shlex.quote(_EXAMPLES.get(f.name, f.name.upper()))}" for f in flagged[:3])
    example = example or shlex.quote(f'{{"{kind.fields[0]}": "…"}}')
    return click.command(kind.value, help=f"Add a {kind.value}; prints the new id alone. Its fields: "
                         f"{', '.join(kind.fields)}.\n\nExample: lifevault add {kind.value} "
                         f"{example}")(fn)


_EXAMPLES = {"name": "Ada Lovelace", "email": "ada@example.org", "emails": "ada@example.org",
             "phones": "+44 20 7946 0000", "title": "Shopping", "body": "Milk, eggs", "tags": "home"}


@click.group("add", cls=AddGroup)
def add() -> None:
    """Add a record of one kind; prints the new id alone.

    Example: lifevault add contact --name "Ada Lovelace" --email ada@example.org --phone "+44 20 7946 0000"
    """
