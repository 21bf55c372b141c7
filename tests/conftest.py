"""Shared fixtures: real vault files in tmp_path, a temp LIFEVAULT_HOME, the CLI runner, a WebDAV rclone remote,
the web site of a test's vault in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from vault import Vault
from vault.cli import cli
from vault.web import LiveVault
from vault.web.site.server import Site, create_app

from helpers.webdav import WebdavServer

PASSPHRASE = "test passphrase, not a secret"


@pytest.fixture(autouse=True)
def lifevault_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LIFEVAULT_HOME and a cheap KDF; no secret leaks between tests."""
    home = tmp_path / "home"
    monkeypatch.setenv("LIFEVAULT_HOME", str(home))
    monkeypatch.setenv("LIFEVAULT_KDF_COST", "min")
    monkeypatch.setenv("LIFEVAULT_NO_ENTRYPOINTS", "1")  # tests register the plugins they use explicitly
    for var in ("LIFEVAULT_PATH", "LIFEVAULT_PASSPHRASE", "LIFEVAULT_NEW_PASSPHRASE", "LIFEVAULT_RECOVERY_KEY"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "vault.db"


@pytest.fixture
def created(vault_path: Path) -> tuple[Path, str]:
    """A new, empty vault file and its recovery key."""
    vault, recovery = Vault.create(vault_path, PASSPHRASE, kdf_cost="min")
    vault.close()
    return vault_path, recovery


@pytest.fixture
def vault(created: tuple[Path, str]) -> Iterator[Vault]:
    """An open, empty vault (closed after the test)."""
    v = Vault.open(created[0], PASSPHRASE)
    yield v
    v.close()


@pytest.fixture
def run(created: tuple[Path, str], monkeypatch: pytest.MonkeyPatch):
    """Run the CLI against the created vault with the passphrase in the environment."""
    monkeypatch.setenv("LIFEVAULT_PATH", str(created[0]))
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def as_exported():
    """What the core hands an exporter for source records: attachments become blob references
    in `attachments`. Returns (export records, a get_blob function)."""

    def convert(recs, kind):
        import hashlib

        from vault.formats.contract import ExportRecord

        blobs: dict[str, bytes] = {}
        exported = []
        for r in recs:
            refs = []
            for a in r.attachments:
                bid = hashlib.sha256(a.data).hexdigest()
                blobs[bid] = a.data
                refs.append({"blob": bid, "size": len(a.data), "name": a.name, "type": a.content_type})
            exported.append(ExportRecord(kind, "m_x", dict(r.fields, attachments=refs) if refs else r.fields))
        return exported, blobs.__getitem__

    return convert


@pytest.fixture
def webdav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebdavServer]:
    """A real WebDAV server (`rclone serve webdav`) reached as the rclone remote `lvtest:`, configured as a user
    without a config file would: RCLONE_CONFIG_LVTEST_TYPE/URL."""
    server = WebdavServer(tmp_path / "webdav-root", tmp_path / "rclone-serve.log")
    monkeypatch.setenv("RCLONE_CONFIG_LVTEST_TYPE", "webdav")
    monkeypatch.setenv("RCLONE_CONFIG_LVTEST_URL", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "no-rclone.conf"))  # never the developer's own config
    server.start()
    yield server
    server.stop()


@pytest.fixture
def site(vault: Vault, data: Any) -> Iterator[Site]:
    """The site, in process, once the test module's `data` fixture has written its records."""
    site = create_app(LiveVault(vault))
    yield site
    site.asof.close()


@pytest.fixture
def client(site: Site) -> TestClient:
    # Addressed and posting as a browser on the site's own page would: the gate refuses other Hosts and origins.
    return TestClient(site, base_url="http://127.0.0.1", headers={"Origin": "http://127.0.0.1"})
