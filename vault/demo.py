"""A demo vault: generated contacts, messages and notes with two years of history, ending today.

Everything here is invented. The history is realistic in shape: records are
created over time, some edited several times, a few deleted, one deleted
contact brought back, so `show --at`, `history` and `restore` have something
to show.
"""

from __future__ import annotations

import random
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path

from vault import Kind, Source, Vault
from vault.domain.contacts import address, texts, typed
from vault.domain.events import kind_of
from vault.domain.instants import to_us

DEMO_PASSPHRASE = "correct horse battery staple"
HISTORY = timedelta(days=730)  # "two years", as README says
GIVEN = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
         "Radia", "Tim", "Hedy", "Claude", "Katherine", "John", "Shafi", "Leslie", "Sophie", "Niklaus"]
FAMILY = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
          "Ritchie", "Perlman", "Berners-Lee", "Lamarr", "Shannon", "Johnson", "McCarthy", "Goldwasser",
          "Lamport", "Wilson", "Wirth"]
CITIES = ["London", "Lyon", "Leeds", "Lisbon", "Leipzig", "Lund"]
TOPICS = ["lunch on Friday", "the garden", "train tickets", "Grandma's birthday", "the quarterly report",
          "bike repair", "holiday photos", "the book club", "moving boxes", "a recipe"]
NOTE_TAGS = ["home", "work", "ideas", "travel", "recipes", "health"]


def sample_contact(rng: random.Random) -> dict:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    user = f"{given}.{family}".lower().replace("-", "")
    return {
        "name": f"{given} {family}", "given_name": given, "family_name": family,
        "emails": [typed(f"{user}@example.org", ["home"], pref=1)],
        "phones": [typed(f"+44 20 7946 {rng.randrange(10000):04d}", ["work", "voice"])],
        "addresses": [address({"city": rng.choice(CITIES), "street": f"{rng.randrange(1, 200)} High Street"},
                              ["home"])],
        "organization": rng.choice(["Analytical Engines Ltd", "Compilers & Co", "", "Bletchley Park"]) or "Freelance",
    }


def sample_message(rng: random.Random, people: list[str], when: datetime) -> dict:
    topic = rng.choice(TOPICS)
    kind = rng.choice(["email", "sms", "chat"])
    msg = {"kind": kind, "from": rng.choice(people), "to": ["me@example.org"], "date": when.isoformat(),
           "body": f"Hello! About {topic}: shall we talk it over this week? Best, {rng.choice(GIVEN)}",
           "thread": topic}
    if kind == "email":
        msg["subject"] = f"Re: {topic}"
    return msg


def sample_note(rng: random.Random) -> dict:
    topic = rng.choice(TOPICS)
    return {"title": f"Notes on {topic}", "body": f"# {topic.title()}\n\n- first thought\n- second thought\n",
            "tags": rng.sample(NOTE_TAGS, 2)}


def build_demo(directory: Path, records: int = 300, kdf_cost: str = "moderate", seed: int = 2009) -> str:
    """Create `directory/demo.db` with generated data and history; returns a tour to print. The history spans
    HISTORY and its last change is a minute before the demo was built."""
    rng = random.Random(seed)
    path = directory / "demo.db"
    vault, _ = Vault.create(path, DEMO_PASSPHRASE, kdf_cost)
    src = Source("demo")
    end = datetime.now(timezone.utc) - timedelta(minutes=1)
    # the clock moves a step before each record and a third of one before each edit and deletion (see the
    # loop): the first change lands on `end - HISTORY`, the last on `end`
    step = HISTORY / max(1, records - 1 + (records // 4 + records // 25) / 3)
    t = end - HISTORY - step
    contacts: list[str] = []
    live: list[str] = []
    with vault, vault.transaction() as tx:
        for i in range(records):
            t += step
            r = rng.random()
            if r < 0.35 or not contacts:
                rid = tx.create(Kind.CONTACT, sample_contact(rng), src, recorded_at=to_us(t))
                contacts.append(rid)
            elif r < 0.8:
                people = [vault.projection.record(Kind.CONTACT, c) or {} for c in rng.sample(contacts, 1)]
                sender = (texts(people[0].get("emails")) or ["someone@example.org"])[0]
                rid = tx.create(Kind.MESSAGE, sample_message(rng, [sender], t), src, recorded_at=to_us(t))
            else:
                rid = tx.create(Kind.NOTE, sample_note(rng), src, recorded_at=to_us(t))
            live.append(rid)
            if i % 4 == 3:  # an edit of an earlier record
                t += step / 3
                target = rng.choice([c for c in contacts if c in live] or live)
                if kind_of(target) is Kind.CONTACT:
                    patch = {"phones": [typed(f"+44 7700 900{rng.randrange(1000):03d}", ["cell"], "Mobile")],
                             "note": "Changed number"}
                else:
                    patch = {"body": (vault.projection.record(kind_of(target), target) or {}).get("body", "") + "\nP.S. updated"}
                tx.update(target, patch, src, recorded_at=to_us(t))
            if i % 25 == 24:  # now and then, a deletion
                t += step / 3
                victim = rng.choice(live)
                tx.delete(victim, src, recorded_at=to_us(t))
                live.remove(victim)
        featured = next(c for c in contacts if c not in live) if any(c not in live for c in contacts) else contacts[0]
    with Vault.open(path, DEMO_PASSPHRASE) as vault:
        stats = vault.stats()
        versions = vault.history(featured)
    return _tour(path, stats, featured, versions)


def _tour(path: Path, stats: dict, featured: str, versions: list[dict]) -> str:
    p = shlex.quote(str(path))
    before = versions[-1]["seq_from"] - 1
    lines = [
        f"Demo vault: {path}",
        f"Passphrase: {DEMO_PASSPHRASE!r} (it is a demo; set LIFEVAULT_PASSPHRASE to skip the prompt)",
        "",
        f"{stats['events']} events: {stats['contacts']} contacts, {stats['messages']} messages, "
        f"{stats['notes']} notes live; {stats['deleted_contacts']} contacts deleted (and kept in history).",
        "",
        f"History of contact {featured}:",
    ]
    for v in versions:
        lines.append(f"  seq {v['seq_from']:<5} {v['valid_from'][:19]}  {v['event']}")
    lines += [
        "",
        "Try:",
        f"  export LIFEVAULT_PASSPHRASE={shlex.quote(DEMO_PASSPHRASE)} LIFEVAULT_PATH={p}",
        f"  lifevault history {featured}",
        f"  lifevault show {featured} --at seq:{before}",
        f"  lifevault restore --at {versions[-1]['valid_from'][:10]} --out state.db && datasette state.db",
        f"  lifevault revert {featured} --at seq:{before}",
        "  lifevault verify && lifevault verify --blind",
    ]
    return "\n".join(lines)
