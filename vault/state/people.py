"""Who an address or a phone number belongs to: the contacts of a state, looked up by what messages carry.

Messages name people as mail addresses (`Ada <ada@example.org>`), phone numbers
or chat names; a front end shows the contact's name where one is known. The
directory is read once from a state connection (the live `contacts` view or a
past state's) and answers lookups from memory.
"""

from __future__ import annotations

import email.utils
import re
from typing import Any, NamedTuple


_NOT_DIGITS = re.compile(r"\D")
_LETTERS = re.compile(r"[^\W\d_]")
# `Name <local@domain>` with none of RFC 5322's specials in the name, nor those or spaces in the address.
_NAME_ADDR = re.compile(r'[^"<>()\[\]\\,;:@]*<([^\s"<>()\[\]\\,;:@]+@[^\s"<>()\[\]\\,;:@]+)>\s*\Z')
_PHONE_TAIL = 9  # digits compared when the country code may be missing ("020 7946…" vs "+44 20 7946…")


class Person(NamedTuple):
    id: str
    name: str


def mail_address(text: str) -> str | None:
    """The lower-case address in `Name <addr>` or a bare address; None if the text holds none."""
    if "<" not in text and "," not in text and '"' not in text:  # a bare address: parseaddr is slow
        addr = text.strip().removeprefix("mailto:")
        return addr.lower() if "@" in addr and " " not in addr else None
    plain = _NAME_ADDR.match(text)
    if plain:  # `Name <addr>` with nothing special in it, the usual shape: parseaddr takes 35 us a sender
        return plain.group(1).lower()
    addr = email.utils.parseaddr(text)[1]
    return addr.lower() if "@" in addr else None


def phone_key(text: str) -> str | None:
    """The last digits of a phone number (tel: URIs and any spacing alike); None if it is not one."""
    if _LETTERS.search(text.removeprefix("tel:")):
        return None
    digits = _NOT_DIGITS.sub("", text)
    return digits[-_PHONE_TAIL:] if len(digits) >= 5 else None


class Directory:
    """Contacts by mail address, by phone number, and by name where only one contact has it."""

    def __init__(self) -> None:
        self._by_key: dict[str, Person] = {}
        self._by_name: dict[str, Person | None] = {}  # None: several contacts share the name

    def add(self, person: Person, emails: list[str], phones: list[str]) -> None:
        for key in [mail_address(e) for e in emails] + [phone_key(p) for p in phones]:
            if key:
                self._by_key.setdefault(key, person)  # the first contact holding an address keeps it
        name = person.name.strip().casefold()
        if name:
            held = self._by_name.get(name, person)
            self._by_name[name] = person if held is not None and held.id == person.id else None

    def lookup(self, text: str) -> Person | None:
        """The contact a `from`/`to` value names, if any: chat exports (WhatsApp) name senders as the phone's
        address book did, so a name held by exactly one contact counts too."""
        if not isinstance(text, str) or not text.strip():
            return None
        key = mail_address(text) or phone_key(text)
        return self._by_key.get(key) if key else self._by_name.get(text.strip().casefold())

    def __len__(self) -> int:
        return len(self._by_key)


# Each contact's mail addresses and phone numbers, one a row, in either stored shape (a typed value's `value`,
# or a bare string): SQLite unpacks them, several times faster than decoding every contact's JSON here.
_ADDRESSES = """
SELECT c.id, c.name, j.key IS NOT NULL AND f.name = 'emails',
       CASE j.type WHEN 'object' THEN json_extract(j.value, '$.value') ELSE j.value END
FROM contacts c JOIN (SELECT 'emails' AS name UNION ALL SELECT 'phones') f
LEFT JOIN json_each(CASE f.name WHEN 'emails' THEN c.emails ELSE c.phones END) j
ORDER BY c.rowid"""


def directory(conn: Any) -> Directory:
    """The directory of the contacts a state connection sees as `contacts` (now, or a past state's view)."""
    found = Directory()
    for rid, name, is_mail, value in conn.execute(_ADDRESSES):
        person = Person(rid, name or "")
        if isinstance(value, str):
            found.add(person, [value] if is_mail else [], [] if is_mail else [value])
        else:
            found.add(person, [], [])  # known by name only
    return found


def contacts_stamp(conn: Any) -> int:
    """A number that changes whenever any contact does (the newest contact version's rowid), so a directory
    of the live state can be kept until it does."""
    return conn.execute("SELECT coalesce(max(rowid), 0) FROM contacts_history").fetchone()[0]
