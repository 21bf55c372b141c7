"""Large-mbox benchmark: a generated mailbox of about --mb megabytes (default 1024), imported in one go.

The issue's target: importing a 1 GB mbox keeps peak RSS under 300 MB. The mailbox is shaped like a
real one, where attachments hold most of the bytes: ~2 KB text bodies, one message in four carrying a
40–400 KB attachment of random (incompressible, never deduplicated) bytes. Each phase runs in its own
process so its peak RSS is its own:

- baseline: the stdlib `mailbox.mbox` walks the file and decodes every part (the parsing work alone);
- lifevault: `import_file` into a fresh vault (split, parse, diff, seal blobs, encrypt and chain events,
  project into the encrypted state file) — peak RSS is taken when the import returns, and again after
  `Vault.close` (reported separately).

    python bench/bench_mbox_large.py                 # ~1 GB, one repetition
    python bench/bench_mbox_large.py --mb 200 --reps 3 --json
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASS = "bench passphrase"
TARGET_RSS_MB = 300


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_large_mbox(megabytes: int, path: Path) -> int:
    """Write ~`megabytes` MB of mail; returns how many messages."""
    rnd = random.Random(3)
    target, size, n = megabytes * 2**20, 0, 0
    with path.open("wb") as f:
        while size < target:
            body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * rnd.randint(15, 60)).encode()
            head = (f"From s{n}@example.org Tue Mar  5 09:12:00 2024\nFrom: Sender {n} <s{n}@example.org>\n"
                    f"To: me@example.org\nSubject: Message {n}\nDate: Tue, 05 Mar 2024 09:12:00 +0100\n"
                    f"Message-ID: <large-{n}@example.org>\nMIME-Version: 1.0\n").encode()
            if n % 4 == 0:
                data = base64.encodebytes(rnd.randbytes(rnd.randint(40_000, 400_000)))
                chunk = (head + b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
                         + body + b'\n--b\nContent-Type: application/pdf; name="doc.pdf"\n'
                         b'Content-Disposition: attachment; filename="doc.pdf"\nContent-Transfer-Encoding: base64\n\n'
                         + data + b"--b--\n\n")
            else:
                chunk = head + b"Content-Type: text/plain; charset=utf-8\n\n" + body + b"\n\n"
            f.write(chunk)
            size += len(chunk)
            n += 1
    return n


def baseline(path: Path) -> int:
    import mailbox

    n = 0
    for msg in mailbox.mbox(path):
        for part in msg.walk():
            part.get_payload(decode=True)
        n += 1
    return n


def phase(kind: str, path: str, workdir: str, queue: mp.Queue) -> None:
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    if kind == "baseline":
        n = baseline(Path(path))
        queue.put({"records": n, "seconds": time.perf_counter() - t, "peak_rss_mb": _rss_mb()})
        return
    from vault import Vault
    from vault.formats.importing import import_file

    vault, _ = Vault.create(Path(workdir) / f"large-{time.time_ns()}.db", PASS, kdf_cost="min")
    summary = import_file(vault, Path(path), "mbox")
    seconds = time.perf_counter() - t
    during = _rss_mb()
    vault.close()
    queue.put({"records": summary.created, "seconds": seconds, "peak_rss_mb": during,
               "peak_rss_after_close_mb": _rss_mb(), "skipped": len(summary.skipped)})


def run_phase(kind: str, path: Path, workdir: Path) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=phase, args=(kind, str(path), str(workdir), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="size of the generated mbox in MB (default 1024)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions per phase; medians are reported (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "large.mbox"
        n = make_large_mbox(args.mb, path)
        out: dict = {"messages": n, "file_mb": round(path.stat().st_size / 2**20), "reps": args.reps}
        for kind in ("baseline", "lifevault"):
            runs = [run_phase(kind, path, Path(d)) for _ in range(args.reps)]
            assert all(r["records"] == n for r in runs), runs
            out[f"{kind}_records_per_s"] = round(statistics.median(n / r["seconds"] for r in runs))
            out[f"{kind}_mb_per_s"] = round(statistics.median(out["file_mb"] / r["seconds"] for r in runs), 1)
            out[f"{kind}_peak_rss_mb"] = round(statistics.median(r["peak_rss_mb"] for r in runs))
        out["lifevault_peak_rss_after_close_mb"] = round(statistics.median(r["peak_rss_after_close_mb"] for r in runs))
        out["import_under_target"] = out["lifevault_peak_rss_mb"] < TARGET_RSS_MB
    if args.json:
        print(json.dumps(out))
        return
    print(f"mbox: {n:,} messages, {out['file_mb']} MB (one in four with a 40-400 KB attachment)")
    for kind, label in (("baseline", "stdlib mailbox parse"), ("lifevault", "lifevault import")):
        print(f"  {label:<22} {out[f'{kind}_records_per_s']:>7,} messages/s  {out[f'{kind}_mb_per_s']:>6} MB/s"
              f"   peak RSS {out[f'{kind}_peak_rss_mb']} MB")
    print(f"  after Vault.close: peak RSS {out['lifevault_peak_rss_after_close_mb']} MB;"
          f" import under {TARGET_RSS_MB} MB: {out['import_under_target']}")


if __name__ == "__main__":
    main()
