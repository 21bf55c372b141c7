"""The moments page: the points worth going back to (vault/state/moments.py), grouped by day, newest first.

Each links to the "as of" control with the moment's exact event, so it opens the whole vault as it was.
"""

from __future__ import annotations

import threading
import weakref
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from datasette.utils.asgi import Response

from vault.state.moments import Moment, Moments
from vault.web.browse import plugin as plugin

OPEN_AT = "/vault"  # a moment opens the vault's page as it was then
# Per served Datasette: the moments found so far, so a page view scans only what was written since the last.
_KNOWN: "weakref.WeakKeyDictionary[Any, tuple[threading.Lock, Moments]]" = weakref.WeakKeyDictionary()


def as_of_link(seq: int) -> str:
    return "/-/as-of?" + urlencode({"seq": seq, "next": OPEN_AT})


def _entry(m: Moment) -> dict[str, Any]:
    return {**m.as_dict(), "after_link": as_of_link(m.seq), "before_link": as_of_link(m.before)}


async def moments_view(request: Any, datasette: Any) -> Response:
    """Every import, undo, revert and day with changes, each opening the vault as it was then."""
    await plugin.served_site(datasette, request)
    lock, known = _KNOWN.setdefault(datasette, (threading.Lock(), Moments()))

    def current(conn: Any) -> list[Moment]:
        with lock:  # pages are read on several threads
            return known.update(conn).list()

    found = await datasette.get_database(plugin.LIVE_DB).execute_fn(current)
    days = []
    for _, group in groupby(found, key=lambda m: m.day):
        entries = [_entry(m) for m in group]
        day = next((e for e in entries if e["kind"] == "day"), None)
        days.append({"day": day, "events": [e for e in entries if e["kind"] != "day"]})
    return Response.html(await datasette.render_template(
        "lifevault_moments.html", {"days": days, "count": len(found)}, request=request))
