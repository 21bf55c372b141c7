"""`lifevault upgrade`: bring stored records to the current field model by appending events.

History is never rewritten: a contact stored with bare lists (`"phones": ["+44 …"]`) gets one update event
whose patch holds only the fields whose shape changed, so every earlier state stays readable as it was.
Run twice, the second run appends nothing.
"""

from __future__ import annotations

from vault.domain.contacts import upgraded
from vault.domain.events import Kind, Source
from vault.vault import Vault

UPGRADE_SOURCE = Source("cli", "upgrade", detail={"upgrade": "contact-fields-2"})


def upgrade_records(vault: Vault) -> int:
    """Append one update per live contact still in an older shape (in one transaction); returns how many."""
    changed = 0
    with vault.transaction() as tx:
        for rid, fields in vault.projection.state(Kind.CONTACT):
            new = upgraded(fields)
            patch = {k: v for k, v in new.items() if fields.get(k) != v}
            if patch:
                tx.update(rid, patch, UPGRADE_SOURCE, allow_extra=True)  # relations, dates… are extras
                changed += 1
    return changed
