"""Where a rebuild of the state file spends its time, phase by phase, on a copy of an existing vault.

    python bench/bench_archive.py --scale 0.05 --keep /tmp/archive
    LIFEVAULT_PASSPHRASE='bench archive passphrase, long enough' python bench/profile_rebuild.py /tmp/archive/archive.db

Phases: reading (decrypt, chain check, decode, in this process), folding in Python, inserting history rows,
building the full-text indexes, committing (the WAL), checkpointing. The vault itself is not touched.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault import Vault  # noqa: E402
from vault.state import projection, file as state_file


def profile(path: Path, passphrase: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / "v.db"
        shutil.copy(path, copy)
        v = Vault.open(copy, passphrase)
        n = v.log.head().seq
        out = {"events": float(n)}
        t = time.perf_counter()
        events = list(v.log.read_here(0, n))
        out["read_decrypt_decode"] = time.perf_counter() - t
        proj = state_file.open_projection(v.state_path, v.keys.state, lambda p: True)
        gc.collect()
        gc.freeze()
        with proj.transaction():
            for kind in projection.Kind:
                proj.conn.execute(f"DROP TRIGGER {kind.table}_fts_new")  # as a first build does
            folder, flush = projection._Folder(proj.conn), 0.0
            t = time.perf_counter()
            for r in events:
                folder.fold(r)
                if len(folder.open) >= projection._CHUNK:
                    f = time.perf_counter()
                    folder.flush()
                    flush += time.perf_counter() - f
            f = time.perf_counter()
            folder.flush()
            flush += time.perf_counter() - f
            out["fold_python"] = time.perf_counter() - t - flush
            out["history_inserts"] = flush
            t = time.perf_counter()
            for kind in projection.Kind:
                proj.conn.execute(f"INSERT INTO {kind.table}_fts ({kind.table}_fts) VALUES ('rebuild')")
            out["fts_rebuild"] = time.perf_counter() - t
            t = time.perf_counter()
        out["commit"] = time.perf_counter() - t
        t = time.perf_counter()
        proj.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out["checkpoint"] = time.perf_counter() - t
        proj.close()
        v.close()
        return out


def main() -> None:
    r = profile(Path(sys.argv[1]), os.environ["LIFEVAULT_PASSPHRASE"])
    n = r.pop("events")
    total = sum(r.values())
    for phase, s in r.items():
        print(f"{phase:22s} {s:7.2f} s  {s / n * 1e6:7.1f} us/event  {s / total * 100:4.0f}%")
    print(f"total {total:.2f} s for {n:,.0f} events: {n / total:,.0f} events/s (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
