"""Conversations: the messages of a thread in date order, each with how deep it sits in the reply tree.

Every importer gives a message a `thread` key (mail: its Gmail thread or its
first Reference; chats and SMS: the conversation). Within a thread, a mail's
`in_reply_to` names its parent's `message_id`: that gives the indentation.
"""

from __future__ import annotations

import json
from typing import Any

_COLUMNS = ("id", "kind", "from", "to", "cc", "date", "subject", "body", "attachments", "message_id", "in_reply_to")
_LISTS = {"to", "cc", "attachments"}
MAX_MESSAGES = 500  # the newest this many of a long chat


def thread_messages(conn: Any, key: str, limit: int = MAX_MESSAGES) -> list[dict[str, Any]]:
    """The newest `limit` messages whose `thread` is `key`, oldest first, each with `depth` (0 for a message
    replying to none of the others shown)."""
    cols = ", ".join(f'"{c}"' for c in _COLUMNS)
    rows = conn.execute(f"SELECT {cols} FROM messages WHERE thread = ? ORDER BY date DESC, rowid DESC LIMIT ?",
                        (key, limit)).fetchall()
    messages = [{c: _decoded(c, v) for c, v in zip(_COLUMNS, row, strict=True)} for row in reversed(rows)]
    parent = {m["message_id"]: m for m in messages if m["message_id"]}
    for m in messages:
        m["depth"] = 0
        seen = {m["id"]}
        up = parent.get(m["in_reply_to"]) if m["in_reply_to"] else None
        while up is not None and up["id"] not in seen:  # a loop of replies (bad headers) stops here
            m["depth"] += 1
            seen.add(up["id"])
            up = parent.get(up["in_reply_to"]) if up["in_reply_to"] else None
    return messages


def _decoded(column: str, value: Any) -> Any:
    if column in _LISTS and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
        return value if isinstance(value, list) else [value]
    return value
