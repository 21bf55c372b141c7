"""API benchmark, in process (httpx through Starlette's TestClient, no network): medians of repetitions.

    python bench/bench_api.py              # batch of 1000 creates, single create, single read, a changes page
    python bench/bench_api.py --ops 5000 --reps 7

Baseline in the same run: the same 1000 creates straight through `Vault.transaction()` with one append,
so the figure shows what HTTP, validation and the batch bookkeeping add.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

from vault import Kind, Source, Vault
from vault.domain.events import Event, EventType, new_record_id
from vault.store import tokens
from vault.web.api.routes import VaultHolder, create_api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def timed(fn: Callable[[int], object], reps: int) -> float:
    """Median seconds of `reps` calls, the collector settled before each."""
    times = []
    for i in range(reps):
        gc.collect()
        gc.freeze()
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
        gc.unfreeze()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=1000, help="operations per batch")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    vault, _ = Vault.create(folder / "v.db", "bench passphrase", kdf_cost="min")
    h = {"Authorization": "Bearer " + tokens.create_token(vault.log, "bench")}

    def fields(j: int) -> dict:
        return {"title": f"note {j}", "body": "x" * 200}

    def baseline(i: int) -> None:
        with vault.transaction() as tx:
            tx.append([Event(EventType.CREATED, Kind.NOTE, new_record_id(Kind.NOTE), fields(j), Source("api", name="b"))
                       for j in range(args.ops)])

    with TestClient(create_api(VaultHolder(vault))) as client:
        def batch(i: int) -> None:
            ops = [{"op": "create", "kind": "note", "fields": fields(j)} for j in range(args.ops)]
            r = client.post("/batch", json={"batch_id": f"bench-{i}", "operations": ops}, headers=h)
            assert r.status_code == 200, r.text

        base = timed(baseline, args.reps)
        bat = timed(batch, args.reps)
        one = timed(lambda i: client.post("/notes", json=fields(i), headers=h), args.reps * 10)
        rid = client.post("/notes", json=fields(0), headers=h).json()["id"]
        get = timed(lambda i: client.get(f"/notes/{rid}", headers=h), args.reps * 10)
        feed = timed(lambda i: client.get("/changes", params={"since": 0, "limit": 1000}, headers=h), args.reps)
    vault.close()
    shutil.rmtree(folder)
    print(f"batch of {args.ops} creates via POST /batch: {bat * 1000:.0f} ms "
          f"(baseline, one Vault.transaction append: {base * 1000:.0f} ms; ratio {bat / base:.1f}x)")
    print(f"POST /notes: {one * 1000:.1f} ms   GET /notes/{{id}}: {get * 1000:.1f} ms   "
          f"GET /changes (1000 events): {feed * 1000:.0f} ms")


if __name__ == "__main__":
    main()
