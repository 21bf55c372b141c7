"""Compaction (issue 15, finding 5): a replica of 1,000 one-event segments merged into a few, killed with SIGKILL
at random points (20 trials); the replica always clones to the vault, at five past instants too, and after the
compaction is run again it verifies blind with no leftover."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.replica import add_replica, clone, compact, push, verify, verify_pinned, verify_replica, target_for
from vault.replica.manifest import parse
from vault.replica.status import status

from conftest import PASSPHRASE
from helpers.replica import SECRET, assert_no_plaintext, cli_run, rows, states

EVENTS, TRIALS = 1000, 20
PAST = [1, 250, 500, 777, EVENTS]  # five past instants, as event numbers


def _segments(folder: Path) -> int:
    return len(parse((folder / "manifest.json").read_bytes(), "t").events)


@pytest.fixture
def thousand(created, tmp_path: Path, monkeypatch) -> tuple[Vault, Path]:
    """A vault of 1,000 events and a replica folder holding them in 1,000 segments."""
    monkeypatch.setenv("LIFEVAULT_COMPACT_SEGMENTS", "0")
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "1")
    v = Vault.open(created[0], PASSPHRASE)
    for start in range(0, EVENTS, 100):
        with v.transaction() as tx:
            for i in range(start, start + 100):
                tx.create(Kind.NOTE, {"title": f"{SECRET} {i}"}, Source("cli"))
    add_replica(v.log.vault_id, "template", str(tmp_path / "template"))
    push(v.log, "template")
    assert _segments(tmp_path / "template") == EVENTS
    yield v, tmp_path / "template"
    v.close()


def test_compact_merges_and_keeps_every_event(thousand, tmp_path: Path, monkeypatch) -> None:
    v, folder = thousand
    env = {"LIFEVAULT_PATH": str(v.path), "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    r = cli_run("replica", "compact", "template", env=env)
    assert r.exit_code == 0 and f"Compacted template: {EVENTS} event segments into 1." in r.output, r.output
    assert sorted(p.name for p in folder.iterdir()) == ["events-000000000001-000000001000.seg", "manifest.json"]
    assert verify(v.path, "template", v.keys).events == EVENTS
    assert "nothing to merge" in cli_run("replica", "compact", "template", env=env).output
    assert_no_plaintext(folder)


def test_a_push_compacts_past_the_threshold(thousand, monkeypatch) -> None:
    v, folder = thousand
    monkeypatch.setenv("LIFEVAULT_COMPACT_SEGMENTS", "100")
    with v.transaction() as tx:
        tx.create(Kind.NOTE, {"title": "one more"}, Source("cli"))
    r = push(v.log, "template")
    assert r.events == 1 and _segments(folder) == 1
    assert verify_pinned(str(folder), v.key_fingerprint).events == EVENTS + 1


def test_killed_compaction_never_loses_an_event(thousand, tmp_path: Path) -> None:
    v, template = thousand
    expected_rows, expected = rows(v.path), states(v, PAST)
    env = {**os.environ, "LIFEVAULT_PATH": str(v.path), "LIFEVAULT_PASSPHRASE": PASSPHRASE,
           "PYTHONPATH": os.pathsep.join(sys.path)}
    rng, spans, outcomes = random.Random(15), [], {"old": 0, "new": 0}
    for trial in range(TRIALS + 1):  # trial 0 runs to the end, to learn how long a compaction takes
        folder = tmp_path / f"r{trial}"
        shutil.copytree(template, folder)
        add_replica(v.log.vault_id, f"r{trial}", str(folder))
        proc = subprocess.Popen([sys.executable, "-c", "from vault.cli import main; main()", "replica", "compact",
                                 f"r{trial}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not list(folder.glob("lock-*.json")) and proc.poll() is None:
            time.sleep(0.001)  # the compaction has begun once it holds the lease
        began = time.monotonic()
        if trial == 0:
            assert proc.wait(120) == 0, proc.stderr.read()
            spans.append(time.monotonic() - began)
        else:
            time.sleep(rng.uniform(0, spans[0] * 1.1))
            proc.kill()
            proc.wait()
        outcomes["new" if _segments(folder) < EVENTS else "old"] += 1
        # whatever the kill left, the replica clones to the vault, at every past instant too
        out = tmp_path / f"clone{trial}.db"
        assert clone(str(folder), out, PASSPHRASE).events == EVENTS
        assert rows(out) == expected_rows
        with Vault.open(out, PASSPHRASE) as c:
            assert states(c, PAST) == expected
        # run again (the dead pusher's lease is taken over): a few segments, blind-verified, nothing left over
        compact(v.log.vault_id, v.keys.verify_key, f"r{trial}", v.keys)
        assert verify_replica(target_for(str(folder)), f"r{trial}").events == EVENTS
        assert _segments(folder) == 1 and len(list(folder.iterdir())) == 2
    assert outcomes["old"] and outcomes["new"], outcomes  # kills landed both before and after the new manifest


def _killed_compaction(folder: Path, name: str, env: dict, delay: float) -> None:
    """SIGKILL a compaction `delay` seconds after its merged segment appears (or wherever it is by then): the
    stretch in which it leaves unlisted segments, before its manifest is written or before the old ones go."""
    proc = subprocess.Popen([sys.executable, "-c", "from vault.cli import main; main()", "replica", "compact", name],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    merged = folder / f"events-{1:012d}-{EVENTS:012d}.seg"
    while not merged.exists() and proc.poll() is None:
        time.sleep(0.0005)
    time.sleep(delay)
    proc.kill()
    proc.wait()


def test_leftovers_of_a_killed_compaction_alarm_no_one_and_the_next_push_removes_them(thousand, tmp_path: Path) -> None:
    """kill -9 during compaction: whatever unlisted segments it left, `replica verify` passes (saying it found
    leftovers), `status` names no problem with the replica's files, and the next push (with nothing new, or with
    new events) removes them, leaving exactly the files the manifest lists."""
    v, template = thousand
    env = {**os.environ, "LIFEVAULT_PATH": str(v.path), "LIFEVAULT_PASSPHRASE": PASSPHRASE,
           "PYTHONPATH": os.pathsep.join(sys.path)}
    rng, with_leftovers = random.Random(151), 0
    for trial in range(8):  # kills land before the new manifest (the merged segment left) and after (the old ones)
        folder, name = tmp_path / f"k{trial}", f"k{trial}"
        shutil.copytree(template, folder)
        add_replica(v.log.vault_id, name, str(folder))
        _killed_compaction(folder, name, env, rng.uniform(0, 0.03))
        listed = {s.name for s in parse((folder / "manifest.json").read_bytes(), "t").segments}
        left = sorted(p.name for p in folder.glob("*.seg") if p.name not in listed)
        r = cli_run("replica", "verify", name, "--blind", env=env)
        assert r.exit_code == 0, r.output
        assert ("interrupted compaction" in r.output) == bool(left), r.output
        copy = next(c for c in status(v.path).copies if c.name == name)
        assert all("events behind" in p for p in copy.problems), copy.problems  # the vault gains events below
        if trial % 2:
            with v.transaction() as tx:
                tx.create(Kind.NOTE, {"title": f"{SECRET} after kill {trial}"}, Source("cli"))
        r = cli_run("push", name, env=env)
        assert r.exit_code == 0, r.output
        listed = {s.name for s in parse((folder / "manifest.json").read_bytes(), "t").segments}
        assert {p.name for p in folder.glob("*.seg")} == listed
        assert verify_replica(target_for(str(folder)), name).events == v.log.head().seq
        with_leftovers += bool(left)
    assert with_leftovers, "no kill left an unlisted segment: the test proved nothing"
