"""The library behind the pages: who an address belongs to, a conversation's order and depth, a record's title."""

from __future__ import annotations

from vault import Kind, Source, Vault
from vault.domain.contacts import typed
from vault.state.people import directory, mail_address, phone_key
from vault.state.threads import thread_messages
from vault.domain.titles import record_title, record_when

CLI = Source("cli")


def test_an_address_or_a_number_finds_its_contact(vault: Vault) -> None:
    ada = vault.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": [typed("Ada@Example.org", ["home"])],
                                   "phones": [typed("+44 20 7946 0001", ["cell"])]}, CLI)
    grace = vault.add(Kind.CONTACT, {"name": "Grace Hopper", "emails": ["grace@example.org"]}, CLI)  # the old shape
    found = directory(vault.projection.conn)
    assert found.lookup("Ada L. <ada@example.org>") == (ada, "Ada Lovelace")  # case and display name ignored
    assert found.lookup("020 7946 0001") == (ada, "Ada Lovelace")  # without the country code
    assert found.lookup("tel:+442079460001") == (ada, "Ada Lovelace")
    assert found.lookup("grace@example.org") == (grace, "Grace Hopper")
    assert found.lookup("nobody@example.org") is None and found.lookup("Ada") is None and found.lookup("") is None
    assert found.lookup("grace hopper") == (grace, "Grace Hopper")  # a chat export's sender name
    vault.add(Kind.CONTACT, {"name": "Grace Hopper"}, CLI)  # two Graces: the name alone no longer says which
    assert directory(vault.projection.conn).lookup("Grace Hopper") is None
    assert mail_address("not an address") is None and phone_key("call me") is None


def test_a_thread_is_in_date_order_with_replies_indented(vault: Vault) -> None:
    def mail(mid: str, date: str, reply: str | None = None, thread: str = "t1") -> str:
        fields = {"thread": thread, "message_id": mid, "date": date, "subject": "Plans", "to": ["b@example.org"]}
        return vault.add(Kind.MESSAGE, fields | ({"in_reply_to": reply} if reply else {}), CLI)

    answer = mail("<2@x>", "2025-03-03T10:00:00+00:00", "<1@x>")  # stored before what it answers
    first = mail("<1@x>", "2025-03-03T09:00:00+00:00")
    third = mail("<3@x>", "2025-03-04T09:00:00+00:00", "<2@x>")
    mail("<9@x>", "2025-03-03T09:30:00+00:00", thread="other")
    loop = mail("<5@x>", "2025-03-05T09:00:00+00:00", "<5@x>")  # answers itself: bad headers end no loop
    got = thread_messages(vault.projection.conn, "t1")
    assert [(m["id"], m["depth"]) for m in got] == [(first, 0), (answer, 1), (third, 2), (loop, 0)]
    assert got[0]["to"] == ["b@example.org"]
    assert thread_messages(vault.projection.conn, "nothing") == []


def test_titles_and_dates_a_person_knows_a_record_by() -> None:
    assert record_title(Kind.CONTACT, {"name": "Ada"}) == "Ada"
    assert record_title(Kind.CONTACT, {"given_name": "Ada", "family_name": "King"}) == "Ada King"
    assert record_title(Kind.CONTACT, {"phones": '[{"value": "+44 1", "types": []}]'}) == "+44 1"  # a view's JSON
    assert record_title(Kind.CONTACT, {}) == "(no name)"
    assert record_title(Kind.MESSAGE, {"body": "\n\nHello there\nsecond"}) == "Hello there"
    assert record_title(Kind.NOTE, {"body": "# Plan\n\nroses"}) == "Plan"
    assert record_title(Kind.NOTE, {"body": "x" * 200}).endswith("…")
    assert record_when(Kind.MESSAGE, {"date": "2025-03-03T14:05:00Z"}) == "2025-03-03T14:05:00Z"
    assert record_when(Kind.NOTE, {"updated_at": "2025-01-01T00:00:00Z"}) == "2025-01-01T00:00:00Z"
    assert record_when(Kind.CONTACT, {"name": "Ada"}) is None


def test_a_long_chat_shows_its_newest_messages(vault: Vault) -> None:
    with vault.transaction() as tx:
        for day in range(1, 8):
            tx.create(Kind.MESSAGE, {"kind": "chat", "thread": "family", "date": f"2025-01-0{day}T12:00:00Z",
                                     "body": f"day {day}"}, CLI)
    got = thread_messages(vault.projection.conn, "family", limit=3)
    assert [m["body"] for m in got] == ["day 5", "day 6", "day 7"]


def test_an_address_is_read_as_the_mail_library_reads_it_in_every_shape() -> None:
    """`Name <addr>` is read directly (the usual shape, parseaddr is slow); every other shape by parseaddr,
    and both agree."""
    import email.utils

    shapes = ["Ada Lovelace <ADA@Example.org>", "<a@b.org>", "Dr. Ada <a@b.c>", " Ada\t<a@b>  ", "Ada (work) <a@b>",
              "Ada: <a@b>", "ada@x <ada@x>", "Ada <a b@c>", "Ada <>", "Ada <a@b> <c@d>", "Ada <a@b;c@d>",
              "Ada <mailto:a@b>", "Ada;Bob <a@b>", "Ada@Bob <a@b>", '"Lovelace, Ada" <ada@x.org>', "Zoë <zoë@exämple.org>"]
    for text in shapes:
        addr = email.utils.parseaddr(text)[1]
        assert mail_address(text) == (addr.lower() if "@" in addr else None), text
