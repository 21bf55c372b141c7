"""`lifevault serve`, `lifevault password set`, and the serving half of `lifevault demo`."""

from __future__ import annotations

import importlib
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import click

from vault import Vault
from vault.cli.options import open_vault, passphrase_option, read_secret, vault_option


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or one clear sentence about why not (before any passphrase is asked)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        raise click.ClickException(f"Cannot listen on {host} port {port}: {e.strerror or e}.") from e
    return sock


def serve_vault(vault: Vault, sock: socket.socket, allow_hosts: tuple[str, ...] = ()) -> None:
    """Serve an unlocked vault on a bound socket until Ctrl+C; the vault is closed after."""
    from vault.web import LiveVault
    from vault.web.site.server import create_app

    host, port = sock.getsockname()[:2]
    started = time.monotonic()
    live = LiveVault(vault)
    try:
        site = create_app(live, host=host, allow_hosts=allow_hosts)
        import uvicorn

        config = uvicorn.Config(site, access_log=False, log_level="warning", lifespan="on")
        shown = "[" + host + "]" if ":" in host else host
        click.echo(f"Serving {vault.path} at http://{shown}:{port}/ (API under /api, docs at /api/docs); "
                   f"ready in {time.monotonic() - started:.1f}s. Ctrl+C stops.", err=True)
        # uvicorn re-raises the signal that stopped it; make that an ordinary exit so the vault closes cleanly.
        previous = signal.signal(signal.SIGTERM, _exit_quietly)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except (KeyboardInterrupt, _Stopped):
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        live.close()
        sock.close()
    click.echo("Stopped; the vault is closed.", err=True)


class _Stopped(Exception):
    """SIGTERM arrived: stop serving and close the vault."""


def _exit_quietly(signum: int, frame: Any) -> None:
    raise _Stopped()


def _host_names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from vault.web.site.gate import name_of

    for value in values:
        if name_of(value) is None:
            raise click.BadParameter(f"{value!r} is not a host name (give a name like vault.home.arpa, no scheme or path).")
    return values


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs `lifevault password set` first.")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="Port to listen on.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME", callback=_host_names,
              help="Also answer requests addressed to this host name (repeatable); by default only loopback "
                   "names and --host are answered, so a rebound DNS name cannot reach the vault.")
@vault_option
@passphrase_option
def serve(host: str, port: int, allow_hosts: tuple[str, ...], vault_path: Path | None, passphrase_file: Any) -> None:
    """Browse the vault (Datasette, any instant) and serve the device API under /api.

    Example: lifevault serve --port 8001 --allow-host vault.home.arpa
    """
    from vault.web.site.login import login_policy

    login_policy(host)  # refuse an open non-loopback server before asking for the passphrase
    sock = listen(host, port)
    # Importing Datasette and FastAPI takes a second or two: do it while the passphrase is typed and the vault opens.
    warm = threading.Thread(target=importlib.import_module, args=("vault.web.site.server",), daemon=True)
    warm.start()
    vault = open_vault(vault_path, passphrase_file)
    warm.join()
    serve_vault(vault, sock, allow_hosts)


@click.group()
def password() -> None:
    """The browser login password for `lifevault serve`.

    Example: lifevault password set
    """


@password.command("set")
@click.option("--username", default="owner", show_default=True, help="The name to log in with.")
@click.option("--password-file", type=click.File("r"), default=None,
              help="Read the password from this file (else $LIFEVAULT_LOGIN_PASSWORD, else a hidden prompt).")
def password_set(username: str, password_file: Any) -> None:
    """Set the login password the browser asks for; only its hash is stored.

    Example: lifevault password set
    """
    from vault.web.site.login import set_password

    secret = read_secret(password_file, "LIFEVAULT_LOGIN_PASSWORD", "New login password", confirm=True)
    path = set_password(secret, username)
    click.echo(f"Login password for {username!r} set (its hash is in {path}).", err=True)
