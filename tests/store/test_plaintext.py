"""Nothing readable in the vault file, its state file or their -wal: no names, emails, bodies, field names
or event types.

The raw bytes are searched while the vault is open (the WALs still hold the new
pages), while it is served and browsed, and again after close. A positive
control (a restore file written from the same vault) shows the search does find
plaintext when it is there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.domain.instants import Instant
from vault.formats.restore import restore_to_file
from vault.store import schema

from conftest import PASSPHRASE

NAMES = ["Zebulon Quixote-Farnsworth", "Xanthippe Oyelaran-Brightwater", "Ωmega Ünïcødé Persona"]
EMAILS = ["zebulon.quixote@farnsworth-example.org", "xanthippe.oyelaran@brightwater-example.net"]
BODIES = [
    "The pineapple treaty was signed beneath the crooked lighthouse",
    "Remember: the saffron key is under the third marble gargoyle",
    "Grocery list: quince, kumquat, dragonfruit, persimmon",
]
BLOB = b"PHOTOSECRET-" + b"plain jpeg bytes that must never be readable " * 20
FIELD_NAMES = ["emails", "phones", "subject", "attachments", "given_name"]
EVENT_TYPES = ["created", "updated", "deleted", "revived"]
KINDS = ["contact", "message", "note"]
SRC = Source("import", name="vcard", file="Zebulon-contacts-export.vcf")

SECRETS = [*NAMES, *EMAILS, *BODIES, "PHOTOSECRET", "Zebulon-contacts-export.vcf", PASSPHRASE]
WORDS = [*FIELD_NAMES, *EVENT_TYPES, *KINDS]


def fill(v: Vault) -> None:
    """Contacts, messages and notes with edits, deletions, a revival and a blob."""
    photo = v.put_blob(BLOB)
    c1 = v.add(Kind.CONTACT, {"name": NAMES[0], "given_name": "Zebulon", "emails": [EMAILS[0]],
                              "phones": ["+44 20 7946 0999"], "photo": {"blob": photo}}, SRC)
    c2 = v.add(Kind.CONTACT, {"name": NAMES[1], "emails": [EMAILS[1]]}, SRC)
    v.add(Kind.CONTACT, {"name": NAMES[2]}, SRC)
    m = v.add(Kind.MESSAGE, {"kind": "email", "from": EMAILS[0], "to": [EMAILS[1]], "subject": "treaty",
                             "body": BODIES[0], "attachments": [{"blob": photo, "name": "x.jpg"}]}, SRC)
    n = v.add(Kind.NOTE, {"title": "secret", "body": BODIES[1], "tags": ["gargoyle"]}, SRC)
    v.add(Kind.NOTE, {"title": "shopping", "body": BODIES[2]}, SRC)
    v.update(c1, {"emails": [EMAILS[0], "second.zebulon@farnsworth-example.org"], "phones": None}, SRC)
    v.update(m, {"subject": "treaty (signed)"}, SRC)
    v.delete(c2, SRC)
    v.delete(n, SRC)
    v.revert(c2, Instant(seq=2), SRC)  # revived
    v.add(Kind.NOTE, {"title": "later", "body": BODIES[1] + " again"}, SRC)


def leaks(data: bytes) -> list[str]:
    found = [s for s in SECRETS if s.encode() in data]
    found += [w for w in WORDS if w.encode() in data]
    return found


def vault_files(path: Path) -> dict[str, bytes]:
    """The vault file and its state file, with whatever SQLite keeps beside each (WAL, shared memory, journal)."""
    names = [f"{base}{suffix}" for base in (path, f"{path}.state") for suffix in ("", "-wal", "-shm", "-journal")]
    return {Path(n).name: Path(n).read_bytes() for n in names if Path(n).exists()}


def test_schema_text_has_none_of_the_words() -> None:
    """SQLite stores the DDL verbatim in the file: it must not produce false positives (or leaks)."""
    ddl = "\n".join(schema.current_statements())  # what every vault file holds
    assert [w for w in WORDS if w in ddl.lower()] == []


def test_vault_file_and_wal_hold_no_plaintext(created: tuple[Path, str]) -> None:
    path = created[0]
    v = Vault.open(path, PASSPHRASE)
    try:
        fill(v)
        open_files = vault_files(path)
        assert len(open_files.get(f"{path.name}-wal", b"")) > 0, "the WAL should still hold pages while open"
        assert len(open_files.get(f"{path.name}.state-wal", b"")) > 0, "so should the state file's"
        for name, data in open_files.items():
            assert leaks(data) == [], f"{name} (vault open) contains plaintext"
    finally:
        v.close()
    closed = vault_files(path)
    assert path.name in closed and f"{path.name}.state" in closed
    for name, data in closed.items():
        assert leaks(data) == [], f"{name} (vault closed) contains plaintext"


def test_positive_control_restore_file_is_plaintext(created: tuple[Path, str], tmp_path: Path) -> None:
    """The same search finds the plaintext in a restore file, so the negative result above means something."""
    with Vault.open(created[0], PASSPHRASE) as v:
        fill(v)
        out = tmp_path / "state.db"
        restore_to_file(v, v.log.head().seq, out)
    found = leaks(out.read_bytes())
    assert NAMES[0] in found and EMAILS[0] in found and BODIES[0] in found and "PHOTOSECRET" in found


@pytest.mark.parametrize("checkpoint", ["TRUNCATE", "PASSIVE"])
def test_after_checkpoint_main_file_still_clean(created: tuple[Path, str], checkpoint: str) -> None:
    """Pages moved from the WAL into the main file stay ciphertext."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        fill(v)
        v.conn.execute(f"PRAGMA wal_checkpoint({checkpoint})")
        for name, data in vault_files(path).items():
            assert leaks(data) == [], f"{name} after a {checkpoint} checkpoint contains plaintext"


def test_nothing_readable_on_disk_while_serving(created: tuple[Path, str], tmp_path: Path) -> None:
    """Browsing, searching, past states and CSV/JSON exports read the encrypted state file through SQLCipher:
    every file in the vault's folder (the state file and its WAL included) stays ciphertext meanwhile."""
    from starlette.testclient import TestClient

    from vault.web import LiveVault
    from vault.web.site.server import create_app

    path = created[0]
    v = Vault.open(path, PASSPHRASE)
    fill(v)
    site = create_app(LiveVault(v))
    with TestClient(site, base_url="http://127.0.0.1", headers={"Origin": "http://127.0.0.1"}) as client:
        pages = ["/vault/contacts", "/vault/messages.csv", "/vault/notes.json", "/-/search?q=pineapple",
                 "/vault/contacts?_search=Zebulon", "/vault.json?sql=select+*+from+notes_history", "/asof_3/contacts",
                 "/asof_3.json?sql=select+*+from+contacts", "/-/search?q=Zebulon&db=asof_3"]
        for page in pages:
            r = client.get(page)
            assert r.status_code == 200, page
        assert "Zebulon" in client.get("/vault/contacts?_search=Zebulon").text  # the pages did read plaintext
        files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert f"{path.name}.state-wal" in {p.name for p in files}
        for p, data in files.items():
            assert leaks(data) == [], f"{p.name} (while serving) contains plaintext"
    site.live.close()
