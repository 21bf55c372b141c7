"""The plugin manager and the format registry the core owns.

Built-in formats are modules listed in DEFAULT_PLUGINS and go through the same
hooks as outside plugins. Entry points of the group `lifevault` are loaded
only when asked (`load_entrypoints`, which the CLI calls), never on import, so
tests see exactly the plugins they register.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pluggy

from vault.formats import hookspecs
from vault.errors import IngestError, VaultError
from vault.formats.contract import Exporter, Importer, Input

DEFAULT_PLUGINS: tuple[str, ...] = (
    "ingest.jsonl",
    "ingest.vcard",
    "ingest.google_csv",
    "ingest.markdown",
    "ingest.mail",
    "ingest.sms", "ingest.whatsapp", "ingest.enex", "ingest.keep",
    "ingest.telegram",
    "vault.replica.targets",  # the folder and rclone replica targets (register_targets)
)
ENTRY_POINT_GROUP = hookspecs.PROJECT
NO_ENTRYPOINTS_ENV = "LIFEVAULT_NO_ENTRYPOINTS"  # set by the test suite: only explicit plugins
_FORMAT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class PluginError(VaultError):
    """A plugin that cannot be used: a bad or duplicate format, or a failing hook."""

    http_status = 500


class UnknownFormat(VaultError):
    http_status = 404

    def __init__(self, name: str, what: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"No {what} named {name!r}; known: {', '.join(sorted(known)) or 'none'}.")


@dataclass(frozen=True)
class Provided:
    """A registered format and the plugin that provided it."""

    fmt: Any
    plugin: str


@dataclass
class Registry:
    """Importers and exporters by format name; a name can be registered once per direction."""

    importers: dict[str, Provided] = field(default_factory=dict)
    exporters: dict[str, Provided] = field(default_factory=dict)

    def add(self, table: dict[str, Provided], what: str, fmt: Any, plugin: str, needs: tuple[str, ...]) -> None:
        name = getattr(fmt, "name", None)
        if not isinstance(name, str) or not _FORMAT_NAME.match(name):
            raise PluginError(f"Plugin {plugin} registered an {what} with a bad name {name!r} (use a-z, 0-9, _ or -).")
        missing = [a for a in needs if not hasattr(fmt, a)]
        if missing:
            raise PluginError(f"Plugin {plugin}'s {what} {name!r} lacks {', '.join(missing)}.")
        if name in table:
            raise PluginError(
                f"Plugin {plugin} registers the {what} {name!r}, already provided by {table[name].plugin}."
            )
        table[name] = Provided(fmt, plugin)

    def importer(self, name: str) -> Importer:
        if name not in self.importers:
            raise UnknownFormat(name, "importer", list(self.importers))
        return self.importers[name].fmt

    def exporter(self, name: str) -> Exporter:
        if name not in self.exporters:
            raise UnknownFormat(name, "exporter", list(self.exporters))
        return self.exporters[name].fmt

    def detect(self, source: Input | Path) -> Importer:
        """The one importer whose `detect` accepts `source`; IngestError when none or several do."""
        path = Input.of(source)
        if not path.exists():
            raise IngestError(path, None, "no such file or folder")
        hits = [p.fmt for p in self.importers.values() if _safe_detect(p, path)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise IngestError(path, None, "no importer recognises this content; name the format: "
                              "lifevault import FORMAT PATH (see lifevault plugins)")
        names = ", ".join(sorted(h.name for h in hits))
        raise IngestError(path, None, f"several importers recognise it ({names}); name one: lifevault import FORMAT PATH")


def _safe_detect(p: Provided, src: Input) -> bool:
    given = input_for(p.fmt, src)
    if given is None:
        return False  # bytes, and an importer that reads only files on disk
    try:
        return bool(p.fmt.detect(given))
    except (OSError, ValueError, UnicodeError):
        return False  # a detector that chokes on the content means "not mine"


def takes_streams(importer: Importer) -> bool:
    """Whether the importer reads an Input (bytes too), rather than a Path (the contract before streams)."""
    return getattr(importer, "streams", False) is True


def input_for(importer: Importer, src: Input) -> Input | Path | None:
    """What to hand the importer for `src`: the Input itself, its path, or None (bytes it cannot take)."""
    return src if takes_streams(importer) else src.path


_pm: pluggy.PluginManager | None = None
_entrypoints_loaded = False


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created with the default plugins on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(name), name=name)
        _pm = pm
    return _pm


def load_entrypoints() -> int:
    """Load installed plugins (entry-point group `lifevault`) once; returns how many were new."""
    global _entrypoints_loaded
    if _entrypoints_loaded or os.environ.get(NO_ENTRYPOINTS_ENV):
        return 0
    _entrypoints_loaded = True
    try:
        return plugin_manager().load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as e:  # a broken installed package: say which, rather than a traceback
        raise PluginError(f"An installed lifevault plugin failed to load ({type(e).__name__}: {e}); "
                          "uninstall or fix it.") from e


def register_plugin(plugin: ModuleType | object, name: str | None = None) -> str:
    """Register a plugin explicitly (tests, embedding); returns its name."""
    registered = plugin_manager().register(plugin, name=name)
    if registered is None:
        raise PluginError(f"Plugin {name or plugin!r} is already registered or blocked.")
    return registered


def unregister_plugin(name: str) -> None:
    plugin_manager().unregister(name=name)


def registry() -> Registry:
    """A registry built from every plugin registered now (built-ins, explicit, loaded entry points)."""
    pm, reg = plugin_manager(), Registry()
    _collect(pm, pm.hook.register_importers, lambda fmt, plugin: reg.add(
        reg.importers, "importer", fmt, plugin, ("name", "version", "description", "detect", "read")))
    _collect(pm, pm.hook.register_exporters, lambda fmt, plugin: reg.add(
        reg.exporters, "exporter", fmt, plugin, ("name", "description", "write")))
    return reg


def _collect(pm: pluggy.PluginManager, hook: Any, add: Callable[[Any, str], None]) -> None:
    # Call each implementation on its own so every format is attributed to its plugin.
    for impl in hook.get_hookimpls():
        plugin = pm.get_name(impl.plugin) or impl.plugin_name
        try:
            impl.function(register=lambda fmt, _p=plugin: add(fmt, _p))
        except VaultError:
            raise
        except Exception as e:
            raise PluginError(f"Plugin {plugin} failed while registering formats: {e}.") from e


def describe_plugins() -> list[dict[str, Any]]:
    """Each registered plugin: name, where it comes from, and the formats it provides."""
    pm, reg = plugin_manager(), registry()
    dists = {id(p): f"{d.project_name} {d.version}" for p, d in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        out.append({
            "name": name,
            "package": dists.get(id(plugin), "built-in" if name in DEFAULT_PLUGINS else None),
            "importers": sorted(k for k, v in reg.importers.items() if v.plugin == name),
            "exporters": sorted(k for k, v in reg.exporters.items() if v.plugin == name),
        })
    return out
