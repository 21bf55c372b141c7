"""Two machines pushing different histories to one replica at the same moment (issue 15, finding 1).

Two real processes, each with its own LIFEVAULT_HOME and its own copy of one
vault that then gained different events, are told to push to the same new
replica at once, 20 times for a folder and 20 times for `rclone serve webdav`.
Never both may say "Pushed"; the replica always verifies and holds the winner's
head; the loser's sentence names the cause.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.replica import ReplicaMissing, add_replica, target_for, verify_replica
from vault.replica.reader import open_replica

from conftest import PASSPHRASE

TRIALS = 20
HELPER = Path(__file__).parent.parent / "helpers" / "pusher_proc.py"
CAUSES = ("is being pushed to by another machine", "was pushed to by another machine", "holds another history")


def _two_machines(created, tmp_path: Path) -> list[tuple[Path, Path]]:
    """(vault file, home) for two machines holding one vault with different histories after event 3."""
    with Vault.open(created[0], PASSPHRASE) as v, v.transaction() as tx:
        for i in range(3):
            tx.create(Kind.NOTE, {"title": f"shared {i}"}, Source("cli"))
    out = []
    for side in ("a", "b"):
        path, home = tmp_path / side / "vault.db", tmp_path / side / "home"
        path.parent.mkdir()
        shutil.copy(created[0], path)
        with Vault.open(path, PASSPHRASE) as v, v.transaction() as tx:
            for i in range(2 if side == "a" else 4):
                tx.create(Kind.NOTE, {"title": f"{side} {i}"}, Source("cli"))
        out.append((path, home))
    return out


def _race(machines: list[tuple[Path, Path]], targets: list[str]) -> list[tuple[str, str]]:
    names = [f"r{i}" for i in range(len(targets))]
    procs = []
    for path, home in machines:
        os.environ["LIFEVAULT_HOME"] = str(home)  # restored by the autouse fixture's monkeypatch
        with Vault.open(path, PASSPHRASE) as v:
            for name, target in zip(names, targets, strict=True):
                add_replica(v.log.vault_id, name, target)
        env = {**os.environ, "LIFEVAULT_PASSPHRASE": PASSPHRASE, "PYTHONPATH": os.pathsep.join(sys.path)}
        procs.append(subprocess.Popen([sys.executable, str(HELPER), str(path)], env=env, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        results = []
        for name in names:
            for p in procs:  # both lines go out before either answer is read: the pushes overlap
                p.stdin.write(name + "\n")
                p.stdin.flush()
            results.append(tuple(p.stdout.readline().strip() for p in procs))
            dead = [p for p, line in zip(procs, results[-1], strict=True) if not line]
            assert not dead, [(p.wait(30), p.stderr.read()) for p in dead]  # what a pusher that died said
        return results
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(60)


def _check(results: list[tuple[str, str]], targets: list[str]) -> None:
    for (a, b), target in zip(results, targets, strict=True):
        assert not (a.startswith("Pushed") and b.startswith("Pushed")), (target, a, b)
        for line in (a, b):
            assert line.startswith(("Pushed", "Failed")), line
            if line.startswith("Failed"):
                assert any(c in line for c in CAUSES) and "Traceback" not in line, line
        t = target_for(target)
        winner = next((line.split()[1] for line in (a, b) if line.startswith("Pushed")), None)
        if winner is None:  # both stepped back: the replica holds nothing, not a mix
            with pytest.raises(ReplicaMissing):
                verify_replica(t, target)
            continue
        verify_replica(t, target)
        assert open_replica(t, target).manifest.head_hash.hex() == winner
        assert not [n for n in (t.listing() or {}) if n.startswith("lock-")]  # no lease left behind


def test_two_machines_race_to_a_folder(created, tmp_path: Path) -> None:
    targets = [str(tmp_path / f"usb{i}") for i in range(TRIALS)]
    results = _race(_two_machines(created, tmp_path), targets)
    _check(results, targets)
    assert sum(a.startswith("Pushed") or b.startswith("Pushed") for a, b in results) >= TRIALS // 2


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")
def test_two_machines_race_to_webdav(created, tmp_path: Path, webdav) -> None:
    targets = [f"lvtest:race{i}" for i in range(TRIALS)]
    results = _race(_two_machines(created, tmp_path), targets)
    _check(results, targets)
    assert sum(a.startswith("Pushed") or b.startswith("Pushed") for a, b in results) >= TRIALS // 2


def _foreign_lease(folder: Path, expires_in: float) -> Path:
    """A lease as another machine's push leaves it."""
    import json
    import time

    lock = folder / "lock-00112233aabbccdd.json"
    lock.write_text(json.dumps({"owner": "alice@laptop pid 4242", "host": "laptop", "pid": 4242,
                                "taken_at": time.time() - 60, "expires_at": time.time() + expires_in}))
    return lock


def test_a_held_lease_refuses_a_push_until_unlocked(created, tmp_path: Path) -> None:
    from helpers.replica import cli_run

    env = {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    usb = tmp_path / "usb"
    assert cli_run("replica", "add", "usb", str(usb), env=env).exit_code == 0
    lock = _foreign_lease(usb, 600)
    r = cli_run("push", "usb", env=env)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "is being pushed to by another machine, alice@laptop pid 4242 (since" in r.output
    assert "`lifevault replica unlock usb` removes its lease" in r.output
    assert sorted(os.listdir(usb)) == [lock.name]  # nothing was sent
    r = cli_run("replica", "unlock", "usb", env=env)
    assert r.exit_code == 0 and "Removed the push lease of alice@laptop pid 4242" in r.output
    assert cli_run("push", "usb", env=env).exit_code == 0
    assert sorted(os.listdir(usb)) == ["manifest.json"]  # the pusher's own lease went with it
    assert "holds no push lease" in cli_run("replica", "unlock", "usb", env=env).output


def test_an_expired_lease_is_taken_over(created, tmp_path: Path) -> None:
    from helpers.replica import cli_run

    env = {"LIFEVAULT_PATH": str(created[0]), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    usb = tmp_path / "usb"
    cli_run("replica", "add", "usb", str(usb), env=env)
    lock = _foreign_lease(usb, -1)
    r = cli_run("push", "usb", env=env)
    assert r.exit_code == 0, r.output
    assert not lock.exists()
    verify_replica(target_for(str(usb)), "usb")
