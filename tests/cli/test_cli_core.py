"""The core CLI: its error sentences (and that nothing is written), its outputs, restore, revert, log, history.

Every error case asserts the exact sentence, exit code 1, and that the vault
file's bytes (and so its event count) are unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vault import Kind, Source, Vault
from vault.store import schema
from vault.cli import cli
from vault.domain.instants import iso, to_us

from conftest import PASSPHRASE

SRC = Source("cli")


def events_in(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def fails(run, path: Path, args: list[str], message: str) -> None:
    """The command exits 1 with exactly `Error: message` and leaves the file byte-for-byte as it was."""
    before = path.read_bytes() if path.exists() else None
    r = run(*args)
    assert r.exit_code == 1, r.output
    assert r.output == f"Error: {message}\n"
    assert (path.read_bytes() if path.exists() else None) == before


@pytest.fixture
def vault_file(created: tuple[Path, str]) -> Path:
    return created[0]


@pytest.fixture
def cid(run) -> str:
    r = run("add", "contact", "--json", '{"name": "Ada Lovelace", "emails": ["ada@example.org"]}')
    assert r.exit_code == 0, r.output
    return r.stdout.strip()


# -- help ----------------------------------------------------------------------------
def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + (name,))


CORE = ["init", "add", "edit", "rm", "show", "history", "log", "restore", "revert", "verify", "passwd",
        "recover", "stats", "demo"]


@pytest.mark.parametrize("command", list(all_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    r = CliRunner().invoke(cli, [*command, "--help"])
    assert r.exit_code == 0, r.output
    assert re.search(r"^\s*Example: lifevault ", r.output, re.M), r.output


def test_core_commands_are_registered() -> None:
    assert set(CORE) <= set(cli.commands)


# -- not a vault, newer format, locked -----------------------------------------------
@pytest.mark.parametrize("args", [["show", "c_abc"], ["stats"], ["verify"], ["verify", "--blind"],
                                  ["add", "note", "--json", "{}"], ["log"]])
def test_not_a_vault_text_file(run, tmp_path: Path, args: list[str]) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("this is just some text, not a database at all\n" * 50)
    fails(run, f, [*args, "--vault", str(f)], f"{f} is not a lifevault vault.")


@pytest.mark.parametrize("args", [["show", "c_abc"], ["stats"], ["verify", "--blind"], ["add", "note", "--json", "{}"]])
def test_not_a_vault_other_sqlite_db(run, tmp_path: Path, args: list[str]) -> None:
    f = tmp_path / "other.db"
    with closing(sqlite3.connect(f)) as conn:
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, hash BLOB, payload BLOB)")
        conn.execute("INSERT INTO events VALUES (1, x'00', x'00')")
        conn.commit()
    fails(run, f, [*args, "--vault", str(f)], f"{f} is not a lifevault vault.")


def test_missing_vault_file(run, tmp_path: Path) -> None:
    f = tmp_path / "nowhere.db"
    fails(run, f, ["stats", "--vault", str(f)], f"{f} does not exist.")
    assert not f.exists()


@pytest.mark.parametrize("args", [["show", "{cid}"], ["stats"], ["verify"], ["verify", "--blind"],
                                  ["add", "note", "--json", "{}"], ["rm", "{cid}"], ["passwd"]])
def test_vault_of_a_newer_format(run, vault_file: Path, cid: str, args: list[str], monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_NEW_PASSPHRASE", "a brand new passphrase")
    with closing(sqlite3.connect(vault_file)) as conn:
        conn.execute(f"PRAGMA user_version = {schema.FORMAT_VERSION + 1}")
    n = events_in(vault_file)
    fails(run, vault_file, [a.replace("{cid}", cid) for a in args],
          f"{vault_file} uses vault format {schema.FORMAT_VERSION + 1}, newer than this lifevault understands; "
          "upgrade lifevault.")
    assert events_in(vault_file) == n


@pytest.mark.parametrize("args", [["add", "note", "--json", '{"title": "x"}'], ["edit", "{cid}", "--json", '{"name": "B"}'],
                                  ["rm", "{cid}"], ["revert", "{cid}", "--at", "seq:0"], ["passwd"]])
def test_locked_database(run, vault_file: Path, cid: str, args: list[str], monkeypatch) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 200)
    monkeypatch.setenv("LIFEVAULT_NEW_PASSPHRASE", "a brand new passphrase")
    n = events_in(vault_file)
    holder = sqlite3.connect(vault_file, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        r = run(*[a.replace("{cid}", cid) for a in args])
        assert r.exit_code == 1, r.output
        assert r.output == f"Error: {vault_file} is locked by another process; try again when it has finished.\n"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert events_in(vault_file) == n
    assert run("verify").exit_code == 0
    assert run("show", cid, "--json").exit_code == 0  # the passphrase did not change either


@pytest.mark.parametrize("args", [["show", "{cid}"], ["add", "note", "--json", '{"title": "x"}'], ["stats"],
                                  ["log"], ["rm", "{cid}"]])
def test_tampered_event(run, vault_file: Path, cid: str, args: list[str]) -> None:
    assert run("edit", cid, "--json", '{"name": "B"}').exit_code == 0
    with closing(sqlite3.connect(vault_file)) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        payload = bytearray(conn.execute("SELECT payload FROM events WHERE seq = 2").fetchone()[0])
        payload[-3] ^= 1
        conn.execute("UPDATE events SET payload = ? WHERE seq = 2", (bytes(payload),))
        conn.commit()
    fails(run, vault_file, [a.replace("{cid}", cid) for a in args],
          "Tampering detected at event 2: its chain hash does not match its content and predecessor.")
    assert events_in(vault_file) == 2


@pytest.mark.parametrize("args", [["show", "{cid}"], ["stats"], ["verify"], ["verify", "--blind"], ["log"]])
def test_locked_database_for_readers(run, vault_file: Path, cid: str, args: list[str], monkeypatch) -> None:
    """A process holding an exclusive lock (locking_mode=EXCLUSIVE) blocks even readers."""
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(vault_file, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO meta (key, value) VALUES ('held', x'00')")
        r = run(*[a.replace("{cid}", cid) for a in args])
        assert r.exit_code == 1, r.output
        assert r.output == f"Error: {vault_file} is locked by another process; try again when it has finished.\n"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run("verify").exit_code == 0


# -- bad --at, unknown ids, bad --json ----------------------------------------------------
@pytest.mark.parametrize("at,why", [
    ("yesterday", "use ISO 8601 like 2024-05-01T09:30 (local), 2024-05-01T09:30Z, or seq:N"),
    ("2024-13-45", "use ISO 8601 like 2024-05-01T09:30 (local), 2024-05-01T09:30Z, or seq:N"),
    ("seq:two", "seq:N needs a whole number"),
    ("seq:-1", "a seq cannot be negative"),
    ("seq:99", "the log only has 1 events"),
    ("0001-01-01T00:00+01:00", "it is outside the range of dates lifevault handles"),
    ("9999-12-31T23:59:59-05:00", "it is outside the range of dates lifevault handles"),
])
@pytest.mark.parametrize("command", ["show", "restore", "revert", "log"])
def test_bad_instant(run, vault_file: Path, cid: str, tmp_path: Path, at: str, why: str, command: str) -> None:
    out = tmp_path / "state.db"
    args = {"show": ["show", cid, "--at", at], "restore": ["restore", "--at", at, "--out", str(out)],
            "revert": ["revert", cid, "--at", at], "log": ["log", "--since", at]}[command]
    fails(run, vault_file, args, f"Bad instant {at!r}: {why}.")
    assert not out.exists()
    assert events_in(vault_file) == 1


@pytest.mark.parametrize("args", [["show", "c_zzzz9999"], ["history", "n_unknown1"], ["edit", "m_nope", "--json", '{"a": 1}'],
                                  ["rm", "c_zzzz9999"], ["revert", "c_zzzz9999", "--at", "seq:0"]])
def test_unknown_id(run, vault_file: Path, cid: str, args: list[str]) -> None:
    fails(run, vault_file, args, f"No record {args[1]!r}.")
    assert events_in(vault_file) == 1


@pytest.mark.parametrize("bad", ["xyz", "c-123", "q_abc", "c_ABC"])
def test_malformed_id(run, vault_file: Path, cid: str, bad: str) -> None:
    fails(run, vault_file, ["show", bad], f"{bad!r} is not a record id (like c_…, m_… or n_…).")
    fails(run, vault_file, ["rm", bad], f"{bad!r} is not a record id (like c_…, m_… or n_…).")


def test_show_at_an_instant_before_the_record_existed(run, vault_file: Path, cid: str) -> None:
    fails(run, vault_file, ["show", cid, "--at", "seq:0"], f"No record {cid!r} at seq 0.")
    fails(run, vault_file, ["show", cid, "--at", "2001-01-01T00:00Z"], f"No record {cid!r} at seq 0.")


@pytest.mark.parametrize("text,message", [
    ("{bad", "--json is not valid JSON (contact): Expecting property name enclosed in double quotes at line 1 column 2."),
    ("", "--json is not valid JSON (contact): Expecting value at line 1 column 1."),
    ("[1, 2]", "--json must be a JSON object (contact)."),
    ('"Ada"', "--json must be a JSON object (contact)."),
    ('{"name": null}', "Field 'name' is null; leave it out instead."),
    ('{"bad name": 1}', "'bad name' is not a usable field name (letters, digits, _; not 'id')."),
    ('{"id": "c_mine"}', "'id' is not a usable field name (letters, digits, _; not 'id')."),
    ('{"name": NaN}', "Field values cannot be NaN or Infinity."),
    ('{"name": "x", "phones": [Infinity]}', "Field values cannot be NaN or Infinity."),
])
def test_bad_json_on_add(run, vault_file: Path, cid: str, text: str, message: str) -> None:
    fails(run, vault_file, ["add", "contact", "--json", text], message)
    assert events_in(vault_file) == 1


def test_unpaired_surrogate_in_json_is_refused(run, vault_file: Path, cid: str) -> None:
    before = vault_file.read_bytes()
    r = run("add", "note", "--json", '{"title": "a \\ud800 b"}')
    assert r.exit_code == 1
    assert re.fullmatch(r"Error: Record n_[0-9a-z]+ cannot be stored: its text holds an unpaired surrogate "
                        r"\(not valid Unicode\)\.\n", r.output), r.output
    assert vault_file.read_bytes() == before


def test_deeply_nested_json_is_one_sentence(run, vault_file: Path, cid: str) -> None:
    fails(run, vault_file, ["add", "note", "--json", '{"a": ' + "[" * 5000 + "]" * 5000 + "}"],
          "--json is nested too deeply (note).")
    assert events_in(vault_file) == 1


@pytest.mark.parametrize("text,message", [
    ("{'name': 'B'}", "--json is not valid JSON (patch): Expecting property name enclosed in double quotes at line 1 column 2."),
    ("null", "--json must be a JSON object (patch)."),
    ('{"": 1}', "'' is not a usable field name (letters, digits, _; not 'id')."),
])
def test_bad_json_on_edit(run, vault_file: Path, cid: str, text: str, message: str) -> None:
    fails(run, vault_file, ["edit", cid, "--json", text], message)
    assert events_in(vault_file) == 1


def test_edit_and_rm_of_a_deleted_record_are_refused(run, vault_file: Path, cid: str) -> None:
    assert run("rm", cid).exit_code == 0
    msg = f"Record {cid} is deleted; revert it to bring it back first."
    fails(run, vault_file, ["edit", cid, "--json", '{"name": "B"}'], msg)
    fails(run, vault_file, ["rm", cid], msg)
    fails(run, vault_file, ["show", cid], f"No record {cid!r} (it was deleted; see its history).")


# -- init, add, stats ----------------------------------------------------------------------
def test_init_refuses_to_overwrite(run, vault_file: Path, tmp_path: Path) -> None:
    fails(run, vault_file, ["init"], f"{vault_file} already exists; refusing to overwrite it.")
    other = tmp_path / "precious.txt"
    other.write_text("do not touch")
    fails(run, other, ["init", "--vault", str(other)], f"{other} already exists; refusing to overwrite it.")
    assert other.read_text() == "do not touch"


def test_init_creates_a_vault_that_opens(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    path = tmp_path / "sub" / "new.db"
    r = CliRunner().invoke(cli, ["init", "--vault", str(path)])
    assert r.exit_code == 0, r.output
    assert re.fullmatch(r"[A-Z2-7]{6}(-[A-Z2-7]{1,6})+\n", r.stdout), r.stdout
    assert "Recovery key" in r.stderr
    with Vault.open(path, PASSPHRASE) as v:
        assert v.stats()["events"] == 0
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.parametrize("kind,fields", [("contact", {"name": "Ada"}), ("message", {"subject": "hi", "body": "b"}),
                                         ("note", {"title": "t", "tags": ["x"]})])
def test_add_prints_the_id_alone(run, kind: str, fields: dict) -> None:
    r = run("add", kind, "--json", json.dumps(fields))
    assert r.exit_code == 0, r.output
    assert re.fullmatch(rf"{kind[0]}_[0-9a-z]+\n", r.stdout), repr(r.stdout)
    rid = r.stdout.strip()
    r = run("show", rid, "--json")
    assert json.loads(r.stdout) == {"id": rid, **fields}


def test_stats_json(run, cid: str) -> None:
    run("add", "message", "--json", '{"subject": "s"}')
    run("add", "note", "--json", '{"title": "a"}')
    n2 = run("add", "note", "--json", '{"title": "b"}').stdout.strip()
    run("rm", n2)
    run("edit", cid, "--json", '{"name": "Ada King"}')
    r = run("stats", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert {"events", "contacts", "messages", "notes"} <= set(s)
    assert (s["events"], s["contacts"], s["messages"], s["notes"]) == (6, 1, 1, 1)


# -- restore -------------------------------------------------------------------------------
T1 = to_us(__import__("datetime").datetime(2024, 1, 1, 12, 0, tzinfo=__import__("datetime").timezone.utc))
HOUR = 3_600_000_000


def history_with_times(path: Path) -> dict[str, str]:
    """Events at known instants: at T1 contacts and a message; at T1+2h edits and a deletion; at T1+4h a note."""
    ids = {}
    with Vault.open(path, PASSPHRASE) as v:
        with v.transaction() as tx:
            ids["ada"] = tx.create(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@example.org"]}, SRC, recorded_at=T1)
            ids["grace"] = tx.create(Kind.CONTACT, {"name": "Grace Hopper"}, SRC, recorded_at=T1)
            ids["msg"] = tx.create(Kind.MESSAGE, {"from": "ada@example.org", "subject": "engines",
                                                  "body": "the analytical engine weaves algebraic patterns"},
                                   SRC, recorded_at=T1)
        with v.transaction() as tx:
            tx.update(ids["ada"], {"name": "Augusta Ada King"}, SRC, recorded_at=T1 + 2 * HOUR)
            tx.delete(ids["grace"], SRC, recorded_at=T1 + 2 * HOUR)
        with v.transaction() as tx:
            ids["note"] = tx.create(Kind.NOTE, {"title": "later", "body": "compilers"}, SRC, recorded_at=T1 + 4 * HOUR)
    return ids


def table(db: Path, name: str) -> dict[str, dict]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in conn.execute(f"SELECT * FROM {name}")}


def fts(db: Path, name: str, query: str) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute(
            f"SELECT id FROM {name} WHERE rowid IN (SELECT rowid FROM {name}_fts WHERE {name}_fts MATCH ?) ORDER BY id",
            (query,))]


def test_restore_at_an_instant(run, vault_file: Path, tmp_path: Path) -> None:
    ids = history_with_times(vault_file)
    out = tmp_path / "state.db"
    r = run("restore", "--at", iso(T1 + HOUR), "--out", str(out))  # between the first and second batches
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    contacts, messages, notes = table(out, "contacts"), table(out, "messages"), table(out, "notes")
    assert set(contacts) == {ids["ada"], ids["grace"]}
    assert contacts[ids["ada"]]["name"] == "Ada Lovelace"
    assert json.loads(contacts[ids["ada"]]["emails"]) == ["ada@example.org"]
    assert set(messages) == {ids["msg"]} and messages[ids["msg"]]["from"] == "ada@example.org"
    assert notes == {}
    # full-text search works on the restored file
    assert fts(out, "contacts", "Lovelace") == [ids["ada"]]
    assert fts(out, "contacts", "Hopper") == [ids["grace"]]
    assert fts(out, "messages", "algebraic") == [ids["msg"]]

    later = tmp_path / "later.db"
    assert run("restore", "--at", "seq:6", "--out", str(later)).exit_code == 0
    assert set(table(later, "contacts")) == {ids["ada"]}
    assert table(later, "contacts")[ids["ada"]]["name"] == "Augusta Ada King"
    assert fts(later, "contacts", "Lovelace") == [] and fts(later, "contacts", "Augusta") == [ids["ada"]]
    assert fts(later, "notes", "compilers") == [ids["note"]]

    # a restore file is never overwritten
    fails(run, out, ["restore", "--at", "seq:1", "--out", str(out)], f"{out} already exists; refusing to overwrite it.")


def test_restore_into_a_missing_folder_is_one_sentence(run, vault_file: Path, cid: str, tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "state.db"
    r = CliRunner().invoke(cli, ["restore", "--at", "now", "--out", str(out)])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and str(out) in r.output, r.output
    assert not out.exists()


def test_restore_naive_time_means_local_time(run, vault_file: Path, tmp_path: Path, monkeypatch) -> None:
    ids = history_with_times(vault_file)
    monkeypatch.setenv("TZ", "America/New_York")  # UTC-5 in January
    time.tzset()
    try:
        out = tmp_path / "local.db"
        # 08:00 New York = 13:00 UTC: after the first batch (12:00Z), before the second (14:00Z)
        assert run("restore", "--at", "2024-01-01T08:00", "--out", str(out)).exit_code == 0
        assert set(table(out, "contacts")) == {ids["ada"], ids["grace"]}
        early = tmp_path / "early.db"
        # 06:30 New York = 11:30 UTC: before anything
        assert run("restore", "--at", "2024-01-01T06:30", "--out", str(early)).exit_code == 0
        assert table(early, "contacts") == {}
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_restored_file_opens_in_datasette(run, vault_file: Path, tmp_path: Path) -> None:
    from datasette.app import Datasette

    ids = history_with_times(vault_file)
    out = tmp_path / "state.db"
    assert run("restore", "--at", "now", "--out", str(out)).exit_code == 0

    async def fetch():
        ds = Datasette([str(out)])
        await ds.invoke_startup()
        tables = (await ds.client.get("/state.json")).json()
        contacts = (await ds.client.get("/state/contacts.json?_shape=array")).json()
        search = (await ds.client.get("/state/messages.json?_shape=array&_search=weaves")).json()
        return tables, contacts, search

    tables, contacts, search = asyncio.run(fetch())
    names = {t["name"] for t in tables["tables"]}
    assert {"contacts", "messages", "notes"} <= names
    assert [c["name"] for c in contacts] == ["Augusta Ada King"]
    assert [m["id"] for m in search] == [ids["msg"]]


# -- revert, log, history -------------------------------------------------------------------
def test_revert_brings_a_deleted_record_back_with_history_kept(run, vault_file: Path, cid: str) -> None:
    assert run("edit", cid, "--json", '{"name": "Ada King", "emails": null}').exit_code == 0
    assert run("rm", cid).exit_code == 0
    r = run("revert", cid, "--at", "seq:1")
    assert r.exit_code == 0, r.output
    assert f"revived {cid} (event 4)" in r.output
    shown = json.loads(run("show", cid, "--json").stdout)
    assert shown == {"id": cid, "name": "Ada Lovelace", "emails": ["ada@example.org"]}
    versions = json.loads(run("history", cid, "--json").stdout)
    assert [v["event"] for v in versions] == ["created", "updated", "deleted", "revived"]
    assert [v["seq_from"] for v in versions] == [1, 2, 3, 4]
    assert versions[1]["data"] == {"name": "Ada King"}
    assert versions[2]["data"] is None and versions[2]["deleted"] == 1
    # the version before the deletion is still readable
    assert json.loads(run("show", cid, "--at", "seq:2", "--json").stdout) == {"id": cid, "name": "Ada King"}
    # reverting to the current state changes nothing
    r = run("revert", cid, "--at", "seq:4")
    assert r.exit_code == 0 and "already as it was then" in r.output
    assert events_in(vault_file) == 4
    # revert to before the record existed deletes it (and history stays)
    assert run("revert", cid, "--at", "seq:0").exit_code == 0
    assert [v["event"] for v in json.loads(run("history", cid, "--json").stdout)][-1] == "deleted"


def test_history_json(run, cid: str) -> None:
    run("edit", cid, "--json", '{"phones": ["+44 20 7946 0000"]}')
    versions = json.loads(run("history", cid, "--json").stdout)
    assert len(versions) == 2
    first, second = versions
    assert first["event"] == "created" and first["source"] == {"via": "cli"}
    assert first["seq_to"] == 2 and second["seq_to"] is None
    assert first["valid_to"] == second["valid_from"]
    assert second["data"] == {"name": "Ada Lovelace", "emails": ["ada@example.org"], "phones": ["+44 20 7946 0000"]}
    text = run("history", cid)
    assert text.exit_code == 0 and "+phones" in text.stdout


def log_json(run, *args: str) -> list[dict]:
    r = run("log", "--json", *args)
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_log_since_limit_json(run, vault_file: Path) -> None:
    ids = history_with_times(vault_file)
    everything = log_json(run)
    assert [e["seq"] for e in everything] == [1, 2, 3, 4, 5, 6]
    assert [e["type"] for e in everything] == ["created", "created", "created", "updated", "deleted", "created"]
    assert everything[3] == {"seq": 4, "recorded_at": iso(T1 + 2 * HOUR), "type": "updated", "kind": "contact",
                             "id": ids["ada"], "fields": ["name"], "source": {"via": "cli"}}
    assert [e["seq"] for e in log_json(run, "--since", "seq:3")] == [4, 5, 6]
    assert [e["seq"] for e in log_json(run, "--limit", "2")] == [5, 6]
    assert [e["seq"] for e in log_json(run, "--since", "seq:1", "--limit", "10")] == [2, 3, 4, 5, 6]
    assert [e["seq"] for e in log_json(run, "--since", iso(T1 + HOUR))] == [4, 5, 6]
    assert [e["seq"] for e in log_json(run, "--since", iso(T1 + 2 * HOUR))] == [6]
    assert log_json(run, "--since", "seq:6") == []
    r = run("log", "--limit", "0")
    assert r.exit_code == 2  # click's own usage error for an out-of-range option


def test_restore_of_an_empty_vault_and_attachments(run, vault_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    assert run("restore", "--at", "seq:0", "--out", str(empty)).exit_code == 0
    assert table(empty, "contacts") == {} and table(empty, "notes") == {}

    photo = b"\x89PNG not really" * 50
    with Vault.open(vault_file, PASSPHRASE) as v:
        with v.transaction() as tx:
            bid = tx.put_blob(photo)
            rid = tx.create(Kind.CONTACT, {"name": "Pic", "photo": {"blob": bid, "name": "p.png"}}, SRC)
            tx.put_blob(b"an unreferenced blob")
    out = tmp_path / "with-blobs.db"
    assert run("restore", "--at", "now", "--out", str(out)).exit_code == 0
    assert json.loads(table(out, "contacts")[rid]["photo"]) == {"blob": bid, "name": "p.png"}
    with closing(sqlite3.connect(out)) as conn:
        assert conn.execute("SELECT blob, content FROM attachments").fetchall() == [(bid, photo)]


@pytest.mark.parametrize("value", ["my-favourite-word", "deadbeef" * 8])
def test_a_blob_key_that_is_not_a_stored_attachment(run, vault_file: Path, tmp_path: Path, value: str) -> None:
    """Either add refuses the record in one sentence, or verify and restore accept it: never a crash or false alarm."""
    before = vault_file.read_bytes()
    r = run("add", "note", "--json", json.dumps({"title": "notes about JSON", "example": {"blob": value}}))
    if r.exit_code == 1:
        assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
        assert vault_file.read_bytes() == before
        return
    assert r.exit_code == 0, r.output
    r = run("verify")
    assert r.exit_code == 0, r.output
    r = run("restore", "--at", "now", "--out", str(tmp_path / "state.db"))
    assert r.exit_code == 0, r.output


# -- compact -------------------------------------------------------------------------------
def test_compact_writes_a_verified_copy_and_never_overwrites(run, vault_file: Path, cid: str, tmp_path: Path) -> None:
    out = tmp_path / "compact.db"
    r = run("compact", str(out))
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Wrote {out}: 1 events, 0 blobs, ") and "verifies as the same vault" in r.output
    r = run("show", cid, "--vault", str(out))
    assert r.exit_code == 0 and "Ada Lovelace" in r.output, r.output
    fails(run, out, ["compact", str(out)], f"{out} already exists; refusing to overwrite it.")
    missing = tmp_path / "no" / "such" / "compact.db"
    fails(run, missing, ["compact", str(missing)], f"Cannot write {missing}: the folder {missing.parent} does not exist.")
