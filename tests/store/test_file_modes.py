"""Every file lifevault creates is 0o600 and every folder 0o700, whatever the umask (issue 11, finding 10).

Each file-creating command runs for real under umask 022 (the usual one, which
leaves new files world-readable); then every file and folder it made in the
vault's folder, LIFEVAULT_HOME, the export folder and the replica folders is walked.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PASSPHRASE
from helpers.served import Served, replica_head, wait_until

from vault.cli import cli
from vault.paths import make_private, private_dir, private_file

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def too_open(root: Path, *, include_root: bool = True) -> list[str]:
    """Every file or folder under `root` that anyone but its owner can read, write or enter."""
    found = [root] if include_root else []
    for folder, dirs, files in os.walk(root):
        found += [Path(folder, n) for n in dirs + files]
    return [f"{p} {oct(stat.S_IMODE(p.lstat().st_mode))}" for p in found
            if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077]


def lifevault(*args: str, **env: str):
    r = CliRunner().invoke(cli, list(args), env={"LIFEVAULT_PASSPHRASE": PASSPHRASE, **env}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def test_every_file_and_folder_created_is_private_under_umask_022(umask_022, tmp_path: Path, lifevault_home: Path) -> None:
    folder, out, usb = tmp_path / "vaults" / "mine", tmp_path / "out", tmp_path / "usb" / "replica"
    vault = folder / "vault.db"
    out.mkdir()
    lifevault("init", "--vault", str(vault))
    lifevault("add", "note", "--vault", str(vault), "--json", '{"title": "T", "body": "private words"}')
    lifevault("import", str(FIXTURES / "vcard" / "contacts.vcf"), "--vault", str(vault))
    lifevault("stats", "--vault", str(vault))
    assert vault.with_name("vault.db.state").exists()
    r = lifevault("export", "vcard", str(out / "contacts.vcf"), "--vault", str(vault))
    assert "plaintext, made readable only by you (0600)" in r.stderr
    r = lifevault("export", "markdown", str(out / "notes"), "--vault", str(vault))
    assert "plaintext, made readable only by you (0700 folders, 0600 files)" in r.stderr
    r = lifevault("restore", "--at", "seq:2", "--out", str(out / "state.db"), "--vault", str(vault))
    assert "plaintext, made readable only by you (0600)" in r.stderr
    lifevault("replica", "add", "usb", str(usb), "--vault", str(vault))
    lifevault("push", "--vault", str(vault))
    lifevault("clone", str(usb), str(folder / "clone.db"))
    lifevault("password", "set", LIFEVAULT_LOGIN_PASSWORD="a login password")
    lifevault("demo", "--no-serve", "--records", "10", "--kdf-cost", "min")

    assert sorted(p.name for p in out.iterdir()) == ["contacts.vcf", "notes", "state.db"]
    assert any(usb.iterdir()) and any(lifevault_home.glob("demo-*/demo.db"))
    assert (lifevault_home / "replicas.json").exists() and (lifevault_home / "web-login.json").exists()
    for root in (folder.parent, lifevault_home, usb.parent):
        assert too_open(root) == []
    assert too_open(out, include_root=False) == []


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")
def test_what_rclone_writes_locally_is_private(umask_022, tmp_path: Path, created) -> None:
    remote = tmp_path / "remote"
    env = {"LIFEVAULT_PATH": str(created[0])}
    lifevault("add", "note", "--json", '{"title": "T"}', **env)
    lifevault("replica", "add", "far", f":local:{remote}", **env)
    lifevault("push", **env)
    lifevault("clone", f":local:{remote}", str(tmp_path / "back" / "clone.db"))
    assert any(remote.iterdir())
    assert too_open(remote) == [] and too_open(tmp_path / "back") == []


def test_sqlite_gives_wal_shm_and_journal_the_mode_of_their_database(umask_022, tmp_path: Path) -> None:
    """What the helpers rely on, checked against the SQLite this Python has."""
    wal = sqlite3.connect(private_file(tmp_path / "wal.db"))
    wal.execute("PRAGMA journal_mode = WAL")
    wal.execute("CREATE TABLE t (x)")
    journal = sqlite3.connect(private_file(tmp_path / "journal.db"), isolation_level=None)
    journal.execute("CREATE TABLE t (x)")
    journal.execute("BEGIN")
    journal.execute("INSERT INTO t VALUES (1)")  # the -journal exists until the commit
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["journal.db", "journal.db-journal", "wal.db", "wal.db-shm", "wal.db-wal"]
    assert too_open(tmp_path, include_root=False) == []
    journal.close(), wal.close()


def test_private_dir_makes_missing_parents_private_and_leaves_existing_ones(umask_022, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared / "a" / "b")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # not ours to change
    assert too_open(shared / "a") == []


def test_make_private_covers_what_a_plugin_wrote(umask_022, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("plaintext")
    (tree / "g.txt").write_text("plaintext")
    assert too_open(tree) != []
    make_private(tree)
    assert too_open(tree) == []


def test_what_serve_creates_is_private(tmp_path: Path, lifevault_home: Path) -> None:
    """A real `lifevault serve` (pushing to a folder replica after a change), started under umask 022."""
    folder, usb = tmp_path / "vaults" / "served", tmp_path / "usb" / "replica"
    path = folder / "vault.db"
    env = dict(os.environ, LIFEVAULT_HOME=str(lifevault_home), LIFEVAULT_PATH=str(path), LIFEVAULT_PASSPHRASE=PASSPHRASE,
               LIFEVAULT_KDF_COST="min")
    cmd = [sys.executable, "-c", "from vault.cli import cli; cli()"]
    for args in (["init"], ["replica", "add", "usb", str(usb)]):
        subprocess.run([*cmd, *args], env=env, check=True, capture_output=True, umask=0o022)
    server = Served(tmp_path, path, lifevault_home, PASSPHRASE, umask=0o022)
    try:
        subprocess.run([*cmd, "add", "note", "--json", '{"title": "T"}'], env=env, check=True, capture_output=True,
                       umask=0o022)
        wait_until(lambda: replica_head(usb) == 1, "the push of event 1", server.log)
        for root in (folder.parent, lifevault_home, usb.parent):
            assert too_open(root) == [], server.output()
    finally:
        server.stop()


def test_export_into_a_missing_folder_is_one_sentence(created, tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "contacts.vcf"
    r = CliRunner().invoke(cli, ["export", "vcard", str(out), "--vault", str(created[0])],
                           env={"LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert (r.exit_code, r.output) == (1, f"Error: Cannot write {out}: No such file or directory.\n")
    assert not out.parent.exists()


def test_init_where_no_folder_can_be_made_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / "a-file" / "sub" / "vault.db"
    r = CliRunner().invoke(cli, ["init", "--vault", str(path)], env={"LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert (r.exit_code, r.output) == (1, f"Error: Cannot write {path}: Not a directory.\n")
