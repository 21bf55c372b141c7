"""`lifevault import`, `export`, `undo-import`, `upgrade` and `plugins`: thin commands over importing/exporting.

Installed plugins (entry-point group `lifevault`) are loaded here, when a
command needs formats, and never by the library on its own.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from vault import parse_instant
from vault.formats import registry as plugins
from vault.cli.options import echo_json, json_option, open_vault, passphrase_option, vault_option
from vault.formats.exporting import export_file
from vault.formats.importing import ImportSummary, import_file, resolve_options, undo_import
from vault.replica.target_types import target_types
from vault.upgrade import upgrade_records


def _formats() -> plugins.Registry:
    plugins.load_entrypoints()
    return plugins.registry()


def _gen():  # an iterator without a length: the bar pulses and shows the count
    yield from ()


def _print_summary(s: ImportSummary, as_json: bool, headline: str) -> None:
    if as_json:
        echo_json(s.as_dict())
        return
    click.echo(f"{headline}: {s.created} created, {s.updated} updated, "
               f"{s.unchanged} unchanged, {s.deleted} deleted, {len(s.skipped)} skipped.")
    for bad in s.skipped:
        click.echo(f"  skipped {bad['location'] or '?'}: {bad['reason']}", err=True)
    for note in s.warnings:
        click.echo(f"  warning {note['location'] or '?'}: {note['reason']}", err=True)


def split_import_args(args: tuple[str, ...]) -> tuple[str | None, Path, dict[str, str]]:
    """[FORMAT] PATH and the importer's own options (`--date-order dmy`, `--tz=Europe/Paris`)."""
    positional: list[str] = []
    options: dict[str, str] = {}
    items = iter(args)
    for item in items:
        if item.startswith("--") and len(item) > 2:
            name, eq, value = item[2:].partition("=")
            if not eq:
                following = next(items, None)
                if following is None:
                    raise click.UsageError(f"--{name} needs a value.")
                value = following
            options[name] = value
        else:
            positional.append(item)
    if not 1 <= len(positional) <= 2:
        raise click.UsageError("Give the path to import, optionally after its format: [FORMAT] PATH.")
    fmt = positional[0] if len(positional) == 2 else None
    return fmt, Path(positional[-1]), options


@click.command(name="import", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, required=True, metavar="[FORMAT] PATH [--FORMAT-OPTION VALUE]...")
@click.option("--mirror", is_flag=True, help="The file is the whole source: delete records earlier imports of this format made that it lacks.")
@click.option("--strict", is_flag=True, help="Abort on the first bad record; nothing is imported.")
@click.option("--silent", is_flag=True, help="Hide the progress bar.")
@json_option
@vault_option
@passphrase_option
def import_(args: tuple[str, ...], mirror: bool, strict: bool, silent: bool, as_json: bool,
            vault_path: Path | None, passphrase_file: Any) -> None:
    """Import a file or folder; the format is detected from its content unless you name it first.

    A format's own options follow the path (`lifevault plugins` lists them), and are recorded with the import.

    Example: lifevault import contacts.vcf  (or: lifevault import whatsapp chat.txt --date-order dmy --tz Europe/Paris)
    """
    fmt, target, options = split_import_args(args)
    registry = _formats()
    fmt = fmt or registry.detect(target).name  # before the bar, so a refusal is the only line printed
    resolve_options(registry.importer(fmt), options)  # a bad option is refused before the passphrase is asked
    vault = open_vault(vault_path, passphrase_file)
    with ExitStack() as stack:
        bars: list[Any] = []

        def tick() -> None:  # the bar starts with the first record: a refused file prints only its error
            if not bars:
                bars.append(stack.enter_context(click.progressbar(
                    _gen(), label=f"Importing {target.name}", show_pos=True, hidden=silent or as_json,
                    file=sys.stderr, update_min_steps=50)))
            bars[0].update(1)

        summary = import_file(vault, target, fmt, mirror=mirror, strict=strict, on_record=tick, registry=registry,
                              options=options)
    _print_summary(summary, as_json, f"Imported {target} ({summary.format}) as {summary.import_id}")


@click.command()
@click.argument("fmt", metavar="FORMAT")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--at", "at", default=None, help="Export the state then: ISO 8601 (naive = local) or seq:N.")
@vault_option
@passphrase_option
def export(fmt: str, out: Path, at: str | None, vault_path: Path | None, passphrase_file: Any) -> None:
    """Write the vault's records (now, or as they were at an instant) to a file or folder.

    Example: lifevault export vcard contacts.vcf --at 2024-05-01T09:00
    """
    instant = parse_instant(at) if at else None
    registry = _formats()
    n = export_file(open_vault(vault_path, passphrase_file), fmt, out, instant, registry=registry)
    mode = "0700 folders, 0600 files" if out.is_dir() else "0600"
    click.echo(f"Wrote {n} records to {out} ({fmt}). It is plaintext, made readable only by you ({mode}): "
               "keep it safe.", err=True)


@click.command(name="undo-import")
@click.argument("import_id")
@json_option
@vault_option
@passphrase_option
def undo_import_(import_id: str, as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Append the events that undo an import (its history stays; later edits are kept).

    Example: lifevault undo-import imp_4k9x0m2q7r
    """
    summary = undo_import(open_vault(vault_path, passphrase_file), import_id)
    _print_summary(summary, as_json, f"Undid {import_id} (recorded as {summary.import_id})")


@click.command()
@json_option
@vault_option
@passphrase_option
def upgrade(as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Bring records stored in an older field shape to the current one, by appending update events.

    Example: lifevault upgrade
    """
    n = upgrade_records(open_vault(vault_path, passphrase_file))
    if as_json:
        echo_json({"upgraded": n})
    else:
        click.echo(f"Upgraded {n} record{'s' * (n != 1)} (history unchanged; `lifevault history ID` shows the step).")


@click.command(name="plugins")
@json_option
def plugins_(as_json: bool) -> None:
    """List plugins (built-in and installed) and the formats and replica targets each provides.

    Example: lifevault plugins --json
    """
    registry = _formats()
    listed = plugins.describe_plugins()
    kinds = target_types()
    for p in listed:
        p["targets"] = [t.kind.name for t in kinds if t.plugin == p["name"]]
    if as_json:
        echo_json(listed)
        return
    for p in listed:
        click.echo(f"{p['name']} ({p['package'] or 'registered'})")
        for what in ("importers", "exporters"):
            for name in p[what]:
                table = registry.importers if what == "importers" else registry.exporters
                click.echo(f"  {what[:-1]:<8} {name:<12} {table[name].fmt.description}")
                for o in getattr(table[name].fmt, "options", ()) if what == "importers" else ():
                    choices = "|".join(o.choices) or "TEXT"
                    click.echo(f"    --{o.name.replace('_', '-')} {choices}: {o.help}")
        for t in kinds:
            if t.plugin == p["name"]:
                click.echo(f"  {'target':<8} {t.kind.name:<12} {t.kind.description}")


COMMANDS = (import_, export, undo_import_, upgrade, plugins_)
