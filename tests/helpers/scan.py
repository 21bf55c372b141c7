"""Scanning files for words that must not be there (plaintext on disk)."""

from __future__ import annotations

from pathlib import Path


def files_holding(dirs: list[Path], words: list[str]) -> list[str]:
    """Every file in or under `dirs` whose bytes contain any of `words`."""
    hits = []
    for d in dirs:
        for p in [d, *d.rglob("*")] if d.is_dir() else [d]:
            if p.is_file():
                data = p.read_bytes()
                hits += [f"{p}: {w}" for w in words if w.encode() in data]
    return hits
