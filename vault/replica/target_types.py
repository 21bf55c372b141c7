"""Kinds of place a replica can live, registered through the `register_targets` hook.

The built-in folder and rclone kinds (vault.replica.targets) register exactly as
a third party's would, through the project's one plugin manager. `target_for`
asks each kind, the last-registered plugin's first and the built-ins last,
whether it claims what the user typed: a plugin can take `s3://…` before
rclone's `name:path` or the folder that takes everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from vault.formats.registry import PluginError, plugin_manager
from vault.replica.errors import ReplicaError

if TYPE_CHECKING:
    from vault.replica.targets import Target

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class TargetType:
    """One kind of replica target: which locations it claims and how it opens one."""

    name: str  # shown by `lifevault plugins`, e.g. "folder", "rclone"
    description: str
    claims: Callable[[str], bool]  # whether a location as the user typed it is this kind's
    open: Callable[[str, float | None], Target]  # (location, deadline as time.monotonic() or None) -> Target


@dataclass(frozen=True)
class ProvidedTarget:
    kind: TargetType
    plugin: str


class NoTarget(ReplicaError):
    """No registered kind of target claims a location."""


def target_types() -> list[ProvidedTarget]:
    """Every registered kind, in the order `target_for` asks them; a name registered twice is refused."""
    pm = plugin_manager()
    groups: list[list[ProvidedTarget]] = []
    by_name: dict[str, str] = {}
    for impl in pm.hook.register_targets.get_hookimpls():  # in registration order: the built-ins first
        plugin = pm.get_name(impl.plugin) or impl.plugin_name
        group: list[ProvidedTarget] = []

        def register(kind: TargetType, _plugin: str = plugin, _group: list[ProvidedTarget] = group) -> None:
            if not isinstance(kind, TargetType) or not _NAME.match(kind.name):
                raise PluginError(f"Plugin {_plugin} registered a replica target that is not a TargetType with a "
                                  "name of a-z, 0-9, _ or -.")
            if kind.name in by_name:
                raise PluginError(f"Plugin {_plugin} registers the replica target {kind.name!r}, already provided "
                                  f"by {by_name[kind.name]}.")
            by_name[kind.name] = _plugin
            _group.append(ProvidedTarget(kind, _plugin))

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(f"Plugin {plugin} failed while registering replica targets: {e}.") from e
        groups.append(group)
    return [t for group in reversed(groups) for t in group]  # the last registered plugin is asked first


def target_for(text: str, deadline: float | None = None) -> Target:
    """The Target for a location as the user typed it (`remote:path` is rclone's, a folder anything else,
    unless a plugin claims it first). With `deadline` (time.monotonic()), no call runs past it."""
    for provided in target_types():
        if provided.kind.claims(text):
            return provided.kind.open(text, deadline)
    raise NoTarget(f"No kind of replica target takes {text!r}; `lifevault plugins` lists them.")
