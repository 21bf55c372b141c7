"""Replica format 2: an event segment's digest covers its framing, the chain covers its payloads; format 1 still reads.

tests/fixtures/replica-v1/ was written by the code before format 2 (commit 268bd91, LIFEVAULT_SEGMENT_EVENTS=10):
a vault of 30 events from helpers.replica.build_history, created with conftest.PASSPHRASE, pushed to a folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vault import Vault
from vault.replica import ReplicaDamaged, add_replica, clone, compact, push, repair, verify, verify_replica
from vault.replica.manifest import parse
from vault.replica.segments import FRAMING, decode_events
from vault.replica.targets import target_for
from vault.store.verify import check_log

from conftest import PASSPHRASE
from helpers.replica import build_history, rows

FIXTURE = Path(__file__).parent.parent / "fixtures" / "replica-v1"


def _manifest(folder: Path):
    return parse((folder / "manifest.json").read_bytes(), str(folder))


def _flip_payload_byte(seg: Path, seq: int) -> None:
    """Flip one byte inside the sealed payload of event `seq`, leaving the framing as it was."""
    data = bytearray(seg.read_bytes())
    pos = 24
    for s, _, payload in decode_events(seg.name, bytes(data)):
        if s == seq:
            data[pos + 12 + 32 + len(payload) // 2] ^= 0x01
            break
        pos += 12 + 32 + len(payload)
    seg.write_bytes(bytes(data))


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE, folder)
    return folder


def test_a_push_writes_format_2_with_framing_digests(vault: Vault, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    build_history(vault, n=40)
    add_replica(vault.log.vault_id, "usb", str(tmp_path / "usb"))
    push(vault.log, "usb")
    body = json.loads((tmp_path / "usb" / "manifest.json").read_bytes())["body"]
    assert json.loads(body)["format"] == "lifevault-replica/2"
    m = _manifest(tmp_path / "usb")
    assert [s.covers for s in m.events] == [FRAMING] * 3 and [s.covers for s in m.blobs] == ["file"]


@pytest.mark.parametrize("how", ["blind verify", "clone"])
def test_a_flipped_payload_byte_is_named_by_segment_and_event(vault: Vault, tmp_path: Path, monkeypatch,
                                                              how: str) -> None:
    """The framing digest still holds; the chain does not, and the one sentence names the event and its segment."""
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    build_history(vault, n=40)
    usb = tmp_path / "usb"
    add_replica(vault.log.vault_id, "usb", str(usb))
    push(vault.log, "usb")
    name = "events-000000000016-000000000030.seg"
    _flip_payload_byte(usb / name, 22)
    expected = rf"^Replica .* is damaged: event 22 in segment {name} breaks the hash chain\.$"
    with pytest.raises(ReplicaDamaged, match=expected):
        if how == "clone":
            clone(str(usb), tmp_path / "clone.db", PASSPHRASE)
        else:
            verify_replica(target_for(str(usb)), "Replica usb (here)")
    assert not (tmp_path / "clone.db").exists()


def test_an_unknown_digest_kind_is_one_sentence(vault: Vault, tmp_path: Path) -> None:
    build_history(vault, n=5)
    add_replica(vault.log.vault_id, "usb", str(tmp_path / "usb"))
    push(vault.log, "usb")
    path = tmp_path / "usb" / "manifest.json"
    outer = json.loads(path.read_bytes())
    outer["body"] = outer["body"].replace('"covers":"framing"', '"covers":"rows"')
    path.write_text(json.dumps(outer))
    with pytest.raises(ReplicaDamaged, match=r"^The manifest of usb cannot be read \(ValueError: segment "
                                             r"events-\S+ has a digest of an unknown kind 'rows'\)\.$"):
        verify_replica(target_for(str(tmp_path / "usb")), "usb")


def test_a_format_1_replica_verifies_clones_and_takes_pushes(v1: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "10")
    assert json.loads(json.loads((v1 / "manifest.json").read_bytes())["body"])["format"] == "lifevault-replica/1"
    assert verify_replica(target_for(str(v1)), "old").events == 30
    report = clone(str(v1), tmp_path / "clone.db", PASSPHRASE)
    assert (report.events, report.blobs) == (30, 1)
    with Vault.open(tmp_path / "clone.db", PASSPHRASE) as v:
        assert check_log(v.log, blind=False).events == 30
        build_history(v, n=12, start=30)
        add_replica(v.log.vault_id, "old", str(v1))
        r = push(v.log, "old")
        assert (r.events, r.manifest_written) == (12, True)
        m = _manifest(v1)
        assert [s.covers for s in m.events] == ["file"] * 3 + [FRAMING] * 2  # listed segments keep their digests
        assert verify_replica(target_for(str(v1)), "old", keys=v.keys).events == 42

        _flip_payload_byte(v1 / "events-000000000011-000000000020.seg", 15)  # a whole-file digest catches it
        with pytest.raises(ReplicaDamaged, match=r"segment events-000000000011-000000000020\.seg is altered"):
            verify_replica(target_for(str(v1)), "old")
        assert [x["segment"] for x in push(v.log, "old").repaired] == ["events-000000000011-000000000020.seg"]

        compacted = compact(v.log.vault_id, v.keys.verify_key, "old", v.keys)
        assert compacted.after < compacted.before
        assert {s.covers for s in _manifest(v1).events} == {FRAMING}  # merged segments are written anew
        assert verify_replica(target_for(str(v1)), "old").events == 42
        clone(str(v1), tmp_path / "again.db", PASSPHRASE)
        assert rows(tmp_path / "again.db") == rows(tmp_path / "clone.db")


def test_push_deep_repairs_a_flipped_payload_byte_in_a_framed_segment(vault: Vault, tmp_path: Path,
                                                                      monkeypatch) -> None:
    """Every push checks a segment's framing digest; --deep (what verify suggests) follows the chain from the
    vault's hash before the segment too, so a payload byte counts."""
    monkeypatch.setenv("LIFEVAULT_SEGMENT_EVENTS", "15")
    build_history(vault, n=40)
    usb = tmp_path / "usb"
    add_replica(vault.log.vault_id, "usb", str(usb))
    push(vault.log, "usb")
    seg = usb / "events-000000000001-000000000015.seg"
    sound = seg.read_bytes()
    _flip_payload_byte(seg, 1)  # the first row: only the vault's genesis hash shows it
    repair._intact.clear()  # as a new process
    assert push(vault.log, "usb").repaired == ()
    with pytest.raises(ReplicaDamaged, match=r"event 1 in segment events-000000000001-000000000015\.seg breaks the "
                                             r"hash chain; `lifevault push --deep usb` re-sends damaged segments"):
        verify(vault.path, "usb")
    assert [x["segment"] for x in push(vault.log, "usb", deep=True).repaired] == [seg.name]
    assert seg.read_bytes() == sound
    assert verify(vault.path, "usb").events == 40
