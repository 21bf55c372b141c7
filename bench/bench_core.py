"""Core benchmark: append, replay, restore-at-T, reopen, RSS, bytes per event.

Each phase runs in its own process (so peak RSS is per phase) on the same
generated workload, beside a baseline measured in the same run: sqlite-utils
`insert_all` of the same records into a plain table in one transaction (no
encryption, no history).

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
    rss = _rss_mb()  # appending checks the record index only: the projection is not loaded
    t = time.perf_counter()
    vault.snapshot()  # builds the projection (a full replay) to seal it, for the reopen phase
    snap = time.perf_counter() - t
    vault.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    vault.close()
    size = sum(p.stat().st_size for p in d.glob("vault.db*"))
    return {"append_events_per_s": n / elapsed, "snapshot_s": snap, "append_peak_rss_mb": rss,
            "bytes_per_event": size / n}


def phase_replay(n: int, d: Path) -> dict:
    from vault import keyring, schema
    from vault.log import EventLog
    from vault.projection import Projection

    path = d / "vault.db"
    conn = schema.connect(path)
    log = EventLog(conn, path, keyring.unlock(conn, PASS))
    proj = Projection()
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    with proj.transaction():
        proj.apply(log.read(0, log.head().seq))  # as a vault replays: decrypted by a child process
    history = time.perf_counter() - t
    proj.refresh_live()  # a full replay is done once the live tables are built too
    elapsed = time.perf_counter() - t
    return {"replay_events_per_s": n / elapsed, "replay_live_tables_s": elapsed - history, "replay_peak_rss_mb": _rss_mb(),
            "replay_child_peak_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN)}


def phase_replay_state_file(n: int, d: Path) -> dict:
    """A full replay into an encrypted state file (`state_file=True`), then reopening it."""
    from vault import Vault, state_file

    state_file.remove(state_file.path_for(d / "vault.db"))
    vault = Vault.open(d / "vault.db", PASS, state_file=True)
    gc.collect()
    t = time.perf_counter()
    _ = vault.projection  # built in the file: a replay from event 1, live tables included
    elapsed = time.perf_counter() - t
    vault.close()
    t = time.perf_counter()
    with Vault.open(d / "vault.db", PASS, state_file=True) as vault:
        _ = vault.projection  # loaded from the state file
        reopen = time.perf_counter() - t
    return {"state_file_replay_events_per_s": n / elapsed, "state_file_replay_peak_rss_mb": _rss_mb(),
            "state_file_reopen_s": reopen}


def phase_read(n: int, d: Path) -> dict:
    """Decrypt, chain-check and decode every event, building nothing: in one process (the floor
    under a replay without the child), then as a replay receives them from its child."""
    from vault import keyring, schema
    from vault.log import EventLog

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
    _ = vault.projection  # loaded on first use: from the snapshot, then the events after it
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
        for fn in (phase_read, phase_replay, phase_reopen, phase_replay_state_file):
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
    print(f"full replay:                  {r['replay_events_per_s']:>10,.0f} events/s"
          f"  (of which building the live tables: {r['replay_live_tables_s']:.2f} s)")
    print(f"  reading alone (decrypt, chain check, decode): {r['read_only_events_per_s']:,.0f} events/s in one process, "
          f"{r['read_via_child_events_per_s']:,.0f} events/s received from the child")
    print(f"replay into a state file:     {r['state_file_replay_events_per_s']:>10,.0f} events/s"
          f"  (peak RSS {r['state_file_replay_peak_rss_mb']:.0f} MB; reopening it: {r['state_file_reopen_s']:.3f} s)")
    print(f"state at T (median of 20):    {r['restore_at_median_s']:>10.3f} s")
    print(f"reopen with snapshot:         {r['reopen_s']:>10.3f} s   (writing the snapshot after appending, "
          f"live tables included, took {r['snapshot_s']:.2f} s)")
    print(f"peak RSS append / replay / reopen: {r['append_peak_rss_mb']:.0f} / {r['replay_peak_rss_mb']:.0f} / {r['reopen_peak_rss_mb']:.0f} MB"
          f"  (replay's child: {r['replay_child_peak_rss_mb']:.0f} MB)")
    print(f"bytes on disk per event:      {r['bytes_per_event']:>10.0f}")
    print(f"(generating the workload, included in append and baseline: {r['workload_us_per_event']:.1f} us/event)")


if __name__ == "__main__":
    main()
