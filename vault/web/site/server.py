"""`lifevault serve`: one ASGI app — Datasette for browsing, the FastAPI app under /api.

    site = create_app(LiveVault(vault), host="127.0.0.1")
    uvicorn.run(site, ...)            # or serve(live, host, port)

Datasette reads the encrypted state file through read-only SQLCipher
connections (web/site/state_db.py): the live views, and for "as of" pages views
of the history at a past instant; nothing decrypted is written to disk. The
site's lifespan starts the refresh loop (and replica pushes).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable, Iterable

import datasette
import datasette_auth_passwords
from datasette.app import Datasette

from vault.domain.instants import iso
from vault.web.browse import pages as browse, plugin as datasette_plugin
from vault.web.browse.plugin import LIVE_DB
from vault.web.browse.asof import AsOfStates, database_name, seq_of
from vault.web.site.gate import Gate, content_security_policy, served_names, template_script_hashes
from vault.web.site.live import LiveVault
from vault.web.site.login import auth_passwords_config, datasette_metadata, login_policy
from vault.state.search import MatchCache
from vault.web.site.state_db import AsOfDatabase, StateDatabase

API_PREFIX = "/api"
TEMPLATES = str(Path(__file__).parent.parent / "templates")


class LifevaultDatasette(Datasette):
    """Datasette that gives the login plugin its configuration without publishing it in metadata."""

    def __init__(self, *args: Any, auth_config: dict[str, str], **kwargs: Any) -> None:
        self._auth_config = auth_config  # set first: the constructor already asks plugins for config
        super().__init__(*args, **kwargs)

    def plugin_config(self, plugin_name: str, database: str | None = None, table: str | None = None,
                      fallback: bool = True) -> Any:
        if plugin_name == "datasette-auth-passwords":
            return dict(self._auth_config)
        return super().plugin_config(plugin_name, database=database, table=table, fallback=fallback)


def datasette_script_hashes() -> list[str]:
    """CSP hashes of the inline scripts in Datasette's templates, the login plugin's and ours: they hold no data."""
    folders = [Path(m.__file__).parent / "templates" for m in (datasette, datasette_auth_passwords)] + [Path(TEMPLATES)]
    return template_script_hashes(folders, {"datasette_allow_facet": ("true", "false")})


class Site:
    """The composed ASGI app and what its pages need: the live vault, search, past states."""

    def __init__(self, live: LiveVault, *, host: str = "127.0.0.1", api: Any = None,
                 allow_hosts: Iterable[str] = ()) -> None:
        self.live, self.host = live, host
        self.login = login_policy(host)  # refuses a non-loopback host without a password
        self.asof = AsOfStates()
        self._metadata = {"tables": browse.table_metadata()}
        metadata = {"title": "lifevault", "databases": {LIVE_DB: self._metadata},
                    **datasette_metadata(self.login)}
        self.datasette = LifevaultDatasette(
            memory=False, auth_config=auth_passwords_config(self.login), metadata=metadata, template_dir=TEMPLATES, secret=secrets.token_hex(32),
            settings={"suggest_facets": False, "default_page_size": 50, "sql_time_limit_ms": 3000},
        )
        self.matches = MatchCache()  # list searches' matches, now and in past states, bounded together
        self.datasette.add_database(StateDatabase(self.datasette, live.state_path, live.state_key,
                                                  version=lambda: live.seq, matches=self.matches), name=LIVE_DB)
        self.datasette.remove_database("_memory")  # Datasette's scratch database: nothing of the owner's
        datasette_plugin.register(self)
        browse.register(self)
        self.api = api if api is not None else LazyApi(live)
        self._datasette_app = self.datasette.app()
        self.gate = Gate(self._route, names=served_names(host, allow_hosts),
                         csp=content_security_policy(datasette_script_hashes()), api_prefix=API_PREFIX)
        self.pusher: Any = None  # pushes to every replica after changes (vault.replica)

    @property
    def requires_login(self) -> bool:
        return self.login is not None

    # -- past states ------------------------------------------------------------------
    async def as_of(self, seq: int) -> str:
        """The Datasette route of the state after `seq`, registering it if needed."""
        route = database_name(seq)
        new, evicted = self.asof.use(seq)
        for old in evicted:
            self._drop(database_name(old))
        if new or self._database(route) is None:
            recorded_at = await asyncio.to_thread(self.live.read, lambda v: iso(v.log.recorded_at(seq)) if seq else None)
            if self._database(route) is None:
                self.asof.registrations += 1
                name = f"{route}_b{self.asof.registrations}"
                self.datasette._metadata_local["databases"][name] = self._metadata  # searched like the live views
                self.datasette.add_database(AsOfDatabase(self.datasette, self.live.state_path, self.live.state_key,
                                                         seq, recorded_at, self.matches), name=name, route=route)
        return route

    def _database(self, route: str) -> "StateDatabase | None":
        try:
            return self.datasette.get_database(route=route)
        except KeyError:
            return None

    def _drop(self, route: str) -> None:
        db = self._database(route)
        if db is not None:
            self.datasette.remove_database(db.name)
            self.datasette._metadata_local["databases"].pop(db.name, None)
            db.close()  # its readers' page caches

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Begin polling the log and pushing to replicas (the lifespan does this under uvicorn)."""
        self.live.start()
        if self.pusher is None:
            from vault.replica import push_on_change

            self.pusher = push_on_change(self.live)

    def stop(self) -> None:
        self.live.stop()
        if self.pusher is not None:
            self.pusher.stop()
            self.pusher = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await self.gate(scope, receive, send)  # Host, origin and CSRF checks before any route; security headers

    async def _route(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] == API_PREFIX or scope["path"].startswith(API_PREFIX + "/"):
            await self.api(dict(scope, root_path=scope.get("root_path", "") + API_PREFIX), receive, send)
        else:
            await self._rebuild_past_state(scope)
            await self._datasette_app(scope, receive, send)

    async def _rebuild_past_state(self, scope: dict) -> None:
        """An /asof_N/… link outlives the server that built it: build N again (for a logged-in visitor)."""
        segment = scope["path"].split("/")[1] if scope["path"].count("/") >= 1 else ""
        seq = seq_of(segment.split(".", 1)[0])  # `/asof_N.json?sql=…` too
        if seq is None or seq >= self.live.seq:
            return
        if self.requires_login and not self._signed_in(scope):
            return
        await self.as_of(seq)  # a no-op when the state is kept

    def _signed_in(self, scope: dict) -> bool:
        cookies = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                cookies.load(value.decode("latin-1"))
        if "ds_actor" not in cookies:
            return False
        try:
            return bool(self.datasette.unsign(cookies["ds_actor"].value, "actor").get("a"))
        except Exception:  # itsdangerous' BadSignature and malformed values alike: not signed in
            return False

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return


class LazyApi:
    """The device API, built on its first request: importing FastAPI and building its models takes about a
    second of CPU, which the first page of `serve` need not wait for."""

    def __init__(self, live: LiveVault) -> None:
        self.live, self._lock = live, threading.Lock()
        self._app: Any = None

    def app(self) -> Any:
        with self._lock:  # two first requests at once build it once
            if self._app is None:
                self._app = _make_api(self.live)
            return self._app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        app = self._app or await asyncio.to_thread(self.app)
        await app(scope, receive, send)


def _make_api(live: LiveVault) -> Any:
    """The device API (vault/web/api/routes.py); a health-only app if that module is not installed."""
    try:
        from vault.web.api.routes import create_api
    except ImportError:
        from fastapi import FastAPI

        placeholder = FastAPI(title="lifevault API")
        placeholder.get("/health")(lambda: {"status": "ok"})
        return placeholder
    return create_api(live)


def create_app(live: LiveVault, *, host: str = "127.0.0.1", api: Any = None, allow_hosts: Iterable[str] = ()) -> Site:
    """The whole site for one live vault; LoginRequired if `host` is not loopback and no password is set.

    It answers only requests addressed to loopback names, `host` and `allow_hosts` (421 otherwise)."""
    return Site(live, host=host, api=api, allow_hosts=allow_hosts)

