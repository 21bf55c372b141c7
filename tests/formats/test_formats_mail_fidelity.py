"""Mail that comes in whole and keeps its identity (issue 12, "Mail identity" and "Mail content").

Fixtures (tests/fixtures/README-messages-notes.md): mail/shared-ids.mbox (three different messages with one
Message-ID, a copy of the first re-delivered by a list, two id-less invoices that differ only in their PDF),
mail/quirks.mbox (one message per content finding) and mail/eml-folder/ (one file saved with its `From ` line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from ingest.mail import EmlImporter, MaildirImporter, MboxImporter, split_mbox
from vault import Vault
from vault.formats import SourceRecord, registry as plugins
from vault.domain.events import Kind
from vault.formats.exporting import export_file
from vault.formats.importing import import_file

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
SHARED = FIXTURES / "shared-ids.mbox"
QUIRKS = FIXTURES / "quirks.mbox"


def read(importer: Any, path: Path) -> dict[str, SourceRecord]:
    return {r.source_id: r for r in importer.read(path) if isinstance(r, SourceRecord)}


def quirk(source_id: str) -> SourceRecord:
    return read(MboxImporter(), QUIRKS)[source_id]


def head(vault: Vault) -> int:
    return vault.log.head().seq


def messages(vault: Vault) -> dict[str, dict[str, Any]]:
    return dict(vault.projection.state(Kind.MESSAGE, vault.projection.seq))


def as_maildir(mbox: Path, out: Path) -> Path:
    """The mbox's messages as a Maildir, one file each, as a mail program that moved them would leave them."""
    for sub in ("cur", "new", "tmp"):
        (out / sub).mkdir(parents=True)
    for number, _, _, raw in split_mbox(mbox):
        (out / "cur" / f"17120000{number:02d}.M{number}P1.example:2,S").write_bytes(raw)
    return out


def as_eml_folder(mbox: Path, out: Path) -> Path:
    out.mkdir()
    for number, _, _, raw in split_mbox(mbox):
        (out / f"message {number}.eml").write_bytes(raw.replace(b"\n", b"\r\n"))  # saved on Windows
    return out


# -- identity ------------------------------------------------------------------------------------------
def test_different_messages_sharing_a_message_id_are_kept_apart_and_linked(vault: Vault) -> None:
    summary = import_file(vault, SHARED, "mbox")
    assert (summary.created, summary.updated, summary.skipped) == (5, 0, [])
    same_id = {rid: f for rid, f in messages(vault).items() if f.get("message_id") == "<test@localhost>"}
    assert sorted(f["body"] for f in same_id.values()) == [
        "First run of the mailer test.", "Second run: the template changed.", "Third run, as HTML."]
    (first,) = [rid for rid, f in same_id.items() if "shares_source_id_with" not in f]
    assert same_id[first]["body"] == "First run of the mailer test."  # the first in the file keeps the plain id
    assert sorted(f.get("shares_source_id_with", "") for f in same_id.values()) == ["", first, first]
    # the list's copy of the first message is that message again, said once, not a fourth record
    (copy,) = summary.warnings
    assert copy["location"] == "message 4 (line 29)" and "copy of message 1 (line 1)" in copy["reason"]


def test_messages_without_an_id_that_differ_only_in_their_attachment_are_two_records(vault: Vault) -> None:
    import_file(vault, SHARED, "mbox")
    invoices = [f for f in messages(vault).values() if f.get("subject") == "Your invoice"]
    assert len(invoices) == 2
    assert len({f["attachments"][0]["blob"] for f in invoices}) == 2


@pytest.mark.parametrize("container", ["mbox", "maildir", "eml"])
def test_reimporting_a_mailbox_with_shared_ids_appends_nothing(vault: Vault, tmp_path: Path, container: str) -> None:
    path = {"mbox": lambda: SHARED, "maildir": lambda: as_maildir(SHARED, tmp_path / "Maildir"),
            "eml": lambda: as_eml_folder(SHARED, tmp_path / "saved")}[container]()
    first = import_file(vault, path, container)
    assert first.created == 5
    n = head(vault)
    for _ in range(2):
        again = import_file(vault, path, container)
        assert head(vault) == n, again
        assert (again.created, again.updated, again.unchanged) == (0, 0, 6)


def test_another_file_with_one_of_the_messages_finds_its_record_whatever_the_order(vault: Vault,
                                                                                   tmp_path: Path) -> None:
    """The second message alone first: it keeps the plain id, and the full mailbox later merges nothing into it."""
    second = next(raw for number, _, _, raw in split_mbox(SHARED) if number == 2)
    alone = tmp_path / "second.eml"
    alone.write_bytes(second)
    import_file(vault, alone, "eml")
    (rid, before), = messages(vault).items()
    full = import_file(vault, SHARED, "mbox")
    assert (full.created, full.updated, full.unchanged) == (4, 0, 2)
    assert messages(vault)[rid] == before
    n = head(vault)
    import_file(vault, SHARED, "mbox")
    import_file(vault, alone, "eml")
    assert head(vault) == n


# -- content -------------------------------------------------------------------------------------------
def test_raw_8bit_headers_and_file_names_are_decoded_and_the_guess_is_reported(vault: Vault) -> None:
    r = quirk("koi8-1@example.ru")
    assert r.fields["from"] == "Иван Петров <ivan@example.ru>"
    assert r.fields["to"] == ["Ада Лавлейс <ada@example.org>", "grace@example.net"]  # nothing cut off
    assert r.fields["subject"] == "Отчёт"
    assert [a.name for a in r.attachments] == ["Отчёт за март.pdf"]
    (warning,) = r.warnings
    assert "read as koi8-r" in warning and "From" in warning and "attachment 1's name" in warning
    summary = import_file(vault, QUIRKS, "mbox")
    koi8 = [w for w in summary.warnings if w["location"] == "message 1 (line 1)"]
    assert koi8 and koi8[0]["file"] == str(QUIRKS) and "koi8-r" in koi8[0]["reason"]


def test_undeclared_8bit_and_unknown_8bit_words_are_guessed_never_silently() -> None:
    r = quirk("latin-1@example.fr")
    assert r.fields["to"] == ["Hélène Dupré <helene@example.fr>"]  # was =?unknown-8bit?b?…?=
    assert r.fields["subject"] == "Réunion à Genève demain"
    (warning,) = r.warnings
    assert "Subject" in warning and "guessed by charset-normalizer" in warning


def test_utf8_headers_need_no_guess() -> None:
    assert all(not r.warnings for r in read(EmlImporter(), FIXTURES / "eml-folder").values()
               if r.source_id != "eml-3@example.com")  # that one says where its date came from


def test_reply_to_bcc_list_headers_and_mbox_read_flags_are_kept() -> None:
    f = quirk("mailman-1@lists.example.org").fields
    assert f["reply_to"] == ["Analytical Engine list <analytical@lists.example.org>"]
    assert f["bcc"] == ["charles@example.org"]
    assert f["flags"] == ["answered", "flagged", "seen"]  # Status: RO, X-Status: AF
    headers = dict(f["headers"])
    assert headers["List-Id"] == "Analytical Engine <analytical.lists.example.org>"
    assert headers["List-Unsubscribe"] == ("<https://lists.example.org/options/analytical>,\n"
                                           "\t<mailto:analytical-request@lists.example.org?subject=unsubscribe>")
    assert headers["List-Post"] == "<mailto:analytical@lists.example.org>" and headers["X-Mailer"] == "Mailman 2.1.39"


def test_every_header_is_available_the_common_ones_as_fields() -> None:
    f = read(MboxImporter(), FIXTURES / "sample.mbox")["takeout-1@mail.gmail.com"].fields
    assert [name for name, _ in f["headers"]] == ["X-GM-THRID", "Received"]  # the rest are fields
    assert f["date_raw"] == "sometime on monday"  # the Date header as written, though the date came from Received


def test_maildir_read_flags_come_from_the_file_names() -> None:
    flags = {r.location: r.fields.get("flags") for r in MaildirImporter().read(FIXTURES / "maildir")}
    assert flags == {"new/1709626320.M1P4242.mail.example.org": None,
                     "cur/1709630000.M2P4242.mail.example.org:2,S": ["seen"],
                     ".Sent/cur/1709640000.M3P4242.mail.example.org:2,RS": ["answered", "seen"]}


def test_mailman_senders_keep_their_domain() -> None:
    assert quirk("mailman-1@lists.example.org").fields["from"] == "Ada Lovelace <ada@example.org>"


@pytest.mark.parametrize("source_id, date, used, raw", [
    ("offset-1@example.com", "2024-04-05T10:00:00+00:00", "date without its impossible offset",
     "Fri, 05 Apr 2024 10:00:00 +9900"),
    ("envelope-1@example.com", "2024-04-06T07:30:00+00:00", "envelope", None),
    ("resent-1@example.com", "2024-04-07T11:59:00+01:00", "resent-date", None),
])
def test_a_date_is_found_and_says_where_it_came_from(source_id: str, date: str, used: str, raw: str | None) -> None:
    r = quirk(source_id)
    assert (r.fields["date"], r.fields["date_source"], r.fields.get("date_raw")) == (date, used, raw)
    assert len(r.warnings) == 1 and ("offset" in r.warnings[0] or used in r.warnings[0])


def test_a_null_sender_and_a_forwarded_message_survive_the_round_trip_byte_for_byte(vault: Vault,
                                                                                    tmp_path: Path) -> None:
    bounce = quirk("bounce-1@mail.example.org")
    assert bounce.fields["from"] == "Mail Delivery System <>"
    (nested,) = bounce.attachments
    source = QUIRKS.read_bytes()
    start = source.index(b"From: Ada Lovelace <ada@example.org>\nTo: nobody")
    assert source[start:start + len(nested.data)] == nested.data  # the forwarded message's own bytes
    assert b"boundary=inner\n" in nested.data and b"format=flowed" in nested.data  # no quote added
    import_file(vault, QUIRKS, "mbox")
    for fmt, reader in (("mbox", MboxImporter()), ("maildir", MaildirImporter()), ("eml", EmlImporter())):
        out = tmp_path / f"out-{fmt}"
        export_file(vault, fmt, out)
        back = read(reader, out)["bounce-1@mail.example.org"]
        assert back.fields["from"] == "Mail Delivery System <>", fmt
        assert back.attachments == bounce.attachments, fmt


def test_an_eml_folder_imports_files_that_begin_with_an_mbox_from_line() -> None:
    out = list(EmlImporter().read(FIXTURES / "eml-folder"))
    assert sorted(r.location for r in out) == ["Envelope only.eml", "Lunch.eml", "Saved with envelope.eml"]
    by_id = {r.source_id: r for r in out}
    assert by_id["eml-2@example.net"].fields["subject"] == "Re: Lunch?"
    assert by_id["eml-3@example.com"].fields["date"] == "2024-04-13T06:00:00+00:00"  # from the From_ line


def test_a_broken_mime_boundary_keeps_the_text_and_warns() -> None:
    r = quirk("boundary-1@example.com")
    assert r.fields["body"] == "The meeting moved to Thursday."  # found by the boundary the parts use
    assert any("boundaries are broken" in w for w in r.warnings)
    none = read(MboxImporter(), FIXTURES / "sample.mbox")["broken-1@example.com"]  # no parts at all
    assert none.fields["body"] == "The mailer forgot the parts; this text is all there is."
    assert any("boundaries are broken" in w for w in none.warnings)


# -- exporters -----------------------------------------------------------------------------------------
@pytest.fixture
def full_vault(vault: Vault) -> Vault:
    for path in (FIXTURES / "sample.mbox", QUIRKS, SHARED):
        import_file(vault, path, "mbox")
    import_file(vault, FIXTURES / "maildir", "maildir")
    import_file(vault, FIXTURES / "eml-folder", "eml")
    return vault


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "eml"])
def test_import_export_import_appends_nothing(full_vault: Vault, tmp_path: Path, fmt: str) -> None:
    n, before = head(full_vault), messages(full_vault)
    out = tmp_path / f"export-{fmt}"
    assert export_file(full_vault, fmt, out) == len(before)
    again = import_file(full_vault, out, fmt)
    assert head(full_vault) == n, again
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(before))


def test_the_maildir_export_is_a_maildir_with_flags_in_its_names(full_vault: Vault, tmp_path: Path) -> None:
    out = tmp_path / "Maildir"
    export_file(full_vault, "maildir", out)
    assert sorted(p.name for p in out.iterdir()) == ["cur", "new", "tmp"]
    names = [p.name for p in (out / "cur").iterdir()]
    assert sum(n.endswith(":2,FRS") for n in names) == 1  # the Mailman message: answered, flagged, seen
    assert plugins.registry().detect(out).name == "maildir"


def test_the_eml_export_is_a_folder_of_eml_files_named_by_subject(full_vault: Vault, tmp_path: Path) -> None:
    out = tmp_path / "mail"
    n = export_file(full_vault, "eml", out)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == n and all(name.endswith(".eml") for name in names)
    assert any(name.endswith(" Отчёт.eml") for name in names)
    assert plugins.registry().detect(out).name == "eml"


# -- vaults imported under the old rules -------------------------------------------------------------
class OldRules:
    """What the mail importers yielded before issue 12: no identity, no headers/flags/Bcc/Reply-To/date source,
    so messages sharing a Message-ID were one record, the last one winning."""

    name, version, namespace, description = "mbox", "1", "mail", "mbox as read before issue 12"
    _NEW = ("bcc", "reply_to", "flags", "headers", "date_source")

    def detect(self, path: Path) -> bool:
        return True

    def read(self, path: Path) -> Iterator[SourceRecord]:
        for r in MboxImporter().read(path):
            if isinstance(r, SourceRecord):
                fields = {k: v for k, v in r.fields.items() if k not in self._NEW}
                if "date" in fields:
                    fields.pop("date_raw", None)
                yield SourceRecord(r.kind, r.source_id, fields, r.attachments, r.location)


@pytest.mark.parametrize("mbox", [SHARED, FIXTURES / "sample.mbox", QUIRKS], ids=lambda p: p.name)
def test_a_vault_imported_under_the_old_rules_is_migrated_by_events_once(vault: Vault, mbox: Path) -> None:
    reg = plugins.registry()
    reg.importers["mbox-old"] = plugins.Provided(OldRules(), "test")
    try:
        import_file(vault, mbox, "mbox-old", registry=reg)
    finally:
        del reg.importers["mbox-old"]
    history = list(vault.events())
    old_ids = set(messages(vault))
    migrated = import_file(vault, mbox, "mbox")
    assert list(vault.events())[:len(history)] == history  # appended to, never rewritten
    assert old_ids <= set(messages(vault))  # every old record is still there, under its id
    new = read(MboxImporter(), mbox)
    assert migrated.created == len({(r.source_id, r.identity) for r in MboxImporter().read(mbox)
                                    if isinstance(r, SourceRecord)}) - len(new)  # only messages merged before
    n = head(vault)
    again = import_file(vault, mbox, "mbox")
    assert head(vault) == n and (again.created, again.updated) == (0, 0)


def test_old_records_that_gain_no_field_are_not_touched(vault: Vault, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mbox"
    plain.write_bytes(b"From ada@example.org Mon Apr  1 09:00:00 2024\nFrom: ada@example.org\nTo: grace@example.net\n"
                      b"Date: Mon, 01 Apr 2024 09:00:00 +0000\nSubject: plain\nMessage-ID: <plain-1@example.org>\n\nhi\n")
    reg = plugins.registry()
    reg.importers["mbox-old"] = plugins.Provided(OldRules(), "test")
    try:
        import_file(vault, plain, "mbox-old", registry=reg)
    finally:
        del reg.importers["mbox-old"]
    n = head(vault)
    assert import_file(vault, plain, "mbox").unchanged == 1 and head(vault) == n


def test_the_cli_prints_each_warning_with_where_it_is(run) -> None:
    result = run("import", "mbox", str(QUIRKS))
    assert result.exit_code == 0, result.output
    assert "  warning message 1 (line 1): 8-bit bytes with no charset in" in result.stderr
    assert "  warning message 5 (line 59): no usable Date header; the date is from envelope" in result.stderr
    as_json = run("import", "mbox", str(QUIRKS), "--json")
    assert '"warnings": [' in as_json.stdout


def test_the_same_mailbox_in_another_container_finds_the_same_records(vault: Vault, tmp_path: Path) -> None:
    """Identity is what a message says, not its bytes: CRLF .eml files and a Maildir of the shared-id mailbox
    meet the records the mbox made (the Maildir only adds its `seen` flag)."""
    import_file(vault, SHARED, "mbox")
    ids = set(messages(vault))
    eml = import_file(vault, as_eml_folder(SHARED, tmp_path / "saved"), "eml")
    assert (eml.created, eml.updated) == (0, 0)
    maildir = import_file(vault, as_maildir(SHARED, tmp_path / "Maildir"), "maildir")
    assert (maildir.created, maildir.updated) == (0, 5)
    assert set(messages(vault)) == ids and all(f["flags"] == ["seen"] for f in messages(vault).values())


def test_mime_nested_past_the_stack_costs_one_message_not_the_mailbox(tmp_path: Path) -> None:
    depth = 3000  # past Python's recursion limit: the stdlib's own walk would raise
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    tail = "".join(f"\n--b{i}--\n" for i in reversed(range(depth)))
    path = tmp_path / "deep.mbox"
    path.write_text("From a@b Mon Mar 11 09:00:00 2024\nFrom: a@b\nMessage-ID: <d@b>\n" + head
                    + "Content-Type: text/plain\n\nhi\n" + tail + "\n" + QUIRKS.read_text("latin-1"),
                    encoding="latin-1")
    out = list(MboxImporter().read(path))
    assert out[0].reason == "MIME parts are nested too deep"
    assert sum(isinstance(r, SourceRecord) for r in out) == 8
