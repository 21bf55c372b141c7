"""The contract every replica target meets, run against each kind registered through `register_targets`.

Each row of PLACES is a kind of target and how to make its locations: a fresh one (ready for a first push, as
`lifevault replica add` leaves it), one that does not exist, and one that cannot be written. The folder
target runs on a real folder; rclone on a real local remote and on a real WebDAV server (`rclone serve
webdav`); a third-party kind registered by a test plugin runs through the same checks.
`test_every_registered_target_is_under_contract` fails until every registered kind has a row.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pytest

from vault.formats import hookimpl, registry as plugins
from vault.paths import private_dir
from vault.replica import ReplicaUnreachable, target_for
from vault.replica import targets as builtin_targets
from vault.replica.target_types import NoTarget, TargetType, target_types

from helpers.webdav import WebdavServer

needs_rclone = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (.ci/run installs it)")
_count = itertools.count()


class Place(NamedTuple):
    kind: str  # the registered TargetType's name
    fresh: Callable[[], str]  # a new location, ready for a first push
    missing: str  # a location that does not exist
    unwritable: str  # a location every write to fails


# -- a third-party kind, registered through the hook like any plugin's -----------------------------------------
class MemoryTarget:
    """Files in a dict of this process: `mem:NAME`. Small, but a whole Target."""

    stores: dict[str, dict[str, bytes]] = {}

    def __init__(self, text: str, deadline: float | None = None) -> None:
        self.location = text

    def _files(self) -> dict[str, bytes]:
        if self.location.startswith("mem:broken"):
            raise ReplicaUnreachable(f"{self.location} is unreachable: the memory is broken.")
        return self.stores.setdefault(self.location, {})

    def listing(self) -> dict[str, int] | None:
        if self.location not in self.stores:
            return None
        return {n: len(d) for n, d in self._files().items() if not n.endswith(".partial")}

    def read(self, name: str) -> bytes | None:
        return self.stores.get(self.location, {}).get(name)

    @contextmanager
    def writer(self) -> Iterator[Callable[[str, bytes], None]]:
        staged: dict[str, bytes] = {}
        yield staged.__setitem__
        self._files().update(staged)  # every file in place on exit, none before

    def put_one(self, name: str, data: bytes) -> None:
        self._files()[name] = data

    @contextmanager
    def local_copy(self, names: list[str]) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="lifevault-test-") as tmp:
            for name in names:
                (Path(tmp) / name).write_bytes(self._files()[name])
            yield Path(tmp)

    def remove(self, names: list[str]) -> None:
        for name in names:
            self._files().pop(name, None)

    def set_aside(self, suffix: str) -> str:
        self.stores[self.location + suffix] = self.stores.pop(self.location, {})
        self.stores[self.location] = {}
        return self.location + suffix


class MemoryPlugin:
    @hookimpl
    def register_targets(self, register):
        register(TargetType("memory", "files held in this process", lambda t: t.startswith("mem:"), MemoryTarget))


# -- the places -----------------------------------------------------------------------------------------------
def _folder(tmp_path: Path) -> Place:
    def fresh() -> str:
        return str(private_dir(tmp_path / f"replica-{next(_count)}"))

    (tmp_path / "a-file").write_bytes(b"not a folder")
    return Place("folder", fresh, str(tmp_path / "never-made"), str(tmp_path / "a-file" / "replica"))


def _rclone_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    monkeypatch.setenv("RCLONE_CONFIG_LVLOCAL_TYPE", "local")
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "no-rclone.conf"))
    (tmp_path / "a-file").write_bytes(b"not a folder")
    return Place("rclone", lambda: f"lvlocal:{tmp_path}/remote-{next(_count)}", f"lvlocal:{tmp_path}/never-made",
                 f"lvlocal:{tmp_path}/a-file/replica")


def _rclone_webdav(webdav: WebdavServer, monkeypatch: pytest.MonkeyPatch) -> Place:
    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("RCLONE_CONFIG_LVDOWN_TYPE", "webdav")
    monkeypatch.setenv("RCLONE_CONFIG_LVDOWN_URL", f"http://127.0.0.1:{closed}")
    return Place("rclone", lambda: f"lvtest:replica-{next(_count)}", "lvtest:never-made", "lvdown:replica")


def _memory(monkeypatch: pytest.MonkeyPatch) -> Place:
    monkeypatch.setattr(MemoryTarget, "stores", {})

    def fresh() -> str:
        location = f"mem:replica-{next(_count)}"
        MemoryTarget.stores[location] = {}
        return location

    return Place("memory", fresh, "mem:never-made", "mem:broken")


PLACES = ["folder", pytest.param("rclone-local", marks=needs_rclone), pytest.param("rclone-webdav", marks=needs_rclone),
          "memory"]


@pytest.fixture(params=PLACES)
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    if request.param == "folder":
        yield _folder(tmp_path)
    elif request.param == "rclone-local":
        yield _rclone_local(tmp_path, monkeypatch)
    elif request.param == "rclone-webdav":
        yield _rclone_webdav(request.getfixturevalue("webdav"), monkeypatch)
    else:
        name = plugins.register_plugin(MemoryPlugin(), "memory-targets")
        try:
            yield _memory(monkeypatch)
        finally:
            plugins.unregister_plugin(name)


def test_every_registered_target_is_under_contract() -> None:
    assert {t.kind.name for t in target_types()} <= {"folder", "rclone", "memory"}


def test_built_in_targets_come_through_the_hook() -> None:
    assert [(t.kind.name, t.plugin) for t in target_types()] == [
        ("rclone", "vault.replica.targets"), ("folder", "vault.replica.targets")]
    assert "vault.replica.targets" in plugins.DEFAULT_PLUGINS


class SecondFolder:
    @hookimpl
    def register_targets(self, register):
        register(TargetType("folder", "a second folder", lambda t: False, MemoryTarget))


def test_a_plugin_claims_before_the_built_ins_and_a_duplicate_name_is_refused() -> None:
    plugins.register_plugin(MemoryPlugin(), "memory-targets")
    try:
        assert isinstance(target_for("mem:x"), MemoryTarget)  # rclone would take `mem:x` for a remote
        assert isinstance(target_for("other:x"), builtin_targets.RcloneRemote)
        plugins.register_plugin(SecondFolder(), "second-folder")
        with pytest.raises(plugins.PluginError) as e:
            target_types()
        assert str(e.value) == ("Plugin second-folder registers the replica target 'folder', already provided by "
                                "vault.replica.targets.")
    finally:
        plugins.unregister_plugin("memory-targets")
        if plugins.plugin_manager().has_plugin("second-folder"):
            plugins.unregister_plugin("second-folder")


def test_a_location_no_kind_claims_is_one_sentence() -> None:
    plugins.unregister_plugin("vault.replica.targets")  # no folder to take whatever else is typed
    try:
        with pytest.raises(NoTarget) as e:
            target_for("/media/usb/backup")
        assert str(e.value) == "No kind of replica target takes '/media/usb/backup'; `lifevault plugins` lists them."
    finally:
        plugins.register_plugin(builtin_targets, "vault.replica.targets")


class TestTargetContract:
    def test_resolved_through_the_registry(self, place: Place) -> None:
        location = place.fresh()
        claimed = [t.kind.name for t in target_types() if t.kind.claims(location)]
        assert claimed[0] == place.kind
        assert target_for(location).location == location

    def test_a_missing_location_lists_none_and_reads_none(self, place: Place) -> None:
        t = target_for(place.missing)
        assert t.listing() is None
        assert t.read("manifest.json") is None

    def test_a_fresh_location_lists_empty(self, place: Place) -> None:
        assert target_for(place.fresh()).listing() in ({}, None)  # a remote folder appears with its first file

    def test_every_file_is_in_place_when_the_writer_exits(self, place: Place) -> None:
        t = target_for(place.fresh())
        seg, manifest = bytes(range(256)) * 40, b'{"version": 1}'
        with t.writer() as put:
            put("events-1.seg", seg)
            put("manifest.json", manifest)
        assert t.listing() == {"events-1.seg": len(seg), "manifest.json": len(manifest)}
        assert target_for(t.location).read("events-1.seg") == seg  # a new Target object sees the same
        assert t.read("manifest.json") == manifest

    def test_a_file_written_again_is_replaced_whole(self, place: Place) -> None:
        t = target_for(place.fresh())
        with t.writer() as put:
            put("events-1.seg", b"half-sent by an interrupted push, longer than the real one")
        with t.writer() as put:
            put("events-1.seg", b"the real segment")
        assert t.read("events-1.seg") == b"the real segment"
        assert t.listing() == {"events-1.seg": len(b"the real segment")}

    def test_a_missing_file_reads_none(self, place: Place) -> None:
        t = target_for(place.fresh())
        with t.writer() as put:
            put("manifest.json", b"{}")
        assert t.read("events-9.seg") is None

    def test_put_one_writes_now_and_replaces(self, place: Place) -> None:
        t = target_for(place.fresh())
        t.put_one(".lock-a", b"lease 1")
        assert t.listing() == {".lock-a": 7} and t.read(".lock-a") == b"lease 1"
        t.put_one(".lock-a", b"lease 22")
        assert t.read(".lock-a") == b"lease 22" and t.listing() == {".lock-a": 8}

    def test_a_partial_file_is_never_listed(self, place: Place) -> None:
        t = target_for(place.fresh())
        t.put_one(".events-2.seg.partial", b"in progress")
        t.put_one("manifest.json", b"{}")
        assert t.listing() == {"manifest.json": 2}

    def test_remove_deletes_and_a_missing_name_is_no_error(self, place: Place) -> None:
        t = target_for(place.fresh())
        with t.writer() as put:
            put("a.seg", b"a")
            put("b.seg", b"b")
        t.remove(["a.seg", "never-there.seg"])
        assert t.listing() == {"b.seg": 1} and t.read("a.seg") is None

    def test_local_copy_holds_the_files(self, place: Place) -> None:
        t = target_for(place.fresh())
        with t.writer() as put:
            put("a.seg", b"alpha")
            put("b.seg", b"beta")
            put("c.seg", b"gamma")
        with t.local_copy(["a.seg", "b.seg"]) as folder:
            assert (folder / "a.seg").read_bytes() == b"alpha" and (folder / "b.seg").read_bytes() == b"beta"

    def test_set_aside_moves_everything_and_keeps_it(self, place: Place) -> None:
        t = target_for(place.fresh())
        with t.writer() as put:
            put("manifest.json", b"{}")
            put("events-1.seg", b"seg")
        aside = t.set_aside(".forked-1")
        assert target_for(aside).listing() == {"manifest.json": 2, "events-1.seg": 3}
        assert not target_for(t.location).listing()  # gone from where it was (an empty folder or none)

    def test_writes_that_cannot_land_are_one_sentence(self, place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LIFEVAULT_RCLONE_RETRIES", "0")
        t = target_for(place.unwritable)
        with pytest.raises(ReplicaUnreachable) as e:
            with t.writer() as put:
                put("manifest.json", b"{}")
        assert "\n" not in str(e.value) and str(e.value).endswith(".")
        with pytest.raises(ReplicaUnreachable) as e:
            t.put_one(".lock-a", b"lease")
        assert "\n" not in str(e.value)
