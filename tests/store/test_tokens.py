"""API tokens: shown once, stored as keyed hashes in the vault file, revocable, unforgeable without the key."""

from __future__ import annotations

import json
import re

import pytest

from vault import Vault
from vault.store.crypto import blake2b
from vault.errors import TamperDetected
from vault.store import tokens

from conftest import PASSPHRASE

TOKEN = re.compile(r"^lvt_[A-Za-z0-9_-]{43}$")


def test_create_then_authenticate(vault: Vault) -> None:
    secret = tokens.create_token(vault.log, "phone")
    assert TOKEN.match(secret)
    found = tokens.authenticate(vault.log, secret)
    assert found is not None and found.name == "phone" and found.can_read and found.revoked_at is None


def test_append_only_token_cannot_read(vault: Vault) -> None:
    found = tokens.authenticate(vault.log, tokens.create_token(vault.log, "scanner", append_only=True))
    assert found is not None and found.append_only and not found.can_read


def test_tokens_are_distinct_and_never_stored_in_plaintext(vault: Vault) -> None:
    a, b = tokens.create_token(vault.log, "a"), tokens.create_token(vault.log, "b")
    assert a != b
    vault.conn.execute("PRAGMA wal_checkpoint(FULL)")
    on_disk = b"".join(p.read_bytes() for p in vault.path.parent.glob(vault.path.name + "*"))
    for secret in (a, b):
        assert secret.encode() not in on_disk
        assert secret[4:].encode() not in on_disk


@pytest.mark.parametrize("presented", ["", "lvt_", "lvt_short", "Bearer x", "lvt_" + "a" * 44, "xyz_" + "a" * 43])
def test_malformed_or_unknown_tokens_are_refused(vault: Vault, presented: str) -> None:
    tokens.create_token(vault.log, "phone")
    assert tokens.authenticate(vault.log, presented) is None


def test_unknown_wellformed_token_is_refused_even_without_any_token_table(vault: Vault) -> None:
    assert tokens.authenticate(vault.log, "lvt_" + "a" * 43) is None
    assert tokens.list_tokens(vault.log) == []


def test_revoked_token_is_refused_and_listed_as_revoked(vault: Vault) -> None:
    secret = tokens.create_token(vault.log, "phone")
    revoked = tokens.revoke_token(vault.log, "phone")
    assert revoked.revoked_at is not None
    assert tokens.authenticate(vault.log, secret) is None
    [listed] = tokens.list_tokens(vault.log)
    assert listed.name == "phone" and listed.revoked_at == revoked.revoked_at


def test_revoking_twice_or_an_unknown_name_says_so(vault: Vault) -> None:
    tokens.create_token(vault.log, "phone")
    tokens.revoke_token(vault.log, "phone")
    with pytest.raises(tokens.NoSuchToken, match="No live token named 'phone'"):
        tokens.revoke_token(vault.log, "phone")
    with pytest.raises(tokens.NoSuchToken, match="'tablet'"):
        tokens.revoke_token(vault.log, "tablet")


def test_names_are_unique_forever(vault: Vault) -> None:
    tokens.create_token(vault.log, "phone")
    tokens.revoke_token(vault.log, "phone")
    with pytest.raises(tokens.TokenNameTaken, match="'phone' already exists"):
        tokens.create_token(vault.log, "phone")
    assert len(tokens.list_tokens(vault.log)) == 1


@pytest.mark.parametrize("name", ["", "has space", "-leading", "a" * 65, "semi;colon", "ünïcode"])
def test_bad_names_are_refused(vault: Vault, name: str) -> None:
    with pytest.raises(tokens.BadTokenName, match="not a usable token name"):
        tokens.create_token(vault.log, name)
    assert tokens.list_tokens(vault.log) == []


def test_a_row_written_without_the_key_grants_nothing(vault: Vault) -> None:
    """Someone who can write the vault file but lacks the key inserts a token row of their own."""
    tokens.create_token(vault.log, "phone")  # the table exists
    forged = "lvt_" + "F" * 43
    for token_hash in (blake2b(forged.encode(), person=b"lv-api-token"), forged.encode()):
        vault.conn.execute(
            "INSERT INTO api_tokens (name, token_hash, created_at, append_only, mac) VALUES (?, ?, 0, 0, ?)",
            (f"evil{len(token_hash)}", token_hash, b"\0" * 32),
        )
    with pytest.raises(TamperDetected, match="token rows differ from what its seal records"):
        tokens.authenticate(vault.log, forged)  # the table no longer matches the seal: no token at all is accepted


def test_flipping_the_append_only_flag_breaks_the_mac(vault: Vault) -> None:
    secret = tokens.create_token(vault.log, "scanner", append_only=True)
    vault.conn.execute("UPDATE api_tokens SET append_only = 0 WHERE name = 'scanner'")
    with pytest.raises(TamperDetected, match="token rows differ"):
        tokens.authenticate(vault.log, secret)


def test_tokens_survive_reopening_and_a_token_from_one_vault_fails_on_another(created, tmp_path) -> None:
    path, _ = created
    with Vault.open(path, PASSPHRASE) as v:
        secret = tokens.create_token(v.log, "phone")
    with Vault.open(path, PASSPHRASE) as v:
        assert tokens.authenticate(v.log, secret).name == "phone"
    other, _ = Vault.create(tmp_path / "other.db", PASSPHRASE, kdf_cost="min")
    with other:
        tokens.create_token(other.log, "phone")
        assert tokens.authenticate(other.log, secret) is None


# -- the CLI -------------------------------------------------------------------------
def test_cli_create_prints_the_token_alone_on_stdout(run, created) -> None:
    r = run("token", "create", "phone")
    assert r.exit_code == 0, r.output
    assert TOKEN.match(r.stdout.strip()) and r.stdout.count("\n") == 1
    assert "shown only this once" in r.stderr
    with Vault.open(created[0], PASSPHRASE) as v:
        assert tokens.authenticate(v.log, r.stdout.strip()).name == "phone"


def test_cli_list_and_revoke(run) -> None:
    run("token", "create", "phone")
    run("token", "create", "scanner", "--append-only")
    r = run("token", "list", "--json")
    listed = {t["name"]: t for t in json.loads(r.stdout)}
    assert listed["scanner"]["append_only"] and not listed["phone"]["append_only"]
    assert "lvt_" not in r.stdout
    assert run("token", "revoke", "phone").exit_code == 0
    r = run("token", "list")
    assert re.search(r"phone\s+read-write .* revoked ", r.stdout)
    assert re.search(r"scanner\s+append-only .* live", r.stdout)


def test_cli_errors_are_one_sentence_and_exit_nonzero(run) -> None:
    run("token", "create", "phone")
    r = run("token", "create", "phone")
    assert r.exit_code == 1 and "A token named 'phone' already exists" in r.stderr
    r = run("token", "revoke", "tablet")
    assert r.exit_code == 1 and "No live token named 'tablet'" in r.stderr
    r = run("token", "create", "bad name")
    assert r.exit_code == 1 and "not a usable token name" in r.stderr


def test_cli_wrong_passphrase_creates_nothing(run, created, monkeypatch) -> None:
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", "not it")
    r = run("token", "create", "phone")
    assert r.exit_code == 1 and "Wrong passphrase" in r.stderr and r.stdout == ""
    with Vault.open(created[0], PASSPHRASE) as v:
        assert tokens.list_tokens(v.log) == []
