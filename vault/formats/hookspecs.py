"""The hooks a lifevault plugin can implement (pluggy project name `lifevault`).

A plugin is a module or object with functions marked `@hookimpl`; it is found
through the entry-point group `lifevault` or registered explicitly. Formats and
replica targets register through a callback so the core owns the registry
(see registry.py and vault/replica/target_types.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

from vault.formats.contract import Exporter, Importer

if TYPE_CHECKING:  # the replica package registers its own built-in targets through this hook
    from vault.replica.target_types import TargetType

PROJECT = "lifevault"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_importers(register: Callable[[Importer], None]) -> None:
    """Call `register(importer)` once for each importer this plugin provides."""


@hookspec
def register_exporters(register: Callable[[Exporter], None]) -> None:
    """Call `register(exporter)` once for each exporter this plugin provides."""


@hookspec
def register_targets(register: Callable[[TargetType], None]) -> None:
    """Call `register(TargetType(...))` once for each kind of replica target (where replicas live) provided."""
