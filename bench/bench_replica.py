"""Replica benchmark: push, incremental push, compaction and clone beside the raw copy floor, to a folder and WebDAV.

Builds an N-event vault from the shared workload (not timed; a replica gets
the first 99% on the way), then times a push of the last 1% to it, and, as
medians of --reps repetitions, each into a fresh folder: a full push, a push
with nothing new (a new process re-hashes every segment of a folder to repair any damage; the same process,
as `serve`, only what changed since), a blind
verification, and a clone (which rebuilds the vault file and verifies every
tag). Baselines in the same run: copying the
vault file with fsync, and the copy floor of the replica's own bytes: `cp -r`
of the pushed folder (then sync) and `rclone copy` of it to `rclone serve
webdav` on loopback, beside a full push and a clone over that same WebDAV.
Compaction: the same rows pushed as 1,000 small segments, then merged.
Beside the floor, what a push cannot skip, each alone: one BLAKE2b pass over
the same bytes (a push makes one, checking the chain; a segment's digest covers
only its framing), reading the rows from the vault file into Python, and
framing them into segments. Their sum is the nearest a push on one core can
come to the `cp` floor.

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


def _cp_floor(src: Path, dst: Path) -> None:
    import subprocess

    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    subprocess.run(["sync", "-f", str(dst)], check=True)


def _webdav(root: Path):
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["rclone", "serve", "webdav", str(root), "--addr", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(RCLONE_CONFIG_LVBENCH_TYPE="webdav", RCLONE_CONFIG_LVBENCH_URL=f"http://127.0.0.1:{port}",
                      RCLONE_CONFIG=str(root.parent / "no-rclone.conf"))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc


def _floors_and_compaction(log, d: Path, reps: int, n: int) -> dict:
    """Folder push vs `cp -r` of its bytes, WebDAV push and clone vs `rclone copy` of them, and compaction."""
    import subprocess

    from vault.replica import add_replica, clone, compact, push
    from vault.replica.segments import cut_events, digest

    out: dict = {}
    cp_s, hash_s, read_s, frame_s, fpush_s, dpush_s, rc_s, dclone_s = [], [], [], [], [], [], [], []
    rows: list = []
    server = _webdav(d / "dav") if shutil.which("rclone") else None
    try:
        for i in range(reps):
            add_replica(log.vault_id, f"f{i}", str(d / f"f{i}"))
            fpush_s.append(_timed(partial(push, log, f"f{i}")))
            cp_s.append(_timed(partial(_cp_floor, d / f"f{i}", d / f"cp{i}")))
            shutil.rmtree(d / f"cp{i}")
            files = [p.read_bytes() for p in (d / f"f{i}").iterdir() if p.suffix == ".seg"]
            hash_s.append(_timed(partial(list, map(digest, files))))  # a push hashes every byte once
            read_s.append(_timed(lambda: rows.extend(log.conn.execute(
                "SELECT seq, hash, payload FROM events ORDER BY seq").fetchall())))
            frame_s.append(_timed(partial(list, cut_events([rows]))))
            rows.clear()
            if server is not None:
                add_replica(log.vault_id, f"w{i}", f"lvbench:w{i}", check=False)
                dpush_s.append(_timed(partial(push, log, f"w{i}")))
                rc_s.append(_timed(partial(subprocess.run, ["rclone", "copy", str(d / f"f{i}"), f"lvbench:rc{i}"],
                                           check=True, capture_output=True)))
                dclone_s.append(_timed(partial(clone, f"lvbench:w{i}", d / f"dclone{i}.db", PASS)))
                (d / f"dclone{i}.db").unlink()
            shutil.rmtree(d / f"f{i}")
        os.environ["LIFEVAULT_SEGMENT_EVENTS"] = str(max(n // 1000, 1))  # 1,000 small segments
        os.environ["LIFEVAULT_COMPACT_SEGMENTS"] = "0"
        compact_s = []
        for i in range(reps):
            add_replica(log.vault_id, f"c{i}", str(d / f"c{i}"))
            push(log, f"c{i}")
            compact_s.append(_timed(partial(compact, log.vault_id, log.keys.verify_key, f"c{i}", log.keys)))
            shutil.rmtree(d / f"c{i}")
    finally:
        os.environ.pop("LIFEVAULT_SEGMENT_EVENTS", None)
        if server is not None:
            server.terminate()
            server.wait(10)
    med = statistics.median
    out.update({"folder_push_s": med(fpush_s), "cp_floor_s": med(cp_s), "folder_push_vs_cp": med(fpush_s) / med(cp_s),
                "hash_pass_s": med(hash_s), "hash_pass_vs_cp": med(hash_s) / med(cp_s),
                "read_rows_s": med(read_s), "frame_rows_s": med(frame_s),
                "read_hash_frame_vs_cp": (med(read_s) + med(hash_s) + med(frame_s)) / med(cp_s),
                "compact_1000_segments_s": med(compact_s)})
    if dpush_s:
        out.update({"webdav_push_s": med(dpush_s), "rclone_copy_floor_s": med(rc_s), "webdav_clone_s": med(dclone_s),
                    "webdav_push_vs_rclone_copy": med(dpush_s) / med(rc_s)})
    return out


def run(n: int, reps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-replica-") as tmp:
        d = Path(tmp)
        os.environ["LIFEVAULT_HOME"] = str(d / "home")
        from vault.store import keyring, schema
        from vault.store.log import EventLog
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
        out.update(_floors_and_compaction(log, d, reps, n))
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
    load_before = os.getloadavg()[0]
    r = run(args.n, args.reps)
    r["load"] = (load_before, os.getloadavg()[0])  # other processes change every figure here 2-3x: ratios hold better
    if args.json:
        print(json.dumps(r))
        return
    print(f"events: {r['n']:,}  vault file {r['vault_mb']:.1f} MB  replica {r['replica_mb']:.1f} MB  (medians of {r['reps']}; "
          f"load {r['load'][0]:.1f} before, {r['load'][1]:.1f} after)")
    print(f"push to an empty folder: {r['push_s']:7.2f} s  {r['push_events_per_s']:>10,.0f} events/s  {r['push_mb_per_s']:6.1f} MB/s"
          f"  ({r['push_vs_file_copy']:.2f} x the speed of copying the vault file, {r['baseline_file_copy_mb_per_s']:.0f} MB/s)")
    print(f"incremental push of {r['incremental_events']:,} new events: {r['incremental_push_s']:.2f} s")
    print(f"push with nothing new:   {r['uptodate_push_s']:7.2f} s  (re-hashes the folder's segments at "
          f"{r['uptodate_push_mb_per_s']:.0f} MB/s); again in the same process: {r['uptodate_push_again_s']:.3f} s")
    print(f"blind verify:            {r['verify_blind_s']:7.2f} s  {r['verify_blind_events_per_s']:>10,.0f} events/s")
    print(f"clone (+ full verify):   {r['clone_s']:7.2f} s  {r['clone_events_per_s']:>10,.0f} events/s  {r['clone_mb_per_s']:6.1f} MB/s")
    print(f"full push to a folder:   {r['folder_push_s']:7.2f} s  vs `cp -r` of its bytes {r['cp_floor_s']:.2f} s: "
          f"{r['folder_push_vs_cp']:.2f} x the floor")
    print(f"one BLAKE2b pass over those bytes: {r['hash_pass_s']:.2f} s, {r['hash_pass_vs_cp']:.2f} x the `cp -r` floor "
          "(a push makes one: the chain check)")
    print(f"reading the rows into Python {r['read_rows_s']:.2f} s, framing them {r['frame_rows_s']:.2f} s: with the "
          f"hash pass, {r['read_hash_frame_vs_cp']:.2f} x the `cp -r` floor before a byte is written")
    if "webdav_push_s" in r:
        print(f"full push to WebDAV:     {r['webdav_push_s']:7.2f} s  vs `rclone copy` of the same bytes "
              f"{r['rclone_copy_floor_s']:.2f} s: {r['webdav_push_vs_rclone_copy']:.2f} x the floor; clone from it "
              f"{r['webdav_clone_s']:.2f} s")
    print(f"compaction of 1,000 small segments: {r['compact_1000_segments_s']:.2f} s")


if __name__ == "__main__":
    main()
