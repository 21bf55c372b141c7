"""vCard fidelity per field class (source -> vault -> export -> vault) and a regression test per finding of
issue 12's "vCard" bullet, over fixtures written for this (tests/fixtures/vcard/fidelity.vcf, grouped.vcf)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ingest.vcard import VcardImporter
from vault import Kind, Source, Vault
from vault.domain.contacts import texts, typed
from vault.formats.exporting import export_file
from vault.formats import SourceRecord
from vault.formats.importing import derive_record_id, import_file

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vcard"
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                                     "53de0000000c4944415408d763f8ffff3f0005fe02fea7d6a4a90000000049454e44ae426082")).decode()


def read(path: Path) -> list[SourceRecord]:
    out = list(VcardImporter().read(path))
    assert all(isinstance(r, SourceRecord) for r in out), out
    return out  # type: ignore[return-value]


def card(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", *lines, "END:VCARD"]) + "\r\n"


def contacts(vault: Vault) -> dict[str, dict]:
    return {f["name"]: f for _, f in vault.projection.state(Kind.CONTACT)}


@pytest.fixture
def round_trip(vault: Vault, tmp_path: Path) -> tuple[dict[str, dict], str, dict[str, dict]]:
    """(what the vault holds after importing fidelity.vcf, the export's text, what re-reading the export gives)."""
    import_file(vault, FIXTURES / "fidelity.vcf")
    out = tmp_path / "out.vcf"
    export_file(vault, "vcard", out)
    return contacts(vault), out.read_text(encoding="utf-8"), {r.fields["name"]: r.fields for r in read(out)}


# -- finding: "The TYPE of every TEL and EMAIL is dropped" ------------------------------------------------------

def test_tel_and_email_types_and_preference_are_kept_and_written_back(round_trip) -> None:
    held, text, back = round_trip
    hanako = held["山田 花子"]
    assert hanako["phones"][:3] == [
        typed("+81-3-1234-5678;ext=42", ["work", "voice"], pref=1, params={"VALUE": ["uri"]}),
        typed("+81-90-1111-2222", ["cell", "text", "voice"], pref=2, params={"VALUE": ["uri"]}),
        typed("+81-3-9999-0000", ["home", "fax"])]
    assert hanako["emails"][:2] == [typed("hanako@example.co.jp", ["work"], pref=1), typed("hanako.y@example.net", ["home"])]
    assert held["Chidi Okafor"]["phones"][0] == typed("+1 (555) 010-7788", ["cell", "voice"], pref=1)  # 3.0 type=pref
    assert "TEL;TYPE=home,fax:+81-3-9999-0000" in text and "EMAIL;TYPE=work,pref:hanako@example.co.jp" in text
    assert "TEL;PREF=2;TYPE=cell,text,voice;VALUE=uri:tel:+81-90-1111-2222" in text  # a pref above 1 stays a number
    assert back["山田 花子"]["phones"] == hanako["phones"] and back["Chidi Okafor"]["emails"] == held["Chidi Okafor"]["emails"]


def test_vcard21_bare_types_become_types(vault: Vault) -> None:
    import_file(vault, FIXTURES / "contacts.vcf")
    juergen = contacts(vault)["Dr. Jürgen Müller"]
    assert [(p["types"], p["pref"]) for p in juergen["phones"]] == [(["cell"], 1), (["home", "voice"], None),
                                                                    (["work", "fax"], None)]


# -- finding: "LABEL, REV, IMPP, KIND, X-ABLabel and ALTID variants" are dropped --------------------------------

def test_x_ablabel_labels_the_value_in_its_group_and_is_written_back(round_trip) -> None:
    held, text, back = round_trip
    chidi = held["Chidi Okafor"]
    assert [(e["value"], e["label"]) for e in chidi["emails"]] == [("chidi@example.edu", "_$!<Work>!$_"),
                                                                   ("chidi.o@example.org", "Thesis")]
    assert held["山田 花子"]["phones"][3] == typed("+81-3-5555-0101", ["voice"], "Reception", group="item1")
    assert "item2.EMAIL;TYPE=internet:chidi.o@example.org" in text and "item2.X-ABLABEL:Thesis" in text
    assert back["Chidi Okafor"]["emails"] == chidi["emails"]


def test_impp_kind_rev_kept_and_written_back(round_trip) -> None:
    held, text, back = round_trip
    hanako, chidi = held["山田 花子"], held["Chidi Okafor"]
    assert texts(hanako["impps"]) == ["xmpp:hanako@jabber.example.org", "sip:hanako@voip.example.net"]
    assert hanako["impps"][0]["types"] == ["work"] and hanako["impps"][0]["pref"] == 1
    assert chidi["impps"] == [typed("skype:chidi.okafor", ["home"], pref=1, params={"X-SERVICE-TYPE": ["Skype"]})]
    assert hanako["kind"] == "individual" and hanako["revision"] == "20240315T101500Z"
    assert "KIND:individual" in text and "REV:20240315T101500Z" in text and "IMPP;TYPE=work,pref:xmpp:" in text
    for name in held:
        assert back[name] == held[name]


def test_adr_label_parameter_and_vcard3_label_property_kept(round_trip) -> None:
    held, text, back = round_trip
    (adr,) = held["山田 花子"]["addresses"]
    assert adr["formatted"] == "Example Corp.\n1-2-3 Marunouchi, Chiyoda-ku\nTokyo 100-0005: Japan"
    assert adr["params"] == {"GEO": ["geo:35.681,139.767"]} and adr["types"] == ["work"] and adr["pref"] == 1
    label = {"name": "LABEL", "params": {"TYPE": ["HOME"]}, "value": "42 Fork Street\\nSt. John, AZ 85001\\nUSA"}
    assert label in held["Chidi Okafor"]["vcard_extra"]
    assert "LABEL;TYPE=HOME:42 Fork Street\\nSt. John, AZ 85001\\nUSA" in text
    assert back["山田 花子"]["addresses"] == [adr]


def test_altid_variants_and_unmodelled_properties_kept_verbatim(round_trip) -> None:
    held, text, back = round_trip
    hanako = held["山田 花子"]
    assert hanako["vcard_params"]["FN"] == {"ALTID": ["1"], "LANGUAGE": ["ja"]}
    extra = {(e["name"], e["value"]) for e in hanako["vcard_extra"]}
    assert {("FN", "Hanako Yamada"), ("N", "Yamada;Hanako;;;"), ("GENDER", "F"), ("ANNIVERSARY", "20090808"),
            ("CLIENTPIDMAP", "1;urn:uuid:53e374d9-337e-4727-8803-a1e9c14e0556")} <= extra
    assert "FN;ALTID=1;LANGUAGE=ja:山田 花子" in text and "FN;ALTID=1;LANGUAGE=en:Hanako Yamada" in text
    assert hanako["emails"][2]["params"] == {"PID": ["1.1"]}  # a parameter the model has no key for rides along
    x_abadr = {"name": "X-ABADR", "params": {}, "value": "us", "group": "item4"}
    assert x_abadr in held["Chidi Okafor"]["vcard_extra"] and held["Chidi Okafor"]["addresses"][0]["group"] == "item4"
    assert "item4.ADR;TYPE=home,pref:" in text and "item4.X-ABADR:us" in text  # the companion stays beside its ADR
    assert back["山田 花子"]["vcard_extra"] == hanako["vcard_extra"]


def test_long_kept_lines_are_folded_and_read_back(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "long.vcf"
    note = "ü" * 120
    src.write_text(card("FN:Long", "UID:long-1", f"X-CUSTOM-NOTE;X-A=\"a:b\":{note}"), encoding="utf-8")
    import_file(vault, src)
    export_file(vault, "vcard", tmp_path / "out.vcf")
    raw = (tmp_path / "out.vcf").read_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 75
    (back,) = read(tmp_path / "out.vcf")
    assert back.fields["vcard_extra"] == [{"name": "X-CUSTOM-NOTE", "params": {"X-A": ["a:b"]}, "value": note}]


# -- finding: "A group-prefixed card (item1.TEL, home.BEGIN:VCARD) makes a whole file import nothing" ----------

def test_group_prefixed_cards_import(vault: Vault) -> None:
    s = import_file(vault, FIXTURES / "grouped.vcf")
    assert (s.created, s.skipped) == (3, [])
    held = contacts(vault)
    assert texts(held["Tahani Al-Jamil"]["phones"]) == ["+44 7700 900123"] and held["Janet"]["emails"][0]["label"] == "Everything"
    assert import_file(vault, FIXTURES / "grouped.vcf").created == 0 and vault.log.head().seq == 3


# -- finding: "A valid vCard 4.0 card with a quoted LABEL="…" parameter is skipped" ----------------------------

@pytest.mark.parametrize("label, formatted", [
    ('"Suite 5\\n1 Main St\\nSpringfield, IL 62701"', "Suite 5\n1 Main St\nSpringfield, IL 62701"),
    ('"Mail Drop: TNE QB; 123 Main Street"', "Mail Drop: TNE QB; 123 Main Street"),
    ('"1 Rue de l\'Église^n75001 Paris"', "1 Rue de l'Église\n75001 Paris"),  # RFC 6868 ^n
])
def test_vcard4_quoted_label_parameter_imports(tmp_path: Path, label: str, formatted: str) -> None:
    p = tmp_path / "label.vcf"
    p.write_text("\r\n".join(["BEGIN:VCARD", "VERSION:4.0", "FN:Label Test", "UID:label-1",
                              f"ADR;TYPE=work;LABEL={label}:;;1 Main St;Springfield;IL;62701;USA", "END:VCARD"]) + "\r\n",
                 encoding="utf-8")
    (r,) = read(p)
    assert r.fields["addresses"][0]["formatted"] == formatted and r.fields["addresses"][0]["street"] == "1 Main St"


def test_rfc6350_folded_label_and_an_equals_sign_in_a_quoted_label(tmp_path: Path) -> None:
    p = tmp_path / "rfc.vcf"
    p.write_text("\r\n".join([
        "BEGIN:VCARD", "VERSION:4.0", "FN:John Q. Public", "UID:rfc-1",
        'ADR;GEO="geo:12.3457,78.910";LABEL="Mr. John Q. Public, Esq.\\n',
        " Mail Drop: TNE QB\\n123 Main Street\\nAny Town, CA  91921-1234\\n",
        ' U.S.A.":;;123 Main Street;Any Town;CA;91921-1234;U.S.A.',
        'ADR;LABEL="LV=, County Gates\\nBH1 2NF Bournemouth\\nUK";TYPE=home:;;LV=\\, Co',
        " unty Gates;Bournemouth;;BH1 2NF;UK", "END:VCARD"]) + "\r\n")
    (r,) = read(p)
    first, second = r.fields["addresses"]
    assert first["formatted"] == "Mr. John Q. Public, Esq.\nMail Drop: TNE QB\n123 Main Street\nAny Town, CA  91921-1234\nU.S.A."
    assert second["street"] == "LV=, County Gates" and second["formatted"].startswith("LV=, County Gates\n")


def test_a_line_vobject_cannot_split_is_kept_whole_and_the_card_imports(vault: Vault, tmp_path: Path) -> None:
    """Apple writes \\" inside an unquoted parameter; vobject refuses it, and with it the whole card."""
    line = ('X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS=Aerodromio \\"Makedonia\\" 551 03 Thessaloniki;'
            "X-TITLE=Thessaloniki Airport:geo:40.520833,22.972222")
    p = tmp_path / "apple.vcf"
    p.write_text(card("FN:Airport Shuttle", "UID:apple-1", "TEL;type=WORK:+30 2310 985000", line), encoding="utf-8")
    assert import_file(vault, p).created == 1
    (held,) = contacts(vault).values()
    assert held["vcard_extra"] == [{"name": "X-APPLE-STRUCTURED-LOCATION", "line": line}]
    export_file(vault, "vcard", tmp_path / "out.vcf")
    assert (tmp_path / "out.vcf").read_bytes().decode().replace("\r\n ", "").count(line) == 1
    n = vault.log.head().seq
    assert import_file(vault, tmp_path / "out.vcf", "vcard").unchanged == 1 and vault.log.head().seq == n


# -- finding: "Cards without a UID are matched by name across files, so one file can remove a photo" -----------

def test_cards_without_uid_are_scoped_to_their_file(vault: Vault, tmp_path: Path) -> None:
    (tmp_path / "phone.vcf").write_text(card("FN:Ada Lovelace", "TEL:+44 20 7946 0000",
                                             f"PHOTO;ENCODING=b;TYPE=PNG:{PNG}"))
    (tmp_path / "laptop.vcf").write_text(card("FN:Ada Lovelace", "EMAIL:ada@example.org"))
    import_file(vault, tmp_path / "phone.vcf")
    s = import_file(vault, tmp_path / "laptop.vcf")
    assert (s.created, s.updated) == (1, 0)  # a second record, not an update of the first
    ada = [f for _, f in vault.projection.state(Kind.CONTACT)]
    assert sorted("photo" in f for f in ada) == [False, True]
    assert import_file(vault, tmp_path / "phone.vcf").updated == 0 and import_file(vault, tmp_path / "laptop.vcf").updated == 0


def test_a_card_without_uid_keeps_its_record_when_its_file_changes(vault: Vault, tmp_path: Path) -> None:
    p = tmp_path / "phone.vcf"
    p.write_text(card("FN:Ada Lovelace", "TEL:+44 20 7946 0000"))
    import_file(vault, p)
    p.write_text(card("FN:Ada Lovelace", "TEL:+44 20 7946 0001"))
    s = import_file(vault, p)
    assert (s.created, s.updated) == (0, 1)


# -- identity: duplicate UIDs, repeated names, import -> export -> import --------------------------------------

def test_duplicate_uids_in_one_file_are_two_records_and_reimport_appends_nothing(vault: Vault, tmp_path: Path) -> None:
    p = tmp_path / "dup.vcf"
    p.write_text(card("FN:Ada Lovelace", "UID:same", "EMAIL:ada@example.org") +
                 card("FN:Ada Byron", "UID:same", "EMAIL:ada@byron.example"))
    assert import_file(vault, p).created == 2
    held = contacts(vault)
    assert held["Ada Lovelace"]["uid"] == held["Ada Byron"]["uid"] == "same"  # both keep the UID they carry
    n = vault.log.head().seq
    s = import_file(vault, p)
    assert vault.log.head().seq == n and (s.created, s.updated, s.unchanged) == (0, 0, 2)
    export_file(vault, "vcard", tmp_path / "out.vcf")
    assert import_file(vault, tmp_path / "out.vcf", "vcard").unchanged == 2 and vault.log.head().seq == n


@pytest.mark.parametrize("fixture", ["fidelity.vcf", "grouped.vcf", "contacts.vcf"])
def test_import_export_import_appends_nothing(vault: Vault, tmp_path: Path, fixture: str) -> None:
    import_file(vault, FIXTURES / fixture)
    n = vault.log.head().seq
    export_file(vault, "vcard", tmp_path / "out.vcf")
    s = import_file(vault, tmp_path / "out.vcf", "vcard")
    assert vault.log.head().seq == n and s.created == s.updated == 0
    assert import_file(vault, FIXTURES / fixture).updated == 0 and vault.log.head().seq == n


# -- migration: vaults written with bare lists ------------------------------------------------------------------

def test_v1_records_are_upgraded_by_reimport_with_only_the_differences(vault: Vault, tmp_path: Path) -> None:
    """A record importer version 1 made (bare lists, a made-up `name-…` uid) is found again and updated once."""
    import hashlib

    p = tmp_path / "phone.vcf"
    p.write_text(card("FN:Ada Lovelace", "TEL;TYPE=CELL:+44 20 7946 0000", "NOTE:same"))
    old_id = "name-" + hashlib.sha256(b"Ada Lovelace").hexdigest()[:24]
    rid = derive_record_id(vault, Kind.CONTACT, "vcard", old_id)
    v1_fields = {"name": "Ada Lovelace", "phones": ["+44 20 7946 0000"], "note": "same", "uid": old_id}
    with vault.transaction() as tx:
        tx.create(Kind.CONTACT, v1_fields, Source("import", "vcard", "phone.vcf", {
            "namespace": "vcard", "fingerprint": "0" * 32, "fields": sorted(v1_fields), "import_id": "imp_v1"}),
            record_id=rid, allow_extra=True)
    s = import_file(vault, p)
    assert (s.created, s.updated) == (0, 1)
    (event,) = [r.event for r in vault.events() if r.seq == 2]
    assert dict(event.changes) == {"phones": [typed("+44 20 7946 0000", ["cell"])], "uid": None}  # only the differences
    assert vault.get(rid, at=None)["note"] == "same" and vault.history(rid)[0]["data"]["phones"] == ["+44 20 7946 0000"]
    assert import_file(vault, p).updated == 0 and vault.log.head().seq == 2
    other = tmp_path / "other.vcf"  # the same name in another file is another record now
    other.write_text(card("FN:Ada Lovelace", "EMAIL:ada@example.org"))
    assert import_file(vault, other).created == 1


def test_jsonl_archive_carries_the_typed_shape_whole(vault: Vault, tmp_path: Path) -> None:
    import_file(vault, FIXTURES / "fidelity.vcf")
    export_file(vault, "jsonl", tmp_path / "archive.jsonl")
    n = vault.log.head().seq
    assert import_file(vault, tmp_path / "archive.jsonl").unchanged == 2 and vault.log.head().seq == n
    from ingest.jsonl import JsonlImporter

    by_name = {r.fields["name"]: r.fields for r in JsonlImporter().read(tmp_path / "archive.jsonl")
               if isinstance(r, SourceRecord)}
    assert by_name == contacts(vault)


def test_a_kept_property_cannot_break_out_of_its_card(vault: Vault, tmp_path: Path) -> None:
    vault.add(Kind.CONTACT, {"name": "Mallory", "vcard_extra": [
        {"name": "X-NOTE", "params": {}, "value": "a\r\nEND:VCARD\r\nBEGIN:VCARD\r\nFN:Injected"}],
        "impps": [typed("x", ["a\nEND:VCARD"], params={"X-A": ["p\r\nBEGIN:VCARD"]})]}, Source("cli"), allow_extra=True)
    export_file(vault, "vcard", tmp_path / "out.vcf")
    (r,) = read(tmp_path / "out.vcf")
    assert r.fields["name"] == "Mallory" and r.fields["vcard_extra"][0]["value"].count("\\n") == 3
    assert r.fields["impps"][0]["types"] == ["a^nend:vcard"] and r.fields["impps"][0]["params"] == {"X-A": ["p^nBEGIN:VCARD"]}


def test_bytes_that_are_not_utf8_and_name_no_charset_are_read_as_a_reported_guess(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "old-phone.vcf"
    declared = "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=ISO-8859-1:M\xfcller;J\xfcrgen\r\nEND:VCARD\r\n".encode("latin-1")
    undeclared = card("FN:Zo\xeb Caf\xe9", "NOTE:na\xefve").encode("cp1252")
    path.write_bytes(declared + undeclared)
    summary = import_file(vault, path)
    assert summary.created == 2 and {"Zoë Café", "Jürgen Müller"} <= set(contacts(vault))
    (warning,) = summary.warnings  # the declared charset is no guess; the card naming none is
    assert warning["file"] == str(path) and warning["location"] == "card 2 (line 5)"
    assert "lines 7, 8" in warning["reason"] and "Windows-1252" in warning["reason"]


def test_an_exported_vcard_with_x_properties_is_not_taken_for_an_email(vault: Vault, tmp_path: Path) -> None:
    from ingest.mail import EmlImporter

    path = tmp_path / "apple.vcf"
    path.write_text(card("FN:Chidi Okafor", "X-ABUID:1234", "X-PHONETIC-FIRST-NAME:CHEE-dee", "X-SOCIAL:x"))
    assert not EmlImporter().detect(path)
    assert import_file(vault, path).format == "vcard"
