"""The hooks a lifevault plugin can implement (pluggy project name `lifevault`).

A plugin is a module or object with functions marked `@hookimpl`; it is found
through the entry-point group `lifevault` or registered explicitly. Formats
register through a callback so the core owns the registry (see plugins.py).
"""

from __future__ import annotations

from typing import Callable

import pluggy

from vault.formats.contract import Exporter, Importer

PROJECT = "lifevault"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_importers(register: Callable[[Importer], None]) -> None:
    """Call `register(importer)` once for each importer this plugin provides."""


@hookspec
def register_exporters(register: Callable[[Exporter], None]) -> None:
    """Call `register(exporter)` once for each exporter this plugin provides."""
