"""`replica reseed` (explicit, the old files kept, the old head recorded) and `replica add` checking the remote
(issue 15, finding 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vault import Vault
from vault.replica import ReplicaForked, add_replica, get_replica, push, reseed, verify

from conftest import PASSPHRASE
from helpers.replica import build_history, cli_run, copy_vault, rows


def test_reseed_refills_a_forked_replica_keeping_its_files(created, tmp_path: Path) -> None:
    env = {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    with Vault.open(created[0], PASSPHRASE) as v:
        build_history(v, n=10)
        add_replica(v.log.vault_id, "nas", str(tmp_path / "nas"))
        push(v.log, "nas")
        copy_vault(v.path, tmp_path / "twin.db")
        build_history(v, n=2, start=10)
        push(v.log, "nas")
        old_head = v.log.head()
    with Vault.open(tmp_path / "twin.db", PASSPHRASE) as twin:  # a twin that pushed before: its own history
        build_history(twin, n=3, start=40)
        with pytest.raises(ReplicaForked):
            push(twin.log, "nas")
        before = sorted(p.name for p in (tmp_path / "nas").iterdir())
        r = cli_run("replica", "reseed", "nas", env={"LIFEVAULT_PATH": str(twin.path), "LIFEVAULT_PASSPHRASE": PASSPHRASE})
        assert r.exit_code == 0, r.output
        assert "Reseeded nas: its old files are kept at" in r.output and "it now ends at event 13" in r.output
        aside = next(tmp_path.glob("nas.before-reseed-*"))
        assert sorted(p.name for p in aside.iterdir()) == before  # nothing of the old replica was lost
        rep = get_replica(twin.log.vault_id, "nas")
        assert rep.pushed_seq == 13 and len(rep.reseeds) == 1
        assert (rep.reseeds[0]["seq"], rep.reseeds[0]["hash"]) == (12, old_head.hash.hex())
        assert verify(twin.path, "nas", twin.keys).events == 13
        listed = json.loads(cli_run("replica", "list", "--json", env=env).output)
        assert listed[0]["reseeds"][0]["set_aside"] == str(aside)
        clone = tmp_path / "clone.db"
        assert cli_run("clone", str(tmp_path / "nas"), str(clone), env={"LIFEVAULT_PASSPHRASE": PASSPHRASE}).exit_code == 0
        assert rows(clone) == rows(twin.path)


def test_reseed_of_a_never_pushed_replica_just_pushes(created, tmp_path: Path) -> None:
    with Vault.open(created[0], PASSPHRASE) as v:
        build_history(v, n=4)
        add_replica(v.log.vault_id, "usb", str(tmp_path / "usb"))
        aside, r = reseed(v.log, "usb")
        assert aside is None and r.head_seq == 4 and not list(tmp_path.glob("usb.before-reseed-*"))


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")
def test_add_checks_the_remote_answers(created, tmp_path: Path, webdav) -> None:
    env = {"LIFEVAULT_PATH": str(created[0])}
    r = cli_run("replica", "add", "cloud", "nosuchremote:lifevault", env=env)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "Replica cloud was not added: nosuchremote:lifevault is unreachable" in r.output
    assert "`--no-check` adds it anyway" in r.output
    assert "cloud" not in cli_run("replica", "list", env=env).output
    assert cli_run("replica", "add", "cloud", "lvtest:lifevault", env=env).exit_code == 0  # new path, known remote
    assert cli_run("replica", "add", "later", "nosuchremote:x", "--no-check", env=env).exit_code == 0
    webdav.stop()
    r = cli_run("replica", "add", "down", "lvtest:other", env=env)
    assert r.exit_code == 1 and "was not added" in r.output


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")
def test_reseed_a_webdav_replica(created, tmp_path: Path, webdav) -> None:
    with Vault.open(created[0], PASSPHRASE) as v:
        build_history(v, n=6)
        add_replica(v.log.vault_id, "cloud", "lvtest:v")
        push(v.log, "cloud")
        aside, r = reseed(v.log, "cloud")
        assert aside and aside.startswith("lvtest:v.before-reseed-") and r.events == 6
        assert (webdav.root / aside.split(":", 1)[1] / "manifest.json").exists()
        assert verify(v.path, "cloud", v.keys).events == 6
