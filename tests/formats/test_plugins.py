"""The plugin system: hooks, the core-owned registry, explicit registration, lazy entry points, the example plugin."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from vault import IngestError, Input, Kind, Vault
from vault.formats import SourceRecord, hookimpl, registry as plugins
from vault.formats.importing import import_file

from conftest import PASSPHRASE

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "plugins" / "lifevault-example"


class WordsImporter:
    """A tiny importer: one note per line of a .words file."""

    name, version, description = "words", "7", "one note per line"

    def detect(self, path: Path) -> bool:
        return path.suffix == ".words"

    def read(self, path: Path) -> Iterator[SourceRecord]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            yield SourceRecord(Kind.NOTE, line, {"title": line}, (), f"line {n}")


class WordsPlugin:
    @hookimpl
    def register_importers(self, register):
        register(WordsImporter())


@pytest.fixture
def registered():
    """Register plugins for one test and always unregister them."""
    names: list[str] = []

    def register(plugin: object, name: str) -> None:
        names.append(plugins.register_plugin(plugin, name))

    yield register
    for name in names:
        plugins.unregister_plugin(name)


def test_builtin_formats_come_through_the_same_hooks() -> None:
    reg = plugins.registry()
    assert {"jsonl", "vcard", "google-csv", "markdown"} <= set(reg.importers)
    assert {"jsonl", "vcard", "markdown"} <= set(reg.exporters)
    assert reg.importers["vcard"].plugin == "ingest.vcard"
    assert {p.plugin for p in reg.importers.values()} <= set(plugins.DEFAULT_PLUGINS)


def test_an_explicit_plugin_registers_imports_and_unregisters(registered, vault: Vault, tmp_path: Path) -> None:
    registered(WordsPlugin(), "words-plugin")
    assert plugins.registry().importers["words"].plugin == "words-plugin"
    path = tmp_path / "list.words"
    path.write_text("milk\neggs\n")
    summary = import_file(vault, path)  # detected through the plugin's own detect()
    assert (summary.format, summary.created) == ("words", 2)
    event = next(iter(vault.events()))
    assert event.event.source.detail["importer"] == "words" and event.event.source.detail["version"] == "7"
    plugins.unregister_plugin("words-plugin")
    assert "words" not in plugins.registry().importers
    plugins.register_plugin(WordsPlugin(), "words-plugin")  # the fixture unregisters it again


def test_a_plugin_of_the_path_contract_gets_a_path_and_never_bytes(registered, vault: Vault, tmp_path: Path) -> None:
    registered(WordsPlugin(), "words-plugin")  # WordsImporter declares no `streams`: it reads a Path
    path = tmp_path / "list.words"
    path.write_text("milk\n")
    assert import_file(vault, Input.from_path(path)).created == 1  # an Input with a path: given the Path
    upload = Input.from_bytes(b"eggs\n", "list.words")
    with pytest.raises(IngestError) as e:
        import_file(vault, upload, "words")
    assert str(e.value) == ("list.words: the words importer reads only files and folders on disk, not bytes; "
                            "import it with `lifevault import`.")
    with pytest.raises(IngestError, match="no importer recognises"):
        plugins.registry().detect(upload)  # never asked to detect bytes it cannot read
    assert vault.log.head().seq == 1


def test_a_duplicate_format_name_is_refused_naming_both_plugins(registered) -> None:
    class Impostor(WordsImporter):
        name = "vcard"

    class ImpostorPlugin:
        @hookimpl
        def register_importers(self, register):
            register(Impostor())

    registered(ImpostorPlugin(), "impostor")
    with pytest.raises(plugins.PluginError, match=r"impostor registers the importer 'vcard', already provided by ingest.vcard"):
        plugins.registry()


@pytest.mark.parametrize("bad, message", [
    (type("NoRead", (), {"name": "noread", "version": "1", "description": "", "detect": lambda s, p: False}),
     "lacks read"),
    (type("BadName", (WordsImporter,), {"name": "Bad Name!"}), "bad name 'Bad Name!'"),
])
def test_a_malformed_format_is_refused(registered, bad: type, message: str) -> None:
    class Plugin:
        @hookimpl
        def register_importers(self, register):
            register(bad())

    registered(Plugin(), "malformed")
    with pytest.raises(plugins.PluginError, match=message):
        plugins.registry()


def test_a_failing_hook_is_one_clear_error(registered) -> None:
    class Broken:
        @hookimpl
        def register_exporters(self, register):
            raise RuntimeError("boom")

    registered(Broken(), "broken")
    with pytest.raises(plugins.PluginError, match="Plugin broken failed while registering formats: boom"):
        plugins.registry()


def test_entry_points_are_never_loaded_implicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = plugins.plugin_manager()
    monkeypatch.setattr(pm, "load_setuptools_entrypoints", lambda group: pytest.fail("entry points loaded"))
    plugins.registry()
    assert plugins.load_entrypoints() == 0  # the suite sets LIFEVAULT_NO_ENTRYPOINTS
    assert {name for name, _ in pm.list_name_plugin()} == set(plugins.DEFAULT_PLUGINS)


def test_the_core_has_no_per_format_branch() -> None:
    """No comparison (`fmt == "vcard"`, `name in ("mbox", …)`) against a format name anywhere in vault/."""
    names = set(plugins.registry().importers) | set(plugins.registry().exporters)
    for path in (REPO / "vault").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and part.value in names:
                        pytest.fail(f"{path.relative_to(REPO)}:{node.lineno} compares with the format {part.value!r}")


def test_plugins_command_lists_plugins_and_formats(run) -> None:
    r = run("plugins")
    assert r.exit_code == 0, r.output
    assert "ingest.vcard (built-in)" in r.output and "importer vcard" in r.output and "exporter vcard" in r.output
    listed = {p["name"]: p for p in json.loads(run("plugins", "--json").output)}
    assert listed["ingest.google_csv"]["importers"] == ["google-csv"] and listed["ingest.google_csv"]["exporters"] == ["google-csv"]


def test_example_plugin_installs_and_imports_through_its_entry_point(created, tmp_path: Path) -> None:
    source, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))  # keep the repo clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(source)], check=True, timeout=300,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "LIFEVAULT_NO_ENTRYPOINTS"}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), LIFEVAULT_PATH=str(created[0]),
               LIFEVAULT_PASSPHRASE=PASSPHRASE)

    def lifevault(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from vault.cli import main; main()", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    listed = lifevault("plugins")
    assert listed.returncode == 0, listed.stderr
    assert "todotxt (lifevault-example 0.1.0)" in listed.stdout and "importer todotxt" in listed.stdout
    todo = tmp_path / "todo.txt"
    shutil.copy(EXAMPLE / "tests" / "todo.txt", todo)
    r = lifevault("import", str(todo), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["format"], summary["created"], len(summary["skipped"])) == ("todotxt", 4, 1)
    assert summary["skipped"][0]["location"] == "line 5"
    with Vault.open(created[0], PASSPHRASE) as v:
        notes = dict(v.projection.state(Kind.NOTE))
    call = next(f for f in notes.values() if f["title"].startswith("Call Ada"))
    assert call["priority"] == "A" and call["projects"] == ["analytical"] and call["due"] == "2024-03-08"


def test_a_broken_installed_plugin_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(group: str) -> int:
        raise ImportError("No module named 'lifevault_broken'")

    monkeypatch.delenv(plugins.NO_ENTRYPOINTS_ENV)
    monkeypatch.setattr(plugins, "_entrypoints_loaded", False)
    monkeypatch.setattr(plugins.plugin_manager(), "load_setuptools_entrypoints", broken)
    with pytest.raises(plugins.PluginError, match="An installed lifevault plugin failed to load .*lifevault_broken"):
        plugins.load_entrypoints()
