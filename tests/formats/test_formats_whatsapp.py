"""WhatsApp: day/month order per chat, the time zone option, bytes that are not UTF-8 (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.whatsapp import WhatsappImporter
from vault import Kind, Vault
from vault.formats import BadRecord, Notice, SourceRecord
from vault.formats.importing import BadOption, import_file

SAME = Path(__file__).parent.parent / "fixtures" / "whatsapp" / "same-chat"
IOS, ANDROID = SAME / "ios" / "WhatsApp Chat - Ada", SAME / "android" / "WhatsApp Chat with Ada.txt"


def read(path: Path, **options: str) -> tuple[list[SourceRecord], list[BadRecord], list[Notice]]:
    items = list(WhatsappImporter().read(path, **{"tz": "Europe/London", **options}))
    return ([r for r in items if isinstance(r, SourceRecord)], [r for r in items if isinstance(r, BadRecord)],
            [r for r in items if isinstance(r, Notice)])


def chat(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_same_chat_exported_on_ios_and_android_has_the_same_dates() -> None:
    """Issue 12: `12/06/2024` in an iOS export (12-hour clock) was read as 6 December, the Android one as 12 June."""
    ios, _, ios_notes = read(IOS)
    android, _, android_notes = read(ANDROID)
    assert [m.fields["date"] for m in ios] == ["2024-06-11T09:12:45+01:00", "2024-06-11T09:14:02+01:00",
                                               "2024-06-12T18:30:10+01:00", "2024-06-12T18:31:00+01:00"]
    assert [m.fields["date"][:16] for m in android] == [m.fields["date"][:16] for m in ios]
    for notes in (ios_notes, android_notes):  # nothing in the chat settles it: said, with the way out
        (notice,) = notes
        assert notice.location == "line 1" and "read as day/month (by the order of the messages in time)" in notice.message
        assert "--date-order mdy" in notice.message


def test_one_date_settles_the_whole_chat_without_a_warning(tmp_path: Path) -> None:
    msgs, _, notes = read(chat(tmp_path / "WhatsApp Chat with A.txt", [
        "[12/06/2024, 9:00:00\u202fAM] A: twelfth", "[13/06/2024, 9:00:00\u202fAM] A: thirteenth settles it"]))
    assert [m.fields["date"][:10] for m in msgs] == ["2024-06-12", "2024-06-13"] and notes == []
    msgs, _, notes = read(chat(tmp_path / "WhatsApp Chat with B.txt", ["06/12/2024, 09:00 - B: x",
                                                                       "06/13/2024, 09:00 - B: month first"]))
    assert [m.fields["date"][:10] for m in msgs] == ["2024-06-12", "2024-06-13"] and notes == []


@pytest.mark.parametrize("dates, read_as, order", [
    (["05/01/2024", "06/01/2024", "07/01/2024"], ["2024-01-05", "2024-01-06", "2024-01-07"], "day/month"),
    (["01/05/2024", "01/06/2024", "01/07/2024"], ["2024-01-05", "2024-01-06", "2024-01-07"], "month/day"),
])
def test_an_open_order_is_decided_from_all_the_dates_and_said(tmp_path: Path, dates: list[str],
                                                              read_as: list[str], order: str) -> None:
    msgs, _, (notice,) = read(chat(tmp_path / "WhatsApp Chat with C.txt", [f"{d}, 10:00 - C: hi" for d in dates]))
    assert [m.fields["date"][:10] for m in msgs] == read_as
    assert f"read as {order}" in notice.message


def test_date_order_option_overrides_and_is_recorded(vault: Vault, tmp_path: Path) -> None:
    path = chat(tmp_path / "WhatsApp Chat with C.txt", ["01/05/2024, 10:00 - C: hi", "01/06/2024, 10:00 - C: again"])
    s = import_file(vault, path, "whatsapp", options={"date-order": "dmy", "tz": "America/New_York"})
    assert s.warnings == [] and s.options == {"date_order": "dmy", "tz": "America/New_York"}
    dates = sorted(f["date"] for _, f in vault.projection.state(Kind.MESSAGE, vault.projection.seq))
    assert dates == ["2024-05-01T10:00:00-04:00", "2024-06-01T10:00:00-04:00"]
    (first, *_) = list(vault.events())
    assert first.event.source.detail["options"] == {"date_order": "dmy", "tz": "America/New_York"}
    with pytest.raises(BadOption, match="must be one of dmy, mdy"):
        import_file(vault, path, "whatsapp", options={"date-order": "ymd"})
    with pytest.raises(BadOption, match="has no option --colour"):
        import_file(vault, path, "whatsapp", options={"colour": "red"})


def test_time_zone_default_is_this_machines_and_is_recorded(vault: Vault, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: times carried no zone."""
    monkeypatch.setenv("TZ", "Europe/London")
    path = chat(tmp_path / "WhatsApp Chat with D.txt", ["15/01/2024, 10:00 - D: winter", "15/07/2024, 10:00 - D: summer"])
    s = import_file(vault, path, "whatsapp")
    assert s.options == {"tz": "Europe/London"}
    dates = sorted(f["date"] for _, f in vault.projection.state(Kind.MESSAGE, vault.projection.seq))
    assert dates == ["2024-01-15T10:00:00+00:00", "2024-07-15T10:00:00+01:00"]
    again = import_file(vault, path, "whatsapp", options={"tz": "+05:30"})  # the same messages, another zone
    assert (again.created, again.updated) == (0, 2)


def test_a_zone_that_does_not_exist_is_refused_in_one_sentence(vault: Vault, tmp_path: Path) -> None:
    path = chat(tmp_path / "WhatsApp Chat with D.txt", ["15/01/2024, 10:00 - D: x"])
    with pytest.raises(Exception, match=r"--tz Mars/Olympus is not a time zone") as e:
        import_file(vault, path, "whatsapp", options={"tz": "Mars/Olympus"})
    assert "\n" not in str(e.value) and vault.log.head().seq == 0


def test_a_message_that_is_not_utf8_is_skipped_with_its_line_never_guessed(tmp_path: Path) -> None:
    """Issue 12: invalid UTF-8 was silently read as Latin-1 (`ÿþÃ(`)."""
    path = tmp_path / "WhatsApp Chat with E.txt"
    path.write_bytes(b"15/01/2024, 10:00 - E: fine\n15/01/2024, 10:01 - E: caf\xe9\nsecond line\n"
                     b"15/01/2024, 10:02 - E: fine again\n")
    msgs, bad, _ = read(path)
    assert [m.fields["body"] for m in msgs] == ["fine", "fine again"]
    assert [(b.location, b.reason) for b in bad] == [
        ("line 2", "line 2 is not UTF-8 (byte 0xe9), so the message was skipped, not guessed")]


def test_cli_takes_format_options_after_the_path_and_prints_warnings(run, tmp_path: Path) -> None:
    r = run("import", "whatsapp", str(ANDROID), "--tz", "Europe/Paris", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["options"] == {"tz": "Europe/Paris"} and summary["created"] == 4
    assert "read as day/month" in summary["warnings"][0]["reason"]
    r = run("import", str(IOS / "_chat.txt"), "--date-order=dmy", "--tz", "Europe/Paris")
    assert r.exit_code == 0 and "warning" not in r.stderr
    r = run("import", str(ANDROID), "--date-order", "ymd")
    assert r.exit_code == 1 and "--date-order must be one of dmy, mdy" in r.stderr


def test_records_a_misread_order_made_are_corrected_not_duplicated(vault: Vault) -> None:
    """Version 1 read the iOS chat month first (its 12-hour clock); importing it again now moves those records
    to the right dates instead of adding a second copy of the chat."""
    old = import_file(vault, IOS, "whatsapp", options={"date-order": "mdy", "tz": "Europe/London"})  # v1's reading
    assert old.created == 4
    s = import_file(vault, IOS, "whatsapp", options={"tz": "Europe/London"})
    assert (s.created, s.updated) == (0, 4)
    dates = sorted(f["date"][:10] for _, f in vault.projection.state(Kind.MESSAGE, vault.projection.seq))
    assert dates == ["2024-06-11", "2024-06-11", "2024-06-12", "2024-06-12"]
    n = vault.log.head().seq
    import_file(vault, IOS, "whatsapp", options={"tz": "Europe/London"})
    assert vault.log.head().seq == n
