"""How one message's bytes without a usable charset become text, and the warning that says so.

Mail headers are meant to be ASCII, but real mailers write raw 8-bit bytes (a
name, a subject, an attachment's file name) with no charset. UTF-8 is tried
first: it almost never decodes by accident. Otherwise the charset the message
declares for its text parts is the best clue (the same program wrote both);
failing that, charset-normalizer guesses from all of the message's undeclared
bytes at once, because a guess from one short name is little better than a coin
(measured: `Отчёт за март.pdf` in KOI8-R alone comes out as Big5). Every guess is
reported, naming what was guessed and as which charset; nothing is silently
read as Latin-1.
"""

from __future__ import annotations

import unicodedata
from itertools import pairwise
from email.message import Message

import charset_normalizer

# Charset labels seen in the wild that Python does not know, or knows too narrowly.
ALIASES = {
    "ks_c_5601-1987": "cp949",  # Outlook's label for Korean
    "iso-8859-8-i": "iso-8859-8",  # Hebrew, logical order (Outlook, Thunderbird)
    "gb2312": "gb18030",  # many "gb2312" mails use GBK/GB18030 characters
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
NO_CHARSET = {"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "none", "8bit"}
_PLAIN = {"us-ascii", "ascii", "utf-8"}
# The legacy charsets mail is written in; limiting the guess to them keeps it from landing on UTF-16 or Big5
# for a European name.
# In order of how common they are in mail, which breaks ties.
_CANDIDATES = ["cp1252", "cp1250", "cp1251", "koi8_r", "koi8_u", "iso8859_2", "iso8859_7", "cp1253", "cp1254",
               "iso8859_9", "cp1255", "cp1256", "cp1257", "shift_jis", "euc_jp", "iso2022_jp", "gb18030", "big5",
               "euc_kr", "cp874", "iso8859_5"]


def label_of(declared: str | None) -> str:
    """A declared charset label, cleaned and aliased; "" when it declares nothing usable."""
    label = (declared or "").strip().strip('"').lower()
    label = ALIASES.get(label, label)
    return "" if label in NO_CHARSET else label


def raw_bytes(value: str) -> bytes:
    """A compat32 header value back to the bytes it was read from (8-bit bytes are surrogate escapes)."""
    return value.encode("ascii", "surrogateescape")


class MessageCharsets:
    """The guessing context of one message: its declared charsets and all its undeclared 8-bit header bytes."""

    def __init__(self, msg: Message) -> None:
        self.declared: list[str] = []
        self.pool: list[bytes] = []
        for part in msg.walk():
            label = label_of(part.get_content_charset())
            if label and label not in _PLAIN and label not in self.declared:
                self.declared.append(label)
            for _, value in part.raw_items():
                data = raw_bytes(str(value)) if isinstance(value, str) else b""
                if not data.isascii() and not _is_utf8(data):
                    self.pool.append(data)
        self._chosen: tuple[str, str] | None = None
        self.guessed: list[str] = []  # what was read by a guess, e.g. "From", "attachment 2's name"

    def text(self, data: bytes, what: str) -> str:
        """`data` as text: UTF-8 if it is, else the message's charset (recorded as a guess)."""
        if _is_utf8(data):
            return data.decode("utf-8")
        codec, _ = self.chosen(data)
        if what not in self.guessed:
            self.guessed.append(what)
        return data.decode(codec, errors="replace")

    def chosen(self, extra: bytes = b"") -> tuple[str, str]:
        """(codec, how it was chosen) for the undeclared bytes of this message."""
        if self._chosen is None:
            sample = b"\n".join(self.pool) or extra
            self._chosen = next(((c, "the charset the message declares for its text") for c in self.declared
                                 if _decodes(sample, c)), None) or _guess(sample)
        return self._chosen

    def warning(self) -> str | None:
        """One sentence naming what was guessed, or None when nothing was."""
        if not self.guessed:
            return None
        codec, how = self.chosen()
        return f"8-bit bytes with no charset in {', '.join(self.guessed)} were read as {codec} ({how})"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except (LookupError, UnicodeDecodeError):
        return False
    return True


def _guess(sample: bytes) -> tuple[str, str]:
    """charset-normalizer's candidates, tie-broken by how much the text looks like words.

    On a few bytes many charsets tie (a name in Windows-1252 reads as well in Windows-1250), so among
    those as good as the best the one giving the fewest stray symbols and case flips inside words wins,
    then the more common charset (the order of _CANDIDATES)."""
    results = list(charset_normalizer.from_bytes(sample, cp_isolation=_CANDIDATES))
    if not results:
        return "cp1252", "no charset fits; Windows-1252 keeps every byte visible"
    floor = min(r.chaos for r in results) + 0.01
    tied = {c for r in results if r.chaos <= floor for c in r.could_be_from_charset if c in _CANDIDATES}
    best = min(tied, key=lambda c: (_oddness(sample.decode(c, errors="replace")), _CANDIDATES.index(c)))
    return best, "guessed by charset-normalizer"


def _oddness(text: str) -> int:
    """Stray symbols, lower-to-upper flips inside words and, in mostly-Latin text, letters of other scripts:
    what text read in the wrong charset is full of."""
    stray = sum(1 for ch in text if not ch.isascii() and not ch.isalpha())
    flips = sum(1 for a, b in pairwise(text) if a.islower() and b.isupper())
    letters = [ch for ch in text if ch.isalpha()]
    latin = [ch for ch in letters if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")]
    foreign = len(letters) - len(latin) if len(latin) * 2 > len(letters) else 0
    return stray + flips + foreign
