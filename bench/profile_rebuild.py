"""Where a rebuild of the state file spends its time, phase by phase, on a copy of an existing vault.

    python bench/bench_archive.py --scale 0.05 --keep /tmp/archive
    LIFEVAULT_PASSPHRASE='bench archive passphrase, long enough' python bench/profile_rebuild.py /tmp/archive/archive.db

It runs what `Projection.apply_folded` runs on a first build, each SQL statement timed: reading (check,
decrypt, take apart, in this process), folding in Python, inserting history rows, the search indexes, the
lists' sort indexes, committing (SQLCipher encrypts every page written) and checkpointing. Each phase is
given in wall-clock and CPU microseconds per event: on a shared machine the CPU figures are the steadier
ones. The vault itself is not touched.

Two floors follow, measured in the same process on the same events: the plain reference replay a rebuild is
compared with (issue 10), and indexing the same searchable text into a plain FTS5 table in memory, with no
encryption and nothing else written. The second is the least any state that can be searched at once pays.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_core import reference_replay  # noqa: E402

from vault import Kind, Vault  # noqa: E402
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
        floors = {"reference_replay": n / reference_replay(v.log, Path(d) / "reference.db"),
                  "search_text_alone": _plain_search_index(proj.conn.conn)}
        proj.close()
        v.close()
        return phases, floors


def _plain_search_index(state: Any) -> float:
    """CPU seconds FTS5 takes to index every version's searchable text in a plain in-memory table."""
    plain = sqlite3.connect(":memory:", isolation_level=None)
    spent = 0.0
    for kind in Kind:
        cols = ", ".join(f'"{c}"' for c in kind.spec.fts)
        rows = state.execute(f"SELECT version, {cols} FROM {kind.table}_text").fetchall()
        plain.execute(f"CREATE VIRTUAL TABLE {kind.table} USING fts5({cols})")
        plain.execute(f"INSERT INTO {kind.table} ({kind.table}, rank) VALUES ('hashsize', {projection._FTS_PENDING})")
        cpu = time.process_time()
        plain.execute("BEGIN")
        plain.executemany(f"INSERT INTO {kind.table} (rowid, {cols}) VALUES ({', '.join('?' * (len(kind.spec.fts) + 1))})",
                          rows)
        plain.execute("COMMIT")
        spent += time.process_time() - cpu
    plain.close()
    return spent


def main() -> None:
    phases, floors = profile(Path(sys.argv[1]), os.environ["LIFEVAULT_PASSPHRASE"])
    n = phases.pop("events")[0]
    wall, cpu = (sum(p[i] for p in phases.values()) for i in (0, 1))
    print(f"{'phase':22s} {'wall s':>7s} {'us/event':>9s} {'cpu us/event':>13s}")
    for phase, (w, c) in phases.items():
        print(f"{phase:22s} {w:7.2f} {w / n * 1e6:9.1f} {c / n * 1e6:13.1f}")
    print(f"total {wall:.2f} s ({cpu:.2f} s CPU) for {n:,.0f} events: {n / wall:,.0f} events/s, "
          f"{n / cpu:,.0f} per CPU second (load {os.getloadavg()[0]:.1f})")
    ref = floors["reference_replay"]
    print(f"floors, same events: the plain reference replay {ref / n * 1e6:.1f} us/event (wall); indexing their "
          f"searchable text alone in a plain in-memory FTS5 table {floors['search_text_alone'] / n * 1e6:.1f} us/event "
          f"(CPU), {floors['search_text_alone'] / ref:.2f}x the whole reference")


if __name__ == "__main__":
    main()
