"""A record page's timeline: the library's words for each version (vault/state/timeline.py), the diff, and which
versions a revert or bring-back button can go back to."""

from __future__ import annotations

from typing import Any

from vault.domain.instants import human_time
from vault.state.timeline import describe, record_label


def record_versions(record_id: str, found: list[dict[str, Any]], at: int | None) -> list[dict[str, Any]]:
    """The versions of a record (`StateQuery.versions`, oldest first) with their words, newest first; the one
    live after event `at` (else the newest) is `selected`."""
    out = describe(record_id, found)
    for v in out:
        v["deleted"] = bool(v["deleted"])
        v["selected"] = at is not None and v["seq_from"] <= at and (v["seq_to"] is None or at < v["seq_to"])
    now = out[-1]["data"]
    for v in out:  # a button where going back would change something
        v["can_revert"] = not v["deleted"] and v["data"] != now
    return list(reversed(out))


def bring_back_version(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For a deleted record: its last live version (newest first list), which "Bring back" restores."""
    if not versions or not versions[0]["deleted"]:
        return None
    return next((v for v in versions if not v["deleted"]), None)


def revert_message(record_id: str, data: dict[str, Any] | None, at: int | None, brought_back: bool) -> str:
    """What a revert did, in words: `Brought back Ada Lovelace as it was on 3 Mar 2025, 14:05.`"""
    label = record_label(record_id, data)
    if not at:
        return f"Reverted {label} to before it existed (deleted; its history is kept)."
    return f"{'Brought back' if brought_back else 'Reverted'} {label} to how it was on {human_time(at)}."
