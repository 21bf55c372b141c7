"""The lifetime archive (issue 10): fifteen years of one person's data, imported and used through the real CLI.

At --scale 1.0: 200,000 e-mails (text bodies from a word pool, lognormal sizes with a median near 3 KB,
1-20 KB; one in fifty with an attachment), 300,000 WhatsApp chat lines (its export format), 5,000
contacts (one vCard file) and 3,000 notes of which 300 are edited 50 times (through the library): about
530,000 events. Every command runs in its own process; its time and peak RSS (wait4) are reported:

- each import; `stats`; `serve` from start to its first table page and to a complete search, then a table
  page and a search while 10 clients browse (p50/p95); `restore --at` a middle instant;
- a full rebuild of the encrypted state file (deleted, then `stats`), in events/s, beside a plain
  reference replay of the same events into unencrypted SQLite tables and reading alone, in the same run;
- the bytes of the vault file, of its events and blobs, and of the state file.

    python bench/bench_archive.py --scale 0.05
    python bench/bench_archive.py --scale 0.2 --json
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

PASS = "bench archive passphrase, long enough"
CLIENTS = 10
WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue "
         "side kind head house service friend father power hour game line end member law car city community name "
         "president team minute idea kid body information back parent face others level office door health person "
         "art war history party result change morning reason research girl guy moment air teacher force education "
         "garden lunch report birthday photos holiday invoice meeting train ticket doctor dinner recipe").split()


def _text(rnd: random.Random, size: int) -> str:
    words, n = [], 0
    while n < size:
        w = rnd.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return "\n".join(lines)


def generate(scale: float, d: Path) -> dict[str, Path]:
    """The archive's source files (mbox, WhatsApp exports, vCard) in `d`."""
    rnd = random.Random(10)
    files = {"mbox": d / "mail.mbox", "vcard": d / "contacts.vcf"}
    with files["mbox"].open("w", encoding="utf-8") as f:
        for i in range(round(200_000 * scale)):
            size = int(min(20_000, max(1_000, rnd.lognormvariate(8.0, 0.6))))  # median e^8 ≈ 3 KB
            day = 1 + i % 28
            head = (f"From s{i % 900}@example.org Tue Mar  5 09:12:00 2024\nFrom: Sender {i % 900} <s{i % 900}@example.org>\n"
                    f"To: me@example.org\nSubject: {' '.join(rnd.choices(WORDS, k=5))}\n"
                    f"Date: Tue, {day:02d} Mar 2011 09:{i % 60:02d}:00 +0100\nMessage-ID: <archive-{i}@example.org>\nMIME-Version: 1.0\n")
            body = _text(rnd, size).replace("\nFrom ", "\n>From ")
            if i % 50 == 0:
                data = base64.encodebytes(rnd.randbytes(rnd.randint(5_000, 60_000))).decode()
                f.write(head + 'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n' + body
                        + '\n--b\nContent-Type: application/pdf; name="doc.pdf"\nContent-Disposition: attachment; '
                        'filename="doc.pdf"\nContent-Transfer-Encoding: base64\n\n' + data + "--b--\n\n")
            else:
                f.write(head + "Content-Type: text/plain; charset=utf-8\n\n" + body + "\n\n")
    lines = round(300_000 * scale)
    chats = max(1, round(40 * scale))
    for c in range(chats):
        path = d / f"WhatsApp Chat with Friend {c}.txt"
        files[f"whatsapp{c}"] = path
        with path.open("w", encoding="utf-8") as f:
            for j in range(lines // chats):
                minute = c * 7 + j  # one line a minute, so every line has its own instant
                day, rest = divmod(minute, 24 * 60)
                line = _text(rnd, int(rnd.lognormvariate(4.0, 0.7)))[:400].replace("\n", " ")
                f.write(f"{1 + day % 28:02d}/{1 + (day // 28) % 12:02d}/{2010 + day // 336}, "
                        f"{rest // 60:02d}:{rest % 60:02d} - {'Me' if j % 2 else f'Friend {c}'}: {line}\n")
    with files["vcard"].open("w", encoding="utf-8") as f:
        for i in range(round(5_000 * scale)):
            note = _text(rnd, 60).replace("\n", " ")  # one line: a bare newline would end the card
            f.write(f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:archive-{i}\r\nFN:Person {i} {rnd.choice(WORDS).title()}\r\n"
                    f"EMAIL:p{i}@example.org\r\nTEL:+44 20 7946 {i % 10000:04d}\r\nNOTE:{note}\r\nEND:VCARD\r\n")
    return files


NOTES = """
import sys, random
from vault import Kind, Source, Vault
n, edited, edits = int(sys.argv[2]), int(sys.argv[3]), 50
rnd = random.Random(11)
src = Source("cli")
with Vault.open(sys.argv[1], {pw!r}) as v:
    ids = []
    with v.transaction() as tx:
        for i in range(n):
            ids.append(tx.create(Kind.NOTE, {{"title": f"note {{i}}", "body": "words " * rnd.randint(20, 400)}}, src))
    for e in range(edits):
        with v.transaction() as tx:
            for rid in ids[:edited]:
                tx.update(rid, {{"body": f"edit {{e}} " + "words " * rnd.randint(20, 400)}}, src)
"""


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """A command in its own process: seconds, peak RSS (MB) and its output."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()  # its wait goes through `_reaper`'s wait4
    elapsed = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.strip()}")
    return {"s": elapsed, "rss_mb": _rss(p), "out": out}


_RUSAGE: dict[int, float] = {}


def _rss(p: subprocess.Popen) -> float:
    return _RUSAGE.get(p.pid, 0.0)


def _reaper() -> None:
    """Popen reaps its child with waitpid, which loses the child's rusage: keep it with wait4 instead."""
    def try_wait(self: subprocess.Popen, wait_flags: int) -> tuple[int, int]:
        pid, status, usage = os.wait4(self.pid, wait_flags)
        if pid:
            _RUSAGE[pid] = usage.ru_maxrss / 1024
        return pid, status

    subprocess.Popen._try_wait = try_wait  # type: ignore[method-assign]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vmhwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(env: dict[str, str], lifevault: list[str], vault: Path, head: int) -> dict:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    p = subprocess.Popen([*lifevault, "serve", "--port", str(port), "--vault", str(vault)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out: dict = {}
    try:
        while True:
            try:
                if httpx.get(f"{url}/vault/messages", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                if p.poll() is not None:
                    raise SystemExit(f"serve died: {p.stderr.read().decode()}") from None
                time.sleep(0.05)
        out["first_page_s"] = time.perf_counter() - t
        r = httpx.get(f"{url}/-/search", params={"q": "garden"}, timeout=60)
        assert r.status_code == 200 and "garden" in r.text.lower()
        out["search_complete_s"] = time.perf_counter() - t
        pages = {"table": ["/vault/messages", "/vault/contacts?_sort=name", "/vault/notes?_next=50", "/vault/messages?_next=1000"],
                 "search": ["/-/search?q=garden", "/vault/messages?_search=lunch+report", "/-/search?q=birthday+photos"]}
        for name, paths in pages.items():
            out[name] = _load(url, paths)
        t = time.perf_counter()
        r = httpx.get(f"{url}/asof_{max(head // 2, 1)}/messages", timeout=120)
        out["as_of_page_s"] = time.perf_counter() - t
        out["peak_rss_mb"] = _vmhwm(p.pid)
    finally:
        p.terminate()
        p.wait(30)
    return out


def _load(url: str, paths: list[str], per_client: int = 10) -> dict:
    times: list[float] = []
    failed: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            for i in range(per_client):
                t = time.perf_counter()
                path = paths[(k + i) % len(paths)]
                status = c.get(path).status_code
                with lock:
                    times.append(time.perf_counter() - t)
                    if status != 200:  # e.g. Datasette's SQL time limit: counted, and timed like the rest
                        failed.append(f"{status} {path}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    times.sort()
    return {"p50_s": statistics.median(times), "p95_s": times[int(len(times) * 0.95) - 1], "n": len(times),
            "failed": sorted(failed)}


def floors(vault: Path) -> dict:
    """Reading alone and the plain reference replay, in this process, on the same vault."""
    from bench_core import reference_replay

    from vault.store import keyring, schema
    from vault.store.log import EventLog

    conn = schema.connect(vault)
    log = EventLog(conn, vault, keyring.unlock(conn, PASS))
    head = log.head().seq
    t = time.perf_counter()
    n = sum(1 for _ in log.read(0, head))
    read = n / (time.perf_counter() - t)
    ref = reference_replay(log, vault.with_name("reference.db"))
    events, blobs = (conn.execute(f"SELECT coalesce(sum(length(payload)), 0) FROM {t}").fetchone()[0]
                     for t in ("events", "blobs"))
    conn.close()
    return {"events": head, "read_alone_events_per_s": read, "reference_replay_events_per_s": ref,
            "event_bytes": events, "blob_bytes": blobs}


def build(scale: float, d: Path, env: dict[str, str], lifevault: list[str], vault: Path) -> dict:
    """Generate the archive's exports and import them with the real CLI; time and peak memory per format."""
    files = generate(scale, d)
    run([*lifevault, "init", "--vault", str(vault), "--kdf-cost", "min"], env)
    imports: dict = {}
    for name, path in files.items():
        fmt = "whatsapp" if name.startswith("whatsapp") else name
        r = run([*lifevault, "import", fmt, str(path), "--silent", "--vault", str(vault)], env)
        key = "whatsapp" if fmt == "whatsapp" else name
        prev = imports.get(key, {"s": 0.0, "rss_mb": 0.0})
        imports[key] = {"s": prev["s"] + r["s"], "rss_mb": max(prev["rss_mb"], r["rss_mb"])}
    notes = round(3_000 * scale)
    r = run([sys.executable, "-c", NOTES.format(pw=PASS), str(vault), str(notes), str(round(300 * scale))], env)
    imports["notes_through_the_library"] = {"s": r["s"], "rss_mb": r["rss_mb"]}
    return imports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.05, help="1.0 is the lifetime archive (about 530,000 events)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--keep", type=Path, help="work in this folder and leave it (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: measure the archive already imported there (no generating or importing)")
    ap.add_argument("--serve-only", action="store_true",
                    help="with --reuse: measure `serve` alone (no restore, rebuild or reference replay)")
    args = ap.parse_args()
    if args.reuse and not (args.keep and (args.keep / "archive.db").exists()):
        ap.error("--reuse needs --keep DIR holding an archive.db from an earlier run")
    if args.serve_only and not args.reuse:
        ap.error("--serve-only needs --reuse")
    _reaper()
    d = args.keep or Path(tempfile.mkdtemp(prefix="lifevault-archive-"))
    d.mkdir(parents=True, exist_ok=True)
    # Commands run as installed: with Python's bytecode cache (a machine setting PYTHONDONTWRITEBYTECODE would
    # make every command compile Datasette, FastAPI and lifevault again, ~0.3-1 s each).
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "LIFEVAULT_PASSPHRASE": PASS, "LIFEVAULT_HOME": str(d / "home"),
           "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    lifevault = [sys.executable, "-c", "from vault.cli import cli; cli()"]
    vault = d / "archive.db"
    out: dict = {"scale": args.scale, "load": os.getloadavg()}
    out["imports"] = {} if args.reuse else build(args.scale, d, env, lifevault, vault)
    r = run([*lifevault, "stats", "--json", "--vault", str(vault)], env)
    out["stats"] = {"s": r["s"], "rss_mb": r["rss_mb"], **json.loads(r["out"])}
    out["serve"] = serve(env, lifevault, vault, out["stats"]["events"])
    if args.serve_only:
        print(json.dumps(out) if args.json else _serve_line(out))
        return
    r = run([*lifevault, "restore", "--at", f"seq:{out['stats']['events'] // 2}", "--out", str(d / "restored.db"),
             "--vault", str(vault)], env)
    out["restore_at"] = {"s": r["s"], "rss_mb": r["rss_mb"]}
    (d / "restored.db").unlink()
    from vault.state import file as state_file

    state_file.remove(state_file.path_for(vault))
    r = run([*lifevault, "stats", "--json", "--vault", str(vault)], env)
    out["rebuild"] = {"s": r["s"], "rss_mb": r["rss_mb"]}
    out.update(floors(vault))
    out["rebuild"]["events_per_s"] = out["events"] / r["s"]
    out["rebuild"]["vs_reference"] = out["rebuild"]["events_per_s"] / out["reference_replay_events_per_s"]
    out["vault_bytes"] = sum(p.stat().st_size for p in d.glob("archive.db") if p.exists())
    out["state_bytes"] = sum(p.stat().st_size for p in d.glob("archive.db.state*"))
    out["vault_vs_contents"] = out["vault_bytes"] / (out["event_bytes"] + out["blob_bytes"])
    if args.json:
        print(json.dumps(out))
    else:
        report(out)


def _serve_line(r: dict) -> str:
    s = r["serve"]
    return (f"  serve: first page {s['first_page_s']:.2f} s, search complete {s['search_complete_s']:.2f} s, "
            f"peak {s['peak_rss_mb']:.0f} MB (load {r['load'][0]:.1f})\n"
            f"         10 clients: table page p50 {s['table']['p50_s'] * 1000:.0f} ms p95 {s['table']['p95_s'] * 1000:.0f} ms; "
            f"search p50 {s['search']['p50_s'] * 1000:.0f} ms p95 {s['search']['p95_s'] * 1000:.0f} ms; "
            f"as-of page {s['as_of_page_s']:.2f} s"
            + "".join(f"\n         not 200: {n} x {what}" for k in ("table", "search")
                      for what, n in sorted(collections.Counter(s[k]["failed"]).items())))


def report(r: dict) -> None:
    print(f"scale {r['scale']}: {r['events']:,} events (load {r['load'][0]:.1f})")
    for name, i in r["imports"].items():
        print(f"  import {name:<28} {i['s']:7.1f} s  peak {i['rss_mb']:5.0f} MB")
    print(f"  stats                              {r['stats']['s']:7.2f} s  peak {r['stats']['rss_mb']:5.0f} MB")
    print(_serve_line(r))
    print(f"  restore --at (middle)              {r['restore_at']['s']:7.1f} s  peak {r['restore_at']['rss_mb']:5.0f} MB")
    b = r["rebuild"]
    print(f"  rebuild of the state file          {b['s']:7.1f} s  peak {b['rss_mb']:5.0f} MB: {b['events_per_s']:,.0f} events/s "
          f"= {b['vs_reference']:.2f} x reference replay ({r['reference_replay_events_per_s']:,.0f}/s); "
          f"reading alone {r['read_alone_events_per_s']:,.0f}/s")
    print(f"  vault {r['vault_bytes'] / 2**20:,.0f} MB = {r['vault_vs_contents']:.2f} x its events and blobs "
          f"({(r['event_bytes'] + r['blob_bytes']) / 2**20:,.0f} MB); state file {r['state_bytes'] / 2**20:,.0f} MB")


if __name__ == "__main__":
    main()
