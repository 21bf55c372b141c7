"""The package's layers point one way, and the vault file has one owner.

Read from the source (AST), so a rule broken anywhere under vault/ fails here with the importing module,
its line and the rule, before it can show up as an import loop or a front end that does the store's work:

- a module imports only its own layer or lower ones (imports under TYPE_CHECKING and inside functions
  count too: a type is a dependency as well);
- nothing below the front ends (web, cli) imports a web or CLI framework;
- only vault/store writes the vault file's tables (the event log above all) or derives a key.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent / "vault"

# Lowest first; modules in one entry are peers and may import each other.
LAYERS: list[tuple[str, ...]] = [
    ("vault.errors", "vault.paths"),
    ("vault.domain",),
    ("vault.store",),
    ("vault.state",),
    ("vault.vault",),
    ("vault.formats", "vault.replica", "vault.upgrade", "vault.demo"),
    ("vault.web", "vault.cli"),
]
SURFACE = "vault"  # vault/__init__.py: the public surface, which imports the front door and the format contract
SURFACE_RANK = 5  # so only the front ends (and code outside the package) may import it
FRONT_ENDS = 6
FRAMEWORKS = ("click", "fastapi", "starlette", "datasette", "uvicorn")

STORE = ROOT / "store"
VAULT_FILE_TABLES = ("events", "head", "meta", "blobs", "seal", "api_tokens", "api_batches")
_T = rf"(?:main\.)?(?:{'|'.join(VAULT_FILE_TABLES)})\b"
WRITES_VAULT_FILE = re.compile(
    rf"\b(?:INSERT|REPLACE)\b(?:\s+OR\s+\w+)?\s+INTO\s+{_T}|\bUPDATE\s+(?:OR\s+\w+\s+)?{_T}|\bDELETE\s+FROM\s+{_T}"
    rf"|\bCREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|TRIGGER)\s+(?:IF\s+NOT\s+EXISTS\s+)?{_T}|\bDROP\s+TABLE\s+{_T}",
    # SQL is written in capitals here; prose such as "update events" is not SQL
)
KDF_MODULES = ("nacl.pwhash", "nacl.signing", "nacl.bindings", "hmac", "hashlib")  # hashlib.sha256 of content is fine
KDF_NAMES = ("pbkdf2_hmac", "scrypt", "argon2id", "kdf", "SigningKey", "data_key")


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path, ast.parse(path.read_text(), str(path))


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(name: str, path: Path, tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every import, `from vault import store` read as vault.store."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = _package(name, path).split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").is_file() or \
                    (ROOT.parent / sub.replace(".", "/")).is_dir()
                yield node.lineno, sub if base.startswith("vault") and is_module else base


def rank(module: str) -> int | None:
    if module == SURFACE:
        return SURFACE_RANK
    for i, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return i
    return None


def _layer(i: int) -> str:
    return " / ".join(LAYERS[i])


def layer_violations() -> list[str]:
    out = []
    for name, path, tree in modules():
        if name == SURFACE:
            continue
        mine = rank(name)
        where = f"{path.relative_to(ROOT.parent)}"
        if mine is None:
            out.append(f"{where}: {name} is in no layer; add it to LAYERS in tests/test_architecture.py")
            continue
        for line, imported in imports(name, path, tree):
            theirs = rank(imported) if imported.split(".")[0] == "vault" else None
            if theirs is not None and theirs > mine:
                what = "the public surface (vault/__init__.py)" if imported == SURFACE else f"layer {_layer(theirs)}"
                out.append(f"{where}:{line}: {name} imports {imported}, but {_layer(mine)} is below {what}: "
                           "a lower layer must not import a higher one")
            if mine < FRONT_ENDS and imported.split(".")[0] in FRAMEWORKS:
                out.append(f"{where}:{line}: {name} imports {imported}: only the front ends (vault.web, vault.cli) "
                           "may import a web or CLI framework")
    return out


def test_lower_layers_never_import_higher_ones() -> None:
    found = layer_violations()
    assert not found, "\n".join(found)


def test_every_subpackage_has_a_layer() -> None:
    """A new package (or a renamed one) is given its place explicitly."""
    tops = {f"vault.{p.stem if p.is_file() else p.name}" for p in ROOT.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert {t for t in tops if rank(t) is None} == set()


def _strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, joined
            yield node.lineno, "".join(v.value for v in node.values if isinstance(v, ast.Constant))


def _outside_store() -> Iterator[tuple[str, Path, ast.Module]]:
    return ((n, p, t) for n, p, t in modules() if STORE not in p.parents)


def test_only_the_store_writes_the_vault_file() -> None:
    """Event rows (and the head, key material, blobs, seal, tokens and batches beside them) are written by
    vault/store alone: a replica appends through `Writer.append_sealed` or `copies.build_file`."""
    found = [f"{path.relative_to(ROOT.parent)}:{line}: {name} writes the vault file ({m.group(0)!r}); only "
             "vault/store may (Writer.append, Writer.append_sealed, copies.build_file)"
             for name, path, tree in _outside_store() for line, text in _strings(tree)
             if (m := WRITES_VAULT_FILE.search(text))]
    assert not found, "\n".join(found)


def test_events_enter_the_log_through_one_statement() -> None:
    """Inside the store too: one INSERT into the log (store/log.py), used by the Writer and by rows sealed
    elsewhere, which `insert_rows` checks first."""
    into_events = re.compile(r"\bINTO\s+(?:main\.)?events\b")
    found = [f"{path.relative_to(ROOT.parent)}:{line}" for _, path, tree in modules()
             for line, text in _strings(tree) if into_events.search(text)]
    assert len(found) == 1 and found[0].startswith("vault/store/log.py:"), found


def test_the_vault_file_is_shaped_in_one_module() -> None:
    """Every CREATE, DROP or ALTER of the vault file (and its per-connection temp objects) is in
    store/schema.py, where the format and its migrations are."""
    ddl = re.compile(r"\b(?:CREATE|DROP|ALTER)\s+(?:TEMP\s+|UNIQUE\s+|VIRTUAL\s+)?(?:TABLE|INDEX|TRIGGER|VIEW)\b")
    found = [f"{path.relative_to(ROOT.parent)}:{line}: {name} shapes the vault file; its DDL belongs in "
             "store/schema.py (a new table or column is a migration there)"
             for name, path, tree in modules() if STORE in path.parents and path.name != "schema.py"
             for line, text in _strings(tree) if ddl.search(text)]
    assert not found, "\n".join(found)


def test_only_the_store_derives_keys() -> None:
    """Every subkey comes from crypto.Keys, the passphrase KDF from crypto.KdfParams: no module outside
    vault/store touches the data key, a KDF or a signing seed."""
    found = []
    for name, path, tree in _outside_store():
        where = path.relative_to(ROOT.parent)
        for line, imported in imports(name, path, tree):
            if imported in KDF_MODULES or any(imported.startswith(m + ".") for m in KDF_MODULES[:3]):
                if imported in ("hashlib", "hmac"):
                    continue  # content digests and constant-time comparison, checked by name below
                found.append(f"{where}:{line}: {name} imports {imported}; only vault/store derives keys")
        for node in ast.walk(tree):
            ident = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            if ident in KDF_NAMES or (ident == "derive" and isinstance(node, ast.Attribute)):
                found.append(f"{where}:{node.lineno}: {name} uses {ident}; only vault/store derives keys")
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value == b"" and any(k.arg == "key" for k in node.keywords)):
                found.append(f"{where}:{node.lineno}: {name} hashes the empty message under a key (a subkey "
                             "derivation); only crypto.Keys derives subkeys")
    assert not found, "\n".join(found)


def test_the_rules_catch_what_they_name(tmp_path: Path) -> None:
    """The checks themselves can fail: a store module importing the front door, an SQL write outside the
    store and a subkey derivation are each found, with module and line."""
    tree = ast.parse("from vault.vault import Vault\nimport click\n")
    bad = [(line, m) for line, m in imports("vault.store.example", ROOT / "store" / "example.py", tree)]
    assert bad == [(1, "vault.vault"), (2, "click")]
    assert rank("vault.vault") > rank("vault.store.example")  # type: ignore[operator]
    assert WRITES_VAULT_FILE.search('"INSERT OR IGNORE INTO events (seq, hash, payload) VALUES (?, ?, ?)"')
    assert WRITES_VAULT_FILE.search("INSERT INTO main.head VALUES (1)")
    assert not WRITES_VAULT_FILE.search("INSERT INTO contact_history (id) VALUES (?)")
    assert not WRITES_VAULT_FILE.search("SELECT id FROM blobs")


def test_every_module_is_in_architecture_md() -> None:
    """docs/architecture.md draws the tree one line per module: a module added or moved shows up there."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "architecture.md").read_text()
    tree = doc[doc.index("```") + 3:doc.index("```", doc.index("```") + 3)]
    listed, folder = set(), ""
    for line in tree.splitlines():
        name = line.split()[0] if line.strip() else ""
        if line.startswith("vault/") and name.endswith("/"):
            folder = name
        elif line.startswith("vault/"):
            listed.add(name)
        elif line.startswith("  ") and name.endswith(".py"):
            listed.add(folder + name)
    modules = {str(p.relative_to(root)) for p in (root / "vault").rglob("*.py")
               if p.name != "__init__.py" or p.parent.name in ("vault", "cli")}
    assert sorted(modules - listed) == []
