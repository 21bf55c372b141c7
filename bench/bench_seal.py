"""What the seal and the rollback memory cost a write: medians of repetitions, in one process.

    python bench/bench_seal.py            # 300 single-event appends x 5 repetitions, and the seal's parts
    python bench/bench_seal.py --reps 9

Baseline in the same run: the same appends with `seal.write`/`seal.check` and the memory made no-ops, so
the ratio shows what binding tokens, keys and attachments to the head (and remembering it) adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from vault import Kind, Source, Vault
from vault.store import keyring, rollback, seal

SRC = Source("cli")


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


@contextmanager
def without_seal() -> Iterator[None]:
    saved = seal.write, seal.check, rollback.remember, rollback.check
    seal.write = seal.check = rollback.remember = rollback.check = lambda *a, **k: None  # type: ignore[assignment]
    try:
        yield
    finally:
        seal.write, seal.check, rollback.remember, rollback.check = saved  # type: ignore[assignment]


def appends_us(folder: Path, n: int) -> float:
    """Median µs of one single-event append (a durable commit each) over `n` appends."""
    vault, _ = Vault.create(folder / f"v{time.monotonic_ns()}.db", "bench passphrase, not a secret", kdf_cost="min")
    with vault:
        return per_call_us(lambda: vault.add(Kind.NOTE, {"title": "n", "body": "x" * 300}, SRC), n)


def parts_us(folder: Path, n: int = 500) -> dict[str, float]:
    vault, _ = Vault.create(folder / "parts.db", "bench passphrase, not a secret", kdf_cost="min")
    with vault:
        conn, head, vid = vault.conn, vault.log.head(), vault.log.vault_id
        key = keyring.verify_key(conn)
        conn.execute("BEGIN IMMEDIATE")
        out = {
            "seal check, MAC (before each write)": per_call_us(
                lambda: seal.check(conn, vid, key, vault.keys, head.seq, head.hash, contents=(), signature=False), n),
            "seal check, signature (each open)": per_call_us(
                lambda: seal.check(conn, vid, key, vault.keys, head.seq, head.hash, contents=()), n),
            "seal write (each write)": per_call_us(lambda: seal.write(conn, vault.keys, vid, head.seq, head.hash), n),
        }
        conn.execute("ROLLBACK")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["LIFEVAULT_HOME"] = str(folder / "home")
        sealed, bare = [], []
        for _ in range(args.reps):  # interleaved, so load changes hit both alike
            sealed.append(appends_us(folder, args.appends))
            with without_seal():
                bare.append(appends_us(folder, args.appends))
        for name, value in parts_us(folder).items():
            print(f"{name:<40} {value:8.1f} µs")
        s, b = statistics.median(sealed), statistics.median(bare)
        print(f"{'single-event append, sealed':<40} {s:8.1f} µs (median of {args.reps})")
        print(f"{'single-event append, seal made no-op':<40} {b:8.1f} µs  ratio {s / b:.2f}")
        print(f"load: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
