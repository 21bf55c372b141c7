"""Durability: a writer killed with SIGKILL loses nothing it reported; two writers at once lose nothing.

The writer is a real process (tests/helpers/appender.py) appending many small
transactions to a real vault file and printing each event only after its
transaction committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vault import Kind, Vault
from vault.cli import cli
from vault.store.verify import check_log, verify_blind

from conftest import PASSPHRASE

APPENDER = Path(__file__).parent.parent / "helpers" / "appender.py"


def start(path: Path, tag: str, transactions: int, per_tx: int) -> subprocess.Popen:
    env = {**os.environ, "LIFEVAULT_PASSPHRASE": PASSPHRASE, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(APPENDER), str(path), tag, str(transactions), str(per_tx)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def go(*procs: subprocess.Popen) -> None:
    """Wait until every appender has opened the vault, then let them all start."""
    for proc in procs:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line == "ready\n", f"{line!r} {proc.stderr.read() if proc.stderr and not line else ''}"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.close()


def parse(lines: list[str]) -> dict[int, str]:
    return {int(s): rid for s, rid in (line.split() for line in lines)}


def assert_verifies(path: Path) -> int:
    r = CliRunner().invoke(cli, ["verify", "--vault", str(path)], env={"LIFEVAULT_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 0, r.output
    assert verify_blind(path).events >= 0
    with Vault.open(path, PASSPHRASE) as v:
        return check_log(v.log, blind=False).events


def test_sigkill_mid_batch_keeps_every_reported_event(created: tuple[Path, str]) -> None:
    path = created[0]
    proc = start(path, "killed", transactions=100_000, per_tx=4)
    reported: list[str] = []
    go(proc)
    try:
        assert proc.stdout is not None
        while len(reported) < 120:
            line = proc.stdout.readline()
            assert line, f"the appender stopped early: {proc.stderr.read() if proc.stderr else ''}"
            reported.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # lines it printed between our last read and the kill were reported too
        reported += proc.stdout.read().splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    events = parse([line for line in reported if line.strip()])

    total = assert_verifies(path)
    assert total >= max(events)
    assert sorted(events) == list(range(1, max(events) + 1)), "reported seqs are contiguous from 1"
    with Vault.open(path, PASSPHRASE) as v:
        for seq, rid in events.items():
            assert v.log.event(seq).event.record_id == rid
            assert v.get(rid)["tag"] == "killed"
        # all or nothing: every transaction that reached the file is complete (4 creates each)
        batches: dict[str, set[str]] = {}
        for _, fields in v.projection.state(Kind.NOTE):
            i, j = fields["title"].split("-")[1:]
            batches.setdefault(i, set()).add(j)
        assert batches and all(js == {"0", "1", "2", "3"} for js in batches.values()), batches
        # unreported but committed: the rest of the transaction being reported, and at most one more
        assert 0 <= total - max(events) < 10
        # the vault still takes appends after the crash
        v.add(Kind.NOTE, {"title": "after the crash"}, v.log.event(1).event.source)
    assert assert_verifies(path) == total + 1


def test_two_processes_appending_at_once_lose_nothing(created: tuple[Path, str]) -> None:
    path = created[0]
    transactions, per_tx = 120, 2
    procs = {tag: start(path, tag, transactions, per_tx) for tag in ("left", "right")}
    go(*procs.values())
    outputs = {}
    for tag, proc in procs.items():
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=300)
        assert proc.returncode == 0, f"{tag} failed: {err}"
        outputs[tag] = parse(out.splitlines())

    per_writer = transactions * per_tx + transactions // 3  # creates plus every third transaction's edit
    assert {tag: len(ev) for tag, ev in outputs.items()} == {"left": per_writer, "right": per_writer}
    both = {**outputs["left"], **outputs["right"]}
    assert len(both) == 2 * per_writer, "the two writers reported the same seq"
    assert sorted(both) == list(range(1, 2 * per_writer + 1)), "seqs are contiguous"
    assert assert_verifies(path) == 2 * per_writer

    # Whether their transactions interleave is up to SQLite's busy handler (a writer that just committed
    # often wins the lock again), so it is not asserted; both started together and both had to finish.

    with Vault.open(path, PASSPHRASE) as v:
        for tag in ("left", "right"):
            titles = {f["title"] for rid, f in v.projection.state(Kind.NOTE) if f["tag"] == tag}
            assert titles == {f"{tag}-{i}-{j}" for i in range(transactions) for j in range(per_tx)}
        for seq, rid in both.items():
            assert v.log.event(seq).event.record_id == rid


def test_a_failed_transaction_leaves_nothing_behind(vault: Vault) -> None:
    """An error inside `vault.transaction()` rolls back log, blobs and projection together."""
    from vault import Source
    from vault.errors import NotFound

    src = Source("cli")
    a = vault.add(Kind.NOTE, {"t": 1}, src, allow_extra=True)
    with pytest.raises(RuntimeError):
        with vault.transaction() as tx:
            b = tx.create(Kind.NOTE, {"t": 2}, src, allow_extra=True)
            tx.update(a, {"t": 3}, src, allow_extra=True)
            tx.put_blob(b"an attachment")
            raise RuntimeError("the caller fails half way")
    with pytest.raises(NotFound):
        with vault.transaction() as tx:
            tx.create(Kind.NOTE, {"t": 4}, src, allow_extra=True)
            tx.update("n_doesnotexist", {"x": 1}, src, allow_extra=True)
    assert vault.log.head().seq == vault.projection.seq == 1
    assert vault.get(a) == {"t": 1}
    with pytest.raises(NotFound):
        vault.get(b)
    assert vault.conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
    assert [f for _, f in vault.projection.state(Kind.NOTE)] == [{"t": 1}]
    assert vault.stats()["notes"] == 1
    vault.add(Kind.NOTE, {"t": 5}, src, allow_extra=True)
    assert check_log(vault.log, blind=False).events == 2
