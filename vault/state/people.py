"""Who an address or a phone number belongs to: the contacts of a state, looked up by what messages carry.

Messages name people as mail addresses (`Ada <ada@example.org>`), phone numbers
or chat names; a front end shows the contact's name where one is known. The
directory is read once from a state connection (the live `contacts` view or a
past state's) and answers lookups from memory.
"""

from __future__ import annotations

import email.utils
import json
import re
from typing import Any, NamedTuple

from vault.domain.contacts import texts

_NOT_DIGITS = re.compile(r"\D")
_PHONE_TAIL = 9  # digits compared when the country code may be missing ("020 7946…" vs "+44 20 7946…")


class Person(NamedTuple):
    id: str
    name: str


def mail_address(text: str) -> str | None:
    """The lower-case address in `Name <addr>` or a bare address; None if the text holds none."""
    addr = email.utils.parseaddr(text)[1]
    return addr.lower() if "@" in addr else None


def phone_key(text: str) -> str | None:
    """The last digits of a phone number (tel: URIs and any spacing alike); None if it is not one."""
    if any(c.isalpha() for c in text.removeprefix("tel:")):
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
            self._by_name[name] = None if name in self._by_name else person

    def lookup(self, text: str) -> Person | None:
        """The contact a `from`/`to` value names, if any: chat exports (WhatsApp) name senders as the phone's
        address book did, so a name held by exactly one contact counts too."""
        if not isinstance(text, str) or not text.strip():
            return None
        key = mail_address(text) or phone_key(text)
        return self._by_key.get(key) if key else self._by_name.get(text.strip().casefold())

    def __len__(self) -> int:
        return len(self._by_key)


def directory(conn: Any) -> Directory:
    """The directory of the contacts a state connection sees as `contacts` (now, or a past state's view)."""
    found = Directory()
    for rid, name, emails, phones in conn.execute("SELECT id, name, emails, phones FROM contacts ORDER BY rowid"):
        found.add(Person(rid, name or ""), texts(_decoded(emails)), texts(_decoded(phones)))
    return found


def _decoded(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
