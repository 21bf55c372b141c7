"""Replica benchmark: push to an empty local folder, an incremental push, an up-to-date push, blind verify, clone.

Builds an N-event vault from the shared workload (not timed; a replica gets
the first 99% on the way), then times a push of the last 1% to it, and, as
medians of --reps repetitions, each into a fresh folder: a full push, a push
with nothing new (a new process re-hashes every segment of a folder to repair any damage; the same process,
as `serve`, only what changed since), a blind
verification, and a clone (which rebuilds the vault file and verifies every
tag). Baseline in the same run: copying the
vault file with fsync (the least any backup of it costs).

    python bench/bench_replica.py              # 100,000 events
    python bench/bench_replica.py --n 1000000 --json
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402

PASS = "bench passphrase"
BATCH = 1000


def build(path: Path, n: int) -> int:
    """An n-event vault; replica "inc" gets the first 99% (untimed), so a later push to it is incremental."""
    from vault import Vault
    from vault.replica import add_replica, push

    extra = max(n // 100, 1)
    vault, _ = Vault.create(path, PASS, "min")
    add_replica(vault.log.vault_id, "inc", str(path.parent / "inc"))
    events = workload.events(n)
    for part in (itertools.islice(events, n - extra), events):
        for batch in workload.batches(part, BATCH):
            with vault.transaction() as tx:
                tx.append(batch)
        if vault.log.head().seq == n - extra:
            push(vault.log, "inc")
    vault.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    vault.close()
    return extra


def _timed(fn) -> float:
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    try:
        fn()
    finally:
        gc.unfreeze()
    return time.perf_counter() - t


def _copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def run(n: int, reps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-replica-") as tmp:
        d = Path(tmp)
        os.environ["LIFEVAULT_HOME"] = str(d / "home")
        from vault import keyring, schema
        from vault.log import EventLog
        from vault.replica import add_replica, clone, push, verify

        path = d / "vault.db"
        extra = build(path, n)
        conn = schema.connect(path)
        log = EventLog(conn, path, keyring.unlock(conn, PASS))
        vault_mb = path.stat().st_size / 1e6
        out: dict = {"n": n, "reps": reps, "vault_mb": vault_mb}
        from vault.replica import repair

        push_s, same_s, cached_s, clone_s, verify_s, copy_s, sizes = [], [], [], [], [], [], []
        inc_s = _timed(lambda: push(log, "inc"))  # the last 1% of the events, to a replica holding the rest
        for i in range(reps):
            add_replica(log.vault_id, f"r{i}", str(d / f"r{i}"))
            push_s.append(_timed(partial(push, log, f"r{i}")))
            sizes.append(sum(p.stat().st_size for p in (d / f"r{i}").iterdir()))
            repair._intact.clear()  # as a new `lifevault push` process: every segment re-hashed
            same_s.append(_timed(partial(push, log, f"r{i}")))
            cached_s.append(_timed(partial(push, log, f"r{i}")))  # as `serve` pushing again: nothing re-read
            verify_s.append(_timed(partial(verify, path, f"r{i}")))
            clone_s.append(_timed(partial(clone, str(d / f"r{i}"), d / f"clone{i}.db", PASS)))
            (d / f"clone{i}.db").unlink()
            copy_s.append(_timed(lambda: _copy_file(path, d / "copy.db")))
            (d / "copy.db").unlink()
            shutil.rmtree(d / f"r{i}")
        conn.close()
        replica_mb = statistics.median(sizes) / 1e6
        p, c, v, cp = (statistics.median(x) for x in (push_s, clone_s, verify_s, copy_s))
        out.update({
            "replica_mb": replica_mb,
            "push_s": p, "push_events_per_s": n / p, "push_mb_per_s": replica_mb / p,
            "incremental_push_s": inc_s, "incremental_events": extra,
            "uptodate_push_s": statistics.median(same_s), "uptodate_push_mb_per_s": replica_mb / statistics.median(same_s),
            "uptodate_push_again_s": statistics.median(cached_s),
            "verify_blind_s": v, "verify_blind_events_per_s": n / v,
            "clone_s": c, "clone_events_per_s": n / c, "clone_mb_per_s": replica_mb / c,
            "baseline_file_copy_s": cp, "baseline_file_copy_mb_per_s": vault_mb / cp,
            "push_vs_file_copy": cp / p,
        })
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="events in the vault (default 100,000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    r = run(args.n, args.reps)
    if args.json:
        print(json.dumps(r))
        return
    print(f"events: {r['n']:,}  vault file {r['vault_mb']:.1f} MB  replica {r['replica_mb']:.1f} MB  (medians of {r['reps']})")
    print(f"push to an empty folder: {r['push_s']:7.2f} s  {r['push_events_per_s']:>10,.0f} events/s  {r['push_mb_per_s']:6.1f} MB/s"
          f"  ({r['push_vs_file_copy']:.2f} x the speed of copying the vault file, {r['baseline_file_copy_mb_per_s']:.0f} MB/s)")
    print(f"incremental push of {r['incremental_events']:,} new events: {r['incremental_push_s']:.2f} s")
    print(f"push with nothing new:   {r['uptodate_push_s']:7.2f} s  (re-hashes the folder's segments at "
          f"{r['uptodate_push_mb_per_s']:.0f} MB/s); again in the same process: {r['uptodate_push_again_s']:.3f} s")
    print(f"blind verify:            {r['verify_blind_s']:7.2f} s  {r['verify_blind_events_per_s']:>10,.0f} events/s")
    print(f"clone (+ full verify):   {r['clone_s']:7.2f} s  {r['clone_events_per_s']:>10,.0f} events/s  {r['clone_mb_per_s']:6.1f} MB/s")


if __name__ == "__main__":
    main()
