"""Email: mbox <->, Maildir and .eml parsed from the real-world fixtures in tests/fixtures/mail/."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import mail
from ingest.mail import EmlImporter, MaildirImporter, MboxExporter, MboxImporter
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import BadRecord, ExportRecord, SourceRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
MBOX = FIXTURES / "sample.mbox"


def records(importer, path: Path) -> dict[str, SourceRecord]:
    return {r.source_id: r for r in importer.read(path) if isinstance(r, SourceRecord)}


@pytest.fixture
def export_and_reread(as_exported):
    """Export source records through the mbox exporter as the core would, then read the file back."""

    def run(recs: dict[str, SourceRecord], out: Path) -> dict[str, SourceRecord]:
        exported, get_blob = as_exported(recs.values(), Kind.MESSAGE)
        assert MboxExporter().write(exported, out, get_blob) == len(recs)
        return records(MboxImporter(), out)

    return run


@pytest.fixture(scope="module")
def mbox() -> dict[str, SourceRecord]:
    return records(MboxImporter(), MBOX)


def test_mbox_reads_every_message_and_reports_the_damaged_one_where_it_is() -> None:
    out = list(MboxImporter().read(MBOX))
    bad = [r for r in out if isinstance(r, BadRecord)]
    assert len(out) == 11
    assert bad == [BadRecord("message 9 (line 146)", "does not start with mail headers (a damaged mailbox?)")]
    assert [r.location for r in out[:3]] == ["message 1 (line 1)", "message 2 (line 25)", "message 3 (line 59)"]


def test_mbox_fields_and_mboxrd_unquoting(mbox) -> None:
    f = mbox["lunch-1@example.org"].fields
    assert f["from"] == "Ada Lovelace <ada@example.org>"
    assert f["to"] == ["Grace Hopper <grace@example.net>", '"Turing, Alan" <alan@example.net>']
    assert f["cc"] == ["charles@example.org"]
    assert f["date"] == "2024-03-05T09:12:00+01:00"
    assert f["kind"] == "email" and f["message_id"] == "<lunch-1@example.org>"
    # mboxrd: one '>' comes off; a 'From ' body line without a time is not a message boundary
    assert "\nFrom the notes you sent" in f["body"] and "\n>From a quoted reply" in f["body"]
    assert "From what I hear the soup is good.\n\nAda" in f["body"]


def test_multipart_attachments_and_threading(mbox) -> None:
    r = mbox["lunch-2@example.net"]
    assert r.fields["body"] == "Noon is fine. A map is attached."
    assert r.fields["in_reply_to"] == "<lunch-1@example.org>" and r.fields["thread"] == "<lunch-1@example.org>"
    png, txt = r.attachments
    assert png.field == "attachments" and png.data.startswith(b"\x89PNG") and png.name == "map.png"
    assert (txt.name, txt.content_type, txt.data) == ("grüße.txt", "text/plain", "Grüße aus Berlin".encode())


def test_encoded_headers_and_charsets(mbox) -> None:
    jose = mbox["jose-1@example.es"].fields
    assert jose["from"] == "José Müller <jose@example.es>"
    assert jose["subject"] == "Grüße aus Köln und Café"
    assert jose["body"] == "Olá Ada, über das Café reden wir später."
    assert jose["date"] == "2024-03-06T08:00:00+00:00"  # -0000 means UTC
    lying_ascii = mbox["mislabel-1@example.com"].fields
    assert lying_ascii["subject"] == "Grüße, unencoded"
    assert lying_ascii["body"].startswith("Naïve résumé —")
    lying_utf8 = mbox["cp1252-1@example.it"].fields
    assert lying_utf8["body"] == "Costo: 50€ – grazie, à presto."


def test_html_only_inline_images_and_broken_mime(mbox) -> None:
    digest = mbox["digest-10@example.com"].fields
    assert digest["body"] == "This week\n\nTom & Jerry are back.\n\n- One\n- Two"
    assert digest["html"].startswith("<html>")
    photo = next(r for sid, r in mbox.items() if sid.startswith("sha256:"))  # it has no Message-ID
    assert photo.fields["body"] == "Here is the photo." and "cid:dot@local" in photo.fields["html"]
    assert [(a.name, a.content_type) for a in photo.attachments] == [(None, "image/png")]
    assert mbox["broken-1@example.com"].fields["body"] == "The mailer forgot the parts; this text is all there is."


def test_takeout_labels_thread_and_received_date(mbox) -> None:
    f = mbox["takeout-1@mail.gmail.com"].fields
    assert f["labels"] == ["Inbox", "Important", "Opened"]
    assert f["thread"] == "1792796521432876011"
    assert f["date"] == "2024-03-11T02:00:01-07:00"  # the Date header is junk; Received has one


def test_forwarded_message_is_an_attachment_not_body(mbox) -> None:
    r = mbox["fwd-1@example.org"]
    assert r.fields["body"] == "See below."
    (fwd,) = r.attachments
    assert fwd.content_type == "message/rfc822" and b"Message-ID: <lunch-2@example.net>" in fwd.data


def test_message_without_id_has_a_stable_content_hash() -> None:
    first = {sid for sid in records(MboxImporter(), MBOX) if sid.startswith("sha256:")}
    again = {sid for sid in records(MboxImporter(), MBOX) if sid.startswith("sha256:")}
    assert len(first) == 1 and first == again


def test_mbox_round_trip_keeps_every_field_and_attachment(mbox, tmp_path: Path, export_and_reread) -> None:
    back = export_and_reread(mbox, tmp_path / "out.mbox")
    assert back.keys() == mbox.keys()
    for sid, r in mbox.items():
        assert back[sid].fields == r.fields, sid
        assert back[sid].attachments == r.attachments, sid


def test_export_is_deterministic(mbox, tmp_path: Path, export_and_reread) -> None:
    export_and_reread(mbox, tmp_path / "a.mbox")
    export_and_reread(mbox, tmp_path / "b.mbox")
    assert (tmp_path / "a.mbox").read_bytes() == (tmp_path / "b.mbox").read_bytes()


def test_exporter_skips_messages_that_are_not_email(tmp_path: Path) -> None:
    sms = ExportRecord(Kind.MESSAGE, "m_1", {"kind": "sms", "body": "hi"})
    note = ExportRecord(Kind.NOTE, "n_1", {"title": "t"})
    email = ExportRecord(Kind.MESSAGE, "m_2", {"kind": "email", "body": "From here\nhi", "subject": "s"})
    assert MboxExporter().write([sms, note, email], tmp_path / "o.mbox", lambda b: b"") == 1
    (back,) = records(MboxImporter(), tmp_path / "o.mbox").values()
    assert back.fields["body"] == "From here\nhi" and back.fields["subject"] == "s"


def test_same_message_from_mbox_maildir_and_eml_is_the_same_record(mbox) -> None:
    maildir = records(MaildirImporter(), FIXTURES / "maildir")
    assert maildir["lunch-1@example.org"].fields == mbox["lunch-1@example.org"].fields
    (eml,) = records(EmlImporter(), FIXTURES / "lunch-reply.eml").values()  # CRLF, saved by Outlook
    assert eml.source_id == "lunch-2@example.net"
    assert eml.fields == mbox["lunch-2@example.net"].fields and eml.attachments == mbox["lunch-2@example.net"].attachments
    assert {MboxImporter.namespace, MaildirImporter.namespace, EmlImporter.namespace} == {"mail"}


def test_maildir_reads_subfolders_and_outlook_korean_charset() -> None:
    out = list(MaildirImporter().read(FIXTURES / "maildir"))
    assert [r.location for r in out] == [
        "new/1709626320.M1P4242.mail.example.org",
        "cur/1709630000.M2P4242.mail.example.org:2,S",
        ".Sent/cur/1709640000.M3P4242.mail.example.org:2,RS",
    ]
    kim = out[1].fields
    assert kim["from"] == "길영희 <kim@example.kr>" and kim["subject"] == "안녕하세요"
    assert kim["body"] == "안녕하세요. 한국에서 인사드립니다."


def test_detection_tells_the_three_apart(tmp_path: Path) -> None:
    vcf = tmp_path / "a.vcf"
    vcf.write_text("BEGIN:VCARD\nVERSION:3.0\nFN:Ada\nEND:VCARD\n")
    cases = {MBOX: "mbox", FIXTURES / "maildir": "maildir", FIXTURES / "lunch-reply.eml": "eml", vcf: None}
    for path, expected in cases.items():
        found = [i.name for i in (MboxImporter(), MaildirImporter(), EmlImporter()) if i.detect(path)]
        assert found == ([expected] if expected else []), path


@pytest.mark.parametrize("content, reason", [
    (b"", "is empty, not an mbox file"),
    (b"\n\n", "has no 'From ' line, so it is not an mbox file"),
    (b"BEGIN:VCARD\nFN:Ada\nEND:VCARD\n", "text before the first 'From ' line, so this is not an mbox file"),
    (bytes(range(256)) * 4, "is binary, not an mbox file"),
])
def test_wrong_format_is_one_sentence(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "x.mbox"
    path.write_bytes(content)
    with pytest.raises(IngestError) as e:
        list(MboxImporter().read(path))
    assert e.value.reason == reason and str(e.value).startswith(str(path))


def test_eml_that_is_not_mail_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.eml"
    path.write_text("Just some text\nwith no headers\n")
    with pytest.raises(IngestError, match="does not start with mail headers"):
        list(EmlImporter().read(path))


def test_a_huge_message_is_refused_without_buffering_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mail, "MAX_MESSAGE_BYTES", 10_000)
    monkeypatch.setattr(mail, "_CHUNK", 1000)  # the one long line is read in bounded pieces
    path = tmp_path / "big.mbox"
    path.write_bytes(MBOX.read_bytes() + b"From x@y Mon Mar 11 09:00:00 2024\nSubject: big\n\n" + b"A" * 50_000 + b"\n")
    seen = []
    with pytest.raises(IngestError) as e:
        for r in MboxImporter().read(path):
            seen.append(r)
    assert e.value.location == "message 12 (line 191)" and "larger than" in str(e.value)
    assert len(seen) == 11  # streamed: the earlier messages were handed on before the big one was met


def test_lines_longer_than_a_read_are_reassembled(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "long.mbox"
    line = "From here on, a very long line " + "x" * 5000 + "\n"
    path.write_bytes(MBOX.read_bytes() + f"From a@b Mon Mar 11 09:00:00 2024\nMessage-ID: <long@b>\n\n{line}\n{line}".encode())
    whole = records(MboxImporter(), path)
    monkeypatch.setattr(mail, "_CHUNK", 64)
    pieces = records(MboxImporter(), path)
    assert pieces == whole and len(whole) == 11
    assert pieces["long@b"].fields["body"] == (line + "\n" + line).rstrip()


def test_absurdly_nested_mime_is_a_bad_record(tmp_path: Path) -> None:
    depth = 60
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    tail = "".join(f"\n--b{i}--\n" for i in reversed(range(depth)))
    path = tmp_path / "deep.mbox"
    path.write_text("From a@b Mon Mar 11 09:00:00 2024\nFrom: a@b\nMessage-ID: <d@b>\n" + head
                    + "Content-Type: text/plain\n\nhi\n" + tail + "\n")
    (bad,) = MboxImporter().read(path)
    assert bad == BadRecord("message 1 (line 1)", "MIME parts are nested more than 40 deep")


def test_one_message_is_one_record_across_mbox_maildir_and_eml_in_a_vault(vault) -> None:
    from vault.formats.importing import import_file

    first = import_file(vault, MBOX, "mbox")
    assert (first.created, len(first.skipped)) == (10, 1)
    maildir = import_file(vault, FIXTURES / "maildir", "maildir")
    assert (maildir.created, maildir.unchanged) == (2, 1)  # lunch-1 came in the mbox already
    eml = import_file(vault, FIXTURES / "lunch-reply.eml", "eml")
    assert (eml.created, eml.updated, eml.unchanged) == (0, 0, 1)


def test_email_records_from_elsewhere_export_without_crashing(tmp_path: Path) -> None:
    typed = [ExportRecord(Kind.MESSAGE, "m_1", {"kind": "email", "to": "ada@example.org", "date": "last Tuesday",
                                                "subject": "typed in by hand"})]
    assert MboxExporter().write(typed, tmp_path / "o.mbox", lambda b: b"") == 1
    (back,) = records(MboxImporter(), tmp_path / "o.mbox").values()
    assert back.fields["to"] == ["ada@example.org"] and back.fields["date_raw"] == "last Tuesday"


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=60)


@settings(max_examples=60, deadline=None)
@example(subject="", body="", name="0" + "\u0800" * 14 + " :", cc=[])  # folded between encoded words at the space
@given(subject=_TEXT, body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300), name=_TEXT,
       cc=st.lists(st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.org", fullmatch=True), max_size=3))
def test_written_messages_read_back_the_same(subject: str, body: str, name: str, cc: list[str]) -> None:
    """read_message(write_message(fields)) == fields for any text a record may hold (as import normalizes it)."""
    from ingest.mime import read_message, show_address, write_message

    fields = {"kind": "email", "from": show_address(" ".join(name.split()), "ada@example.org"),
              "date": "2024-03-05T09:12:00+01:00", "message_id": "<p@example.org>", "thread": "<p@example.org>"}
    if " ".join(subject.split()):
        fields["subject"] = " ".join(subject.split())
    normalized = body.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if normalized:
        fields["body"] = normalized
    if cc:
        fields["cc"] = cc
    assert read_message(write_message(fields, []))[1] == fields
