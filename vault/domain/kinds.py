"""Record kinds as a registry: the single place a kind is declared.

A `KindSpec` says everything the rest of lifevault needs to know about a kind: its name, the
letter(s) its record ids start with, its code in the stored event header (vault/store/codec.py),
its table in the state file and in restored files, its fields with their types, the fields
full-text search indexes, and how its records are named and shown. `register_kind` turns a spec
into a `Kind`; the three built-in kinds are registered below, and a plugin or a test registers
another the same way (`unregister_kind` takes it back).

A `Kind` is the kind's name as a `str` (so it compares, hashes and serializes as the name), with its
spec attached; `Kind("contact") is Kind.CONTACT`, and `for kind in Kind` walks the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Literal, Mapping, Sequence

from vault.domain.contacts import typed
from vault.errors import InvalidRecord

FieldType = Literal["text", "texts", "typed_values", "addresses", "date", "datetime", "attachment",
                    "attachments", "json"]


@dataclass(frozen=True)
class FieldSpec:
    """One field a kind knows: its name, its type, and the CLI flag that sets it (if any).

    A flag of a list type is repeatable (`--email a@x.org --email b@x.org`)."""

    name: str
    type: FieldType = "text"
    flag: str | None = None
    help: str = ""


@dataclass(frozen=True)
class KindSpec:
    """Everything lifevault knows about one kind of record."""

    name: str  # singular, lower case: "contact"
    prefix: str  # record ids start with it and "_": "c" gives c_4k9x0m2q7r1t
    code: int  # its byte in the stored event header: part of the file format, never reused
    fields: tuple[FieldSpec, ...]
    fts: tuple[str, ...] = ()  # fields indexed for full-text search
    table: str = ""  # default: the name + "s"
    title_fields: tuple[str, ...] = ()  # the fields that name a record in lists and headings, first present wins
    date_field: str | None = None  # the field that dates a record in lists (else its version's instant)
    sort: str | None = None  # the field records are listed by
    render: Mapping[str, str] = field(default_factory=dict)  # field -> how pages show it ("markdown", "thread")
    field_names: tuple[str, ...] = field(init=False, repr=False, compare=False)  # derived, read per row
    by_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.table:
            object.__setattr__(self, "table", self.name + "s")
        object.__setattr__(self, "field_names", tuple(f.name for f in self.fields))
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})


class _Registry(type):
    """Lets `for kind in Kind`, `len(Kind)` and `"contact" in Kind` read the registry."""

    def __iter__(cls) -> Iterator[Kind]:
        return iter(list(_BY_NAME.values()))

    def __len__(cls) -> int:
        return len(_BY_NAME)

    def __contains__(cls, name: object) -> bool:
        return name in _BY_NAME


class Kind(str, metaclass=_Registry):
    """A registered kind: its name as a str, with its `spec`. `Kind(name)` looks one up."""

    CONTACT: ClassVar[Kind]
    MESSAGE: ClassVar[Kind]
    NOTE: ClassVar[Kind]
    spec: KindSpec

    def __new__(cls, name: object) -> Kind:
        found = _BY_NAME.get(name) if isinstance(name, str) else None
        if found is None:
            raise InvalidRecord(f"{name!r} is not a kind of record; the kinds are {_names()}.")
        return found

    def __reduce__(self) -> tuple[Any, ...]:
        return (Kind, (str(self),))

    def __repr__(self) -> str:
        return f"Kind({str(self)!r})"

    @property
    def value(self) -> str:
        return str(self)

    @property
    def table(self) -> str:
        return self.spec.table

    @property
    def prefix(self) -> str:
        return self.spec.prefix

    @property
    def code(self) -> int:
        return self.spec.code

    @property
    def fields(self) -> tuple[str, ...]:
        return self.spec.field_names

    @classmethod
    def by_code(cls, code: int) -> Kind:
        """The kind stored under a header code (KeyError if none is)."""
        return _BY_CODE[code]

    @classmethod
    def by_prefix(cls, prefix: str) -> Kind | None:
        return _BY_PREFIX.get(prefix)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """For pydantic (the API): a kind is its name, checked against the registry when a request comes."""
        from pydantic_core import core_schema  # only the web layer validates kinds with pydantic

        def check(name: str) -> Kind:
            try:
                return Kind(name)
            except InvalidRecord as e:
                raise ValueError(str(e)) from None

        return core_schema.no_info_after_validator_function(
            check, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "enum": [str(k) for k in _BY_NAME.values()], "title": "Kind"}


_BY_NAME: dict[str, Kind] = {}
_BY_PREFIX: dict[str, Kind] = {}
_BY_CODE: dict[int, Kind] = {}
FIELD_NAMES: set[str] = set()  # every declared field name: usable as is (check_fields' fast path)
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PREFIX = re.compile(r"^[a-z]{1,8}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _names() -> str:
    names = list(_BY_NAME)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def register_kind(spec: KindSpec) -> Kind:
    """Declare a kind; refuses one whose name, prefix, code or table another kind already has."""
    if not _NAME.match(spec.name) or not _PREFIX.match(spec.prefix) or not 1 <= spec.code <= 255:
        raise ValueError(f"kind {spec.name!r}: a name of lower-case letters, a prefix of 1-8 letters and a code "
                         "from 1 to 255 are needed")
    for other in _BY_NAME.values():
        for what in ("name", "prefix", "code", "table"):
            if getattr(other.spec, what) == getattr(spec, what):
                raise ValueError(f"kind {spec.name!r}: its {what} is already kind {str(other)!r}'s")
    bad = [f.name for f in spec.fields if not _FIELD_NAME.match(f.name) or f.name in ("id", "extra")]
    if bad or len(set(spec.field_names)) != len(spec.fields):
        raise ValueError(f"kind {spec.name!r}: field names must be distinct, letters, digits and _, not id or extra")
    if not spec.fts:
        raise ValueError(f"kind {spec.name!r}: at least one field must be indexed for full-text search (fts)")
    unknown = sorted({*spec.fts, *spec.render, *spec.title_fields, *filter(None, (spec.date_field, spec.sort))} - set(spec.field_names))
    if unknown:
        raise ValueError(f"kind {spec.name!r}: {', '.join(unknown)} not among its fields")
    kind = str.__new__(Kind, spec.name)
    kind.spec = spec
    _BY_NAME[spec.name] = _BY_PREFIX[spec.prefix] = _BY_CODE[spec.code] = kind
    FIELD_NAMES.update(spec.field_names)
    return kind


def unregister_kind(name: str) -> None:
    """Take back a kind registered at run time (the built-in ones stay)."""
    kind = _BY_NAME.get(name)
    if kind is None or kind in _BUILT_IN:
        raise ValueError(f"{name!r} is not a kind registered at run time")
    del _BY_NAME[name], _BY_PREFIX[kind.spec.prefix], _BY_CODE[kind.spec.code]


def record_id_pattern() -> str:
    """A regular expression for the record ids of the kinds registered now."""
    prefixes = "|".join(sorted((re.escape(k.spec.prefix) for k in _BY_NAME.values()), key=lambda p: (-len(p), p)))
    return rf"^(?:{prefixes})_[a-z0-9]{{1,64}}$"


# -- the schema: each field's type, checked on every write ---------------------------------------------------
def _is_text(v: Any) -> bool:
    return isinstance(v, str)


def _is_texts(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_typed_values(v: Any) -> bool:
    # vault/domain/contacts.py: {"value": text, ...}; vaults written before that model hold bare strings
    return isinstance(v, list) and all(isinstance(x, str) or (isinstance(x, dict) and isinstance(x.get("value"), str))
                                       for x in v)


def _is_addresses(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, dict) and all(isinstance(k, str) for k in x) for x in v)


def _is_attachment(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("blob"), str)


def _is_attachments(v: Any) -> bool:
    return isinstance(v, list) and all(_is_attachment(x) for x in v)


# Each type: its check and how a refusal names it. Dates are text as the source wrote them (ISO 8601, or a
# vCard date without a year such as --0415): their form is the importers' business, their type is checked here.
TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (_is_text, "text"),
    "texts": (_is_texts, "a list of text"),
    "typed_values": (_is_typed_values, 'a list of text or of {"value": text, ...} objects'),
    "addresses": (_is_addresses, "a list of address objects"),
    "date": (_is_text, "a date as text"),
    "datetime": (_is_text, "a date and time as text (ISO 8601)"),
    "attachment": (_is_attachment, 'an attachment ({"blob": id, ...})'),
    "attachments": (_is_attachments, 'a list of attachments ({"blob": id, ...})'),
    "json": (lambda v: True, "any JSON value"),
}


TEXT_ENTERED = ("text", "date", "datetime", "texts", "typed_values")  # types a form or a flag can fill with text


def from_texts(f: FieldSpec, texts: Sequence[str]) -> Any:
    """A field's value from what a person typed (a repeated flag, a form's inputs): one text, a list of texts,
    or, for a contact's typed values, one typed value per text (vault/domain/contacts.py)."""
    if f.type == "typed_values":
        return [typed(t) for t in texts]
    if f.type == "texts":
        return list(texts)
    if f.type in TEXT_ENTERED:
        return texts[-1] if texts else None
    raise ValueError(f"field {f.name!r} ({f.type}) is not entered as text")


def _what(value: Any) -> str:
    for t, name in ((bool, "true/false"), (int, "a number"), (float, "a number"), (str, "text"), (list, "a list"),
                    (dict, "an object")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not (value.strip() if isinstance(value, str)
                                                                           else value))


def check_record(kind: Kind, fields: Mapping[str, Any], *, patch: bool = False, allow_extra: bool = False) -> None:
    """Refuse, in one sentence naming the kind's fields, an unknown field (unless `allow_extra`), a known field
    of the wrong type, or (outside a patch) a record with nothing in it. None in a patch removes a field."""
    spec = kind.spec
    has = f"a {spec.name} has {', '.join(spec.field_names)}"
    for name, value in fields.items():
        f = spec.by_name.get(name)
        if f is None:
            if not allow_extra and not (patch and value is None):
                raise InvalidRecord(f"{spec.name.capitalize()} field {name!r} is unknown: {has} "
                                    "(other fields are kept only when asked for: allow_extra, --allow-extra).")
        elif value is not None and not TYPES[f.type][0](value):
            raise InvalidRecord(f"{spec.name.capitalize()} field {name!r} must be {TYPES[f.type][1]}, "
                                f"not {_what(value)}: {has}.")
    if not patch and all(_is_empty(v) for v in fields.values()):
        raise InvalidRecord(f"The {spec.name} is empty: {has}.")


# -- the built-in kinds -------------------------------------------------------------------------------------
def _f(name: str, type: FieldType = "text", flag: str | None = None, help: str = "") -> FieldSpec:
    return FieldSpec(name, type, flag, help)


CONTACT = KindSpec(
    "contact", "c", 1, (
        _f("name", flag="name", help="The full name."), _f("given_name"), _f("family_name"), _f("nickname"),
        _f("emails", "typed_values", "email", "An email address (repeatable)."),
        _f("phones", "typed_values", "phone", "A phone number (repeatable)."),
        _f("addresses", "addresses"), _f("birthday", "date", "birthday", "The birthday, e.g. 1815-12-10."),
        _f("organization", flag="organization", help="Where they work."), _f("title"),
        _f("urls", "typed_values", "url", "A web address (repeatable)."), _f("groups", "texts"),
        _f("note", flag="note", help="A free note."), _f("photo", "attachment"), _f("impps", "typed_values"),
    ),
    fts=("name", "emails", "phones", "organization", "note"), title_fields=("name", "organization"), sort="name",
)
MESSAGE = KindSpec(
    "message", "m", 2, (
        _f("kind", help="email, sms or chat"), _f("thread"), _f("from", flag="from", help="The sender."),
        _f("to", "texts", "to", "A recipient (repeatable)."), _f("cc", "texts"),
        _f("date", "datetime", "date", "When it was sent (ISO 8601)."), _f("subject", flag="subject", help="The subject."),
        _f("body", flag="body", help="The text."), _f("attachments", "attachments"), _f("message_id"),
        _f("in_reply_to"),
        # email: every header not held in a field above is in `headers`, whole ([name, value] pairs)
        _f("bcc", "texts"), _f("reply_to", "texts"), _f("flags", "texts"), _f("headers", "json"), _f("date_source"),
        _f("shares_source_id_with", "json"),
    ),
    fts=("from", "to", "subject", "body"), title_fields=("subject", "from"), date_field="date", sort="date", render={"thread": "thread"},
)
NOTE = KindSpec(
    "note", "n", 3, (
        _f("title", flag="title", help="The title."), _f("body", flag="body", help="The text (Markdown)."),
        _f("tags", "texts", "tag", "A tag (repeatable)."), _f("created", "datetime"), _f("updated", "datetime"),
        _f("attachments", "attachments"),
    ),
    fts=("title", "body", "tags"), title_fields=("title",), date_field="updated", sort="updated", render={"body": "markdown"},
)

Kind.CONTACT = register_kind(CONTACT)
Kind.MESSAGE = register_kind(MESSAGE)
Kind.NOTE = register_kind(NOTE)
_BUILT_IN = frozenset(_BY_NAME.values())
