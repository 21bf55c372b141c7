"""A new passphrase that is easy to guess is refused unless --weak-passphrase-ok (issue 11, finding 12).

init, passwd and recover set passphrases; each runs for real through the CLI
and the refusal is one sentence with zxcvbn's advice and the way out. The
passphrase itself never appears in what is printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PASSPHRASE
from helpers.unlock import opens_with

from vault import Vault
from vault.cli import cli
from vault.demo import DEMO_PASSPHRASE
from vault.errors import VaultError
from vault.store.passphrase import WeakPassphrase, check_strength

WEAK = "secret1"
REFUSAL = ("Error: This passphrase is easy to guess (strength 1 of 4: this is a very common password; add another "
           "word or two, uncommon words are better); choose a stronger one, or pass --weak-passphrase-ok to use it "
           "anyway.\n")
STRONG = "plum tractor violin ninety"


def lifevault(*args: str, **env: str):
    r = CliRunner().invoke(cli, list(args), env=env)
    assert r.exit_code in (0, 1) and "Traceback" not in r.output, r.output
    return r


def setting_weak(command: str, created: tuple[Path, str], *flags: str):
    """Run `command` (init on a new file, passwd or recover on `created`) setting WEAK as the passphrase."""
    path, recovery = created
    if command == "init":
        return lifevault("init", "--vault", str(path.with_name("new.db")), *flags, LIFEVAULT_PASSPHRASE=WEAK)
    return lifevault(command, "--vault", str(path), *flags, LIFEVAULT_PASSPHRASE=PASSPHRASE,
                     LIFEVAULT_RECOVERY_KEY=recovery, LIFEVAULT_NEW_PASSPHRASE=WEAK)


@pytest.mark.parametrize("command", ["init", "passwd", "recover"])
def test_a_weak_passphrase_is_refused_in_one_sentence_and_nothing_changes(command: str, created) -> None:
    path = created[0]
    before = path.read_bytes()
    r = setting_weak(command, created)
    assert r.exit_code == 1
    assert r.output == REFUSAL
    assert WEAK not in r.output
    assert not path.with_name("new.db").exists()
    assert path.read_bytes() == before and opens_with(path, PASSPHRASE)


@pytest.mark.parametrize("command", ["init", "passwd", "recover"])
def test_weak_passphrase_ok_accepts_it(command: str, created) -> None:
    r = setting_weak(command, created, "--weak-passphrase-ok")
    assert r.exit_code == 0, r.output
    assert WEAK not in r.output
    assert opens_with(created[0].with_name("new.db") if command == "init" else created[0], WEAK)


@pytest.mark.parametrize("command", ["init", "passwd", "recover"])
def test_a_strong_passphrase_needs_no_flag(command: str, created) -> None:
    path, recovery = created
    target = path.with_name("new.db") if command == "init" else path
    env = ({"LIFEVAULT_PASSPHRASE": STRONG} if command == "init" else
           {"LIFEVAULT_PASSPHRASE": PASSPHRASE, "LIFEVAULT_RECOVERY_KEY": recovery, "LIFEVAULT_NEW_PASSPHRASE": STRONG})
    r = lifevault(command, "--vault", str(target), **env)
    assert r.exit_code == 0, r.output
    assert opens_with(target, STRONG)


def test_the_library_refuses_too(tmp_path: Path, vault: Vault) -> None:
    with pytest.raises(WeakPassphrase) as e:
        Vault.create(tmp_path / "weak.db", WEAK, kdf_cost="min")
    assert isinstance(e.value, VaultError) and e.value.http_status == 422 and e.value.score == 1
    assert not (tmp_path / "weak.db").exists()
    with pytest.raises(WeakPassphrase):
        vault.change_passphrase("password", "min")
    Vault.create(tmp_path / "ok.db", WEAK, kdf_cost="min", weak_ok=True)[0].close()


@pytest.mark.parametrize("weak", ["iloveyou", "lifevault2024", "aaaaaaaaaaaaaaaa", "Summer2024!", "qwertyuiop",
                                  "lifevault " * 10])
def test_guessable_shapes_are_weak(weak: str) -> None:
    with pytest.raises(WeakPassphrase) as e:
        check_strength(weak)
    assert weak not in str(e.value)


@pytest.mark.parametrize("strong", [STRONG, PASSPHRASE, DEMO_PASSPHRASE, "x7#Kp2!vQm9z", STRONG * 5])
def test_strong_ones_pass_including_those_longer_than_zxcvbn_reads(strong: str) -> None:
    check_strength(strong)  # README's `lifevault demo` creates its vault with DEMO_PASSPHRASE
