"""The HTTP API for devices and scripts: a FastAPI app that `lifevault serve` mounts under /api.

    app = create_api(holder)          # holder: the open vault and its lock
    VaultHolder(vault)                # the minimal holder: `.vault` and `.lock`

The holder is anything with `.vault` (the unlocked Vault the server keeps),
`.lock` (a re-entrant lock held around every use of that Vault: its SQLite
connections are shared by all requests) and `.refresh()` (catch up with other
processes' appends; called before each read). `lifevault serve` passes its
LiveVault (vault/web/site/live.py). Endpoints are plain functions, so FastAPI runs
them in its thread pool and the lock serialises them.

Routes (relative to the mount point; OpenAPI at /docs and /openapi.json):

    GET    /health                     open   {"status": "ok"}, or "degraded" with how many replica pushes fail
    GET    /{contacts|messages|notes}  read   the records now or `at` T, paged by id
    POST   /{contacts|messages|notes}  write  create; 201 with the new id and seq
    GET    /{table}/{id}               read   one record now or `at` T
    PATCH  /{table}/{id}               write  field-level patch, null removes a field
    DELETE /{table}/{id}               write  tombstone (history is kept)
    GET    /{table}/{id}/history       read   every version and what made it
    POST   /batch                      write  many changes in one transaction, idempotent per batch_id
    GET    /changes?since=N            read   the events after seq N, for sync clients
    POST   /import?filename=F          write  the body is an export file; imported as `lifevault import` does
    POST   /blobs                      write  the body is an attachment; returns the reference for a field
    GET    /blobs/{blob_id}            read   an attachment's bytes

Authentication: `Authorization: Bearer <token>` from `lifevault token create`.
No, malformed, unknown or revoked token -> 401; an append-only token on a read
route -> 403; its writes answer 202 {"id", "status": "accepted"} whether or not
anything changed (no seq, no event, no import counts: nothing that confirms a
guessed value). /health and the OpenAPI docs are open: they reveal no vault content.
The token check runs before the body is read, so an unauthenticated request is
refused whatever it carries. Bodies over the limit (`max_body` for JSON,
`max_upload` for /import) -> 413. Library errors map to their class's
`http_status` with the one-sentence message as `detail`. Every write is
recorded with Source("api", name=<token name>); an upload's events are the
importer's (Source("import", …)) with the token name in their detail.
"""

import json
import threading
from contextlib import AbstractContextManager
from typing import Any, Callable, Coroutine, Literal, Protocol, cast

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive

from vault import __version__
from vault.store.blobs import blob_ref
from vault.errors import BadInstant, InvalidRecord, NotFound, VaultError
from vault.domain.events import Event, EventType, Kind, Source, check_fields, kind_of, new_record_id
from vault.domain.kinds import check_record
from vault.formats import Input
from vault.formats.importing import import_file
from vault.domain.instants import Instant, iso, parse_instant
from vault.replica.pusher import failing_replicas
from vault.vault import Transaction, Vault
from vault.store import tokens
from vault.store import batches as api_batches
from vault.web.api.docs import add_docs
from vault.web.api.models import (
    BLOB_ID_PATTERN, RECORD_ID_PATTERN, Accepted, BatchAccepted, BatchIn, BatchOut, BlobRef, Change, ChangesPage,
    CreateOp, Health, ImportAccepted, ImportResult, Record, RecordFields, RecordPage, UpdateOp, Version, Written,
    fields_model,
)
from vault.web.api.upload import read_upload, safe_filename

MAX_BODY_BYTES = 8 * 1024 * 1024  # JSON bodies: a batch of a few thousand records
MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # an uploaded export, held in memory while it is imported
MAX_PAGE = 1000
Access = Literal["open", "read", "write"]
AddRoute = Callable[..., None]  # add(method, path, endpoint, access, **FastAPI route options)


class Holder(Protocol):
    vault: Vault

    @property
    def lock(self) -> AbstractContextManager[Any]: ...  # read-only, so an RLock attribute satisfies it

    def refresh(self) -> int: ...


class VaultHolder:
    """The minimal holder: an open Vault and the lock serialising every use of it."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.lock = threading.RLock()

    def refresh(self) -> int:
        with self.lock:
            return self.vault.refresh()


_bearer = HTTPBearer(auto_error=False, description="A token from `lifevault token create NAME`.")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _authorize(holder: Holder, authorization: str | None, access: Access) -> tokens.Token:
    """The token a request carries, or the 401/403 it deserves."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("This route needs an API token: send `Authorization: Bearer <token>`.")
    with holder.lock:
        token = tokens.authenticate(holder.vault.log, presented.strip())
    if token is None:
        raise _unauthorized("The bearer token is malformed, unknown or revoked.")
    if access == "read" and not token.can_read:
        raise HTTPException(403, f"Token {token.name!r} is append-only: it can write but never read.")
    return token


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, raising 413 once the body passes `limit` bytes (for bodies sent without a length)."""
    seen = 0

    async def receive_limited() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413, f"The request body is over this route's limit of {limit} bytes.")
        return message

    return receive_limited


def _guarded_route(holder: Holder, access: Access, max_body: int) -> type[APIRoute]:
    """A route class that authenticates and checks the body size before FastAPI reads the body."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                if access != "open":
                    auth = request.headers.get("authorization")
                    request.state.token = await run_in_threadpool(_authorize, holder, auth, access)
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_body:
                    raise HTTPException(413, f"The request body ({length} bytes) is over this route's "
                                             f"limit of {max_body} bytes.")
                return await handler(Request(request.scope, _limited(request.receive, max_body)))

            return guarded

    return GuardedRoute


def current_token(request: Request, _: HTTPAuthorizationCredentials | None = Security(_bearer)) -> tokens.Token:
    """The token the route guard accepted (declared with Security so OpenAPI shows the scheme)."""
    return request.state.token


def _json_error(detail: Any, status: int) -> Response:
    """`{"detail": ...}` as ASCII-escaped JSON, so no client text can make the error itself fail."""
    return Response(json.dumps({"detail": detail}), status_code=status, media_type="application/json")


def _source(token: tokens.Token) -> Source:
    return Source("api", name=token.name)


def _answer(token: tokens.Token, response: Response, written: Written) -> Written | Accepted:
    """What a write tells its token: everything for a read-write token; for an append-only one, 202 and the
    id alone, the same whether anything changed or not (else a patch with a guessed value is a read)."""
    if token.can_read:
        return written
    response.status_code = 202
    return Accepted(id=written.id)


ACCEPTED = {202: {"model": Accepted, "description": "Accepted (append-only tokens: the same answer whatever changed)"}}


def _seq_at(vault: Vault, at: str | None) -> int:
    """The seq for `at` (ISO 8601 or seq:N), or now."""
    if at is None:
        return vault.projection.seq
    return vault.seq_for(parse_instant(at))


def _check_kind(record_id: str, kind: Kind) -> None:
    actual = kind_of(record_id)
    if actual is not kind:
        raise NotFound(record_id, f" among {kind.table} (it is a {actual.value} id)")


def _page(vault: Vault, kind: Kind, seq: int, after: str, limit: int) -> RecordPage:
    page = vault.projection.page(kind, seq, after=after or None, limit=limit)
    records = [Record(id=r.id, kind=kind, fields=r.fields, seq=seq) for r in page.records]
    return RecordPage(kind=kind, seq=seq, records=records, next_after=page.next_after)


AT_QUERY = Query(None, max_length=64, description="Show the state at this instant: ISO 8601 "
                 "(naive = the server's local time) or seq:N. Default: now.")
RECORD_ID = Path(pattern=RECORD_ID_PATTERN, description="A record id like c_4k9x0m2q7r1t.")
ALLOW_EXTRA = Query(False, description="Keep fields the kind does not know (in `extra`) instead of refusing them.")


def _add_record_routes(add: AddRoute, holder: Holder, kind: Kind) -> None:
    """The five routes of one kind: list, get, history (read); create, patch, delete (write)."""
    t, model = kind.table, fields_model(kind)

    def list_records(at: str | None = AT_QUERY,
                     after: str = Query("", max_length=66, description="Only ids after this one (paging)."),
                     limit: int = Query(100, ge=1, le=MAX_PAGE)) -> RecordPage:
        with holder.lock:
            holder.refresh()
            return _page(holder.vault, kind, _seq_at(holder.vault, at), after, limit)

    def get_record(record_id: str = RECORD_ID, at: str | None = AT_QUERY) -> Record:
        _check_kind(record_id, kind)
        with holder.lock:
            holder.refresh()
            seq = _seq_at(holder.vault, at)
            fields = holder.vault.get(record_id, None if at is None else Instant(seq=seq))
        return Record(id=record_id, kind=kind, fields=fields, seq=seq)

    def record_history(record_id: str = RECORD_ID) -> list[Version]:
        _check_kind(record_id, kind)
        with holder.lock:
            holder.refresh()
            versions = holder.vault.history(record_id)
        return [Version(fields=v["data"], deleted=bool(v["deleted"]),
                        **{k: v[k] for k in ("seq_from", "seq_to", "valid_from", "valid_to", "event", "source")})
                for v in versions]

    # `model` is this kind's RecordFields subclass, chosen at run time for FastAPI to validate the body with;
    # mypy cannot take a variable as a type, hence the ignore and the casts.
    def create_record(body: model, response: Response,  # type: ignore[valid-type]
                      allow_extra: bool = ALLOW_EXTRA,
                      token: tokens.Token = Security(current_token)) -> Written | Accepted:
        with holder.lock:
            rid = holder.vault.add(kind, cast(RecordFields, body).as_dict(), _source(token), allow_extra=allow_extra)
            return _answer(token, response, Written(id=rid, seq=holder.vault.projection.seq, event="created"))

    def update_record(body: model, response: Response, record_id: str = RECORD_ID,  # type: ignore[valid-type]
                      allow_extra: bool = ALLOW_EXTRA,
                      token: tokens.Token = Security(current_token)) -> Written | Accepted:
        _check_kind(record_id, kind)
        with holder.lock:
            r = holder.vault.update(record_id, cast(RecordFields, body).as_dict(), _source(token),
                                    allow_extra=allow_extra)
        return _answer(token, response,
                       Written(id=record_id, seq=r.seq if r else None, event="updated" if r else "unchanged"))

    def delete_record(response: Response, record_id: str = RECORD_ID,
                      token: tokens.Token = Security(current_token)) -> Written | Accepted:
        _check_kind(record_id, kind)
        with holder.lock:
            r = holder.vault.delete(record_id, _source(token))
        return _answer(token, response, Written(id=record_id, seq=r.seq, event="deleted"))

    one = f"/{t}/{{record_id}}"
    add("GET", f"/{t}", list_records, "read", tags=[t], summary=f"List {t}, now or as of an instant")
    add("GET", one, get_record, "read", tags=[t], summary=f"Read one {kind.value}, now or as of an instant")
    add("GET", one + "/history", record_history, "read", tags=[t], summary=f"Every version of one {kind.value}")
    add("POST", f"/{t}", create_record, "write", tags=[t], status_code=201, responses=ACCEPTED,
        summary=f"Create a {kind.value}")
    add("PATCH", one, update_record, "write", tags=[t], responses=ACCEPTED,
        summary=f"Change some fields of a {kind.value} (null removes one)")
    add("DELETE", one, delete_record, "write", tags=[t], responses=ACCEPTED,
        summary=f"Delete a {kind.value} (a tombstone: history is kept)")


class BatchOperationFailed(VaultError):
    """One operation of a batch was refused; nothing of the batch was stored."""

    def __init__(self, index: int, op: Any, cause: VaultError) -> None:
        self.http_status = cause.http_status
        what = op.op + (f" {op.id}" if getattr(op, "id", None) else "")
        super().__init__(f"Operation {index} ({what}) was refused, so nothing in the batch was stored: {cause}")


class _BatchWriter:
    """Applies a batch's operations in order. Runs of creates and deletes go to the log in one append
    (a few times faster than one append each); an update first flushes the run, as it depends on it."""

    _NEEDS = {EventType.CREATED: "absent", EventType.DELETED: "live"}

    def __init__(self, tx: Transaction, source: Source) -> None:
        self.tx, self.source = tx, source
        self.results: list[Written] = []
        self.pending: list[Event] = []
        self.status: dict[str, str] = {}  # what the pending run does to each record

    def apply(self, op: Any) -> None:
        if isinstance(op, UpdateOp):
            self.flush()
            r = self.tx.update(op.id, op.fields.as_dict(), self.source, allow_extra=op.allow_extra)
            self.results.append(Written(id=op.id, seq=r.seq if r else None, event="updated" if r else "unchanged"))
            return
        if isinstance(op, CreateOp):
            rid = op.id or new_record_id(op.kind)
            e = Event(EventType.CREATED, op.kind, rid, check_fields(op.fields.as_dict()), self.source)
        else:
            e = Event(EventType.DELETED, kind_of(op.id), op.id, {}, self.source)
        event: Literal["created", "deleted"] = "created" if e.type is EventType.CREATED else "deleted"
        current = self.status.get(e.record_id) or self.tx.vault.projection.status(e.kind, e.record_id)
        if kind_of(e.record_id) is not e.kind or current != self._NEEDS[e.type]:
            self.flush()
            seq = self.tx.append([e])[0].seq  # the library refuses it, with its own message for this operation
            self.results.append(Written(id=e.record_id, seq=seq, event=event))
            return
        if isinstance(op, CreateOp):  # after the id and status checks above, as for a single create
            check_record(e.kind, e.changes, allow_extra=op.allow_extra)
        self.pending.append(e)
        self.status[e.record_id] = "live" if e.type is EventType.CREATED else "deleted"
        self.results.append(Written(id=e.record_id, seq=None, event=event))  # seq set by flush

    def flush(self) -> None:
        if not self.pending:
            return
        recorded = self.tx.append(self.pending)
        for written, r in zip(self.results[len(self.results) - len(recorded):], recorded, strict=True):
            written.seq = r.seq
        self.pending, self.status = [], {}


def _add_sync_routes(add: AddRoute, holder: Holder) -> None:
    def batch(body: BatchIn, response: Response, token: tokens.Token = Security(current_token)) -> BatchOut | BatchAccepted:
        """Creates, updates and deletes in one transaction. Retrying with the same batch_id (and the
        same content) returns the first result and stores nothing; the same id with other content is 409."""
        out = _batch(body, token)
        if token.can_read:
            return out
        response.status_code = 202  # append-only: ids only, the same answer whatever changed
        return BatchAccepted(batch_id=out.batch_id, replayed=out.replayed, results=[Accepted(id=r.id) for r in out.results])

    def _batch(body: BatchIn, token: tokens.Token) -> BatchOut:
        canonical = body.model_dump(mode="json", exclude_unset=True)
        with holder.lock, holder.vault.transaction() as tx:
            stored = api_batches.recall(holder.vault.log, token.name, body.batch_id, canonical)
            if stored is not None:
                return BatchOut(batch_id=body.batch_id, replayed=True, results=[Written.model_validate(r) for r in stored])
            writer = _BatchWriter(tx, _source(token))
            for i, op in enumerate(body.operations, 1):
                try:
                    writer.apply(op)
                    if i == len(body.operations):
                        writer.flush()
                except VaultError as e:
                    raise BatchOperationFailed(i, op, e) from e
            api_batches.remember(holder.vault.log, token.name, body.batch_id, canonical,
                                 [r.model_dump() for r in writer.results])
        return BatchOut(batch_id=body.batch_id, replayed=False, results=writer.results)

    def changes(since: int = Query(0, ge=0, le=2**62, description="Events after this seq (0: from the start)."),
                limit: int = Query(MAX_PAGE, ge=1, le=MAX_PAGE)) -> ChangesPage:
        """The log after `since`, oldest first: poll with `next_since` to stay in sync."""
        with holder.lock:
            holder.refresh()
            head = holder.vault.log.head().seq
            if since > head:
                raise BadInstant(f"seq:{since}", f"the log only has {head} events")
            upto = min(head, since + limit)
            events = [Change(seq=r.seq, recorded_at=iso(r.recorded_at), type=r.event.type.value,
                             kind=r.event.kind, id=r.event.record_id, changes=dict(r.event.changes),
                             source=r.event.source.as_dict())
                      for r in holder.vault.log.read(since, upto)]
        return ChangesPage(since=since, head=head, next_since=upto, events=events)

    add("POST", "/batch", batch, "write", tags=["sync"], summary="Apply many changes in one transaction",
        responses={202: {"model": BatchAccepted, "description": "Accepted (append-only tokens)"}})
    add("GET", "/changes", changes, "read", tags=["sync"], summary="The changes feed, for sync clients")


def _import_locked(holder: Holder, upload: Input, fmt: str | None, mirror: bool, strict: bool,
                   token: tokens.Token) -> ImportResult:
    with holder.lock:  # errors name the upload (an Input's name): no path to hide
        summary = import_file(holder.vault, upload, fmt, mirror=mirror, strict=strict,
                              detail={"api_token": token.name})
    return ImportResult(**summary.as_dict())


def _add_import_route(add: AddRoute, holder: Holder, max_upload: int) -> None:
    async def import_upload(
        request: Request,
        response: Response,
        filename: str = Query(min_length=1, max_length=255,
                              description="The file's name, e.g. contacts.vcf: some formats go by its suffix."),
        format: str | None = Query(None, max_length=64,
                                   description="The importer to use (see `lifevault plugins`); default: detected."),
        mirror: bool = Query(False, description="Also delete records this source imported before and no longer has."),
        strict: bool = Query(False, description="Refuse the whole file at the first bad record."),
        token: tokens.Token = Security(current_token),
    ) -> ImportResult | ImportAccepted:
        """Send the file's bytes as the body; it is imported exactly as `lifevault import` would, in one
        transaction, and never written to disk here."""
        upload = await read_upload(request.stream(), safe_filename(filename))
        result = await run_in_threadpool(_import_locked, holder, upload, format, mirror, strict, token)
        if token.can_read:
            return result
        response.status_code = 202  # append-only: no counts ("unchanged" would confirm current values)
        return ImportAccepted(import_id=result.import_id, format=result.format, file=result.file, skipped=result.skipped,
                              warnings=result.warnings)

    body = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    add("POST", "/import", import_upload, "write", tags=["import"], max_body=max_upload,
        openapi_extra={"requestBody": body}, summary="Upload an export file to import",
        responses={202: {"model": ImportAccepted, "description": "Accepted (append-only tokens)"}})


def _add_blob_routes(add: AddRoute, holder: Holder, max_upload: int) -> None:
    """Attachments: upload bytes, get the reference to put in a record's field; download them again."""

    async def put_blob(
        request: Request,
        name: str | None = Query(None, max_length=255, description="A file name to keep in the reference."),
        type: str | None = Query(None, max_length=255, description="A media type to keep, e.g. image/jpeg."),
        token: tokens.Token = Security(current_token),
    ) -> BlobRef:
        """Store the body as an attachment (once, however often it is sent). Put the returned reference
        in a record's field, e.g. {"attachments": [ref]}; a blob no record refers to is never shown."""
        data = await request.body()
        if not data:
            raise InvalidRecord("The attachment is empty; send its bytes as the body.")

        def store() -> str:
            with holder.lock:
                return holder.vault.put_blob(data)

        ref = blob_ref(await run_in_threadpool(store), data, safe_filename(name) if name else None, type)
        return BlobRef(**ref)

    def get_blob(blob_id: str = Path(pattern=BLOB_ID_PATTERN, description="The `blob` of a reference.")) -> Response:
        """The attachment's bytes."""
        with holder.lock:
            data = holder.vault.get_blob(blob_id)
        return Response(data, media_type="application/octet-stream")

    body = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    add("POST", "/blobs", put_blob, "write", tags=["attachments"], status_code=201, max_body=max_upload,
        openapi_extra={"requestBody": body}, response_model_exclude_none=True, summary="Upload an attachment")
    add("GET", "/blobs/{blob_id}", get_blob, "read", tags=["attachments"], summary="Download an attachment",
        response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})


def create_api(holder: Holder, *, max_body: int = MAX_BODY_BYTES, max_upload: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The API app for one open vault; mount it (e.g. under /api) or serve it alone."""
    app = FastAPI(title="lifevault API", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="Contacts, messages and notes in an encrypted, event-sourced vault.")
    add_docs(app, "/openapi.json")  # Swagger UI from the installed package, never a CDN

    @app.exception_handler(VaultError)
    async def vault_error(request: Request, exc: VaultError) -> Response:
        return _json_error(str(exc), exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default echoes the input back, which may be huge or not encodable (lone surrogates -> 500).
        errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
        return _json_error(jsonable_encoder(errors), 422)

    def add(method: str, path: str, endpoint: Callable[..., Any], access: Access, *, max_body: int = max_body,
            **kw: Any) -> None:
        needs_token = [] if access == "open" else [Security(current_token)]  # shows the scheme in OpenAPI
        app.router.add_api_route(path, endpoint, methods=[method], dependencies=needs_token,
                                 route_class_override=_guarded_route(holder, access, max_body), **kw)

    def health() -> Health:
        """Open to all: says the server answers and how many replica pushes fail (not which, nor why)."""
        failing = failing_replicas(holder.vault.path)
        return Health(status="degraded", replicas_failing=failing) if failing else Health()

    add("GET", "/health", health, "open", tags=["health"], summary="Is the server up",
        response_model_exclude_none=True)
    for kind in Kind:
        _add_record_routes(add, holder, kind)
    _add_sync_routes(add, holder)
    _add_import_route(add, holder, max_upload)
    _add_blob_routes(add, holder, max_upload)
    return app
