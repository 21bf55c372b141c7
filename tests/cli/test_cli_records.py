"""`lifevault list` and `lifevault search`, now and `--at` an instant (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from conftest import PASSPHRASE

CLI = Source("cli")


@pytest.fixture
def book(created: tuple[Path, str]) -> dict[str, str]:
    """Ada (renamed after `then`), Grace (deleted after `then`), Alan (created after `then`), and a mail."""
    with Vault.open(created[0], PASSPHRASE) as v:
        ada = v.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@example.org"]}, CLI)
        grace = v.add(Kind.CONTACT, {"name": "Grace Hopper", "note": "compilers"}, CLI)
        mail = v.add(Kind.MESSAGE, {"subject": "Notes on the engine", "date": "1843-07-10T09:00:00Z",
                                    "body": "the analytical engine weaves algebraic patterns"}, CLI)
        then = v.projection.seq
        v.update(ada, {"name": "Ada King", "note": "analytical engine"}, CLI)
        v.delete(grace, CLI)
        alan = v.add(Kind.CONTACT, {"name": "Alan Turing", "note": "engine of computation"}, CLI)
    return {"ada": ada, "grace": grace, "alan": alan, "mail": mail, "then": f"seq:{then}"}


def lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_list_shows_id_name_and_date_sorted_by_name(run, book) -> None:
    r = run("list", "contacts")
    assert r.exit_code == 0, r.output
    rows = lines(r.stdout)
    assert [row.split()[0] for row in rows] == [book["ada"], book["alan"]]  # by name: Ada King, Alan Turing
    assert rows[0].endswith("Ada King") and rows[1].endswith("Alan Turing")
    assert r.stdout.count(str(__import__("datetime").date.today().year)) >= 2  # each row is dated
    mail = lines(run("list", "message").stdout)
    assert mail == [f"{book['mail']:<18} 1843-07-10 09:00  Notes on the engine"]


def test_list_at_an_instant_shows_the_old_value_and_not_what_came_later(run, book) -> None:
    rows = lines(run("list", "contact", "--at", book["then"]).stdout)
    assert [row.split()[0] for row in rows] == [book["ada"], book["grace"]]
    assert rows[0].endswith("Ada Lovelace") and rows[1].endswith("Grace Hopper")
    assert book["alan"] not in "".join(rows)


def test_list_json_is_an_array_of_records(run, book) -> None:
    now = json.loads(run("list", "contacts", "--json").stdout)
    assert now == [{"id": book["ada"], "name": "Ada King", "emails": ["ada@example.org"], "note": "analytical engine"},
                   {"id": book["alan"], "name": "Alan Turing", "note": "engine of computation"}]
    then = json.loads(run("list", "contacts", "--json", "--at", book["then"]).stdout)
    assert [c["name"] for c in then] == ["Ada Lovelace", "Grace Hopper"]


def test_list_of_nothing_says_so(run, book) -> None:
    r = run("list", "notes")
    assert r.exit_code == 0 and r.stdout == "" and "No notes." in r.stderr
    assert json.loads(run("list", "notes", "--json").stdout) == []


def test_search_names_each_hit(run, book) -> None:
    r = run("search", "analytical")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert book["ada"] in out and "Ada King" in out and book["mail"] in out and "Notes on the engine" in out
    assert "[analytical]" in out and book["alan"] not in out
    hits = json.loads(run("search", "engine", "--kind", "contact", "--json").stdout)
    assert {(h["id"], h["kind"], h["name"]) for h in hits} == {(book["ada"], "contact", "Ada King"),
                                                               (book["alan"], "contact", "Alan Turing")}
    assert all(h["date"] and "[engine]" in h["snippet"] for h in hits)


def test_search_at_an_instant(run, book) -> None:
    """Before `then` Ada's note did not exist, Alan did not exist, and Grace was not yet deleted."""
    hits = json.loads(run("search", "engine", "--at", book["then"], "--json").stdout)
    assert [(h["id"], h["name"], h["date"]) for h in hits] == [(book["mail"], "Notes on the engine", "1843-07-10T09:00:00Z")]
    assert [h["name"] for h in json.loads(run("search", "compilers", "--at", book["then"], "--json").stdout)] == ["Grace Hopper"]
    assert json.loads(run("search", "compilers", "--json").stdout) == []
    r = run("search", "compilers")
    assert r.exit_code == 0 and r.stdout == "" and "No matches." in r.stderr


@pytest.mark.parametrize("args, message", [
    (["list", "contacts", "--at", "yesterday"], "use ISO 8601"),
    (["search", "x", "--at", "seq:999"], "the log only has"),
    (["list", "calendar"], "Invalid value for 'KIND'"),
])
def test_bad_arguments_get_one_sentence(run, book, args: list[str], message: str) -> None:
    r = run(*args)
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_notes_and_messages_are_listed_newest_first_by_the_date_shown(run, book, created) -> None:
    with Vault.open(created[0], PASSPHRASE) as v:
        old = v.add(Kind.NOTE, {"title": "Old idea", "updated": "2001-01-01T00:00:00Z"}, CLI)
        new = v.add(Kind.NOTE, {"title": "New idea", "updated": "2020-01-01T00:00:00Z"}, CLI)
        undated = v.add(Kind.NOTE, {"title": "Written today"}, CLI)  # dated by its version: now
    rows = lines(run("list", "notes").stdout)
    assert [row.split()[0] for row in rows] == [undated, new, old]
    assert rows[1] == f"{new:<18} 2020-01-01 00:00  New idea"
