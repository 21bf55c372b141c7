"""Instants: parsing what users type for T, and the ISO text stored in projections.

Inside lifevault an instant is an int of UTC microseconds. Users type ISO 8601
(with or without a zone; naive means local time), a bare date, `now`, or
`seq:N` for "just after event N".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from vault.errors import BadInstant


@dataclass(frozen=True)
class Instant:
    """Either a seq (`seq:N`) or a point in time (UTC microseconds)."""

    seq: int | None = None
    us: int | None = None


def parse_instant(text: str) -> Instant:
    """Parse `seq:N`, `now`, or ISO 8601 date/time (naive = local time)."""
    t = text.strip()
    if t.lower().startswith("seq:"):
        try:
            seq = int(t[4:])
        except ValueError:
            raise BadInstant(text, "seq:N needs a whole number") from None
        if seq < 0:
            raise BadInstant(text, "a seq cannot be negative")
        return Instant(seq=seq)
    if t.lower() == "now":
        return Instant(us=to_us(datetime.now(timezone.utc)))
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        raise BadInstant(text, "use ISO 8601 like 2024-05-01T09:30 (local), 2024-05-01T09:30Z, or seq:N") from None
    try:
        if dt.tzinfo is None:
            dt = dt.astimezone()  # naive means the user's local time
        return Instant(us=to_us(dt))
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise BadInstant(text, "it is outside the range of dates lifevault handles") from None


def to_us(dt: datetime) -> int:
    delta = dt.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1)


def iso(us: int) -> str:
    """Fixed-width UTC ISO text, so comparing strings compares instants."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def local_time(at: str | int) -> datetime:
    """An instant (ISO text as stored, or UTC microseconds) in this machine's local time, where people read it."""
    us = at if isinstance(at, int) else to_us(datetime.fromisoformat(at.replace("Z", "+00:00")))
    return datetime.fromtimestamp(us / 1_000_000, timezone.utc).astimezone()


def day_words(d: date) -> str:
    """`3 Mar 2025`: a day as people write it."""
    return f"{d.day} {d:%b %Y}"


def minute_words(dt: datetime) -> str:
    """`3 Mar 2025, 14:05`: a time as people write it, to the minute."""
    return f"{day_words(dt)}, {dt:%H:%M}"


def human_date(at: str | int) -> str:
    """`3 Mar 2025`: the day of an instant, in local time."""
    return day_words(local_time(at))


def human_time(at: str | int) -> str:
    """`3 Mar 2025, 14:05`: an instant, in local time."""
    return minute_words(local_time(at))


def typed_time(at: str | int) -> str:
    """`2025-03-03 14:05:07`: an instant as a person would type it back into an "as of" box (local time)."""
    return f"{local_time(at):%Y-%m-%d %H:%M:%S}"
