"""The state's query API (vault/state/query.py): the one place SQL over the state's tables is written."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.errors import InvalidRecord
from vault.formats.restore import restore_to_file
from vault.state.query import StateQuery, cell_text, table_select

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = Source("cli")

# SQL (a statement's verb) over a table of the state: a history table, a search index or a live view
# (`contacts`, …), written out or as `{kind.table}…` / `{…}_history` in an f-string.
_VERB = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP)\b", re.IGNORECASE)
_STATE_TABLE = re.compile(r"\b(FROM|JOIN|INTO|UPDATE|TABLE|VIEW)\s+(\w+\.)?(contacts|messages|notes)(?!\w)"
                          r"|\{[^}]*\b(table|fts)\b[^}]*\}|\w*\}?_(history|fts)\b", re.IGNORECASE)


def _text(node: ast.AST) -> str | None:
    """A string literal's text, with each formatted value of an f-string as `{its expression}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"  # type: ignore[attr-defined]
                       for v in node.values)
    return None


def state_sql_outside_the_state(root: Path) -> list[str]:
    found: dict[str, str] = {}
    for path in sorted((root / "vault").rglob("*.py")):
        if path.parent.name == "state" and path.parent.parent.name == "vault":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)  # prose, which may name a route like DELETE /notes
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            text = None if id(node) in docstrings else _text(node)
            if text is not None and _VERB.search(text) and _STATE_TABLE.search(text):
                found.setdefault(f"{path.relative_to(root)}:{node.lineno}", text[:80])  # type: ignore[attr-defined]
    return [f"{where}: {text!r}" for where, text in found.items()]


def test_no_module_outside_the_state_package_writes_sql_over_its_tables() -> None:
    assert state_sql_outside_the_state(ROOT) == []


def test_the_rule_sees_the_sql_it_forbids(tmp_path: Path) -> None:
    """The check above could fail: these spellings of state SQL are all found."""
    bad = tmp_path / "vault" / "web"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text(
        'a = f"SELECT id, data FROM {kind.table}_history WHERE seq_to IS NULL"\n'
        'b = "select name from contacts where id = ?"\n'
        'c = f"SELECT snippet(x) FROM {fts} JOIN {kind.table} t ON t.rowid = x.rowid"\n'
        'd = "SELECT json_extract(source, \'$.file\') FROM notes_history"\n'
        'ok = table.removesuffix("_history")\n'
        'ok2 = "SELECT id FROM blobs"\n'
        'ok3 = f"SELECT * FROM {TOKEN_TABLE} ORDER BY name"\n'
        'ok4 = f"Cloned {n} events and {b} blobs into {target}; select one"\n')
    assert [line.split(":")[1] for line in state_sql_outside_the_state(tmp_path)] == ["1", "2", "3", "4"]


@pytest.fixture
def people(vault: Vault) -> dict[str, object]:
    """Ada (edited later), Grace (deleted later), Alan (created later), with the seqs between."""
    ada = vault.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@x.org", "ä@x.org"]}, CLI)
    grace = vault.add(Kind.CONTACT, {"name": "Grace Hopper", "organization": "Navy"}, CLI)
    mail = vault.add(Kind.MESSAGE, {"subject": "Engines", "body": "the analytical engine", "date": "1843-07-10T00:00:00Z"}, CLI)
    then = vault.projection.seq
    vault.update(ada, {"name": "Ada King", "note": "analytical"}, CLI)
    vault.delete(grace, CLI)
    alan = vault.add(Kind.CONTACT, {"name": "Alan Turing", "note": "engine"}, CLI)
    return {"ada": ada, "grace": grace, "alan": alan, "mail": mail, "then": then}


def test_a_record_and_a_page_at_an_instant(vault: Vault, people: dict) -> None:
    q, then = vault.projection, people["then"]
    assert q.record(Kind.CONTACT, people["ada"], then)["name"] == "Ada Lovelace"
    assert q.record(Kind.CONTACT, people["ada"])["name"] == "Ada King"
    assert q.record(Kind.CONTACT, people["grace"]) is None and q.record(Kind.CONTACT, people["alan"], then) is None
    now = q.page(Kind.CONTACT, order="title")
    assert [r.title for r in now.records] == ["Ada King", "Alan Turing"] and now.next_offset is None
    past = q.page(Kind.CONTACT, then, order="title", descending=True)
    assert [r.title for r in past.records] == ["Grace Hopper", "Ada Lovelace"]
    assert [r.title for r in q.page(Kind.CONTACT, then, where={"organization": "Navy"}).records] == ["Grace Hopper"]


def test_pages_by_id_and_by_offset_cover_every_record_once(vault: Vault) -> None:
    ids = {vault.add(Kind.NOTE, {"title": f"note {i:02}"}, CLI) for i in range(25)}
    q, seen, after = vault.projection, [], None
    while True:
        page = q.page(Kind.NOTE, after=after, limit=7)
        seen += [r.id for r in page.records]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted(ids)
    titles, offset = [], 0
    while offset is not None:
        page = q.page(Kind.NOTE, order="title", offset=offset, limit=10)
        titles += [r.title for r in page.records]
        offset = page.next_offset
    assert titles == [f"note {i:02}" for i in range(25)]
    with pytest.raises(InvalidRecord, match="sorted by id"):
        q.page(Kind.NOTE, order="title", after="n_1")
    with pytest.raises(InvalidRecord, match="not a field name"):
        q.page(Kind.NOTE, where={"x') OR 1=1 --": 1})


def test_versions_and_changes_since(vault: Vault, people: dict) -> None:
    q = vault.projection
    assert [v["event"] for v in q.versions(Kind.CONTACT, people["grace"])] == ["created", "deleted"]
    changes = q.changed_since(people["then"])
    assert [(c.id, c.deleted) for c in changes] == [(people["ada"], False), (people["grace"], True), (people["alan"], False)]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert q.changed_since(q.seq) == [] and len(q.changed_since(0, kinds=[Kind.MESSAGE])) == 1


def test_search_now_and_at_an_instant_names_each_hit(vault: Vault, people: dict) -> None:
    q, then = vault.projection, people["then"]
    now = {(h.kind, h.id, h.name) for h in q.search("analytical")}
    assert now == {(Kind.CONTACT, people["ada"], "Ada King"), (Kind.MESSAGE, people["mail"], "Engines")}
    past = q.search("analytical", then)
    assert [(h.id, h.name, h.date) for h in past] == [(people["mail"], "Engines", "1843-07-10T00:00:00Z")]
    assert "[analytical]" in past[0].snippet
    assert {h.id for h in q.search("engine", kinds=[Kind.CONTACT])} == {people["alan"]}
    assert q.search("Grace") == [] and [h.name for h in q.search("Grace", then)] == ["Grace Hopper"]
    assert q.search('" NEAR( zq* ^') == []  # user words, never FTS syntax
    assert {h.id for h in q.search("lovel", people["then"])} == {people["ada"]}  # a word's start finds it


def test_one_spelling_of_every_value_in_the_browser_the_as_of_views_and_a_restored_file(
        vault: Vault, people: dict, tmp_path: Path) -> None:
    """The browser reads `table_select`, a restored file is written from it, and cell_text spells alike."""
    out = tmp_path / "restored.db"
    restore_to_file(vault, vault.projection.seq, out)
    restored = sqlite3.connect(out).execute("SELECT emails FROM contacts WHERE id = ?", (people["ada"],)).fetchone()[0]
    browser = vault.projection.conn.execute("SELECT emails FROM contacts WHERE id = ?", (people["ada"],)).fetchone()[0]
    assert restored == browser == '["ada@x.org","ä@x.org"]' == cell_text(["ada@x.org", "ä@x.org"])
    past = vault.projection.conn.execute(f"SELECT name FROM ({table_select(Kind.CONTACT, people['then'])}) "
                                         "WHERE id = ?", (people["ada"],)).fetchone()[0]
    assert past == "Ada Lovelace"


@pytest.mark.parametrize("value", [["a", "b"], {"city": "Leipzig", "n": [1, 2.5, None, True]}, ['quote " and \\'],
                                   [{"file": "ab", "name": "ä.jpg"}], "plain text", 42])
def test_cell_text_is_the_sql_flattening(vault: Vault, value: object) -> None:
    rid = vault.add(Kind.MESSAGE, {"subject": "t", "headers": value}, CLI)  # `headers` takes any JSON
    sql = StateQuery(vault.projection.conn).conn.execute("SELECT headers FROM messages WHERE id = ?",
                                                         (rid,)).fetchone()[0]
    assert cell_text(value) == str(sql)


def test_counts_now_and_then(vault: Vault, people: dict) -> None:
    q = vault.projection
    assert (q.count(Kind.CONTACT), q.count(Kind.CONTACT, people["then"]), q.count_deleted(Kind.CONTACT)) == (2, 2, 1)
    assert q.count(Kind.CONTACT, 1) == 1 and q.count(Kind.NOTE) == 0


@pytest.mark.parametrize("many", [False, True], ids=["few matches", "many matches"])
def test_a_searchs_matches_are_its_versions_and_a_list_keeps_the_open_ones(vault: Vault, people: dict,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          many: bool) -> None:
    """`matching_versions` holds every matching version (an edit's old one too); the WHERE term built from it
    keeps the rows of a list that match, whether the matches are looked up or tested row by row."""
    from vault.state import search

    monkeypatch.setattr(search, "LOOKUP_MATCHES", 0 if many else 10_000)
    conn = vault.projection.conn
    found = search.matching_versions(conn, Kind.CONTACT, "analytical")
    ada = [r for (r,) in conn.execute("SELECT rowid FROM contacts_history WHERE id = ? ORDER BY rowid",
                                      (people["ada"],))]
    assert found.count == 1 and ada[1] in found and ada[0] not in found and -1 not in found
    assert (found.few is None) == many
    assert search.matching_versions(conn, Kind.CONTACT, "zq").count == 0
    conn.create_function("lv_matches", 1, search.matches_function({"t": found}.__getitem__))
    where = search.list_search_where(found, "p")
    rows = conn.execute(f"SELECT name FROM contacts WHERE {where}",
                        {"p": search.list_search_param(found, "t")}).fetchall()
    assert rows == [("Ada King",)]
    old = search.matching_versions(conn, Kind.CONTACT, "lovel")  # only Ada's first version, no longer open
    assert old.count == 1 and ada[0] in old
    conn.create_function("lv_matches", 1, search.matches_function({"t": old}.__getitem__))
    assert conn.execute(f"SELECT name FROM contacts WHERE {search.list_search_where(old, 'p')}",
                        {"p": search.list_search_param(old, "t")}).fetchall() == []


def test_kept_matches_are_bounded_by_the_bytes_they_hold(vault: Vault, people: dict) -> None:
    from vault.state.search import MatchCache, matching_versions

    found = [matching_versions(vault.projection.conn, Kind.CONTACT, word) for word in ("ada", "alan", "engine", "x")]
    cache = MatchCache(keep_bytes=sum(m.size for m in found[1:]))
    for i, matches in enumerate(found):
        cache.put(i, matches)
    assert cache.get(0) is None and [cache.get(i) for i in (1, 2, 3)] == found[1:]  # the oldest went first
    cache.get(1)  # used again: kept over the one asked for least recently
    cache.put(4, found[0])
    assert cache.get(1) is found[1] and cache.get(2) is None
