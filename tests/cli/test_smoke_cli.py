import json


def test_add_show_roundtrip(run):
    r = run("add", "contact", "--json", '{"name": "Ada Lovelace"}')
    assert r.exit_code == 0, r.output
    rid = r.stdout.strip()
    r = run("show", rid, "--json")
    assert json.loads(r.stdout) == {"id": rid, "name": "Ada Lovelace"}
