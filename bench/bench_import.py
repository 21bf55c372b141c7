"""Import benchmark: records/s and peak RSS per format, beside a plain parse of the same file.

For each format a file is generated once; then, each in its own process (so peak RSS is per phase), the
baseline parses it with the plain library (vobject for vCard, the stdlib `mailbox` for mbox) and lifevault
imports it into a fresh vault (one transaction: diff, encrypt, chain, project). Medians of --reps runs.

    python bench/bench_import.py                     # 20,000 contacts, 20,000 messages
    python bench/bench_import.py --n 100000 --formats mbox --json

Adding a format: write a generator and a baseline below and add a line to FORMATS.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import multiprocessing as mp
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASS = "bench passphrase"
FIRST = ["Ada", "Grace", "Alan", "Jürgen", "Renée", "Edsger", "Barbara", "Donald", "Frances", "Ken"]
LAST = ["Lovelace", "Hopper", "Turing", "Müller", "Dupré", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- generated inputs ---------------------------------------------------------------------------------------------
def make_vcard(n: int, path: Path) -> None:
    """vCard 3.0 cards with several emails/phones, an address, a folded note; every 10th has a small photo."""
    rnd = random.Random(1)
    photo = base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 2 + b"\xff\xd9").decode()
    with path.open("w", encoding="utf-8", newline="") as f:
        for i in range(n):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:bench-{i}", f"FN:{first} {last} {i}", f"N:{last};{first};;;",
                     f"EMAIL;TYPE=INTERNET:{first.lower()}.{i}@example.org", f"EMAIL;TYPE=HOME:{i}@example.net",
                     f"TEL;TYPE=CELL:+44 20 7946 {i % 10000:04d}", "ADR;TYPE=HOME:;;1 Main St;Town;;12345;UK",
                     "NOTE:" + ("a long note that gets folded " * 4)[:74], " continued after a fold"]
            if i % 10 == 0:
                lines += ["PHOTO;ENCODING=b;TYPE=JPEG:" + photo[:40]] + [" " + photo[j:j + 74] for j in range(40, len(photo), 74)]
            f.write("\r\n".join(lines + ["END:VCARD"]) + "\r\n")


def make_mbox(n: int, path: Path) -> None:
    """mbox messages of 1–4 KB, every 20th multipart with a small attachment."""
    rnd = random.Random(2)
    with path.open("w", encoding="utf-8", newline="") as f:
        for i in range(n):
            body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * rnd.randint(15, 70)) + "\n"
            head = (f"From sender{i}@example.org Tue Mar  5 09:12:00 2024\nFrom: Sender {i} <sender{i}@example.org>\n"
                    f"To: me@example.org\nSubject: Message {i}\nDate: Tue, 05 Mar 2024 09:12:00 +0100\n"
                    f"Message-ID: <bench-{i}@example.org>\nMIME-Version: 1.0\n")
            if i % 20 == 0:
                f.write(head + 'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
                        + body + "--b\nContent-Type: application/octet-stream; name=\"a.bin\"\n"
                        "Content-Transfer-Encoding: base64\n\n" + "QUJD" * 200 + "\n--b--\n\n")
            else:
                f.write(head + "Content-Type: text/plain; charset=utf-8\n\n" + body + "\n")


# -- baselines (plain parsing with the library the importer builds on) ---------------------------------------------
def baseline_vcard(path: Path) -> int:
    import vobject

    with path.open(encoding="utf-8") as f:
        return sum(1 for _ in vobject.readComponents(f))


def baseline_mbox(path: Path) -> int:
    import mailbox

    return sum(1 for m in mailbox.mbox(path) if m.get_payload(decode=False) is not None)


FORMATS: dict[str, tuple[Callable[[int, Path], None], Callable[[Path], int]]] = {
    "vcard": (make_vcard, baseline_vcard),
    "mbox": (make_mbox, baseline_mbox),
}


# -- phases (each in its own process) ------------------------------------------------------------------------------
def phase(kind: str, fmt: str, path: str, workdir: str, queue: mp.Queue) -> None:
    p = Path(path)
    gc.collect()
    gc.freeze()
    if kind == "baseline":
        t = time.perf_counter()
        n = FORMATS[fmt][1](p)
        queue.put({"records": n, "seconds": time.perf_counter() - t, "peak_rss_mb": _rss_mb()})
        return
    from vault import Vault
    from vault.formats.importing import import_file

    vault, _ = Vault.create(Path(workdir) / f"{fmt}-{time.time_ns()}.db", PASS, kdf_cost="min")
    with vault:
        t = time.perf_counter()
        s = import_file(vault, p, fmt)
        seconds = time.perf_counter() - t
    queue.put({"records": s.created, "seconds": seconds, "peak_rss_mb": _rss_mb(), "skipped": len(s.skipped)})


def run_phase(kind: str, fmt: str, path: Path, workdir: Path) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=phase, args=(kind, fmt, str(path), str(workdir), queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"the {kind} phase for {fmt} failed (exit code {proc.exitcode})")
    return queue.get()


def bench(fmt: str, n: int, reps: int, workdir: Path) -> dict:
    path = workdir / f"bench.{fmt}"
    FORMATS[fmt][0](n, path)
    out: dict = {"format": fmt, "records": n, "file_mb": round(path.stat().st_size / 2**20, 1)}
    for kind in ("baseline", "lifevault"):
        runs = [run_phase(kind, fmt, path, workdir) for _ in range(reps)]
        assert all(r["records"] == n for r in runs), runs
        out[f"{kind}_records_per_s"] = round(statistics.median(n / r["seconds"] for r in runs))
        out[f"{kind}_peak_rss_mb"] = round(statistics.median(r["peak_rss_mb"] for r in runs), 1)
    out["lifevault_vs_baseline"] = round(out["lifevault_records_per_s"] / out["baseline_records_per_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="records per format (default 20,000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per phase; medians are reported (default 3)")
    ap.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated, of: {', '.join(FORMATS)}")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = [bench(fmt, args.n, args.reps, Path(d)) for fmt in args.formats.split(",")]
    if args.json:
        print(json.dumps({"n": args.n, "reps": args.reps, "results": results}))
        return
    for r in results:
        print(f"{r['format']}: {r['records']:,} records, {r['file_mb']} MB")
        print(f"  baseline (plain parse)  {r['baseline_records_per_s']:>9,} records/s   peak RSS {r['baseline_peak_rss_mb']} MB")
        print(f"  lifevault import        {r['lifevault_records_per_s']:>9,} records/s   peak RSS {r['lifevault_peak_rss_mb']} MB"
              f"   ({r['lifevault_vs_baseline']}x the baseline's speed)")


if __name__ == "__main__":
    main()
