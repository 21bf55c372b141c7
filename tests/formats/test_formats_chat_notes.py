"""WhatsApp chat exports, Evernote .enex and Google Keep Takeout, parsed from tests/fixtures/."""

from __future__ import annotations

import base64
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from ingest.enex import EnexImporter
from ingest.keep import KeepImporter
from ingest.whatsapp import WhatsappImporter
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import BadRecord, SourceRecord

FIXTURES = Path(__file__).parent.parent / "fixtures"
WA = FIXTURES / "whatsapp"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg==")


def read(importer, path: Path) -> list[SourceRecord | BadRecord]:
    return list(importer.read(path))


def good(items) -> list[SourceRecord]:
    return [r for r in items if isinstance(r, SourceRecord)]


# -- WhatsApp -------------------------------------------------------------------
@pytest.fixture(autouse=True)
def berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's zone, which a WhatsApp import uses unless --tz names one (March 2024 in Berlin: +01:00)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")


def test_whatsapp_android_day_first_multiline_media_and_a_bad_date() -> None:
    out = read(WhatsappImporter(), WA / "WhatsApp Chat with Ada Lovelace.txt")
    bad = [r for r in out if isinstance(r, BadRecord)]
    assert bad == [BadRecord("line 12", "'31/02/2024 10:00' is not a real date and time (day is out of range for month)")]
    msgs = good(out)
    assert all(m.kind is Kind.MESSAGE and m.fields["kind"] == "chat" and m.fields["thread"] == "Ada Lovelace"
               for m in msgs)
    system, hello, shopping, media, ok1, ok2, deleted, edited, last = msgs
    assert system.fields["system"] is True and "from" not in system.fields
    assert hello.fields == {"kind": "chat", "thread": "Ada Lovelace", "date": "2024-03-05T09:12:00+01:00",
                            "from": "Ada Lovelace", "body": "Good morning! \U0001F600"}
    assert shopping.fields["body"] == "Morning. Shopping list for Friday:\n- bread\n- cheese: the good one\n- wine"
    assert shopping.location == "line 3" and media.location == "line 7"
    assert media.fields["media"] == "omitted" and "body" not in media.fields
    assert ok1.source_id != ok2.source_id and ok2.source_id.endswith("#2")  # same minute, same text
    assert deleted.fields["deleted"] is True
    assert edited.fields["edited"] is True and edited.fields["body"] == "Are we still on for Friday?"
    assert edited.fields["date"] == "2024-03-13T18:02:00+01:00" and last.fields["date"] == "2024-03-14T08:00:00+01:00"


def test_whatsapp_us_month_first_with_media_beside_the_chat(tmp_path: Path) -> None:
    folder = tmp_path / "chat"
    shutil.copytree(WA / "android-us", folder)
    (folder / "IMG-20240305-WA0001.jpg").write_bytes(PNG)  # the photo exported "with media"
    look, photo, nice, voice = good(read(WhatsappImporter(), folder))
    assert look.fields["date"] == "2024-03-05T09:12:00+01:00" and nice.fields["date"] == "2024-03-05T12:30:00+01:00"
    assert photo.fields["media"] == "IMG-20240305-WA0001.jpg" and photo.fields["body"] == "The view from the office"
    (att,) = photo.attachments
    assert (att.name, att.content_type, att.data) == ("IMG-20240305-WA0001.jpg", "image/jpeg", PNG)
    assert voice.fields["media"] == "PTT-20240305-WA0002.opus" and voice.attachments == ()  # not exported
    assert look.fields["thread"] == "Grace"


def test_whatsapp_ios_german_brackets_seconds_marks_and_crlf() -> None:
    folder = WA / "ios-de" / "WhatsApp Chat - Familie"
    system, hallo, photo, schoen, omitted = good(read(WhatsappImporter(), folder))
    assert system.fields["system"] is True and system.fields["body"].startswith("Nachrichten und Anrufe")
    assert hallo.fields == {"kind": "chat", "thread": "Familie", "date": "2024-03-05T09:12:45+01:00",
                            "from": "Ada", "body": "Hallo zusammen!"}
    assert photo.fields["media"] == "00000012-PHOTO-2024-03-05-09-13-01.jpg"
    assert schoen.fields["body"] == "Schön!\nWann kommt ihr an?"
    assert omitted.fields["media"] == "omitted"


def test_whatsapp_ios_zip_as_shared_reads_like_its_folder_and_attaches_media(tmp_path: Path) -> None:
    folder = WA / "ios-de" / "WhatsApp Chat - Familie"
    path = tmp_path / "WhatsApp Chat - Familie.zip"  # what "Export chat" on an iPhone shares
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(folder / "_chat.txt", "_chat.txt")
        zf.writestr("00000012-PHOTO-2024-03-05-09-13-01.jpg", PNG)
    assert WhatsappImporter().detect(path)
    from_zip = good(read(WhatsappImporter(), path))
    from_folder = good(read(WhatsappImporter(), folder))
    assert [(r.source_id, r.fields) for r in from_zip] == [(r.source_id, r.fields) for r in from_folder]
    assert [a.data for a in from_zip[2].attachments] == [PNG] and from_folder[2].attachments == ()


def test_whatsapp_zip_with_an_escaping_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "WhatsApp Chat - Familie.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(WA / "ios-de" / "WhatsApp Chat - Familie" / "_chat.txt", "_chat.txt")
        zf.writestr("../../.bashrc", b"echo owned")
    with pytest.raises(IngestError, match="outside its own folder"):
        read(WhatsappImporter(), path)


@pytest.mark.parametrize("lines, dates", [
    (["12/03/2024, 09:00 - A: x", "13/03/2024, 09:00 - A: y"], ["2024-03-12T09:00:00+01:00", "2024-03-13T09:00:00+01:00"]),
    (["03/12/2024, 9:00 PM - A: x", "03/13/2024, 9:00 AM - A: y"], ["2024-03-12T21:00:00+01:00", "2024-03-13T09:00:00+01:00"]),
    (["2024-03-05 09:12 - A: iso"], ["2024-03-05T09:12:00+01:00"]),
    (["05/03/2024 à 09:12 - A : bonjour"], ["2024-03-05T09:12:00+01:00"]),
    (["[3/5/24, 12:05:09\u202fAM] A: midnight"], ["2024-03-05T00:05:09+01:00"]),
    (["5.3.24, 09:12 - A: dots"], ["2024-03-05T09:12:00+01:00"]),
])
def test_whatsapp_date_locales(tmp_path: Path, lines: list[str], dates: list[str]) -> None:
    path = tmp_path / "WhatsApp Chat with A.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [r.fields["date"] for r in good(read(WhatsappImporter(), path))] == dates
    assert WhatsappImporter().detect(path)


def test_whatsapp_ids_are_stable_across_a_newer_export(tmp_path: Path) -> None:
    original = WA / "WhatsApp Chat with Ada Lovelace.txt"
    newer = tmp_path / original.name
    newer.write_text(original.read_text(encoding="utf-8") + "15/03/2024, 10:00 - Ada Lovelace: New one\n",
                     encoding="utf-8")
    before = {r.source_id: r.fields for r in good(read(WhatsappImporter(), original))}
    after = {r.source_id: r.fields for r in good(read(WhatsappImporter(), newer))}
    assert len(after) == len(before) + 1 and all(after[k] == v for k, v in before.items())


def test_whatsapp_refuses_what_is_not_a_chat(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Shopping list: milk, eggs.\nCall Ada about Tuesday.\n")
    assert not WhatsappImporter().detect(path)
    with pytest.raises(IngestError, match="no line starts with a date and time"):
        read(WhatsappImporter(), path)


# -- Evernote -------------------------------------------------------------------
def test_enex_notes_enml_tags_resources_and_a_bad_time() -> None:
    out = read(EnexImporter(), FIXTURES / "enex" / "notes.enex")
    assert [r.location for r in out] == ["note 1 (line 4)", "note 2 (line 32)", "note 3 (line 45)", "note 4 (line 50)"]
    assert out[2] == BadRecord("note 3 (line 45)",
                               "its <created> 'yesterday' is not an Evernote time like 20240301T101500Z")
    shopping, article, untitled = good(out)
    assert shopping.kind is Kind.NOTE
    f = shopping.fields
    assert f["title"] == "Shopping & errands" and f["tags"] == ["home", "Einkäufe"]
    assert f["body"] == "This week:\n[x] Milk\n[ ] Eggs (free range)\n\nMap of the market:\n[attachment image/png]"
    assert f["created"] == "2024-03-01T10:15:00+00:00" and f["updated"] == "2024-03-02T08:00:00+00:00"
    assert f["author"] == "Ada Lovelace" and f["enml"].startswith("<?xml")
    (png,) = shopping.attachments  # base64 wrapped over lines
    assert (png.field, png.name, png.content_type, png.data) == ("attachments", "market.png", "image/png", PNG)
    assert article.fields["body"] == ("The Analytical Engine\n\nIt weaves algebraic patterns.\n\n- Mill\n- Store"
                                      "\n\nCards Punched")
    assert article.fields["source_url"] == "https://example.org/engine" and "updated" not in article.fields
    assert "title" not in untitled.fields and untitled.fields["body"] == "Untitled quick note \U0001F6B2"


def test_enex_never_fetches_or_expands_entities(tmp_path: Path) -> None:
    path = tmp_path / "x.enex"
    path.write_text('<?xml version="1.0"?><!DOCTYPE en-export [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>'
                    "<en-export><note><title>&x;</title></note></en-export>")
    with pytest.raises(IngestError, match="refuses to expand"):
        read(EnexImporter(), path)


def test_enex_wrong_root_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.enex"
    path.write_text('<?xml version="1.0"?>\n<html><body>not evernote</body></html>')
    with pytest.raises(IngestError, match=r"root element is <html>, not <en-export>"):
        read(EnexImporter(), path)


# -- Google Keep ----------------------------------------------------------------
def keep_notes(path: Path) -> dict[str, SourceRecord]:
    return {r.location.rsplit("/", 1)[-1]: r for r in good(read(KeepImporter(), path))}


def test_keep_folder_lists_labels_flags_links_and_renamed_attachment() -> None:
    notes = keep_notes(FIXTURES / "keep" / "Takeout")
    assert set(notes) == {"Shopping.json", "Ideas.json", "Old idea.json", "2024-03-05T09_12_33.123+01_00.json"}
    shop = notes["Shopping.json"]
    assert shop.source_id == "created:1709600000000000" and shop.kind is Kind.NOTE
    assert shop.fields["body"] == "- [ ] Milk\n- [x] Eggs" and shop.fields["tags"] == ["home", "Einkäufe"]
    assert shop.fields["checklist"][1] == {"text": "Eggs", "checked": True}
    assert shop.fields["pinned"] is True and shop.fields["color"] == "yellow"
    assert shop.fields["updated"] == "2024-03-05T08:12:33.123456+00:00"
    ideas = notes["Ideas.json"].fields
    assert ideas["archived"] is True and ideas["links"] == [{"url": "https://example.org/canal", "title": "Canal map"}]
    assert ideas["shared_with"] == ["ada@example.org", "grace@example.net"]
    assert notes["Old idea.json"].fields["trashed"] is True
    untitled = notes["2024-03-05T09_12_33.123+01_00.json"]
    assert "title" not in untitled.fields and untitled.source_id == "file:2024-03-05T09_12_33.123+01_00.json"
    (photo,) = untitled.attachments  # the JSON says .jpg, Takeout wrote .jpeg
    assert photo.name == "1709626353123.1a2b3c4d5e6f7a8b.jpeg" and photo.data == PNG


def zip_of(folder: Path, out: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, "Takeout/" + p.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def test_keep_takeout_zip_reads_the_same_notes(tmp_path: Path) -> None:
    other_products = {"Takeout/Fit/Daily activity.json": b'{"steps": 1}', "Takeout/archive_browser.html": b"<html>"}
    path = zip_of(FIXTURES / "keep" / "Takeout", tmp_path / "takeout-20240305T093012Z-001.zip", other_products)
    assert KeepImporter().detect(path)
    assert not [r for r in read(KeepImporter(), path) if isinstance(r, BadRecord)]  # other products' JSON is not Keep's
    from_zip = {k: (r.source_id, r.fields, r.attachments) for k, r in keep_notes(path).items()}
    from_folder = {k: (r.source_id, r.fields, r.attachments) for k, r in keep_notes(FIXTURES / "keep" / "Takeout").items()}
    assert from_zip == from_folder


@pytest.mark.parametrize("evil", ["../evil.json", "Takeout/../../evil.json", "/etc/evil.json"])
def test_keep_zip_with_escaping_paths_is_refused(tmp_path: Path, evil: str) -> None:
    path = zip_of(FIXTURES / "keep" / "one-bad", tmp_path / "t.zip", {evil: b'{"textContent":"x","isTrashed":false}'})
    with pytest.raises(IngestError) as e:
        read(KeepImporter(), path)
    assert e.value.reason == "the zip holds a path outside its own folder; refusing it"
    assert e.value.location == evil


def test_keep_zip_member_larger_than_it_claims_is_cut_off(tmp_path: Path, monkeypatch) -> None:
    import ingest
    monkeypatch.setattr(ingest, "MAX_RECORD", 10_000)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Takeout/Keep/big.json", b'{"textContent":"' + b"a" * 5_000_000 + b'"}')
    with pytest.raises(IngestError, match="larger than"):
        read(KeepImporter(), path)


def test_keep_bad_and_foreign_json_are_reported_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "Keep"
    shutil.copytree(FIXTURES / "keep" / "one-bad" / "Keep", folder)
    (folder / "settings.json").write_text(json.dumps({"theme": "dark"}))
    out = read(KeepImporter(), folder)
    bad = {r.location: r.reason for r in out if isinstance(r, BadRecord)}
    assert bad["settings.json"] == "is JSON but not a Google Keep note"
    assert bad["Cut off.json"].startswith("is not valid JSON (Unterminated string")
    assert [r.fields["title"] for r in good(out)] == ["Note"]


def test_keep_single_json_and_wrong_inputs(tmp_path: Path) -> None:
    (ideas,) = good(read(KeepImporter(), FIXTURES / "keep" / "Takeout" / "Keep" / "Ideas.json"))
    assert ideas.source_id == "created:1709690000000000"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestError, match="holds no .json files"):
        read(KeepImporter(), empty)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(IngestError, match="neither a Takeout zip"):
        read(KeepImporter(), text)
    assert not KeepImporter().detect(text) and not KeepImporter().detect(FIXTURES / "enex" / "notes.enex")
