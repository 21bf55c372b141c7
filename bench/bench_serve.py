"""Serving benchmark: cold start of `lifevault serve`, and page latency under 20 concurrent clients.

For each size, a vault of generated events (bench/workload.py) is built once
(kept with --keep DIR), then `lifevault serve` is started as a real process on a
free loopback port: cold start is the time from spawn to the first 200 of a
table page (median of --starts runs); search readiness is when the background
full-text index is complete. How long a CLI `add` takes to show on a page is
measured idle and while a past state is being built. Then 20 client threads each make a bounded number
of requests to a table page, a full-text search, and an "as of" page (the past
state is built once first; that build is reported separately). /api/health is
the baseline measured in the same run. Loopback only.

    python bench/bench_serve.py                       # 100,000 events
    python bench/bench_serve.py --sizes 100000,1000000 --keep /var/tmp/lv-bench --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402

PASS = "bench passphrase"
CLIENTS = 20
BATCH = 1000


def build(path: Path, n: int) -> float:
    """Create a vault of n events (unless it exists); returns seconds spent."""
    from vault import Vault

    if path.exists():
        return 0.0
    t = time.perf_counter()
    tmp = path.with_name(path.name + ".building")
    for p in tmp.parent.glob(tmp.name + "*"):
        p.unlink()
    vault, _ = Vault.create(tmp, PASS, kdf_cost="min")
    batch = []
    for e in workload.events(n):
        batch.append(e)
        if len(batch) == BATCH:
            with vault.transaction() as tx:
                tx.append(batch)
            batch = []
    if batch:
        with vault.transaction() as tx:
            tx.append(batch)
    _ = vault.projection  # the state file, as a closing server or CLI leaves it
    vault.close()
    os.rename(tmp, path)
    return time.perf_counter() - t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, path: Path, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, LIFEVAULT_PASSPHRASE=PASS, LIFEVAULT_HOME=str(home), LIFEVAULT_PATH=str(path))
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-c", "from vault.cli import cli; cli()", "serve",
                                      "--port", str(self.port)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def wait(self, path: str, ok=lambda r: r.status_code == 200, limit: float = 600) -> float:
        """Seconds from spawn until `path` answers to `ok`."""
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                if ok(httpx.get(self.url + path, timeout=60)):
                    return time.perf_counter() - self.t0
            except httpx.TransportError:
                pass
            if time.perf_counter() - self.t0 > limit:
                raise SystemExit(f"{path} not ready after {limit} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def load(url: str, paths: list[str], per_client: int) -> dict:
    """20 threads, each making `per_client` requests cycling through `paths`; p50/p95 in ms."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=900) as c:
            for i in range(per_client):
                p = paths[(k + i) % len(paths)]
                t = time.perf_counter()
                r = c.get(p)
                dt = time.perf_counter() - t
                with lock:
                    times.append(dt)
                    if r.status_code != 200:
                        errors.append(f"{p}: {r.status_code}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    times.sort()
    return {"p50_ms": 1000 * times[len(times) // 2], "p95_ms": 1000 * times[int(len(times) * 0.95)],
            "requests": len(times), "req_per_s": len(times) / wall, "errors": len(errors)}


def change_visible(s: Server, path: Path, home: Path, tag: str) -> float:
    """Seconds from a CLI `add` committing (its process has exited) until the new note is on a table page."""
    env = dict(os.environ, LIFEVAULT_PASSPHRASE=PASS, LIFEVAULT_HOME=str(home), LIFEVAULT_PATH=str(path))
    subprocess.run([sys.executable, "-c", "from vault.cli import cli; cli()", "add", "note", "--json",
                    json.dumps({"title": tag})], env=env, check=True, capture_output=True)
    t = time.perf_counter()
    while tag not in httpx.get(f"{s.url}/vault/notes.json?title__exact={tag}", timeout=600).text:
        time.sleep(0.05)
    return time.perf_counter() - t


def change_visible_during_build(s: Server, path: Path, home: Path, past: int) -> float:
    """`change_visible` while the server builds the state after event `past` (which holds its lock in turns)."""
    build = threading.Thread(target=httpx.get, args=(f"{s.url}/-/as-of?at=seq:{past}&next=/vault/notes",),
                             kwargs={"timeout": 600})
    build.start()
    time.sleep(0.2)
    try:
        return change_visible(s, path, home, f"bench-during-build-{past}")
    finally:
        build.join()


def phases(path: Path) -> dict:
    """Where a cold start goes, measured in this (fresh) process: imports, unlock, publish, site, first page."""
    t0 = time.perf_counter()
    from starlette.testclient import TestClient

    from vault import Vault
    from vault.web import LiveVault
    from vault.web.site.server import create_app

    out = {"import_s": time.perf_counter() - t0}
    t = time.perf_counter()
    vault = Vault.open(path, PASS)
    out["vault_open_s"] = time.perf_counter() - t
    t = time.perf_counter()
    live = LiveVault(vault)
    out["live_vault_s"] = time.perf_counter() - t
    t = time.perf_counter()
    site = create_app(live)
    out["create_app_s"] = time.perf_counter() - t
    t = time.perf_counter()
    assert TestClient(site).get("/vault/messages").status_code == 200
    out["first_table_page_s"] = time.perf_counter() - t
    out["total_s"] = time.perf_counter() - t0
    return out


def run(n: int, keep: Path, starts: int, per_client: int) -> dict:
    path = keep / f"serve-{n}.db"
    out: dict = {"n": n, "build_s": build(path, n)}
    child = subprocess.run([sys.executable, __file__, "--phases", str(path)], capture_output=True, text=True, check=True)
    out["phases"] = json.loads(child.stdout)
    home = keep / "home"
    home.mkdir(exist_ok=True)
    colds, search_ready = [], []
    for _ in range(starts):
        s = Server(path, home)
        try:
            colds.append(s.wait("/vault/messages"))
            search_ready.append(s.wait("/-/search?q=garden", lambda r: r.status_code == 200))
        finally:
            s.stop()
    out["cold_start_s"] = statistics.median(colds)
    out["cold_start_runs_s"] = colds
    out["search_ready_s"] = statistics.median(search_ready)
    s = Server(path, home)
    try:
        s.wait("/vault/messages")
        s.wait("/-/search?q=garden")
        past = n // 2
        t = time.perf_counter()
        r = httpx.get(f"{s.url}/-/as-of?at=seq:{past}&next=/vault/messages", timeout=600, follow_redirects=True)
        assert r.status_code == 200, r.status_code
        out["as_of_first_build_s"] = time.perf_counter() - t
        out["change_visible_s"] = change_visible(s, path, home, f"bench-idle-{time.time_ns()}")
        out["change_visible_during_as_of_build_s"] = change_visible_during_build(s, path, home, n // 3)
        out["baseline_health"] = load(s.url, ["/api/health"], per_client)
        out["table_page"] = load(s.url, ["/vault/messages", "/vault/contacts?_sort=name", "/vault/notes?_next=50"], per_client)
        out["search"] = load(s.url, ["/-/search?q=garden", "/vault/messages?_search=lunch+report",
                                     "/-/search?q=birthday+photos"], per_client)
        out["as_of_page"] = load(s.url, [f"/asof_{past}/messages", f"/asof_{past}/contacts",
                                         f"/asof_{past}/notes?_search=recipe"], per_client)
    finally:
        s.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000", help="comma-separated event counts (default 100000)")
    ap.add_argument("--keep", type=Path, default=None, help="folder to build vaults in and reuse (default: a temp dir)")
    ap.add_argument("--starts", type=int, default=3, help="cold starts per size (median reported)")
    ap.add_argument("--requests", type=int, default=15, help="requests per client per page type")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--phases", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one cold start, in-process
    args = ap.parse_args()
    if args.phases:
        print(json.dumps(phases(args.phases)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        results = [run(int(n), keep, args.starts, args.requests) for n in args.sizes.split(",")]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(f"events: {r['n']:,}   (vault built in {r['build_s']:.0f} s)" if r["build_s"] else f"events: {r['n']:,}")
        print(f"  cold start to first table page: {r['cold_start_s']:.2f} s (runs: "
              + ", ".join(f"{x:.2f}" for x in r["cold_start_runs_s"]) + f"); search index complete: {r['search_ready_s']:.2f} s")
        print("  in-process cold start: " + ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items()))
        print(f"  first 'as of' build (state at event {r['n'] // 2:,}): {r['as_of_first_build_s']:.2f} s")
        print(f"  a CLI add visible on a page after: {r['change_visible_s']:.2f} s; "
              f"while an 'as of' state builds: {r['change_visible_during_as_of_build_s']:.2f} s")
        for name in ("baseline_health", "table_page", "search", "as_of_page"):
            m = r[name]
            print(f"  {name:<16} {CLIENTS} clients: p50 {m['p50_ms']:7.1f} ms  p95 {m['p95_ms']:7.1f} ms  "
                  f"{m['req_per_s']:6.1f} req/s  ({m['requests']} requests, {m['errors']} errors)")


if __name__ == "__main__":
    main()
