"""The contract every importer meets, run against each row of CASES.

Adding a format to the contract is ONE line in CASES:

    Case(format name, good fixture, fixture with exactly one bad record, text the bad record's location contains)

with paths relative to tests/fixtures/ (a file or a folder); a format whose good fixture is a folder and
whose importer takes streams also names one file it reads on its own (`single`), for the bytes-vs-file check. A format whose exporter has the same name also gets
the round-trip checks (import -> export -> re-import appends nothing; the export carries every field read).
`test_every_importer_is_under_contract` fails until every registered importer has a row.
"""

from __future__ import annotations

import shutil
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest

import ingest
from vault import IngestError, Kind, Vault
from vault.domain.kinds import check_record
from vault.formats import Input, SourceRecord, importing, registry as plugins
from vault.formats.exporting import export_file
from vault.formats.importing import import_file

from conftest import PASSPHRASE

FIXTURES = Path(__file__).parent.parent / "fixtures"


class Case(NamedTuple):
    fmt: str
    good: str
    bad: str
    bad_location: str
    single: str = ""  # for a folder fixture: one file of it the importer reads alone (bytes vs file)


CASES = [
    Case("jsonl", "jsonl/archive.jsonl", "jsonl/one-bad.jsonl", "line 3"),
    Case("vcard", "vcard/contacts.vcf", "vcard/one-bad.vcf", "card 2 (line 6)"),
    Case("google-csv", "google_csv/contacts.csv", "google_csv/one-bad.csv", "row 2"),
    Case("markdown", "markdown/vault", "markdown/bad", "Broken.md", "markdown/vault/Welcome.md"),
    Case("mbox", "mail/sample.mbox", "mail/sample.mbox", "message 9 (line 146)"),
    Case("maildir", "mail/maildir", "mail/maildir-one-bad", "cur/1709650000.M4P4242.mail.example.org:2,S"),
    Case("eml", "mail/lunch-reply.eml", "mail/saved-eml", "not really mail.eml"),
    Case("sms", "sms/sms-20240305093012.xml", "sms/sms-20240305093012.xml", "sms 4 (line 8)"),
    Case("whatsapp", "whatsapp/WhatsApp Chat with Ada Lovelace.txt", "whatsapp/WhatsApp Chat with Ada Lovelace.txt", "line 12"),
    Case("enex", "enex/notes.enex", "enex/notes.enex", "note 3 (line 45)"),
    Case("keep", "keep/Takeout", "keep/one-bad", "Cut off.json", "keep/Takeout/Keep/Ideas.json"),
    Case("telegram", "telegram/DataExport_2024-03-10", "telegram/one-bad", "Ada Lovelace, message 2",
         "telegram/DataExport_2024-03-10/result.json"),
]

MiB = 1024 * 1024


def head(vault: Vault) -> int:
    return vault.log.head().seq


def blob_count(vault: Vault) -> int:
    return vault.conn.execute("SELECT count(*) FROM blobs").fetchone()[0]


def as_read(fmt: str, path: Path) -> list[Any]:
    """What the importer reads from `path`: each record's kind, fields and attachments, in a fixed order.

    Not keyed by source id: a source id may be scoped to its file (a vCard without a UID), and the
    re-import of an export finds its records by the vault ids the export carries."""
    out = []
    for r in plugins.registry().importer(fmt).read(path):
        if isinstance(r, SourceRecord):
            atts = sorted((a.field, a.data, a.name or "", a.content_type or "") for a in r.attachments)
            out.append((r.kind, r.fields, atts))
    return sorted(out, key=repr)


class Interrupting:
    """An importer that raises `exc` after handing over its first record (a crash or Ctrl-C mid-file)."""

    def __init__(self, inner: Any, exc: BaseException) -> None:
        self.inner, self.exc = inner, exc
        self.name, self.version, self.description = inner.name, inner.version, inner.description
        self.namespace = getattr(inner, "namespace", None)

    def detect(self, path: Path) -> bool:
        return self.inner.detect(path)

    def read(self, path: Path) -> Iterator[Any]:
        first = next(iter(self.inner.read(path)), None)
        if first is not None:
            yield first
        raise self.exc


@pytest.fixture(params=CASES, ids=[c.fmt for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def test_every_importer_is_under_contract() -> None:
    assert set(plugins.registry().importers) <= {c.fmt for c in CASES}


def read_all(fmt: str, source: Input) -> list[Any]:
    """Everything the importer yields: records (source ids, locations, warnings), bad records and notices."""
    return list(plugins.registry().importer(fmt).read(source))


def alone(tmp_path: Path, sample: Path) -> Path:
    """A copy of `sample` in a folder of its own: a file with nothing beside it, as bytes are."""
    copy = tmp_path / "alone" / sample.name
    copy.parent.mkdir()
    shutil.copy(sample, copy)
    return copy


def zipped(tmp_path: Path, folder: Path, extra: dict[str, bytes]) -> Path:
    """The folder's files (and `extra` ones) as a zip, as a phone or Takeout shares it."""
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
        for name, data in extra.items():
            zf.writestr(name, data)
    return path


class TestImporterContract:
    def test_detects_its_own_files(self, case: Case) -> None:
        assert plugins.registry().detect(FIXTURES / case.good).name == case.fmt

    def test_reimport_appends_nothing(self, case: Case, vault: Vault) -> None:
        first = import_file(vault, FIXTURES / case.good, case.fmt)
        assert first.created > 0 and first.updated == 0
        n = head(vault)
        again = import_file(vault, FIXTURES / case.good, case.fmt)
        assert head(vault) == n
        assert (again.created, again.updated, again.deleted) == (0, 0, 0)
        assert again.unchanged >= first.created

    def test_known_fields_have_their_kinds_types(self, case: Case, vault: Vault) -> None:
        """What an importer stores fits the kind's schema (vault/domain/kinds.py); what it cannot map is kept
        beside, as extra fields, and only those are free-form."""
        import_file(vault, FIXTURES / case.good, case.fmt)
        for kind in Kind:
            for _rid, data in vault.projection.state(kind):
                check_record(kind, data, allow_extra=True)

    def test_round_trip(self, case: Case, vault: Vault, tmp_path: Path) -> None:
        if case.fmt not in plugins.registry().exporters:
            pytest.skip(f"{case.fmt} has no exporter")
        import_file(vault, FIXTURES / case.good, case.fmt)
        n = head(vault)
        out = tmp_path / ("exported" + Path(case.good).suffix)
        assert export_file(vault, case.fmt, out) > 0
        assert as_read(case.fmt, out) == as_read(case.fmt, FIXTURES / case.good)  # every field the import read
        again = import_file(vault, out, case.fmt)
        assert head(vault) == n, again

    def test_bad_record_reported_where_it_is_and_the_rest_kept(self, case: Case, vault: Vault) -> None:
        path = FIXTURES / case.bad
        summary = import_file(vault, path, case.fmt)
        assert len(summary.skipped) == 1, summary.skipped
        assert case.bad_location in summary.skipped[0]["location"]
        assert summary.skipped[0]["file"] == str(path) and summary.skipped[0]["reason"]
        assert summary.created >= 1

    def test_strict_aborts_on_the_bad_record_with_nothing_written(self, case: Case, vault: Vault) -> None:
        with pytest.raises(IngestError, match=case.bad_location.split(" (")[0]):
            import_file(vault, FIXTURES / case.bad, case.fmt, strict=True)
        assert head(vault) == 0 and blob_count(vault) == 0

    @pytest.mark.parametrize("wrong", ["empty", "binary", "prose", "other format"])
    def test_wrong_format_rejected_with_nothing_written(self, case: Case, vault: Vault, tmp_path: Path,
                                                        wrong: str) -> None:
        path = tmp_path / ("input" + Path(case.good).suffix)
        if wrong == "other format":
            other = "vcard/contacts.vcf" if case.fmt != "vcard" else "jsonl/archive.jsonl"
            path = tmp_path / Path(other).name
            shutil.copy(FIXTURES / other, path)
        else:
            path.write_bytes({"empty": b"", "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,
                              "prose": "Shopping list: milk, eggs.\nCall Ada about Tuesday.\n".encode()}[wrong])
        with pytest.raises(IngestError) as e:
            import_file(vault, path, case.fmt)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert head(vault) == 0 and blob_count(vault) == 0

    @pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("disk on fire")], ids=["ctrl-c", "crash"])
    def test_interrupted_import_leaves_nothing(self, case: Case, vault: Vault, monkeypatch: pytest.MonkeyPatch,
                                               exc: BaseException) -> None:
        monkeypatch.setattr(importing, "BATCH", 1)  # so the first record is already in the log when it breaks
        reg = plugins.registry()
        reg.importers[case.fmt] = plugins.Provided(Interrupting(reg.importer(case.fmt), exc), "test")
        with pytest.raises(KeyboardInterrupt if isinstance(exc, KeyboardInterrupt) else IngestError):
            import_file(vault, FIXTURES / case.good, case.fmt, registry=reg)
        assert head(vault) == 0 and blob_count(vault) == 0
        with Vault.open(vault.path, PASSPHRASE) as reopened:
            assert head(reopened) == 0 and list(reopened.events()) == []

    @pytest.mark.parametrize("hostile", ["deep nesting", "huge field"])
    def test_hostile_input_rejected_cleanly_in_bounded_memory(self, case: Case, vault: Vault, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, hostile: str) -> None:
        monkeypatch.setattr(ingest, "MAX_LINE", MiB)
        monkeypatch.setattr(ingest, "MAX_RECORD", MiB)
        good = FIXTURES / case.good
        path = tmp_path / "hostile" / ("input" + (good.suffix or ".md"))
        path.parent.mkdir()
        if hostile == "deep nesting":
            path.write_text('{"a":' * 50_000 + "1" + "}" * 50_000 + "\n")
        else:  # one 8 MiB field with no line break: a reader that slurps it fails the memory check
            with path.open("wb") as f:
                f.write(b"x" * (8 * MiB))
        target = path.parent if good.is_dir() else path
        tracemalloc.start()
        try:
            summary = import_file(vault, target, case.fmt)
        except IngestError as e:
            assert "\n" not in str(e)
            assert head(vault) == 0
        else:
            assert summary.updated == 0
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 4 * MiB, f"{case.fmt} held {peak / MiB:.1f} MiB for an 8 MiB hostile field"

    def test_bytes_read_as_the_file_does(self, case: Case, vault: Vault, tmp_path: Path) -> None:
        importer = plugins.registry().importer(case.fmt)
        if not plugins.takes_streams(importer):
            pytest.skip(f"{case.fmt} reads only files and folders on disk")
        sample = FIXTURES / (case.single or case.good)
        assert sample.is_file(), f"{case.fmt} takes streams: name one file it reads alone in its Case"
        path = alone(tmp_path, sample)
        data = Input.from_bytes(path.read_bytes(), path.name)
        from_file = read_all(case.fmt, Input.from_path(path))
        assert any(isinstance(r, SourceRecord) for r in from_file)
        assert read_all(case.fmt, data) == from_file
        assert plugins.registry().detect(data).name == case.fmt
        first = import_file(vault, data)  # detected, imported, and met again by the file
        n = head(vault)
        again = import_file(vault, path, case.fmt)
        assert first.created > 0 and head(vault) == n and again.unchanged == first.created

    @pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256))], ids=["empty", "binary"])
    def test_bad_bytes_fare_as_the_same_bad_file(self, case: Case, vault: Vault, tmp_path: Path,
                                                 content: bytes) -> None:
        if not plugins.takes_streams(plugins.registry().importer(case.fmt)):
            pytest.skip(f"{case.fmt} reads only files and folders on disk")
        path = tmp_path / Path(case.single or case.good).name
        path.write_bytes(content)

        def outcome(source: Input | Path) -> Any:
            try:
                summary = import_file(vault, source, case.fmt)
                return summary.created + summary.unchanged  # the second meets what the first made
            except IngestError as e:
                assert "\n" not in str(e) and str(e).startswith(str(source))
                return e.reason
        assert outcome(Input.from_bytes(content, path.name)) == outcome(path)


@pytest.mark.parametrize("fmt,folder,extra", [
    ("keep", "keep/Takeout", {}),
    ("whatsapp", "whatsapp/ios-de/WhatsApp Chat - Familie", {"00000012-PHOTO-2024-03-05-09-13-01.jpg": b"\xff\xd8 photo"}),
], ids=["keep", "whatsapp"])
def test_a_zip_reads_the_same_from_bytes_as_from_the_file(fmt: str, folder: str, extra: dict[str, bytes],
                                                          tmp_path: Path) -> None:
    path = zipped(tmp_path, FIXTURES / folder, extra)
    from_file = read_all(fmt, Input.from_path(path))
    assert any(isinstance(r, SourceRecord) and r.attachments for r in from_file)  # media inside the zip too
    data = Input.from_bytes(path.read_bytes(), path.name)
    assert read_all(fmt, data) == from_file
    assert plugins.registry().detect(data).name == fmt
