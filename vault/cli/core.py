"""The `lifevault` group and its record commands: init, add, edit, rm, show, history, log, restore, verify…"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vault import Source, Vault, parse_instant
from vault.domain.instants import iso
from vault.state.query import cell_text
from vault.store.verify import count_events, verify_blind, verify_vault

from vault.cli.options import (
    CLI_SOURCE, VaultGroup, echo_json, json_option, kdf_option, new_passphrase_option, open_vault, opened_for_command,
    parse_json_arg, passphrase_option, read_new_passphrase, read_secret, resolve_path, vault_option, weak_ok_option,
    _VAULT_FILE,
)


@click.group(cls=VaultGroup)
@click.version_option(package_name="lifevault")
def cli() -> None:
    """lifevault: your contacts, messages and notes, encrypted, with every change kept."""



# -- commands ---------------------------------------------------------------------
@cli.command()
@vault_option
@passphrase_option
@kdf_option
@weak_ok_option
def init(vault_path: Path | None, passphrase_file: Any, kdf_cost: str, weak_ok: bool) -> None:
    """Create a new vault; prints its recovery key once.

    Example: lifevault init --vault ~/vault.db
    """
    path = resolve_path(vault_path)
    if path.exists():
        raise click.ClickException(f"{path} already exists; refusing to overwrite it.")
    secret = read_secret(passphrase_file, "LIFEVAULT_PASSPHRASE", "New passphrase", confirm=True)
    vault, recovery = Vault.create(path, secret, kdf_cost, weak_ok=weak_ok)
    vault.close()
    click.echo(f"Created {path}; key fingerprint {vault.key_fingerprint} (`verify --blind --key` checks copies against it).",
               err=True)
    click.echo("Recovery key (write it down and keep it apart from the vault; it is shown only this once):", err=True)
    click.echo(recovery)


@cli.command()
@click.argument("record_id")
@click.option("--json", "patch", required=True, help="Fields to change as a JSON object; null removes a field.")
@click.option("--allow-extra", is_flag=True, help="Keep fields the kind does not know (in `extra`).")
@vault_option
@passphrase_option
def edit(record_id: str, patch: str, allow_extra: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Change some fields of a record.

    Example: lifevault edit c_4k9x0m2q7r1t --json '{"phones": ["+44 20 7946 0000"], "note": null}'
    """
    data = parse_json_arg(patch, "patch")
    vault = open_vault(vault_path, passphrase_file)
    r = vault.update(record_id, data, CLI_SOURCE, allow_extra=allow_extra)
    click.echo(f"Updated {record_id} (event {r.seq})." if r else f"{record_id} already had those values.", err=True)


@cli.command()
@click.argument("record_id")
@vault_option
@passphrase_option
def rm(record_id: str, vault_path: Path | None, passphrase_file: Any) -> None:
    """Delete a record (a tombstone: its history stays and revert brings it back).

    Example: lifevault rm c_4k9x0m2q7r1t
    """
    r = open_vault(vault_path, passphrase_file).delete(record_id, CLI_SOURCE)
    click.echo(f"Deleted {record_id} (event {r.seq}); `lifevault revert {record_id} --at seq:{r.seq - 1}` undoes it.", err=True)


@cli.command()
@click.argument("record_id")
@click.option("--at", "at", default=None, help="Show it as it was then: ISO 8601 (naive = local) or seq:N.")
@click.option("--provenance", is_flag=True, help="Say where each value came from (the version and source that brought it).")
@json_option
@vault_option
@passphrase_option
def show(record_id: str, at: str | None, provenance: bool, as_json: bool, vault_path: Path | None,
         passphrase_file: Any) -> None:
    """Show a record, now or at an instant.

    Example: lifevault show c_4k9x0m2q7r1t --at 2024-05-01T09:00
    """
    vault = open_vault(vault_path, passphrase_file)
    if provenance:
        if at:
            raise click.UsageError("--provenance describes the record as it is now; it does not take --at.")
        show_provenance(record_id, vault.provenance(record_id), as_json)
        return
    data = vault.get(record_id, parse_instant(at) if at else None)
    if as_json:
        echo_json({"id": record_id, **data})
        return
    click.echo(f"id: {record_id}")
    for name, value in sorted(data.items()):
        click.echo(f"{name}: {cell_text(value)}")


def show_provenance(record_id: str, fields: dict[str, list[dict[str, Any]]], as_json: bool) -> None:
    """Each value with the event, instant and source that brought it."""
    if as_json:
        echo_json({"id": record_id, "fields": fields})
        return
    click.echo(f"id: {record_id}")
    for name, items in sorted(fields.items()):
        for item in items:
            src = Source.from_dict(item["source"]).describe()
            click.echo(f"{name}: {cell_text(item['value'])}  (seq {item['seq']}, {item['at']}, via {src})")


def describe_change(prev: dict[str, Any] | None, cur: dict[str, Any] | None) -> str:
    """`+added ~changed -removed` field names between two versions."""
    prev, cur = prev or {}, cur or {}
    marks = [f"+{k}" for k in cur if k not in prev]
    marks += [f"~{k}" for k in cur if k in prev and prev[k] != cur[k]]
    marks += [f"-{k}" for k in prev if k not in cur]
    return " ".join(marks)


@cli.command()
@click.argument("record_id")
@json_option
@vault_option
@passphrase_option
def history(record_id: str, as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Every version of a record: when, what changed it, which fields.

    Example: lifevault history c_4k9x0m2q7r1t
    """
    versions = open_vault(vault_path, passphrase_file).history(record_id)
    if as_json:
        echo_json(versions)
        return
    prev = None
    for v in versions:
        src = Source.from_dict(v["source"]).describe()
        click.echo(f"seq {v['seq_from']:<6} {v['valid_from']}  {v['event']:<8} via {src:<24} {describe_change(prev, v['data'])}")
        prev = v["data"]


@cli.command()
@click.option("--since", default=None, help="Only events after this instant (ISO 8601 or seq:N).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most the last N events.")
@json_option
@vault_option
@passphrase_option
def log(since: str | None, limit: int | None, as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """List events, oldest first.

    Example: lifevault log --since 2024-01-01 --limit 20
    """
    instant = parse_instant(since) if since else None
    lines = []  # printed once every event has decrypted and verified: a damaged log prints only the error
    for r in open_vault(vault_path, passphrase_file).events(instant, limit):
        e = r.event
        if as_json:
            lines.append(json.dumps({"seq": r.seq, "recorded_at": iso(r.recorded_at), "type": e.type.value,
                                     "kind": e.kind.value, "id": e.record_id, "fields": sorted(e.changes),
                                     "source": e.source.as_dict()}, ensure_ascii=False))
        else:
            fields = ",".join(sorted(e.changes))
            lines.append(f"{r.seq:>6} {iso(r.recorded_at)} {e.type.value:<8} {e.record_id} via {e.source.describe()}"
                         + (f" [{fields}]" if fields else ""))
    if lines:
        click.echo("\n".join(lines))


@cli.command()
@click.option("--at", "at", required=True, help="The instant: ISO 8601 (naive = local) or seq:N.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="New SQLite file to write.")
@vault_option
@passphrase_option
def restore(at: str, out: Path, vault_path: Path | None, passphrase_file: Any) -> None:
    """Write the whole state at an instant to a standalone, full-text indexed SQLite file.

    Example: lifevault restore --at 2024-05-01T09:00 --out state.db && datasette state.db
    """
    from vault.formats.restore import (  # sqlite-utils (and numpy, if present) load slowly: only when needed
        restore_to_file,
    )

    instant = parse_instant(at)
    if out.exists():
        raise click.ClickException(f"{out} already exists; refusing to overwrite it.")
    vault = open_vault(vault_path, passphrase_file)
    seq = vault.seq_for(instant)
    counts = restore_to_file(vault, seq, out)
    summary = ", ".join(f"{n} {table}" for table, n in counts.items())
    click.echo(f"Wrote {out}: the state after event {seq} ({summary}). It is plaintext, made readable only by you "
               "(0600): keep it safe.", err=True)


@cli.command()
@click.argument("record_id")
@click.option("--at", "at", required=True, help="The instant to go back to: ISO 8601 or seq:N.")
@vault_option
@passphrase_option
def revert(record_id: str, at: str, vault_path: Path | None, passphrase_file: Any) -> None:
    """Bring one record back to how it was at an instant (undelete is a revert); history is kept.

    Example: lifevault revert c_4k9x0m2q7r1t --at seq:41
    """
    instant = parse_instant(at)
    events = open_vault(vault_path, passphrase_file).revert(record_id, instant, CLI_SOURCE)
    if not events:
        click.echo(f"{record_id} is already as it was then.", err=True)
    for r in events:
        click.echo(f"{r.event.type.value} {record_id} (event {r.seq})", err=True)


@cli.command()
@click.option("--blind", is_flag=True,
              help="Check without the passphrase: structure, chain, completeness, head and seal signatures.")
@click.option("--key", "expected_key", default=None,
              help="With --blind: the key fingerprint the vault must have (from init or stats).")
@click.option("--silent", is_flag=True, help="No progress bar.")
@vault_option
@passphrase_option
def verify(blind: bool, expected_key: str | None, silent: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Check SQLite's structure, the hash chain, every tag, the head, the seal over tokens, keys and blobs, and
    that the vault is not behind the newest state this machine saw of it.

    Example: lifevault verify --blind --vault /mnt/usb/vault.db
    """
    path = resolve_path(vault_path)
    click.get_current_context().meta[_VAULT_FILE] = path
    vault = None if blind else open_vault(vault_path, passphrase_file)
    total = vault.log.head().seq if vault else count_events(path)
    with click.progressbar(length=total, label="Verifying", hidden=silent or total < 10_000, file=sys.stderr) as bar:
        report = (verify_blind(path, bar.update, expected_key=expected_key) if vault is None
                  else verify_vault(vault.log, bar.update, behind=vault.rollback))
    what = ("SQLite structure, chain, completeness, head signature, sealed tokens, keys and attachments" if blind
            else "SQLite structure, chain, every tag, head, sealed tokens, keys and blobs")
    if blind and expected_key:
        what += ", pinned key"
    click.echo(f"OK: {report.events} events, {report.blobs} blobs ({what}).")


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@vault_option
@passphrase_option
def compact(out: Path, vault_path: Path | None, passphrase_file: Any) -> None:
    """Write the vault to a new file in this version's layout (64 KB pages, attachments in parts), where an older
    vault file takes less room; its rows are copied as they are, the vault is left as it is, and the copy is
    verified. Move it into place while nothing has the vault open.

    Example: lifevault compact ~/vault-compact.db && mv ~/vault-compact.db ~/vault.db
    """
    from vault.store.copies import write_anew

    path = open_vault(vault_path, passphrase_file).path  # checked, and sealed if an older lifevault wrote it
    write_anew(path, out)
    report = verify_blind(out)
    click.echo(f"Wrote {out}: {report.events} events, {report.blobs} blobs, {out.stat().st_size:,} bytes "
               f"(the vault file: {path.stat().st_size:,}); it verifies as the same vault.", err=True)


@cli.command()
@vault_option
@passphrase_option
@kdf_option
@new_passphrase_option
@weak_ok_option
def passwd(vault_path: Path | None, passphrase_file: Any, kdf_cost: str, new_passphrase_file: Any, weak_ok: bool) -> None:
    """Change the passphrase (events are not re-encrypted).

    Example: lifevault passwd
    """
    vault = open_vault(vault_path, passphrase_file)
    new = read_new_passphrase(new_passphrase_file)
    vault.change_passphrase(new, kdf_cost, weak_ok=weak_ok)
    click.echo("Passphrase changed.", err=True)


@cli.command()
@vault_option
@kdf_option
@click.option("--recovery-key-file", type=click.File("r"), default=None,
              help="Read the recovery key from this file (else $LIFEVAULT_RECOVERY_KEY, else a prompt).")
@new_passphrase_option
@weak_ok_option
def recover(vault_path: Path | None, kdf_cost: str, recovery_key_file: Any, new_passphrase_file: Any, weak_ok: bool) -> None:
    """Set a new passphrase using the recovery key printed at init.

    Example: lifevault recover
    """
    path = resolve_path(vault_path)
    click.get_current_context().meta[_VAULT_FILE] = path
    key = read_secret(recovery_key_file, "LIFEVAULT_RECOVERY_KEY", "Recovery key")
    vault = opened_for_command(Vault.open_with_recovery(path, key))
    new = read_new_passphrase(new_passphrase_file)
    vault.change_passphrase(new, kdf_cost, weak_ok=weak_ok)
    click.echo("Passphrase set; the old one no longer opens the vault.", err=True)


@cli.command()
@json_option
@vault_option
@passphrase_option
def stats(as_json: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Counts of events and live records, blobs, and size on disk.

    Example: lifevault stats --json
    """
    s = open_vault(vault_path, passphrase_file).stats()
    if as_json:
        echo_json(s)
        return
    for key, value in s.items():
        click.echo(f"{key.replace('_', ' ')}: {value}")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to build the demo vault (default: a fresh folder under $LIFEVAULT_HOME).")
@click.option("--records", type=click.IntRange(min=10), default=300, show_default=True, help="How many records.")
@kdf_option
@click.option("--no-serve", is_flag=True, help="Only build it and print the tour; do not start the server.")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="Port to serve it on.")
def demo(directory: Path | None, records: int, kdf_cost: str, no_serve: bool, port: int) -> None:
    """Build a demo vault with a realistic history, then serve it on 127.0.0.1 (or, with --no-serve, tour it).

    Example: lifevault demo
    """
    from vault.demo import DEMO_PASSPHRASE, build_demo

    from vault.paths import home_dir

    directory = directory or home_dir() / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    tour = build_demo(directory, records, kdf_cost)
    click.echo(tour, err=not no_serve)
    if not no_serve:
        from vault.cli.web import listen, serve_vault

        serve_vault(Vault.open(directory / "demo.db", DEMO_PASSPHRASE), listen("127.0.0.1", port))
