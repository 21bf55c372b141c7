"""Moments (imports, undos, reverts, days) and record timelines in plain words, from the library."""

from __future__ import annotations

import json
from pathlib import Path

from vault import Kind, Source, Vault
from vault.formats.importing import import_file, undo_import
from vault.domain.instants import Instant, human_date, iso
from vault.state.moments import Moments, moments
from vault.state.timeline import describe


def card(*lines: str, uid: str = "ada-1", name: str = "Ada Lovelace") -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{name}", *lines, "END:VCARD"]) + "\r\n"


def test_moments_list_each_import_undo_revert_and_day(vault: Vault, tmp_path: Path) -> None:
    vault.add(Kind.NOTE, {"title": "before anything"}, Source("cli"))
    (tmp_path / "contacts.vcf").write_text(card("TEL;TYPE=WORK:+44 20 7946 0000") + card(uid="g", name="Grace Hopper"))
    first = import_file(vault, tmp_path / "contacts.vcf")
    (tmp_path / "contacts.vcf").write_text(card("TEL;TYPE=CELL:+44 7700 900123"))
    second = import_file(vault, tmp_path / "contacts.vcf", mirror=True)
    ada = next(rid for rid, f in vault.projection.state(Kind.CONTACT) if f["name"] == "Ada Lovelace")
    undo_import(vault, second.import_id)
    vault.revert(ada, Instant(seq=1), Source("web", name="owner"))  # before Ada existed: deleted again
    found = moments(vault.projection.conn)

    kinds = [m.kind for m in found]
    assert kinds == ["day", "revert", "undo", "import", "import"]  # newest first, the day above its events
    day, revert, undo, again, imported = found
    assert imported.title == "Import of contacts.vcf" and imported.counts == {"added": 2, "changed": 0, "removed": 0}
    assert (imported.before, imported.seq) == (1, 3) and imported.import_id == first.import_id
    assert again.counts == {"added": 0, "changed": 1, "removed": 1} and again.summary == "1 changed, 1 removed"
    assert undo.title == "Undo of the import of contacts.vcf" and undo.counts["added"] == 1  # Grace came back
    assert revert.title == "Revert of Ada Lovelace in the browser" and revert.record_id == ada
    assert revert.seq == vault.log.head().seq == day.seq and day.before == 0
    assert day.summary == f"{vault.log.head().seq} changes" and day.title == f"Changes on {human_date(day.at)}"
    # each moment names states the vault can open: just before the import, Ada did not exist
    assert vault.projection.record(Kind.CONTACT, ada, imported.before) is None
    assert vault.projection.record(Kind.CONTACT, ada, imported.seq)["name"] == "Ada Lovelace"


def test_moments_of_an_empty_vault_are_none(vault: Vault) -> None:
    assert moments(vault.projection.conn) == []


def test_days_are_local_days_each_ending_at_its_last_event(vault: Vault) -> None:
    day_us = 86_400 * 1_000_000
    with vault.transaction() as tx:
        for i, when in enumerate([10 * day_us, 10 * day_us + 3_600_000_000, 12 * day_us]):
            tx.create(Kind.NOTE, {"title": f"n{i}"}, Source("cli"), recorded_at=when + 12 * 3_600_000_000)
    days = [m for m in moments(vault.projection.conn) if m.kind == "day"]
    assert [(m.before, m.seq, m.counts["events"]) for m in days] == [(2, 3, 1), (0, 2, 2)]
    assert days[0].at == iso(12 * day_us + 12 * 3_600_000_000)


def test_a_timeline_says_what_changed_who_did_it_and_when(vault: Vault, tmp_path: Path) -> None:
    (tmp_path / "contacts.vcf").write_text(card("TEL;TYPE=WORK:+44 20 7946 0000"))
    imported = import_file(vault, tmp_path / "contacts.vcf")
    (rid, _), = vault.projection.state(Kind.CONTACT)
    vault.update(rid, {"name": "Ada King", "phones": [{"value": "+44 7700 900123", "types": ["cell"]}]},
                 Source("web", name="owner"))
    undo_import(vault, imported.import_id)
    vault.revert(rid, Instant(seq=2), Source("cli"))
    words = describe(rid, vault.history(rid))
    day = human_date(words[1]["valid_from"])

    assert words[0]["summary"].startswith("Created as Ada Lovelace by import of contacts.vcf, " + day)
    assert words[1]["summary"].startswith("Changed in the browser, ")
    assert set(words[1]["sentences"]) == {
        f"Renamed from Ada Lovelace to Ada King in the browser, {day}",
        f"Phone +44 20 7946 0000 removed in the browser, {day}",
        f"Phone +44 7700 900123 added in the browser, {day}"}
    assert words[2]["summary"].startswith("Deleted by undo of the import of contacts.vcf, ")
    assert words[3]["summary"].startswith(f"Brought back to how it was on {words[1]['when']} from the command line, ")
    for w in words:  # values are text, never JSON
        assert all("[" not in r["before"] + r["after"] and "{" not in r["before"] + r["after"] for r in w["changes"])


def test_the_cli_lists_moments_in_words_and_json(run, vault_path: Path, tmp_path: Path) -> None:
    (tmp_path / "contacts.vcf").write_text(card("TEL;TYPE=WORK:+44 20 7946 0000"))
    assert run("import", str(tmp_path / "contacts.vcf")).exit_code == 0
    r = run("moments")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split("seq:1")[1].strip().startswith("Changes on ") and lines[0].endswith(": 1 change")
    assert "Import of contacts.vcf: 1 added (just before: seq:0)" in lines[1]
    got = json.loads(run("moments", "--json").output)
    assert [(m["kind"], m["seq"], m["before"], m["counts"]) for m in got] == [
        ("day", 1, 0, {"events": 1}), ("import", 1, 0, {"added": 1, "changed": 0, "removed": 0})]


def test_moments_kept_up_to_date_scan_only_what_is_new_and_agree_with_a_fresh_look(vault: Vault, tmp_path: Path) -> None:
    day_us = 86_400 * 1_000_000
    with vault.transaction() as tx:
        tx.create(Kind.NOTE, {"title": "a"}, Source("cli"), recorded_at=10 * day_us)
    known = Moments().update(vault.projection.conn)
    assert [(m.kind, m.seq) for m in known.list()] == [("day", 1)]
    with vault.transaction() as tx:  # the same day goes on
        tx.create(Kind.NOTE, {"title": "b"}, Source("cli"), recorded_at=10 * day_us + 3_600_000_000)
    (tmp_path / "contacts.vcf").write_text(card())
    import_file(vault, tmp_path / "contacts.vcf")  # today
    known.update(vault.projection.conn)
    assert [m.as_dict() for m in known.list()] == [m.as_dict() for m in moments(vault.projection.conn)]
    assert [(m.kind, m.before, m.seq) for m in known.list()] == [("day", 2, 3), ("import", 2, 3), ("day", 0, 2)]
    assert known.list()[-1].counts == {"events": 2}
