"""The `lifevault` command: a thin layer over the library.

Each command opens the vault, makes one library call, prints, and lets the
group (options.VaultGroup) turn any VaultError into a one-sentence ClickException.
"""

from vault.cli.add import add as _add
from vault.cli.core import cli
from vault.cli.formats import COMMANDS as _format_commands
from vault.cli.moments import moments as _moments
from vault.cli.records import COMMANDS as _record_commands
from vault.cli.replica import register as _register_replica
from vault.cli.tokens import token as _token
from vault.cli.web import password as _password, serve as _serve

cli.add_command(_add)
cli.add_command(_token)
_register_replica(cli)
for _command in (*_format_commands, *_record_commands, _serve, _password, _moments):
    cli.add_command(_command)


def main() -> None:  # pragma: no cover - the console script entry point
    cli(prog_name="lifevault")


__all__ = ["cli", "main"]
