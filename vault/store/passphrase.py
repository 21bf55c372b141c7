"""How hard a new passphrase is to guess, estimated by zxcvbn, and refusing a weak one.

A vault is meant to sit on storage others control (a replica host, a stolen
disk), where the only thing between an attacker and every record is guessing
the passphrase offline. zxcvbn (Dropbox's estimator, kept as the `zxcvbn`
package) counts the guesses a cracker ordering its tries by dictionaries,
names, keyboard patterns, dates, l33t and repeats would need, and scores them
0–4. Nothing here logs or repeats the passphrase.
"""

from __future__ import annotations

from vault.errors import VaultError

MIN_SCORE = 3  # zxcvbn's 3: at least 10^8 guesses, i.e. years of Argon2id at the default cost on one machine
ZXCVBN_MAX_CHARS = 72  # zxcvbn refuses longer input; a prefix's guesses are a lower bound for the whole
OWN_WORDS = ["lifevault", "vault", "passphrase"]  # as guessable here as a dictionary word


class WeakPassphrase(VaultError):
    """A new passphrase zxcvbn scores below MIN_SCORE."""

    http_status = 422

    def __init__(self, score: int, advice: list[str]) -> None:
        self.score = score
        said = "; ".join(_clause(a) for a in advice if a)
        super().__init__(f"This passphrase is easy to guess (strength {score} of 4{': ' + said if said else ''}); "
                         "choose a stronger one, or pass --weak-passphrase-ok to use it anyway.")


def check_strength(passphrase: str) -> None:
    """Raise WeakPassphrase, with zxcvbn's warning and suggestions, if `passphrase` is weak."""
    from zxcvbn import zxcvbn  # it builds its dictionaries when imported: only commands setting a passphrase pay

    result = zxcvbn(passphrase[:ZXCVBN_MAX_CHARS], user_inputs=OWN_WORDS)
    if result["score"] < MIN_SCORE:
        feedback = result["feedback"]
        raise WeakPassphrase(result["score"], [feedback["warning"], *feedback["suggestions"]])


def _clause(advice: str) -> str:
    """zxcvbn's sentences as one lower-case clause, so the whole refusal stays one sentence."""
    return ", ".join(part[:1].lower() + part[1:] for part in advice.rstrip(".").split(". "))
