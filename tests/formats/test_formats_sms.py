"""SMS Backup & Restore XML <->, and the safe XML reading it (and Evernote) stand on."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingest
from ingest import safexml
from ingest.safexml import fix_char_refs, iter_records
from ingest.sms import SmsExporter, SmsImporter
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import BadRecord, ExportRecord, SourceRecord

FIXTURE = Path(__file__).parent.parent / "fixtures" / "sms" / "sms-20240305093012.xml"


def records(path: Path) -> dict[str, SourceRecord]:
    return {r.source_id: r for r in SmsImporter().read(path) if isinstance(r, SourceRecord)}


@pytest.fixture(scope="module")
def sms() -> dict[str, SourceRecord]:
    return records(FIXTURE)


def by_body(recs: dict[str, SourceRecord], start: str) -> SourceRecord:
    return next(r for r in recs.values() if r.fields.get("body", "").startswith(start))


def test_reads_sms_and_mms_and_reports_bad_ones_by_element_and_line() -> None:
    out = list(SmsImporter().read(FIXTURE))
    assert len(out) == 7
    assert [r for r in out if isinstance(r, BadRecord)] == [
        BadRecord("sms 4 (line 8)", "its date '' is not a time in milliseconds")]
    assert out[0].location == "sms 1 (line 5)" and out[5].location == "mms 1 (line 10)"
    bad_part = list(SmsImporter().read(FIXTURE.parent / "one-bad-mms.xml"))
    assert bad_part[1] == BadRecord("mms 1 (line 5)", "its part broken.jpg has data that is not base64")


def test_sms_fields_emoji_surrogates_and_escapes(sms) -> None:
    got = by_body(sms, "Running late").fields
    assert got == {
        "kind": "sms", "thread": "+447700900123", "from": "+447700900123", "box": "inbox", "read": True,
        "date": "2024-03-05T08:12:33.123+00:00", "date_sent": "2024-03-05T08:12:30.000+00:00",
        "body": "Running late \U0001F600 see you at 7", "contact_name": "Ada Lovelace",
        "service_center": "+447785016005",
    }
    sent = by_body(sms, "No worries").fields
    assert sent["to"] == ["+447700900123"] and "from" not in sent and sent["box"] == "sent"
    assert sent["body"] == 'No worries!\nTable for "two" & a high chair'
    unknown = by_body(sms, "Your code").fields
    assert "contact_name" not in unknown and unknown["locked"] is True and unknown["read"] is False
    assert unknown["body"] == "Your code is 123456\ufffd"  # &#1; is not an XML character
    assert by_body(sms, "Bonjour").fields["box"] == "failed"


def test_mms_parts_image_and_group_addresses(sms) -> None:
    mms = sms["mms:mms-20240305-0001@mms.example.net"]
    assert mms.fields["mms"] is True and mms.fields["body"] == "The garden this morning \U0001F338"
    assert mms.fields["from"] == "+447700900123" and mms.fields["to"] == ["+447700900456", "+447700900999"]
    assert mms.fields["thread"] == "+447700900123~+447700900456"
    (img,) = mms.attachments  # the SMIL layout part is not kept
    assert (img.field, img.name, img.content_type) == ("attachments", "IMG_20240305_082640.png", "image/png")
    assert img.data.startswith(b"\x89PNG")
    sent = by_body(sms, "Picnic").fields
    assert sent["subject"] == "Plans" and sent["from"] == "insert-address-token" and sent["box"] == "sent"


def test_round_trip_keeps_every_field_and_image(sms, tmp_path: Path, as_exported) -> None:
    exported, get_blob = as_exported(sms.values(), Kind.MESSAGE)
    exported.append(ExportRecord(Kind.MESSAGE, "m_y", {"kind": "email", "body": "not an sms"}))
    out = tmp_path / "sms.xml"
    assert SmsExporter().write(exported, out, get_blob) == len(sms)
    back = records(out)
    assert back.keys() == sms.keys()
    for sid, r in sms.items():
        assert (back[sid].fields, back[sid].attachments) == (r.fields, r.attachments), sid
    assert SmsImporter().detect(out)


def test_detect() -> None:
    assert SmsImporter().detect(FIXTURE)
    assert not SmsImporter().detect(Path(__file__))
    assert not SmsImporter().detect(FIXTURE.parent)


def test_fix_char_refs() -> None:
    assert fix_char_refs(b"a&#55357;&#56832;b") == b"a&#128512;b"
    assert fix_char_refs(b"&#55357;x&#65;&#x1F600;") == b"&#65533;x&#65;&#128512;"
    assert fix_char_refs(b"&#56832;&#55357;") == b"&#65533;&#65533;"  # wrong order: not a pair


def test_surrogate_pair_cut_by_a_chunk_boundary_is_still_joined(tmp_path: Path, monkeypatch) -> None:
    whole = records(FIXTURE)
    for size in (7, 64, 1000):
        monkeypatch.setattr(safexml, "_CHUNK", size)
        assert records(FIXTURE) == whole, size


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sms.xml"
    path.write_text(text, encoding="utf-8")
    return path


HOSTILE = {
    "billion laughs": ('<?xml version="1.0"?><!DOCTYPE smses [<!ENTITY a "aaaaaaaaaa">'
                       '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><smses><sms body="&b;"/></smses>',
                       "line 1", "it declares XML entities, which lifevault refuses to expand"),
    "external entity": ('<?xml version="1.0"?><!DOCTYPE smses [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        '<smses><sms body="&x;"/></smses>',
                        "line 1", "it declares XML entities, which lifevault refuses to expand"),
    "deep nesting": ("<smses>" + "<a>" * 100 + "</a>" * 100 + "</smses>",
                     "line 1", "elements are nested more than 64 deep; this is not a real export"),
    "truncated": ('<?xml version="1.0"?>\n<smses count="2">\n  <sms address="1" date="1" type="1" body="x"/>\n  <sms addr',
                  "line 4", "it is not well-formed XML (unclosed token)"),
    "call log, not sms": ('<?xml version="1.0"?>\n<calls count="1"><call number="1"/></calls>',
                          "line 2", "its root element is <calls>, not <smses>, so it is not an SMS Backup & Restore export"),
    "not xml": ("Hello, this is a text file\n", "line 1", "it is not well-formed XML (syntax error)"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_or_wrong_files_get_one_sentence_with_a_line(tmp_path: Path, case: str) -> None:
    text, location, reason = HOSTILE[case]
    with pytest.raises(IngestError) as e:
        list(SmsImporter().read(write(tmp_path, text)))
    assert (e.value.location, e.value.reason) == (location, reason)


def test_empty_and_binary_files(tmp_path: Path) -> None:
    for content, reason in ((b"", "is empty"), (b"\x00\x01PK" * 100, "is binary")):
        path = tmp_path / "x.xml"
        path.write_bytes(content)
        with pytest.raises(IngestError, match=reason):
            list(SmsImporter().read(path))


def test_a_huge_value_is_refused_before_it_is_buffered(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "MAX_RECORD", 50_000)
    monkeypatch.setattr(safexml, "_CHUNK", 4096)
    path = write(tmp_path, '<smses>\n<sms address="1" date="1" type="1" body="ok"/>\n<sms body="'
                 + "x" * 200_000 + '"/></smses>')
    seen = []
    with pytest.raises(IngestError) as e:
        for r in SmsImporter().read(path):
            seen.append(r)
    assert e.value.location == "line 3" and "one value is longer than" in e.value.reason
    assert len(seen) == 1  # the record before it was streamed out first


def test_records_stream_out_before_the_end_is_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(safexml, "_CHUNK", 1024)
    body = "".join(f'<sms address="+4477009{i:05d}" date="{1709626353000 + i}" type="1" body="n{i}"/>\n'
                   for i in range(2000))
    path = write(tmp_path, "<smses>\n" + body + "<sms broken")
    seen = []
    with pytest.raises(IngestError) as e:
        for item in iter_records(path, "smses", frozenset({"sms"}), "an SMS export"):
            seen.append(item[0])
    assert len(seen) == 2000 and seen[0] == "sms 1 (line 2)" and e.value.location == "line 2002"


def test_a_newer_backup_appends_only_what_changed(vault, tmp_path: Path) -> None:
    from vault.formats.importing import import_file

    assert import_file(vault, FIXTURE, "sms").created == 6
    newer = tmp_path / "sms-newer.xml"
    text = FIXTURE.read_text(encoding="utf-8").replace('read="0" status="-1" locked="1"', 'read="1" status="-1" locked="1"')
    text = text.replace("</smses>", '  <sms protocol="0" address="+447700900123" date="1709700000000" type="1" '
                        'body="A new one" read="0" contact_name="Ada Lovelace" />\n</smses>')
    newer.write_text(text, encoding="utf-8")
    s = import_file(vault, newer, "sms")
    assert (s.created, s.updated, s.unchanged) == (1, 1, 5)


def test_records_from_elsewhere_export_without_crashing(tmp_path: Path) -> None:
    typed = [
        ExportRecord(Kind.MESSAGE, "m_1", {"kind": "sms", "date": "2024-03-05T09:00:00", "to": "+447700900123",
                                           "body": "naive date, 'to' as a string", "box": "sent"}),
        ExportRecord(Kind.MESSAGE, "m_2", {"kind": "sms", "date": "last Tuesday", "body": "not exportable"}),
    ]
    out = tmp_path / "o.xml"
    assert SmsExporter().write(typed, out, lambda b: b"") == 1
    (back,) = records(out).values()
    assert back.fields["to"] == ["+447700900123"] and back.fields["date"] == "2024-03-05T09:00:00.000+00:00"


@settings(max_examples=60, deadline=None)
@given(body=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"), max_size=200),
       name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30))
def test_any_sms_text_survives_export_and_import(tmp_path_factory, body: str, name: str) -> None:
    from ingest.sms import _NOT_XML

    fields = {"kind": "sms", "thread": "+447700900123", "from": "+447700900123", "box": "inbox", "read": True,
              "date": "2024-03-05T08:12:33.123+00:00", "contact_name": name}
    if body:
        fields["body"] = body
    out = tmp_path_factory.mktemp("sms") / "o.xml"
    SmsExporter().write([ExportRecord(Kind.MESSAGE, "m_1", fields)], out, lambda b: b"")
    (back,) = records(out).values()
    expected = dict(fields, body=_NOT_XML.sub("\ufffd", body)) if body else fields
    if name in ("(Unknown)", "null"):  # how the format itself writes "no contact name"
        expected.pop("contact_name")
    assert back.fields == expected
