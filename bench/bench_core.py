"""Core benchmark: append, rebuild of the state file, restore-at-T, reopen, RSS, bytes per event.

Each phase runs in its own process (so peak RSS is per phase) on the same
generated workload, beside baselines measured in the same run: sqlite-utils
`insert_all` of the same records into a plain table in one transaction (no
encryption, no history) for appends, and for the rebuild a plain reference
replay (the same events read the same way, one row each into unencrypted
SQLite tables, indexed after) and reading alone.

    python bench/bench_core.py            # 100,000 events, baseline and append 3 times each
    python bench/bench_core.py --n 1000000 --reps 1 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402

PASS = "bench passphrase"
BATCH = 1000


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def phase_generate(n: int, d: Path) -> dict:
    """How long making the workload takes: both append and the baseline include it."""
    t = time.perf_counter()
    for _ in workload.events(n):
        pass
    return {"workload_us_per_event": (time.perf_counter() - t) / n * 1e6}


def phase_baseline(n: int, d: Path) -> dict:
    import sqlite_utils

    db = sqlite_utils.Database(d / "baseline.db")
    gc.collect()
    gc.freeze()
    t = time.perf_counter()  # generating the rows is timed too, as it is for append
    with db.conn:
        db["records"].insert_all(workload.record_rows(n), batch_size=BATCH)
    return {"baseline_insert_rows_per_s": n / (time.perf_counter() - t)}


def phase_append(n: int, d: Path) -> dict:
    from vault import Vault

    vault, _ = Vault.create(d / "vault.db", PASS, "min")
    gc.collect()
    gc.freeze()
    t = time.perf_counter()  # events are generated as they are appended, as an import would read them
    for batch in workload.batches(workload.events(n), BATCH):
        with vault.transaction() as tx:
            tx.append(batch)
    elapsed = time.perf_counter() - t
    rss = _rss_mb()  # appends go to the log and the state file; memory is bounded by their page caches
    vault.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    vault.projection.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    vault.close()
    size = sum(p.stat().st_size for p in (d / "vault.db", d / "vault.db-wal") if p.exists())
    state = sum(p.stat().st_size for p in d.glob("vault.db.state*"))
    return {"append_events_per_s": n / elapsed, "append_peak_rss_mb": rss,
            "bytes_per_event": size / n, "state_bytes_per_event": state / n}


def reference_replay(log, out: Path) -> float:
    """Events/s of a plain replay of `log` into unencrypted SQLite tables: the same decrypting read, one
    row per event (record id, seq, type, changes as JSON) in one transaction, its index built after.
    What a state file rebuild is measured against (issue 10)."""
    import sqlite3

    from vault.store.codec import fields_json

    out.unlink(missing_ok=True)
    conn = sqlite3.connect(out, isolation_level=None)
    conn.execute("CREATE TABLE versions (id TEXT, seq INTEGER, type TEXT, data TEXT)")
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO versions VALUES (?, ?, ?, ?)",
                     ((r.event.record_id, r.seq, r.event.type.value, fields_json(r.event.changes))
                      for r in log.read(0, log.head().seq)))
    conn.execute("CREATE INDEX versions_id ON versions (id, seq)")
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    gc.unfreeze()
    n = conn.execute("SELECT count(*) FROM versions").fetchone()[0]
    conn.close()
    out.unlink()
    return n / elapsed


def phase_reference(n: int, d: Path) -> dict:
    from vault.store import keyring, schema
    from vault.store.log import EventLog

    path = d / "vault.db"
    conn = schema.connect(path)
    return {"reference_replay_events_per_s": reference_replay(EventLog(conn, path, keyring.unlock(conn, PASS)),
                                                              d / "reference.db")}


def phase_replay(n: int, d: Path) -> dict:
    """A full rebuild of the encrypted state file (deleted first), then reopening it."""
    from vault import Vault
    from vault.state import file as state_file

    state_file.remove(state_file.path_for(d / "vault.db"))
    vault = Vault.open(d / "vault.db", PASS)
    gc.collect()
    t = time.perf_counter()
    _ = vault.projection  # built in the file: a replay from event 1, live tables and search included
    elapsed = time.perf_counter() - t
    vault.close()
    return {"replay_events_per_s": n / elapsed, "replay_peak_rss_mb": _rss_mb(),
            "replay_child_peak_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN)}


def phase_read(n: int, d: Path) -> dict:
    """Decrypt, chain-check and decode every event, building nothing: in one process (the floor
    under a replay without the child), then as a replay receives them from its child."""
    from vault.store import keyring, schema
    from vault.store.log import EventLog

    path = d / "vault.db"
    conn = schema.connect(path)
    log = EventLog(conn, path, keyring.unlock(conn, PASS))
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    here = sum(1 for _ in log.read_here(0, n)) / (time.perf_counter() - t)
    t = time.perf_counter()
    via_child = sum(1 for _ in log.read(0, n)) / (time.perf_counter() - t)
    return {"read_only_events_per_s": here, "read_via_child_events_per_s": via_child}


def phase_reopen(n: int, d: Path) -> dict:
    from vault import Instant, Kind, Vault

    gc.collect()
    t = time.perf_counter()
    vault = Vault.open(d / "vault.db", PASS)
    _ = vault.projection  # the state file, opened and checked against the log
    reopen = time.perf_counter() - t
    first, last = vault.log.recorded_at(1), vault.log.recorded_at(n)
    rng = random.Random(7)
    times = []
    for _ in range(20):
        at = Instant(us=rng.randint(first, last))
        gc.collect()
        t = time.perf_counter()
        seq = vault.seq_for(at)
        for kind in Kind:
            for _ in vault.projection.state(kind, seq):
                pass
        times.append(time.perf_counter() - t)
    vault.close()
    return {"reopen_s": reopen, "restore_at_median_s": statistics.median(times), "reopen_peak_rss_mb": _rss_mb()}


def _run(fn, n: int, d: Path, q) -> None:
    q.put(fn(n, d))


def _phase(fn, n: int, d: Path) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run, args=(fn, n, d, q))
    p.start()
    result = q.get()
    p.join()
    return result


def run(n: int, reps: int = 1) -> dict:
    """Every phase in its own process; baseline and append alternate `reps` times (medians reported)."""
    out: dict = {"n": n, **_phase(phase_generate, n, Path("."))}
    ratios, appends, baselines = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            d = Path(tmp) / str(rep)
            d.mkdir()
            baselines.append(_phase(phase_baseline, n, d)["baseline_insert_rows_per_s"])
            appends.append(_phase(phase_append, n, d))
            ratios.append(appends[-1]["append_events_per_s"] / baselines[-1])
            if rep < reps - 1:
                shutil.rmtree(d)
        out.update(appends[ratios.index(statistics.median_low(ratios))])
        out["baseline_insert_rows_per_s"] = statistics.median(baselines)
        out["append_vs_baseline"] = statistics.median(ratios)
        out["append_vs_baseline_runs"] = ratios
        for fn in (phase_read, phase_reference, phase_replay, phase_reopen):
            out.update(_phase(fn, n, d))
    out["peak_rss_mb"] = max(out["append_peak_rss_mb"], out["replay_peak_rss_mb"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="events to generate (default 100,000)")
    ap.add_argument("--reps", type=int, default=3, help="baseline/append repetitions (default 3; medians)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    r = run(args.n, args.reps)
    if args.json:
        print(json.dumps(r))
        return
    print(f"events: {r['n']:,}")
    print(f"append (batches of {BATCH}, durable): {r['append_events_per_s']:>10,.0f} events/s"
          f"  = {r['append_vs_baseline']:.2f} x baseline sqlite-utils insert_all {r['baseline_insert_rows_per_s']:,.0f} rows/s"
          f"  (ratio per run: {', '.join(f'{x:.2f}' for x in r['append_vs_baseline_runs'])})")
    print(f"rebuild of the state file:    {r['replay_events_per_s']:>10,.0f} events/s"
          f"  = {r['replay_events_per_s'] / r['reference_replay_events_per_s']:.2f} x a plain reference replay "
          f"({r['reference_replay_events_per_s']:,.0f} events/s)")
    print(f"  reading alone (decrypt, chain check, decode): {r['read_only_events_per_s']:,.0f} events/s in one process, "
          f"{r['read_via_child_events_per_s']:,.0f} events/s received from the child")
    print(f"state at T (median of 20):    {r['restore_at_median_s']:>10.3f} s")
    print(f"reopen (state file checked):  {r['reopen_s']:>10.3f} s")
    print(f"peak RSS append / replay / reopen: {r['append_peak_rss_mb']:.0f} / {r['replay_peak_rss_mb']:.0f} / {r['reopen_peak_rss_mb']:.0f} MB"
          f"  (replay's child: {r['replay_child_peak_rss_mb']:.0f} MB)")
    print(f"bytes on disk per event:      {r['bytes_per_event']:>10.0f}   (state file: {r['state_bytes_per_event']:.0f})")
    print(f"(generating the workload, included in append and baseline: {r['workload_us_per_event']:.1f} us/event)")


if __name__ == "__main__":
    main()
