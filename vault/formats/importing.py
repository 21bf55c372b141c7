"""The import engine: source records in, only the differences out as events.

Each SourceRecord maps to a deterministic record id (a keyed hash of the
importer's namespace and the record's source id, or the id the source carries),
so a re-import finds the same record without a lookup table. The whole import
is one vault transaction: an error, a strict-mode bad record or Ctrl-C leaves
the vault as it was. Every event's Source carries the import id, the importer
and its version, the file's hash and the record's fingerprint, which is also
how `undo_import` and `mirror` find what an import did.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vault.store import crypto
from vault.formats import registry as plugins
from vault.store.blobs import blob_ref
from vault.errors import IngestError, InvalidRecord, VaultError
from vault.domain.events import Event, EventType, Kind, Source, check_fields, kind_of
from vault.formats.contract import BadRecord, Importer, Input, Notice, SourceRecord
from vault.vault import Transaction, Vault

BATCH = 500  # events appended per call; fewer, larger appends are much faster
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


class UnknownImport(VaultError):
    http_status = 404

    def __init__(self, import_id: str) -> None:
        self.import_id = import_id
        super().__init__(f"No import {import_id!r} in this vault; `lifevault log` shows import ids.")


@dataclass
class ImportSummary:
    """What one import (or undo) did."""

    import_id: str
    format: str
    file: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)  # imported, but something was guessed
    options: dict[str, str] = field(default_factory=dict)  # the importer's own options, as resolved

    def as_dict(self) -> dict[str, Any]:
        return {"import_id": self.import_id, "format": self.format, "file": self.file, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged, "deleted": self.deleted,
                "skipped": self.skipped, "warnings": self.warnings, "options": self.options}


class BadOption(VaultError):
    """An import option the importer does not take, or a value outside its choices."""

    http_status = 400


def resolve_options(importer: Importer, given: dict[str, str] | None) -> dict[str, str]:
    """Every option the importer declares, as given or by its default; BadOption for anything else."""
    declared = {o.name: o for o in getattr(importer, "options", ())}
    given = {k.replace("-", "_"): v for k, v in (given or {}).items()}
    for name, value in given.items():
        if name not in declared:
            takes = ", ".join("--" + n.replace("_", "-") for n in declared) or "no options"
            raise BadOption(f"The {importer.name} importer has no option --{name.replace('_', '-')} (it takes {takes}).")
        choices = declared[name].choices
        if choices and value not in choices:
            raise BadOption(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, not {value!r}.")
    out: dict[str, str] = {}
    for name, option in declared.items():
        chosen = given.get(name) or (option.default() if option.default else None)
        if chosen is not None:
            out[name] = chosen
    return out


def new_import_id() -> str:
    return "imp_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def derive_record_id(vault: Vault, kind: Kind, namespace: str, source_id: str) -> str:
    """The record id for a source id: keyed, so it reveals nothing about the source id without the key."""
    digest = crypto.blake2b(f"{namespace}\x00{source_id}".encode(), key=vault.keys.blob_id,
                            person=b"lv-record-id", size=10)
    n = int.from_bytes(digest, "big")
    return kind.prefix + "_" + "".join(_ID_ALPHABET[(n >> (5 * i)) & 31] for i in range(15, -1, -1))


def file_sha256(source: Input | Path) -> str:
    """The hash of a file or bytes, or of a folder's files (relative names and contents, sorted)."""
    src = Input.of(source)
    h = hashlib.sha256()
    if src.is_dir() and src.path is not None:
        for p in sorted(p for p in src.path.rglob("*") if p.is_file()):
            h.update(p.relative_to(src.path).as_posix().encode() + b"\x00")
            _hash_stream(h, Input.from_path(p))
    else:
        _hash_stream(h, src)
    return h.hexdigest()


def _hash_stream(h: Any, src: Input) -> None:
    with src.open() as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


def import_file(vault: Vault, source: Input | Path | str, fmt: str | None = None, *, mirror: bool = False,
                strict: bool = False, on_record: Callable[[], None] | None = None,
                registry: plugins.Registry | None = None, detail: dict[str, Any] | None = None,
                options: dict[str, str] | None = None) -> ImportSummary:
    """Import a file, a folder or bytes (an `Input`; format detected from content unless `fmt` names one) in
    one transaction.

    `detail` is added to every event's source detail, e.g. {"api_token": "phone"} for an upload; `options`
    are the importer's own (see ImportOption), recorded in every event with their defaults filled in."""
    path = Input.of(source)
    reg = registry or plugins.registry()
    importer = reg.importer(fmt) if fmt else reg.detect(path)
    if not path.exists():
        raise IngestError(path, None, "no such file or folder")
    chosen = resolve_options(importer, options)
    run = _Run(vault, importer, path, file_sha256(path), strict)
    if chosen:
        run.base["options"] = run.summary.options = chosen
    run.base.update({k: v for k, v in (detail or {}).items() if k not in run.base})
    with vault.transaction() as tx:
        for item in _read_guarded(importer, path, chosen):
            run.take(tx, item)
            if on_record:
                on_record()
        run.flush(tx)
        if not run.seen and not run.summary.skipped:
            raise IngestError(path, None, f"no records in it; is it really {importer.name}?")
        if mirror:
            run.mirror(tx)
    return run.summary


def _read_guarded(importer: Importer, path: Input,
                  options: dict[str, str]) -> Iterator[SourceRecord | BadRecord | Notice]:
    """The importer's records; anything it raises besides a VaultError becomes one IngestError."""
    given = plugins.input_for(importer, path)
    if given is None:
        raise IngestError(path, None, f"the {importer.name} importer reads only files and folders on disk, not "
                                      "bytes; import it with `lifevault import`")
    where = None
    try:
        for item in importer.read(given, **options) if options else importer.read(given):
            where = item.location or where
            yield item
    except VaultError:
        raise
    except RecursionError as e:
        raise IngestError(path, where, "it is nested too deeply to be a real export") from e
    except Exception as e:
        raise IngestError(path, where, f"the {importer.name} importer cannot read it ({type(e).__name__}: {e})") from e


class _Run:
    """The state of one import: counters, pending events, the ids seen."""

    def __init__(self, vault: Vault, importer: Importer, path: Input, sha: str, strict: bool) -> None:
        self.vault, self.importer, self.path, self.strict = vault, importer, path, strict
        self.namespace = getattr(importer, "namespace", None) or importer.name
        self.base = {"import_id": new_import_id(), "importer": importer.name, "version": importer.version,
                     "namespace": self.namespace, "file_sha256": sha}
        self.summary = ImportSummary(self.base["import_id"], importer.name, str(path))
        self.pending: list[Event] = []
        self.pending_ids: set[str] = set()
        self.seen: set[str] = set()
        self.claimed: dict[str, str] = {}  # record id -> the identity that holds it in this run
        self.first_at: dict[str, str] = {}  # record id -> where its first copy was, for records with an identity

    def take(self, tx: Transaction, item: SourceRecord | BadRecord | Notice) -> None:
        if isinstance(item, BadRecord):
            return self.bad(item.location, item.reason)
        if isinstance(item, Notice):
            self.summary.warnings.append({"file": str(self.path), "location": item.location, "reason": item.message})
            return None
        try:
            rid, desired = self.prepare(tx, item)
        except InvalidRecord as e:
            return self.bad(item.location, str(e).rstrip("."))
        self.summary.warnings += [{"file": str(self.path), "location": item.location, "reason": w}
                                  for w in item.warnings]
        if rid in self.pending_ids:  # the same record twice in one file: compare with the first
            self.flush(tx)
        if item.identity is not None:
            rid = self.resolve_identity(tx, item, rid, desired)
            if rid in self.first_at:  # a copy of one already read (same source id, same identity): the first wins
                self.summary.unchanged += 1
                self.summary.warnings.append({"file": str(self.path), "location": item.location, "reason":
                                              f"a copy of {self.first_at[rid]}; the first copy is kept"})
                return None
            self.first_at[rid] = item.location
        self.seen.add(rid)
        events = self.compare_deleted(rid, item.kind, desired) if item.deleted else [self.compare(rid, item.kind, desired, item.identity)]
        for event in events:
            if event is not None:
                if rid in self.pending_ids:  # a record created and deleted by one source record
                    self.flush(tx)
                self.pending.append(event)
                self.pending_ids.add(rid)
        if len(self.pending) >= BATCH:
            self.flush(tx)

    def bad(self, location: str, reason: str) -> None:
        if self.strict:
            raise IngestError(self.path, location or None, reason + " (--strict: nothing was imported)")
        self.summary.skipped.append({"file": str(self.path), "location": location, "reason": reason})

    def prepare(self, tx: Transaction, rec: SourceRecord) -> tuple[str, dict[str, Any]]:
        """The record id and the fields the vault should hold, attachments stored as blobs."""
        if rec.record_id:
            rid = rec.record_id
            if kind_of(rid) is not rec.kind:
                raise InvalidRecord(f"Record id {rid} is not a {rec.kind.value} id.")
        else:
            rid = derive_record_id(self.vault, rec.kind, self.namespace, rec.source_id)
            if rec.previous_source_ids and self.vault.projection.status(rec.kind, rid) == "absent":
                rid = self.previous_record(rec) or rid
        try:
            text = json.dumps({k: v for k, v in rec.fields.items() if v is not None}, ensure_ascii=False,
                              allow_nan=False)
            desired = json.loads(text.encode("utf-8"))  # refuses NaN and lone surrogates, as the log would
        except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
            raise InvalidRecord(f"a field cannot be stored ({e})") from e
        except RecursionError as e:
            raise InvalidRecord("a field is nested too deeply to store") from e
        for att in rec.attachments:
            ref = blob_ref(tx.put_blob(att.data), att.data, att.name, att.content_type)
            if att.field.endswith("s"):  # plural fields hold a list of references
                desired.setdefault(att.field, []).append(ref)
            elif att.field in desired:
                raise InvalidRecord(f"two attachments for the single field {att.field!r}")
            else:
                desired[att.field] = ref
        return rid, check_fields(desired)

    def previous_record(self, rec: SourceRecord) -> str | None:
        """The record an earlier importer version made for `rec` from a file of this name, if any."""
        for old in rec.previous_source_ids:
            rid = derive_record_id(self.vault, rec.kind, self.namespace, old)
            if self.vault.projection.imports.last_import_file(rec.kind, rid) == self.path.name:
                return rid
        return None

    def resolve_identity(self, tx: Transaction, rec: SourceRecord, rid: str, desired: dict[str, Any]) -> str:
        """The record for a source record whose source id another, different record may already hold.

        The first identity to reach a record keeps it (a record imported before identities were recorded,
        or under another scheme — the text before the first ':' — is taken by the first that comes); any
        other identity gets a record of its own, derived from both, with `shares_source_id_with` naming the
        first. So a re-import meets each one where it left it."""
        identity = rec.identity or ""
        held = self.claimed.get(rid) or self.vault.projection.imports.last_import_detail(rec.kind, rid).get("identity")
        if held is not None and held.partition(":")[0] != identity.partition(":")[0]:
            held = None
        if held is None or held == identity:
            self.claimed[rid] = identity
            return rid
        other = derive_record_id(self.vault, rec.kind, self.namespace, f"{rec.source_id}\x00{identity}")
        if other in self.pending_ids:
            self.flush(tx)
        desired["shares_source_id_with"] = rid
        self.claimed[other] = identity
        return other

    def source(self, desired: dict[str, Any], kind: Kind, identity: str | None = None) -> Source:
        blob = json.dumps({"kind": kind.value, "fields": desired}, sort_keys=True, ensure_ascii=False).encode()
        detail = {**self.base, "fingerprint": hashlib.sha256(blob).hexdigest()[:32], "fields": sorted(desired)}
        if identity is not None:
            detail["identity"] = identity
        return Source("import", self.importer.name, self.path.name, detail)

    def compare(self, rid: str, kind: Kind, desired: dict[str, Any], identity: str | None = None) -> Event | None:
        """The event that brings the vault's record in line with the source, or None."""
        proj = self.vault.projection
        status = proj.status(kind, rid)
        if status == "absent":
            self.summary.created += 1
            return Event(EventType.CREATED, kind, rid, desired, self.source(desired, kind, identity))
        last = proj.imports.last_source(kind, rid)
        if status == "deleted":
            if last.get("via") != "import":  # deleted by the user: respect it
                self.summary.unchanged += 1
                return None
            self.summary.created += 1
            return Event(EventType.REVIVED, kind, rid, desired, self.source(desired, kind, identity))
        source = self.source(desired, kind, identity)
        prev = proj.imports.last_import_detail(kind, rid)
        if prev.get("fingerprint") == source.detail["fingerprint"]:
            self.summary.unchanged += 1  # the source has not changed: keep any edits made in the vault
            return None
        current = proj.record(kind, rid) or {}
        patch = {k: v for k, v in desired.items() if current.get(k) != v}
        patch.update({k: None for k in prev.get("fields", ()) if k not in desired and k in current})
        if not patch:
            self.summary.unchanged += 1
            return None
        self.summary.updated += 1
        return Event(EventType.UPDATED, kind, rid, patch, source)

    def compare_deleted(self, rid: str, kind: Kind, desired: dict[str, Any]) -> list[Event | None]:
        """A record the source holds as deleted: its content goes into history, then a tombstone.

        Already deleted in the vault: nothing (a tombstone takes no update; a user's delete is respected)."""
        status = self.vault.projection.status(kind, rid)
        if status == "deleted":
            self.summary.unchanged += 1
            return []
        first = self.compare(rid, kind, desired)
        if status == "absent":
            self.summary.created -= 1  # counted once, as deleted below
        elif first is not None:
            self.summary.updated -= 1
        else:
            self.summary.unchanged -= 1
        self.summary.deleted += 1
        return [first, Event(EventType.DELETED, kind, rid, {}, self.source(desired, kind))]

    def flush(self, tx: Transaction) -> None:
        if self.pending:
            tx.append(self.pending)
        self.pending, self.pending_ids = [], set()

    def mirror(self, tx: Transaction) -> None:
        """Delete live records this namespace imported before and this file no longer has."""
        proj = self.vault.projection
        for kind in Kind:
            gone = sorted(rid for rid in proj.imports.ids_imported_by(kind, self.namespace)
                          if rid not in self.seen and proj.status(kind, rid) == "live")
            for rid in gone:
                self.pending.append(Event(EventType.DELETED, kind, rid, {}, Source(
                    "import", self.importer.name, self.path.name, {**self.base, "mirror": True})))
            self.summary.deleted += len(gone)
        self.flush(tx)


def undo_import(vault: Vault, import_id: str) -> ImportSummary:
    """Append the events that undo an import (its history stays).

    Records it created (or revived) are deleted, records it deleted are revived, and fields it changed go back
    to their earlier values unless they have been edited since (those edits win).
    """
    with vault.transaction() as tx:
        touched = vault.projection.imports.touched_by(import_id)
        if not touched:
            raise UnknownImport(import_id)
        first = touched[0]
        detail = {"import_id": new_import_id(), "undo_of": import_id}
        source = Source("import", first["importer"], first["file"], detail)
        summary = ImportSummary(detail["import_id"], first["importer"] or "", first["file"] or "")
        events = [e for t in touched if (e := _compensation(vault, t, source, summary)) is not None]
        if events:
            tx.append(events)
    return summary


def _compensation(vault: Vault, t: dict[str, Any], source: Source, summary: ImportSummary) -> Event | None:
    proj, kind, rid = vault.projection, t["kind"], t["id"]
    before = proj.record(kind, rid, t["first"] - 1)
    after = proj.record(kind, rid, t["last"])
    now = proj.record(kind, rid)
    if before is None and now is not None:  # the import created (or revived) it
        summary.deleted += 1
        return Event(EventType.DELETED, kind, rid, {}, source)
    if before is not None and after is None and now is None:  # the import deleted it (--mirror)
        summary.created += 1
        return Event(EventType.REVIVED, kind, rid, before, source)
    if before is not None and after is not None and now is not None:
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        patch = {k: before.get(k) for k in changed if now.get(k) == after.get(k)}  # later edits win
        if patch:
            summary.updated += 1
            return Event(EventType.UPDATED, kind, rid, patch, source)
    summary.unchanged += 1
    return None
