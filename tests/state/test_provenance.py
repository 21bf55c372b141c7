"""Where each value came from: derived from the history, item by item for lists (issue 12's provenance)."""

from __future__ import annotations

import json
from pathlib import Path

from vault import Kind, Source, Vault
from vault.formats.importing import import_file


def card(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:ada-1", "FN:Ada Lovelace", *lines, "END:VCARD"]) + "\r\n"


def test_each_list_item_names_the_import_that_brought_it(vault: Vault, tmp_path: Path) -> None:
    (tmp_path / "phone.vcf").write_text(card("TEL;TYPE=WORK:+44 20 7946 0000"))
    (tmp_path / "laptop.vcf").write_text(card("TEL;TYPE=WORK:+44 20 7946 0000", "TEL;TYPE=CELL:+44 7700 900123"))
    first, second = import_file(vault, tmp_path / "phone.vcf"), import_file(vault, tmp_path / "laptop.vcf")
    (rid, _), = vault.projection.state(Kind.CONTACT)
    vault.update(rid, {"note": "met at the RI"}, Source("cli"))
    where = vault.provenance(rid)
    phones = {p["value"]["value"]: p["source"] for p in where["phones"]}
    assert phones["+44 20 7946 0000"]["file"] == "phone.vcf"
    assert phones["+44 7700 900123"]["file"] == "laptop.vcf"
    assert phones["+44 7700 900123"]["detail"]["import_id"] == second.import_id != first.import_id
    assert where["name"][0]["source"]["file"] == "phone.vcf" and where["note"][0]["source"]["via"] == "cli"
    assert [p["value"] for p in where["phones"]] == vault.get(rid)["phones"]  # the record's own order


def test_a_value_removed_and_brought_back_names_its_return(vault: Vault) -> None:
    rid = vault.add(Kind.NOTE, {"title": "t", "tags": ["a", "b"]}, Source("cli"))
    vault.update(rid, {"tags": ["a"]}, Source("api", name="phone"))
    vault.update(rid, {"tags": ["a", "b"], "title": "u"}, Source("api", name="laptop"))
    where = vault.provenance(rid)
    assert [(t["value"], t["seq"]) for t in where["tags"]] == [("a", 1), ("b", 3)]
    assert where["tags"][1]["source"]["name"] == "laptop" and where["title"][0]["seq"] == 3


def test_show_provenance_in_the_cli(run, vault_path: Path) -> None:
    rid = run("add", "note", "--json", '{"title": "Plan", "tags": ["garden"]}').output.strip().splitlines()[-1]
    run("edit", rid, "--json", '{"tags": ["garden", "spring"]}')
    out = run("show", rid, "--provenance").output
    assert "tags: garden  (seq 1," in out and "tags: spring  (seq 2," in out and "via cli" in out
    fields = json.loads(run("show", rid, "--provenance", "--json").output)["fields"]
    assert [t["seq"] for t in fields["tags"]] == [1, 2]
    refused = run("show", rid, "--provenance", "--at", "seq:1")
    assert refused.exit_code == 2 and "does not take --at" in refused.output
