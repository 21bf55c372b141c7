"""Keys: wrong secrets fail cleanly and write nothing; passwd and recover swap the secret.

Through the CLI (one sentence, exit 1, file unchanged byte for byte) and the
library (WrongSecret). The KDF parameters stored in the vault are bound into
the wrapped key, so altering them makes unlocking fail, never silently weaker.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from vault import Kind, Source, Vault
from vault.cli import cli
from vault.errors import TamperDetected, VaultError, WrongSecret

from conftest import PASSPHRASE
from helpers.unlock import opens_with

NEW = "a brand new passphrase"
WRONG_PASS = "Error: Wrong passphrase: it does not unlock this vault.\n"
WRONG_KEY = "Error: Wrong recovery key: it does not unlock this vault.\n"


def lifevault(path: Path, *args: str, **env: str):
    """Run the CLI with exactly the given secrets in the environment."""
    r = CliRunner().invoke(cli, [*args, "--vault", str(path)], env={"LIFEVAULT_PASSPHRASE": None, **env})
    assert "Traceback" not in r.output
    if r.exit_code not in (0, 1) or (r.exception and not isinstance(r.exception, SystemExit)):
        raise AssertionError(f"unexpected failure: {r.exception!r}\n{r.output}")
    return r


@pytest.fixture
def filled(created: tuple[Path, str]) -> tuple[Path, str, str]:
    """A vault with one contact; returns (path, recovery key, contact id)."""
    with Vault.open(created[0], PASSPHRASE) as v:
        cid = v.add(Kind.CONTACT, {"name": "Ada"}, Source("cli"))
    return created[0], created[1], cid


def snapshot_bytes(path: Path) -> bytes:
    return path.read_bytes()


# -- wrong passphrase ---------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["show", "{cid}"], ["stats"], ["verify"], ["log"],
    ["add", "note", "--json", '{"title": "x"}'], ["edit", "{cid}", "--json", '{"name": "B"}'], ["rm", "{cid}"],
    ["passwd"],
])
def test_wrong_passphrase_fails_cleanly_and_writes_nothing(filled, command: list[str]) -> None:
    path, _, cid = filled
    before = snapshot_bytes(path)
    args = [a.replace("{cid}", cid) for a in command]
    r = lifevault(path, *args, LIFEVAULT_PASSPHRASE="not the passphrase", LIFEVAULT_NEW_PASSPHRASE=NEW)
    assert r.exit_code == 1
    assert r.output == WRONG_PASS
    assert snapshot_bytes(path) == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    assert opens_with(path, PASSPHRASE)


def test_wrong_passphrase_in_the_library(filled) -> None:
    with pytest.raises(WrongSecret) as e:
        Vault.open(filled[0], PASSPHRASE + " ")
    assert str(e.value) == "Wrong passphrase: it does not unlock this vault."
    assert PASSPHRASE not in repr(e.value)


def test_passphrase_file_is_read(filled, tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    r = lifevault(filled[0], "show", filled[2], "--json", "--passphrase-file", str(secret))
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "Ada"
    secret.write_text("wrong\n")
    r = lifevault(filled[0], "show", filled[2], "--passphrase-file", str(secret))
    assert (r.exit_code, r.output) == (1, WRONG_PASS)


# -- passwd and recover -------------------------------------------------------------
def test_passwd_new_works_old_does_not(filled) -> None:
    path, recovery, cid = filled
    r = lifevault(path, "passwd", LIFEVAULT_PASSPHRASE=PASSPHRASE, LIFEVAULT_NEW_PASSPHRASE=NEW)
    assert r.exit_code == 0, r.output
    assert not opens_with(path, PASSPHRASE)
    assert opens_with(path, NEW)
    r = lifevault(path, "show", cid, "--json", LIFEVAULT_PASSPHRASE=NEW)
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "Ada"
    r = lifevault(path, "show", cid, LIFEVAULT_PASSPHRASE=PASSPHRASE)
    assert (r.exit_code, r.output) == (1, WRONG_PASS)
    r = lifevault(path, "verify", LIFEVAULT_PASSPHRASE=NEW)
    assert r.exit_code == 0 and "OK: 1 events" in r.output
    with Vault.open_with_recovery(path, recovery) as v:  # the recovery key is untouched by passwd
        assert v.get(cid) == {"name": "Ada"}


def test_passwd_does_not_reencrypt_events(filled) -> None:
    path = filled[0]
    with closing(sqlite3.connect(path)) as conn:
        before = conn.execute("SELECT seq, hash, payload FROM events ORDER BY seq").fetchall()
    assert lifevault(path, "passwd", LIFEVAULT_PASSPHRASE=PASSPHRASE, LIFEVAULT_NEW_PASSPHRASE=NEW).exit_code == 0
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT seq, hash, payload FROM events ORDER BY seq").fetchall() == before


def test_recover_with_key_file_sets_a_new_passphrase(filled, tmp_path: Path) -> None:
    path, recovery, cid = filled
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(recovery + "\n")
    r = lifevault(path, "recover", "--recovery-key-file", str(key_file), LIFEVAULT_NEW_PASSPHRASE=NEW)
    assert r.exit_code == 0, r.output
    assert not opens_with(path, PASSPHRASE)
    assert opens_with(path, NEW)
    r = lifevault(path, "show", cid, "--json", LIFEVAULT_PASSPHRASE=NEW)
    assert json.loads(r.stdout)["name"] == "Ada"


def test_recovery_key_from_init_output_works_as_a_person_would_type_it(tmp_path: Path) -> None:
    """The key printed by `init`, typed back in lower case with spaces instead of dashes."""
    path = tmp_path / "typed.db"
    r = lifevault(path, "init", LIFEVAULT_PASSPHRASE=PASSPHRASE)
    assert r.exit_code == 0, r.output
    printed = r.stdout.strip()
    assert printed and "\n" not in printed and PASSPHRASE not in r.output
    typed = printed.lower().replace("-", " ")
    r = lifevault(path, "recover", LIFEVAULT_RECOVERY_KEY=typed, LIFEVAULT_NEW_PASSPHRASE=NEW)
    assert r.exit_code == 0, r.output
    assert opens_with(path, NEW) and not opens_with(path, PASSPHRASE)


def _typo(key: str) -> str:
    i = next(i for i, ch in enumerate(key) if ch.isalpha())
    return key[:i] + ("B" if key[i] != "B" else "C") + key[i + 1:]


@pytest.mark.parametrize("mangle", [_typo, lambda k: k[:-1], lambda k: k + "A", lambda k: "A" + k, lambda k: "not a key"])
def test_recovery_key_with_a_typo_fails_and_writes_nothing(filled, tmp_path: Path, mangle) -> None:
    path, recovery, _ = filled
    bad = mangle(recovery)
    assert bad != recovery
    before = snapshot_bytes(path)
    r = lifevault(path, "recover", LIFEVAULT_RECOVERY_KEY=bad, LIFEVAULT_NEW_PASSPHRASE=NEW)
    assert (r.exit_code, r.output) == (1, WRONG_KEY)
    assert snapshot_bytes(path) == before
    assert opens_with(path, PASSPHRASE) and not opens_with(path, NEW)
    with pytest.raises(WrongSecret):
        Vault.open_with_recovery(path, bad)


def test_recovery_key_of_another_vault_fails(filled, tmp_path: Path) -> None:
    other, other_key = Vault.create(tmp_path / "other.db", PASSPHRASE, kdf_cost="min")
    other.close()
    with pytest.raises(WrongSecret):
        Vault.open_with_recovery(filled[0], other_key)


# -- KDF parameters ---------------------------------------------------------------------
def alter_kdf(path: Path, change) -> None:
    with closing(sqlite3.connect(path)) as conn:
        value = conn.execute("SELECT value FROM meta WHERE key = 'kdf'").fetchone()[0]
        params = json.loads(value)
        new = change(params)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'kdf'", (new if isinstance(new, bytes) else json.dumps(new).encode(),))
        conn.commit()


def test_kdf_params_are_stored_and_default_to_moderate(tmp_path: Path) -> None:
    import nacl.pwhash.argon2id as argon2id
    path = tmp_path / "default.db"
    r = CliRunner().invoke(cli, ["init", "--vault", str(path)], env={"LIFEVAULT_PASSPHRASE": PASSPHRASE, "LIFEVAULT_KDF_COST": None})
    assert r.exit_code == 0, r.output
    with closing(sqlite3.connect(path)) as conn:
        params = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'kdf'").fetchone()[0])
    assert (params["ops"], params["mem"]) == (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)


@pytest.mark.parametrize("change", [
    lambda p: {**p, "ops": p["ops"] + 1},
    lambda p: {**p, "mem": p["mem"] * 2},
    lambda p: {**p, "salt": bytes(16).hex()},
], ids=["ops", "mem", "salt"])
def test_altered_kdf_params_fail_to_unlock(filled, change) -> None:
    # The signed seal covers the KDF settings: altered ones are named as damage, not as a wrong passphrase.
    path = filled[0]
    alter_kdf(path, change)
    with pytest.raises(TamperDetected, match="key material"):
        Vault.open(path, PASSPHRASE)
    r = lifevault(path, "stats", LIFEVAULT_PASSPHRASE=PASSPHRASE)
    assert r.exit_code == 1 and "key material in the meta table" in r.output and "Wrong passphrase" not in r.output


@pytest.mark.parametrize("change", [
    lambda p: {**p, "ops": p["ops"] - 1},   # below Argon2id's minimum: a weaker key must not be derived
    lambda p: {**p, "mem": 1},
    lambda p: {**p, "salt": "00"},
    lambda p: {**p, "ops": "many"},
    lambda p: {k: v for k, v in p.items() if k != "salt"},
    lambda p: b"not json",
], ids=["ops-below-min", "mem-tiny", "salt-short", "ops-text", "salt-missing", "not-json"])
def test_damaged_kdf_params_fail_with_one_sentence(filled, change) -> None:
    path = filled[0]
    alter_kdf(path, change)
    before = snapshot_bytes(path)
    with pytest.raises(VaultError) as e:
        Vault.open(path, PASSPHRASE)
    assert isinstance(e.value, (WrongSecret, TamperDetected))
    r = lifevault(path, "stats", LIFEVAULT_PASSPHRASE=PASSPHRASE)
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    assert snapshot_bytes(path) == before


def test_subkeys_are_derived_in_one_place() -> None:
    """Only crypto.Keys derives from the raw data key (and keyring wraps it): one place to audit."""
    root = Path(__file__).parent.parent.parent / "vault"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "data_key" in p.read_text())
    assert users == ["store/crypto.py", "store/keyring.py"]
