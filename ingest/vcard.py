"""vCard 2.1, 3.0 and 4.0 (`.vcf`) contacts, read and written with vobject.

The file is split into cards here (bounded memory, a location per card), the
vCard 2.1 quirks vobject does not handle are undone first (quoted-printable
soft line breaks, raw 8-bit text in a CHARSET), photos are decoded here
(base64 in 2.1/3.0, `data:` URIs in 4.0), and the rest goes to vobject.
Export writes vCard 3.0; fields vCard has no property for travel in
`X-LIFEVAULT-FIELD;X-NAME=<field>:<json>` lines so a round trip loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import vobject

import ingest
from ingest import bounded_lines, check_text_file, guessed_windows_1252, text_head
from vault.domain.contacts import ADDRESS_PARTS, address, addresses, typed, typed_values
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import (
    Attachment, BadRecord, ExportRecord, Exporter, Importer, Input, Notice, SourceRecord, hookimpl,
)

_CHARSET = re.compile(rb";CHARSET=([A-Za-z0-9_.-]+)", re.I)
_GROUP = re.compile(r"^[A-Z0-9-]+\.(?=(BEGIN|END):VCARD$)")
_PHOTO = re.compile(r"^(?:[\w-]+\.)?PHOTO([;:])", re.I)
_ADR_PARTS = ("box", "extended", "street", "city", "region", "code", "country")
_IMAGE_TYPES = {"JPEG": "image/jpeg", "JPG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "BMP": "image/bmp"}
_TYPED = {"tel": "phones", "email": "emails", "url": "urls", "impp": "impps"}  # property -> typed-value field
_SINGLE = {"nickname": "nickname", "title": "title", "birthday": "bday", "note": "note", "uid": "uid",
           "revision": "rev", "kind": "kind"}  # field -> property, the first of which is the field
_SINGLE_NAMES = {"FN", "N", "ORG", *(p.upper() for p in _SINGLE.values())}
# Properties read into fields (or describing the file, not the contact: VERSION, PRODID); the rest is kept.
_HANDLED = {"BEGIN", "END", "VERSION", "PRODID", "ADR", "CATEGORIES", "PHOTO", "X-LIFEVAULT-FIELD",
            "X-LIFEVAULT-ID", *(p.upper() for p in _TYPED)}
_NOT_KEPT_PARAMS = {"TYPE", "PREF", "ENCODING", "CHARSET"}  # modelled (types, pref) or a transfer encoding
_KNOWN = {"uid", "name", "given_name", "family_name", "middle_name", "name_prefix", "name_suffix", "nickname",
          "emails", "phones", "addresses", "birthday", "organization", "org_units", "title", "urls", "groups",
          "note", "photo", "photo_url", "impps", "revision", "kind", "vcard_params", "vcard_extra"}


def _decode_line(raw: bytes, guessed: list[int], n: int) -> str:
    """A physical line as text: UTF-8, else the CHARSET it names, else Windows-1252 (old phone exports),
    the last being a guess whose line number goes into `guessed`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        m = _CHARSET.search(raw)
        if m:
            try:
                return raw.decode(m.group(1).decode())
            except (LookupError, UnicodeDecodeError):
                pass
        guessed.append(n)
        return raw.decode("cp1252", errors="replace")


def split_cards(src: Input) -> Iterator[tuple[int, int, list[str], list[int]]]:
    """(card number, first line, physical lines, lines whose charset was guessed) per BEGIN:VCARD … END:VCARD block."""
    card: list[str] | None = None
    guessed: list[int] = []
    depth, number, start = 0, 0, 0
    with src.open() as f:
        for n, raw in enumerate(bounded_lines(f, src), 1):
            line = _decode_line(raw, guessed, n).rstrip("\r\n")
            word = _GROUP.sub("", line.strip().upper())  # `home.BEGIN:VCARD`: a group prefix is allowed here too
            if card is None:
                if word == "BEGIN:VCARD":
                    card, depth, number, start, size = [line], 1, number + 1, n, 0
                elif word and word != "\ufeff":
                    if number == 0:
                        raise IngestError(src, f"line {n}", "not a vCard file (it does not start with BEGIN:VCARD)")
                    raise IngestError(src, f"line {n}", "text outside any card")
                continue
            card.append(line)
            size += len(raw)
            if size > ingest.MAX_RECORD:
                raise IngestError(src, f"card {number} (line {start})", "the card is absurdly large")
            depth += (word == "BEGIN:VCARD") - (word == "END:VCARD")  # vCard 2.1 AGENT may nest a card
            if depth == 0:
                yield number, start, card, guessed
                card, guessed = None, []
    if card is not None:
        raise IngestError(src, f"card {number} (line {start})", "the file ends inside a card (truncated?)")
    if number == 0:
        raise IngestError(src, None, "no vCards in it")


def logical_lines(physical: list[str]) -> list[str]:
    """Unfold folded lines and quoted-printable soft line breaks (`=` at the end of a line)."""
    out: list[str] = []
    for line in physical:
        if out and line[:1] in (" ", "\t"):
            out[-1] += line[1:]
        elif out and out[-1].endswith("=") and "QUOTED-PRINTABLE" in out[-1].split(":", 1)[0].upper():
            out[-1] = out[-1][:-1] + line
        elif line.strip():
            out.append(line)
    return out


def _photo(line: str) -> tuple[Attachment | None, str | None]:
    """A PHOTO line as an attachment (inline data) or a URL (a link)."""
    head, _, value = line.partition(":")
    params = {p.split("=", 1)[0].upper(): p.split("=", 1)[-1].upper() for p in head.split(";")[1:]}
    bare = {p.upper() for p in head.split(";")[1:] if "=" not in p}
    value = value.strip()
    if value.lower().startswith("data:"):  # vCard 4.0: data:image/png;base64,....
        meta, _, data = value[5:].partition(",")
        ctype = meta.split(";")[0] or None
        return Attachment("photo", base64.b64decode(data, validate=False), content_type=ctype), None
    if params.get("ENCODING") in ("B", "BASE64") or "BASE64" in bare:
        kind = params.get("TYPE") or next((b for b in bare if b in _IMAGE_TYPES), None)
        ctype = _IMAGE_TYPES.get(kind or "", f"image/{kind.lower()}" if kind else None)
        return Attachment("photo", base64.b64decode(re.sub(r"\s+", "", value), validate=True), content_type=ctype), None
    return None, value or None


def _text(v: Any) -> str:
    return " ".join(x for x in v if x) if isinstance(v, list) else str(v or "")


def _values(card: Any, name: str) -> list[Any]:
    return [line.value for line in card.contents.get(name, [])]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(x.strip() for x in items if x and x.strip()))


def _params(line: Any) -> tuple[list[str], int | None, dict[str, list[str]]]:
    """(types, pref, other parameters) of a parsed line; vCard 2.1 bare parameters are TYPE values."""
    types: list[str] = []
    for t in line.params.get("TYPE", []) + list(line.singletonparams):
        types += [x.strip().lower() for x in t.split(",") if x.strip()]
    pref = 1 if "pref" in types else None
    pref_param = (line.params.get("PREF") or [""])[0]
    if pref_param.isdigit() and 1 <= int(pref_param) <= 100:
        pref = int(pref_param)
    other = {k: list(v) for k, v in line.params.items() if k not in _NOT_KEPT_PARAMS}
    return [t for t in types if t != "pref"], pref, other


def _typed_line(line: Any, labels: dict[str, str]) -> dict[str, Any] | None:
    types, pref, params = _params(line)
    value = str(line.value).strip()
    if line.name == "TEL":  # `tel:` URIs (vCard 4 VALUE=uri) hold the number; export puts the scheme back
        value = re.sub(r"^tel:", "", value, flags=re.I)
    group = (line.group or "").lower() or None
    return typed(value, types, labels.get(group or ""), pref, params, line.group) if value else None


def _address(line: Any, labels: dict[str, str]) -> dict[str, Any]:
    types, pref, params = _params(line)
    parts = {key: _text(getattr(line.value, part, "")).strip() for key, part in zip(ADDRESS_PARTS, _ADR_PARTS, strict=True)}
    formatted = params.pop("LABEL", [""])[0]  # vCard 4: the formatted address rides on ADR as a parameter
    parts["formatted"] = formatted.replace("\\n", "\n").replace("^n", "\n")
    return address(parts, types, labels.get((line.group or "").lower()), pref, params, line.group)


def card_fields(card: Any, raw: list[str]) -> dict[str, Any]:
    """The vault fields of a parsed vCard (photo excluded); `raw` are its logical lines, for what is kept verbatim."""
    f: dict[str, Any] = {}
    labels = {(x.group or "").lower(): str(x.value) for x in card.contents.get("x-ablabel", []) if x.group}
    if "n" in card.contents:
        n = card.n.value
        for key, part in (("family_name", n.family), ("given_name", n.given), ("middle_name", n.additional),
                          ("name_prefix", n.prefix), ("name_suffix", n.suffix)):
            if _text(part).strip():
                f[key] = _text(part).strip()
    for prop, key in _TYPED.items():
        f[key] = [v for v in (_typed_line(line, labels) for line in card.contents.get(prop, [])) if v]
    f["groups"] = _unique(g for v in _values(card, "categories") for g in (v if isinstance(v, list) else [v]))
    f["addresses"] = [a for a in (_address(line, labels) for line in card.contents.get("adr", [])) if a]
    org = [x for x in (_values(card, "org") or [[]])[0] if x] if "org" in card.contents else []
    if org:
        f["organization"], f["org_units"] = org[0], org[1:]
    for key, prop in _SINGLE.items():
        vals = _values(card, prop)
        if vals and _text(vals[0]).strip():
            f[key] = _text(vals[0]).strip().replace("\r\n", "\n")  # export writes \n; keep the round trip exact
    for line in card.contents.get("x-lifevault-field", []):
        name = (line.params.get("X-NAME") or [""])[0]
        f[name] = json.loads(line.value)
    f["vcard_params"] = {name: p for name in sorted(_SINGLE_NAMES) if name.lower() in card.contents
                         and (p := _params(card.contents[name.lower()][0])[2] | _type_param(card.contents[name.lower()][0]))}
    used = {(g or "").lower() for key in (*_TYPED.values(), "addresses") for v in f[key] if (g := v.get("group"))}
    f["vcard_extra"] = _extra_lines(raw, used & set(labels))
    names = _values(card, "fn")
    parts = [f.get(k) for k in ("name_prefix", "given_name", "middle_name", "family_name", "name_suffix")]
    f["name"] = (_text(names[0]).strip() if names else "") or " ".join(p for p in parts if p) or \
        f.get("organization") or next(iter(v["value"] for v in f["emails"] + f["phones"]), "")
    return {k: v for k, v in f.items() if v not in ("", [], None, {})}


def _type_param(line: Any) -> dict[str, list[str]]:
    types, pref, _ = _params(line)
    return {"TYPE": types + ["pref"] * (pref == 1)} if types or pref == 1 else {}


def _extra_lines(raw: list[str], labelled_groups: set[str]) -> list[dict[str, Any]]:
    """Properties the model has no field for, kept verbatim (raw value, parameters, group) and written back.

    They are taken from the card's own lines, not vobject's decoded values, so binary KEY/LOGO data, 2.1
    encodings and unknown X- properties come back byte for byte. The first of each single-valued property is
    a field; the ones after it (ALTID language variants, a second FN) are kept here."""
    out, firsts = [], set()
    for text in raw:
        name, params, value, group = vobject.base.parseLine(text)  # `_parses` let only these through
        name = name.upper()
        if name in _SINGLE_NAMES and name not in firsts:
            firsts.add(name)
            continue
        if name in _HANDLED or (name == "X-ABLABEL" and (group or "").lower() in labelled_groups):
            continue
        item: dict[str, Any] = {"name": name, "params": {p[0].upper(): p[1:] for p in params}, "value": value}
        if group:
            item["group"] = group
        out.append(item)
    return out


def _parses(line: str) -> bool:
    """Whether vobject can split the line. Apple writes `\\"` inside unquoted parameter values (e.g. the
    X-ADDRESS of X-APPLE-STRUCTURED-LOCATION), which RFC 6350 does not allow and vobject 0.9.9 refuses."""
    try:
        vobject.base.parseLine(line)
        return True
    except vobject.base.ParseError:
        return False


def source_ids(fields: dict[str, Any], uid: str, file_name: str, seen: dict[str, int]) -> tuple[str, tuple[str, ...]]:
    """The card's source id, and the one importer version 1 gave it.

    With a UID: the UID, numbered when the file repeats it (both cards kept, never merged). Without: a
    fingerprint of the file's name and the card's name, numbered the same way, so cards in two files never
    match by name (one file cannot change what another brought); version 1 used the name alone."""
    key = uid or "\x00".join(("file", file_name, fields["name"]))
    seen[key] = seen.get(key, 0) + 1
    suffix = f"#{seen[key]}" if seen[key] > 1 else ""
    if uid:
        return uid + suffix, ()
    return ("file-" + hashlib.sha256((key + suffix).encode()).hexdigest()[:24],
            ("name-" + hashlib.sha256((fields["name"] + suffix).encode()).hexdigest()[:24],))


def parse_card(lines: list[str], number: int, start: int, seen: dict[str, int],
               file_name: str = "") -> SourceRecord | BadRecord:
    where = f"card {number} (line {start})"
    photo, photo_url, rest, unparsed = None, None, [], []
    try:
        for line in logical_lines(lines):
            if _PHOTO.match(line):
                photo, photo_url = _photo(line)
            elif _parses(line):
                rest.append(line)
            else:  # vobject refuses the whole card for one such line: keep the line whole, read the rest
                unparsed.append({"name": re.split(r"[;:]", line, maxsplit=1)[0].upper(), "line": line})
        card = vobject.readOne("\r\n".join(rest) + "\r\n")
        fields = card_fields(card, rest)
        if unparsed:
            fields["vcard_extra"] = fields.get("vcard_extra", []) + unparsed
    except (binascii.Error, ValueError) as e:
        return BadRecord(where, f"cannot parse the card ({e})")
    except Exception as e:  # vobject raises its own ParseError and assorted others on broken cards
        return BadRecord(where, f"cannot parse the card ({type(e).__name__}: {e})")
    if photo_url:
        fields["photo_url"] = photo_url
    if not fields.get("name"):
        return BadRecord(where, "the card has no name, organization, email or phone")
    ids = [str(x).strip() for x in _values(card, "x-lifevault-id") if str(x).strip()]
    record_id = ids[0] if ids and ("id\x00" + ids[0]) not in seen else None
    if record_id:  # a repeated lifevault id (a file joined from two exports) is ignored after its first card
        seen["id\x00" + record_id] = 1
    source_id, previous = source_ids(fields, fields.get("uid", ""), file_name, seen)
    return SourceRecord(Kind.CONTACT, source_id, fields, (photo,) if photo else (), where, record_id=record_id,
                        previous_source_ids=previous)


class VcardImporter:
    name = "vcard"
    version = "2"  # 2: typed values (vault/contacts.py), kept properties, file-scoped ids for cards without a UID
    description = "vCard 2.1, 3.0 and 4.0 contacts (.vcf)"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        first = text_head(source, 512).lstrip().split("\n", 1)[0].strip().upper()
        return _GROUP.sub("", first) == "BEGIN:VCARD"

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord | Notice]:
        src = Input.of(source)
        check_text_file(src, "a vCard file")
        seen: dict[str, int] = {}
        for number, start, lines, guessed in split_cards(src):
            if guessed:
                yield guessed_windows_1252(f"card {number} (line {start})", guessed)
            yield parse_card(lines, number, start, seen, src.name)


def build_card(r: ExportRecord, get_blob: Callable[[str], bytes]) -> Any:
    """A vobject vCard 3.0 for an exported contact (the properties kept verbatim are added by `card_text`)."""
    f, c = r.fields, vobject.vCard()
    params: dict[str, Any] = f["vcard_params"] if isinstance(f.get("vcard_params"), dict) else {}
    _set_params(c.add("fn"), params.get("FN")).value = f.get("name") or r.record_id
    _set_params(c.add("n"), params.get("N")).value = vobject.vcard.Name(
        family=f.get("family_name", ""), given=f.get("given_name", ""), additional=f.get("middle_name", ""),
        prefix=f.get("name_prefix", ""), suffix=f.get("name_suffix", ""))
    for key, prop in _SINGLE.items():
        if isinstance(f.get(key), str):
            _set_params(c.add(prop), params.get(prop.upper())).value = f[key]
    groups = _Groups(f.get("vcard_extra"))
    for prop, key in _TYPED.items():
        for v in typed_values(f.get(key)):
            value = "tel:" + v["value"] if prop == "tel" and "uri" in _lower(v.get("params", {}).get("VALUE")) \
                and not v["value"].lower().startswith("tel:") else v["value"]
            groups.add(c, prop, v).value = value
    if f.get("groups"):
        c.add("categories").value = [str(g) for g in f["groups"]]
    if f.get("organization"):
        _set_params(c.add("org"), params.get("ORG")).value = [f["organization"], *f.get("org_units", [])]
    for a in addresses(f.get("addresses")):
        line = groups.add(c, "adr", a)
        line.value = vobject.vcard.Address(**{p: a.get(k, "") for k, p in zip(ADDRESS_PARTS, _ADR_PARTS, strict=True)})
        if a.get("formatted"):
            line.params["LABEL"] = [a["formatted"].replace("\n", "\\n")]
    _add_photo(c, f.get("photo"), f.get("photo_url"), get_blob)
    for name in sorted(set(f) - _KNOWN):
        x = c.add("x-lifevault-field")
        x.params["X-NAME"] = [name]
        x.value = json.dumps(f[name], ensure_ascii=False, sort_keys=True)
    c.add("x-lifevault-id").value = r.record_id
    return c


def _lower(values: Any) -> list[str]:
    return [str(v).lower() for v in values] if isinstance(values, list) else []


def _set_params(line: Any, params: Any) -> Any:
    """A line with the parameters kept for it (TYPE holds `pref` as vCard 3.0 writes it)."""
    for k, v in (params or {}).items():
        if isinstance(v, list) and v:
            line.params[str(k).upper()] = [_param_text(x) for x in v]
    return line


def _param_text(value: Any) -> str:
    """A parameter value vobject writes as is: a line break becomes RFC 6868's ^n, so it cannot end the line."""
    return re.sub(r"\r\n|\r|\n", "^n", str(value))


class _Groups:
    """Group names for labelled values: each value keeps its own; a new one never takes a name in use."""

    def __init__(self, extra: Any) -> None:
        self.used = {str(e.get("group")).lower() for e in extra or [] if isinstance(e, dict) and e.get("group")}
        self.n = 0

    def add(self, c: Any, prop: str, v: dict[str, Any]) -> Any:
        group = v.get("group")
        if not group and v.get("label"):
            while f"item{self.n}" in self.used or self.n == 0:
                self.n += 1
            group = f"item{self.n}"
            self.used.add(group)
        line = _set_params(c.add(prop, group=group), v.get("params"))
        types = [_param_text(t) for t in v["types"]] + ["pref"] * (v["pref"] == 1)
        if types:
            line.params["TYPE"] = types
        if v["pref"] and v["pref"] > 1:
            line.params["PREF"] = [str(v["pref"])]
        if v.get("label"):
            c.add("x-ablabel", group=group).value = v["label"]
        return line


def card_text(r: ExportRecord, get_blob: Callable[[str], bytes]) -> str:
    """The card as text: vobject's serialization plus the properties kept verbatim, folded at 75 octets."""
    text = build_card(r, get_blob).serialize()
    extra = r.fields.get("vcard_extra")
    lines = [_fold(_raw_line(e)) for e in extra if isinstance(e, dict)] if isinstance(extra, list) else []
    end = text.rindex("END:VCARD")
    return text[:end] + "".join(lines) + text[end:]


def _raw_line(e: dict[str, Any]) -> str:
    """A kept property as one line; a line break (only an edited or foreign field can hold one) is escaped, so
    no value can end the card or start another."""
    if isinstance(e.get("line"), str):  # a line vobject could not split, kept whole
        line = e["line"]
    else:
        params = "".join(f";{k}=" + ",".join(_quoted(str(v)) for v in vals) if vals else f";{k}"
                         for k, vals in (e.get("params") or {}).items())
        line = (f"{e['group']}." if e.get("group") else "") + f"{e.get('name')}{params}:{e.get('value', '')}"
    return re.sub(r"\r\n|\r|\n", r"\\n", line)


def _quoted(value: str) -> str:
    return f'"{value}"' if any(ch in value for ch in ",;:") else value


def _fold(line: str) -> str:
    """RFC 6350 line folding: at most 75 octets a line, never inside a UTF-8 character."""
    out, chunk, size = [], "", 0
    for ch in line:
        n = len(ch.encode())
        if size + n > 75:
            out.append(chunk)
            chunk, size = " ", 1
        chunk += ch
        size += n
    return "\r\n".join(out + [chunk]) + "\r\n"


def _add_photo(c: Any, ref: Any, url: Any, get_blob: Callable[[str], bytes]) -> None:
    if isinstance(ref, dict) and isinstance(ref.get("blob"), str):
        p = c.add("photo")
        p.encoding_param = "b"
        if ref.get("type", "").startswith("image/"):
            p.type_param = ref["type"].split("/", 1)[1].upper()
        p.value = get_blob(ref["blob"])
    elif isinstance(url, str):
        c.add("photo").value = url


class VcardExporter:
    name = "vcard"
    description = "vCard 3.0 (.vcf), one card per contact"
    kinds = (Kind.CONTACT,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        n = 0
        with out.open("w", encoding="utf-8", newline="") as f:
            for r in records:
                f.write(card_text(r, get_blob))
                n += 1
        return n


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(VcardImporter())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    register(VcardExporter())
