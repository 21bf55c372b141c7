"""Where a rebuild of the state file spends its time, phase by phase, on a copy of an existing vault.

    python bench/bench_archive.py --scale 0.05 --keep /tmp/archive
    LIFEVAULT_PASSPHRASE='bench archive passphrase, long enough' python bench/profile_rebuild.py /tmp/archive/archive.db

It runs what `Projection.apply_folded` runs on a first build, each SQL statement timed: reading (check,
decrypt, take apart, in this process), folding in Python, inserting history rows, the search indexes, the
lists' sort indexes, committing (SQLCipher encrypts every page written) and checkpointing. Each phase is
given in wall-clock and CPU microseconds per event: on a shared machine the CPU figures are the steadier
ones. The vault itself is not touched.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault import Vault  # noqa: E402
from vault.state import file as state_file, projection  # noqa: E402


class _Timed:
    """A connection whose statements are timed into phases (by their first words)."""

    def __init__(self, conn: Any, phases: dict[str, list[float]]) -> None:
        self.conn, self.phases = conn, phases

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def _timed(self, phase: str, call: Any, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return call(*args)
        finally:
            spent = self.phases.setdefault(phase, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.process_time() - cpu

    def execute(self, sql: str, *args: Any) -> Any:
        phase = ("search_indexes" if "_fts" in sql and "INSERT" in sql else "sort_indexes" if "CREATE INDEX" in sql
                 else "commit" if sql == "COMMIT" else "lookups_and_setup")
        return self._timed(phase, self.conn.execute, sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._timed("history_rows", self.conn.executemany, sql, rows)


def profile(path: Path, passphrase: str) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / "v.db"
        shutil.copy(path, copy)
        v = Vault.open(copy, passphrase)
        n = v.log.head().seq
        phases: dict[str, list[float]] = {"events": [float(n), float(n)]}
        wall, cpu = time.perf_counter(), time.process_time()
        parts = list(v.log.read_parts_here(0, n))
        phases["read_in_this_process"] = [time.perf_counter() - wall, time.process_time() - cpu]
        proj = state_file.open_projection(v.state_path, v.keys.state, lambda p: True)
        proj.conn = _Timed(proj.conn, phases)
        gc.collect()
        gc.freeze()
        wall, cpu = time.perf_counter(), time.process_time()
        with proj.transaction():
            proj.apply_folded(projection.folded_parts(iter(parts)))
        total = [time.perf_counter() - wall, time.process_time() - cpu]
        phases["fold_python"] = [t - sum(p[i] for k, p in phases.items() if k not in ("events", "read_in_this_process"))
                                 for i, t in enumerate(total)]
        proj.conn._timed("checkpoint", proj.conn.conn.execute, "PRAGMA wal_checkpoint(TRUNCATE)")
        proj.close()
        v.close()
        return phases


def main() -> None:
    phases = profile(Path(sys.argv[1]), os.environ["LIFEVAULT_PASSPHRASE"])
    n = phases.pop("events")[0]
    wall, cpu = (sum(p[i] for p in phases.values()) for i in (0, 1))
    print(f"{'phase':22s} {'wall s':>7s} {'us/event':>9s} {'cpu us/event':>13s}")
    for phase, (w, c) in phases.items():
        print(f"{phase:22s} {w:7.2f} {w / n * 1e6:9.1f} {c / n * 1e6:13.1f}")
    print(f"total {wall:.2f} s ({cpu:.2f} s CPU) for {n:,.0f} events: {n / wall:,.0f} events/s, "
          f"{n / cpu:,.0f} per CPU second (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
