"""`lifevault replica …`, `push`, `pull`, `clone`, `status`: copies of the vault elsewhere.

Thin: each command resolves the vault, makes one call into vault.replica and
prints. Registered on the main group by `register(cli)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from vault.store import keyring, schema
from vault.store.crypto import PushKeys
from vault.store.log import EventLog
from vault.replica import push_key
from vault.cli.options import (
    echo_json, json_option, open_vault, passphrase_option, read_secret, resolve_path, vault_option,
)
from vault.errors import VaultError
from vault import replica as rp


def _vault_id(vault_path: Path | None) -> bytes:
    """The vault's id, read without the passphrase."""
    conn = schema.connect(resolve_path(vault_path))
    try:
        return keyring.vault_id(conn)
    finally:
        conn.close()


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


@click.group()
def replica() -> None:
    """Copies of the vault on storage you choose: local folders or rclone remotes (ciphertext only).

    Example: lifevault replica add usb /media/usb/lifevault
    """


@replica.command("add")
@click.argument("name")
@click.argument("target")
@click.option("--offsite", is_flag=True, help="This copy is kept in another place (counts for the 3-2-1 rule).")
@click.option("--no-check", is_flag=True, help="Add a remote without checking that it answers (while offline).")
@vault_option
def replica_add(name: str, target: str, offsite: bool, no_check: bool, vault_path: Path | None) -> None:
    """Add a replica: a local folder (created now) or an rclone remote `remote:path`.

    Example: lifevault replica add cloud b2:my-bucket/lifevault --offsite
    """
    rep = rp.add_replica(_vault_id(vault_path), name, target, offsite, check=not no_check)
    click.echo(f"Added replica {rep.name} at {rep.target}; `lifevault push {rep.name}` fills it.", err=True)


@replica.command("list")
@json_option
@vault_option
def replica_list(as_json: bool, vault_path: Path | None) -> None:
    """List this vault's replicas and when each was last pushed and verified.

    Example: lifevault replica list
    """
    reps = rp.replicas(_vault_id(vault_path))
    if as_json:
        echo_json([r.__dict__ for r in reps])
        return
    if not reps:
        click.echo("No replicas; add one with `lifevault replica add NAME TARGET`.", err=True)
    for r in reps:
        pushed = f"pushed up to event {r.pushed_seq} at {r.pushed_at}" if r.pushed_at else "never pushed"
        click.echo(f"{r.name}\t{r.target}\t{pushed}; verified {r.verified_at or 'never'}")


@replica.command("mark")
@click.argument("name")
@click.option("--offsite/--onsite", required=True, help="Whether this copy is kept in another place.")
@vault_option
def replica_mark(name: str, offsite: bool, vault_path: Path | None) -> None:
    """Mark a replica as kept off-site (or on-site), for the 3-2-1 verdict of `lifevault status`.

    Example: lifevault replica mark cloud --offsite
    """
    rep = rp.mark_offsite(_vault_id(vault_path), name, offsite)
    click.echo(f"Replica {rep.name} is marked {'off-site' if offsite else 'on-site'}.", err=True)


@replica.command("remove")
@click.argument("name")
@vault_option
def replica_remove(name: str, vault_path: Path | None) -> None:
    """Forget a replica; its files are left where they are.

    Example: lifevault replica remove usb
    """
    rep = rp.remove_replica(_vault_id(vault_path), name)
    click.echo(f"Removed replica {rep.name}; its files at {rep.target} were not touched.", err=True)


@replica.command("reseed")
@click.argument("name")
@vault_option
@passphrase_option
def replica_reseed(name: str, vault_path: Path | None, passphrase_file: Any) -> None:
    """Fill a replica anew from this vault (one holding another history, or stranded by `pull --fork`): its
    files are moved to a sibling folder and kept, and what it held is recorded in `replica list --json`.

    Example: lifevault replica reseed nas
    """
    log, signer = _pushing_log(vault_path, passphrase_file)
    aside, r = rp.reseed(log, name, signer=signer)
    kept = f"its old files are kept at {aside}" if aside else "it held nothing"
    click.echo(f"Reseeded {name}: {kept}; pushed {r.events} events, {r.blobs} blobs ({_size(r.bytes)}), it now "
               f"ends at event {r.head_seq}.", err=True)


@replica.command("compact")
@click.argument("name")
@vault_option
@passphrase_option
def replica_compact(name: str, vault_path: Path | None, passphrase_file: Any) -> None:
    """Merge a replica's small event segments into large ones under a new signed manifest (safe to interrupt:
    the old segments go only once the new manifest is checked). Pushes do it past
    $LIFEVAULT_COMPACT_SEGMENTS small segments (500).

    Example: lifevault replica compact cloud
    """
    log, signer = _pushing_log(vault_path, passphrase_file)
    key = signer or log.keys
    assert key is not None  # _pushing_log unlocks the vault when there is no credential
    r = rp.compact(log.vault_id, keyring.verify_key(log.conn), name, key)
    if r.before == r.after:
        click.echo(f"{name} has nothing to merge ({r.after} event segments).", err=True)
    else:
        click.echo(f"Compacted {name}: {r.before} event segments into {r.after}.", err=True)


@replica.command("unlock")
@click.argument("name")
@vault_option
def replica_unlock(name: str, vault_path: Path | None) -> None:
    """Remove the push lease a machine left on a replica when it died mid-push; only when no push is running
    there (a live push then fails its checks rather than write over another).

    Example: lifevault replica unlock cloud
    """
    removed = rp.unlock(_vault_id(vault_path), name)
    if not removed:
        click.echo(f"Replica {name} holds no push lease.", err=True)
    for lease in removed:
        click.echo(f"Removed the push lease of {lease.describe()} from replica {name}.", err=True)


@replica.command("verify")
@click.argument("name")
@click.option("--blind", is_flag=True, help="Check without the passphrase: manifest signature, files, chain, head.")
@click.option("--key", "expected_key", default=None, metavar="FINGERPRINT",
              help="The vault's key fingerprint: pins the key that signs the replica (implies --blind; needs no "
                   "vault file, so an untrusted host or a new machine can check a folder or remote:path).")
@vault_option
@passphrase_option
def replica_verify(name: str, blind: bool, expected_key: str | None, vault_path: Path | None,
                   passphrase_file: Any) -> None:
    """Check a replica (NAME, or a folder or remote:path) is complete and intact: manifest, every segment,
    the chain and (with the key) every tag.

    Example: lifevault replica verify /media/usb/lifevault --blind --key K7QM-2XRA-9DLF-WB4E
    """
    path = resolve_path(vault_path)
    if expected_key:
        target = name
        if path.exists():
            try:
                target = rp.get_replica(_vault_id(vault_path), name).target
            except rp.UnknownReplica:
                pass
        report, blind = rp.verify_pinned(target, expected_key), True
    elif blind and not path.exists():
        raise click.ClickException(f"There is no vault file at {path}; to check a replica alone give its folder or "
                                   "remote:path and --key FINGERPRINT (the vault's key fingerprint, shown by "
                                   "`lifevault create` and `lifevault stats`).")
    elif blind:
        report = rp.verify(path, name)
    else:
        vault = open_vault(vault_path, passphrase_file)
        report = rp.verify(vault.path, name, vault.keys)
    what = "manifest signature, segments, chain and head" if blind else "manifest, segments, chain, every tag and blob"
    pinned = f", signed by key {expected_key.strip().upper()}" if expected_key else ""
    left = (f" {report.leftovers} unlisted segments left by an interrupted compaction copy rows it lists; the next "
            "push or compact removes them.") if report.leftovers else ""
    click.echo(f"OK: replica {name} holds {report.events} events and {report.blobs} blobs "
               f"in {report.segments} segments ({what}{pinned}).{left}")


@replica.group("push-key")
def push_key_group() -> None:
    """A credential that lets `lifevault push` run without the passphrase (cron, a systemd timer).

    Example: lifevault replica push-key create
    """


@push_key_group.command("create")
@vault_option
@passphrase_option
def push_key_create(vault_path: Path | None, passphrase_file: Any) -> None:
    """Write this vault's push credential (0600, in $LIFEVAULT_HOME), replacing the file, and list its key in the
    vault: it signs and MACs replica manifests and cannot open, write or sign an event.

    Example: lifevault replica push-key create
    """
    vault = open_vault(vault_path, passphrase_file)
    path = push_key.create(vault.log)
    click.echo(f"Wrote the push credential {path}; `lifevault push` now runs without the passphrase.", err=True)


@push_key_group.command("list")
@json_option
@vault_option
def push_key_list(as_json: bool, vault_path: Path | None) -> None:
    """Every push key this vault issued, when, and when it was revoked (read without the passphrase).

    Example: lifevault replica push-key list
    """
    conn = schema.connect(resolve_path(vault_path))
    click.get_current_context().call_on_close(conn.close)
    keys = push_key.listed_keys(conn)
    if as_json:
        echo_json([{"fingerprint": k.fingerprint, "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys])
        return
    if not keys:
        click.echo("This vault lists no push keys (any credential made before it listed them still pushes).", err=True)
    for k in keys:
        click.echo(f"{k.fingerprint}\tcreated {k.created_at}\t" + (f"revoked {k.revoked_at}" if k.revoked_at else "valid"))


@push_key_group.command("revoke")
@click.argument("fingerprints", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Revoke every push key, including any made before the vault "
              "listed its keys.")
@vault_option
@passphrase_option
def push_key_revoke(fingerprints: tuple[str, ...], every: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Stop push keys (a credential copied or stolen, a cron machine retired) from pushing: the vault refuses them,
    and a replica whose manifest one signed is checked row by row and signed anew by your next push.

    Example: lifevault replica push-key revoke K7QM-2XRA-9DLF-WB4E
    """
    if not fingerprints and not every:
        raise click.UsageError("Name the push keys to revoke (`lifevault replica push-key list`), or give --all.")
    vault = open_vault(vault_path, passphrase_file)
    revoked = push_key.revoke(vault.log, list(fingerprints), every)
    names = ", ".join(k.fingerprint for k in revoked) or "no listed key"
    click.echo(f"Revoked {names}; run `lifevault push` (with the passphrase or a new push credential) so every "
               "replica is signed by a current key.", err=True)


@replica.command("survey")
@click.argument("targets", nargs=-1, required=True)
@click.option("--key", "expected_key", default=None, metavar="FINGERPRINT", help="Pin the vault's signing key.")
@json_option
def replica_survey(targets: tuple[str, ...], expected_key: str | None, as_json: bool) -> None:
    """Before `clone` on a new machine: each candidate replica's head, when it was written and whether it
    verifies (blind, no vault file or passphrase needed), to choose which one to clone.

    Example: lifevault replica survey /media/usb/lifevault b2:my-bucket/lifevault --key K7QM-2XRA-9DLF-WB4E
    """
    found = rp.survey(list(targets), expected_key)
    if as_json:
        echo_json([c.__dict__ for c in found])
        return
    for c in found:
        head = f"event {c.head_seq} ({(c.head_hash or '')[:12]}…) written {c.written_at}" if c.head_seq is not None else "no head"
        verdict = f"FAILED: {c.problem}" if c.problem else "verified (blind)"
        click.echo(f"{c.location}\t{head}\tkey {c.fingerprint or '?'}\t{verdict}")


def _pushing_log(vault_path: Path | None, passphrase_file: Any) -> tuple[EventLog, PushKeys | None]:
    """With no passphrase given and a push credential present, the vault read blind and the credential;
    else the unlocked vault's log."""
    if passphrase_file is None and not os.environ.get("LIFEVAULT_PASSPHRASE"):
        path = resolve_path(vault_path)
        conn = schema.connect(path)
        click.get_current_context().call_on_close(conn.close)
        credential = push_key.load(keyring.vault_id(conn), keyring.verify_key(conn), push_key.issued(conn))
        if credential is not None:
            return EventLog(conn, path, None), credential
    return open_vault(vault_path, passphrase_file).log, None


@click.command()
@click.argument("name", required=False)
@click.option("--deep", is_flag=True,
              help="Also follow each segment's chain, fetching a remote's (a folder's digests are always "
                   "checked), to repair them.")
@vault_option
@passphrase_option
def push(name: str | None, deep: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Send each replica (or only NAME) what it lacks, and re-send any of its segments that no longer match
    its manifest; safe to interrupt and re-run. With no passphrase given, uses the push credential
    (`lifevault replica push-key create`) when there is one, so cron can run it.

    Example: lifevault push usb
    """
    log, signer = _pushing_log(vault_path, passphrase_file)
    names = [name] if name else [r.name for r in rp.replicas(log.vault_id)]
    if not names:
        raise click.ClickException("This vault has no replicas; add one with `lifevault replica add NAME TARGET`.")
    failures = []
    for n in names:
        try:
            r = rp.push(log, n, deep=deep, signer=signer)
        except VaultError as e:
            failures.append(str(e))
            continue
        for fix in r.repaired:
            click.echo(f"Repaired {n}: segment {fix['segment']} {fix['why']}; re-sent from this vault "
                       "(recorded in the replica's manifest).", err=True)
        if r.events or r.blobs or (r.manifest_written and not r.repaired):
            click.echo(f"Pushed to {n}: {r.events} events, {r.blobs} blobs ({_size(r.bytes)}); "
                       f"it now ends at event {r.head_seq}.", err=True)
        elif not r.repaired:
            click.echo(f"{n} is up to date (event {r.head_seq}).", err=True)
    if failures:
        raise click.ClickException(" ".join(failures))


@click.command()
@click.argument("name")
@click.option("--fork", "keep_both", is_flag=True,
              help="When the replica holds another history: rebuild the vault from it and re-apply this vault's "
                   "own newer changes on top (the old file is kept beside it).")
@vault_option
@passphrase_option
def pull(name: str, keep_both: bool, vault_path: Path | None, passphrase_file: Any) -> None:
    """Append the events a replica holds beyond this vault (after restoring an older copy); with --fork,
    keep both histories when the replica holds another one.

    Example: lifevault pull usb
    """
    vault = open_vault(vault_path, passphrase_file)
    if keep_both and rp.relation_of(vault.log, name).forked:
        f = rp.pull_fork(vault, name)
        click.echo(f"Kept both histories: the vault now holds {name}'s events {f.fork_at} to "
                   f"{f.fork_at + f.replica_events - 1}, then this vault's own changes from event {f.fork_at} on "
                   f"re-applied as {f.reapplied} new events (source: fork {name}); it ends at event {f.head_seq}, "
                   f"verified. The file as it was is kept at {f.kept}. `lifevault push` sends the new events.",
                   err=True)
        for other in f.stranded:
            click.echo(f"Replica {other} holds this vault's old events past event {f.fork_at - 1}, now another "
                       f"history (their changes are in the vault): `lifevault replica reseed {other}` fills it anew "
                       "(its files are kept aside).",
                       err=True)
        return
    r = rp.pull(vault, name)
    if r.events or r.blobs:
        click.echo(f"Pulled {r.events} events and {r.blobs} blobs from {name}; the vault now ends at event {r.head_seq}.",
                   err=True)
    else:
        click.echo(f"Nothing to pull: {name} holds nothing this vault lacks (event {r.head_seq}).", err=True)


@click.command()
@click.argument("target")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--recovery", is_flag=True, help="Unlock with the recovery key instead of the passphrase.")
@passphrase_option
@click.option("--recovery-key-file", type=click.File("r"), default=None,
              help="Read the recovery key from this file (else $LIFEVAULT_RECOVERY_KEY, else a prompt).")
def clone(target: str, path: Path, recovery: bool, passphrase_file: Any, recovery_key_file: Any) -> None:
    """Rebuild a vault file from a replica alone (a folder or `remote:path`), then verify it fully;
    `lifevault replica survey` first shows each candidate's head, date and verification.

    Example: lifevault clone /media/usb/lifevault ~/vault.db
    """
    if path.exists():
        raise click.ClickException(f"{path} already exists; refusing to overwrite it.")
    if recovery:
        key = read_secret(recovery_key_file, "LIFEVAULT_RECOVERY_KEY", "Recovery key")
        report = rp.clone(target, path, recovery_key=key)
    else:
        report = rp.clone(target, path, read_secret(passphrase_file, "LIFEVAULT_PASSPHRASE", "Passphrase"))
    click.echo(f"Cloned {report.events} events and {report.blobs} blobs into {path}; verified (chain, every tag, "
               "head and blobs).", err=True)


@click.command()
@click.option("--timeout", "time_limit", type=float, default=rp.status_module.TIME_LIMIT, show_default=True,
              help="Seconds each replica may take to answer (all are read in parallel).")
@click.option("--verified-within", type=float, default=rp.status_module.VERIFIED_WITHIN_DAYS, show_default=True,
              help="Days after which a replica's last verification is too old.")
@json_option
@vault_option
@click.pass_context
def status(ctx: click.Context, time_limit: float, verified_within: float, as_json: bool,
           vault_path: Path | None) -> None:
    """Every copy of the vault: where, how far behind, last push and verification, and the 3-2-1 verdict.
    Exits 0 when all is well, 1 when a copy is at risk, 2 when one is broken (for monitoring).

    Example: lifevault status --json
    """
    s = rp.status(resolve_path(vault_path), time_limit=time_limit, verified_within=verified_within)
    if as_json:
        echo_json({"vault": s.vault, "head_seq": s.head_seq, "ok": s.ok, "level": s.level,
                   "state": rp.status_module.LEVELS[s.level], "verdict": s.verdict,
                   "copies": [dict(c.__dict__, stale=c.stale, problem=c.problem,
                                   state=rp.status_module.LEVELS[c.level]) for c in s.copies]})
        ctx.exit(s.level)
    click.echo(f"vault\t{s.vault}\tevent {s.head_seq}")
    for c in s.copies:
        if c.head_seq is None:
            where = "unreadable"
        elif c.fork_at:
            where = f"event {c.head_seq}, another history from event {c.fork_at} on"
        elif c.ahead:
            where = f"event {c.head_seq}, {c.ahead} ahead of this vault"
        else:
            where = f"event {c.head_seq}, {c.behind} behind"
        site = " (off-site)" if c.offsite else ""
        click.echo(f"{c.name}{site}\t{c.location}\t{where}; pushed {c.pushed_at or 'never'}; "
                   f"verified {c.verified_at or 'never'}")
        for problem in c.problems:
            click.echo(f"\t! {problem}")
    click.echo(s.verdict)
    ctx.exit(s.level)


def register(group: click.Group) -> None:
    for command in (replica, push, pull, clone, status):
        group.add_command(command)
