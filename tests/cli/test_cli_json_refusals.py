"""`--json` answers a refusal with a JSON error object on stdout too, so a script never parses nothing (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import PASSPHRASE


def error_of(r) -> dict:
    assert r.exit_code != 0
    out = json.loads(r.stdout)
    assert set(out) == {"error"} and "\n" not in out["error"]["message"]
    assert out["error"]["message"].rstrip(".") in r.stderr  # the same sentence for people, on stderr
    return out["error"]


def test_a_refused_import_prints_a_json_error(run, tmp_path: Path) -> None:
    prose = tmp_path / "notes.txt"
    prose.write_text("Shopping list: milk, eggs.\n")
    err = error_of(run("import", "whatsapp", str(prose), "--json"))
    assert err["type"] == "IngestError" and err["status"] == 422 and err["path"] == str(prose)
    assert "not a WhatsApp chat export" in err["message"]


def test_a_bad_format_option_and_an_unknown_format_print_json_errors(run, tmp_path: Path) -> None:
    chat = tmp_path / "WhatsApp Chat with A.txt"
    chat.write_text("05/03/2024, 09:12 - A: hi\n")
    assert error_of(run("import", str(chat), "--json", "--date-order", "ymd"))["type"] == "BadOption"
    err = error_of(run("import", "nosuchformat", str(chat), "--json"))
    assert err["type"] == "UnknownFormat" and err["status"] == 404


def test_usage_errors_with_json_are_json_too(run) -> None:
    err = error_of(run("import", "--json"))
    assert err["type"] == "MissingParameter" and err["status"] == 400


@pytest.mark.parametrize("args, kind", [
    (("show", "n_nosuchrecord", "--json"), "NotFound"),
    (("history", "c_nosuchrecord", "--json"), "NotFound"),
    (("undo-import", "imp_nosuchimport", "--json"), "UnknownImport"),
    (("log", "--since", "not-a-time", "--json"), "BadInstant"),
])
def test_other_json_commands_refuse_in_json(run, args: tuple[str, ...], kind: str) -> None:
    assert error_of(run(*args))["type"] == kind


def test_a_wrong_passphrase_with_json(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE + " not")
    err = error_of(run("stats", "--json"))
    assert err["type"] == "WrongSecret" and err["status"] == 401


def test_without_json_a_refusal_prints_nothing_on_stdout(run, tmp_path: Path) -> None:
    r = run("show", "n_nosuchrecord")
    assert r.exit_code == 1 and r.stdout == "" and "No record" in r.stderr
