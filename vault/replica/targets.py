"""Where a replica lives: a local folder, or any rclone remote (`remote:path`).

A target knows nothing about vaults; it lists, reads and writes whole files.
Folder writes go to a hidden `.partial` file, are fsynced, then renamed, so a
file under its final name is always complete. rclone runs as a real
subprocess with the user's own rclone config (or RCLONE_CONFIG_* variables),
one process per call or, during a push, one `rclone rcd` answering them all
(rclone_rc.py); for a remote, new files are staged in a temporary folder
(ciphertext only) and sent by `rclone copy` (a few large batches), which never
deletes anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Protocol, TypeVar

from vault.formats.hookspecs import hookimpl
from vault.paths import private_dir, private_file
from vault.replica.errors import ReplicaUnreachable
from vault.replica.rclone_rc import RcFailed, RcSession, RcTimeout
from vault.replica.target_types import TargetType, target_for as target_for  # resolved through the hook

PARTIAL = ".partial"
Put = Callable[[str, bytes], None]
_T = TypeVar("_T")
_REMOTE = re.compile(r"^[^/\\]*:")  # `name:path` or rclone's `:backend:path`
# A frozen server accepts the connection and then says nothing: --timeout (idle I/O) ends that, and a
# process timeout (longer for copies, which may send gigabytes) backs it up, so a push never hangs.
_CALL_TIMEOUT, _COPY_TIMEOUT = 120.0, 3600.0  # seconds; $LIFEVAULT_RCLONE_TIMEOUT caps both
_RCLONE_NOT_FOUND = (3, 4)
# Staged bytes per copy of a push: an `rclone copy` process costs about 0.1 s to start here, a call to the
# push's `rclone rcd` milliseconds, so through the daemon sending starts one segment in (100,000 events to
# loopback WebDAV: 0.90 s in 32 MB batches, 0.78 s in 8 MB ones, two sent at once).
_SEND_BYTES, _SEND_BYTES_RC, _SENDERS = 32 << 20, 8 << 20, 2


def rclone_flags() -> list[str]:
    """rclone's own retry and idle-timeout settings: $LIFEVAULT_RCLONE_RETRIES (default 1) and
    $LIFEVAULT_RCLONE_IO_TIMEOUT (seconds without any I/O, default 30)."""
    idle = os.environ.get("LIFEVAULT_RCLONE_IO_TIMEOUT") or "30"
    # `--retries 0` makes rclone attempt nothing and exit 0: every push would "succeed" without sending a byte
    return ["--low-level-retries", str(_retries() + 1), "--retries", str(_retries()),
            "--contimeout", "5s",
            "--timeout", f"{idle}s"]  # rclone's exit codes for "directory not found" and "file not found"


class Target(Protocol):
    """What a replica's place offers. A kind may also offer `session()`, a context around a push's calls that
    makes them cheaper (RcloneRemote's one `rclone rcd`); sync.session enters it when there is one."""

    location: str

    def listing(self) -> dict[str, int] | None:
        """File name -> size; None when the replica's folder does not exist."""

    def read(self, name: str) -> bytes | None:
        """A file's bytes, or None when it does not exist."""

    def writer(self) -> AbstractContextManager[Put]:
        """A context giving put(name, data); every file is in place when it exits."""

    def put_one(self, name: str, data: bytes) -> None:
        """Write one small file now, touching nothing else (a lease)."""

    def local_copy(self, names: list[str]) -> AbstractContextManager[Path]:
        """A local folder holding (at least) these files, for the duration of the context."""

    def remove(self, names: list[str]) -> None:
        """Delete these files (only ever leftovers of an interrupted push)."""

    def set_aside(self, suffix: str) -> str:
        """Move the whole replica to a sibling named with `suffix` (kept, never deleted); returns where it went."""


def is_remote(text: str) -> bool:
    """`remote:path` (or rclone's `:backend:path`), and not a Windows drive letter."""
    return bool(_REMOTE.match(text)) and not re.match(r"^[A-Za-z]:[\\/]", text)


@hookimpl
def register_targets(register: Callable[[TargetType], None]) -> None:
    """The built-in targets, registered as a plugin's would be."""
    register(TargetType("rclone", "any rclone remote, `remote:path` (the user's rclone config or RCLONE_CONFIG_*)",
                        is_remote, RcloneRemote))
    register(TargetType("folder", "a local folder: a mounted drive, a NAS, a synced directory",
                        lambda text: not is_remote(text),
                        lambda text, deadline: LocalFolder(Path(text).expanduser().resolve())))


def _file_size(p: Path) -> list[tuple[str, int]]:
    """[(name, size)] for a regular file, [] for anything else or for one removed since it was listed (another
    pusher's lease, withdrawn)."""
    try:
        st = p.stat()
    except FileNotFoundError:
        return []
    return [(p.name, st.st_size)] if stat.S_ISREG(st.st_mode) else []


class LocalFolder:
    """A folder on a mounted drive, NAS or synced directory."""

    def __init__(self, path: Path) -> None:
        self.path, self.location = path, str(path)

    def listing(self) -> dict[str, int] | None:
        if not self.path.is_dir():
            return None
        with self._errors("list"):
            return {name: size for p in self.path.iterdir() if not p.name.endswith(PARTIAL)
                    for name, size in _file_size(p)}

    def read(self, name: str) -> bytes | None:
        with self._errors("read"):
            try:
                return (self.path / name).read_bytes()
            except FileNotFoundError:
                return None

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """A full disk, a read-only mount or a permission problem, as one sentence."""
        try:
            yield
        except OSError as e:
            where = e.filename2 or e.filename or self.path  # for a rename, the name it was going to
            raise ReplicaUnreachable(f"Cannot {doing} {where}: {e.strerror or e}.") from e

    @contextmanager
    def writer(self) -> Iterator[Put]:
        with self._errors("write to"):
            for stale in self.path.glob(f".*{PARTIAL}"):  # left by an interrupted push (the writer holds the lease)
                if not stale.name.startswith(".lock-"):  # another pusher's lease, being written as we look
                    stale.unlink(missing_ok=True)
            yield self._put
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)  # make the renames durable
            finally:
                os.close(fd)

    def put_one(self, name: str, data: bytes) -> None:
        with self._errors("write to"):
            self._put(name, data)

    def _put(self, name: str, data: bytes) -> None:
        tmp = self.path / f".{name}{PARTIAL}"
        with open(private_file(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)

    @contextmanager
    def local_copy(self, names: list[str]) -> Iterator[Path]:
        yield self.path

    def remove(self, names: list[str]) -> None:
        with self._errors("remove a file from"):
            for name in names:
                (self.path / name).unlink(missing_ok=True)

    def set_aside(self, suffix: str) -> str:
        aside = self.path.with_name(self.path.name + suffix)
        with self._errors("move aside"):
            os.rename(self.path, aside)
            private_dir(self.path)
        return str(aside)


class RcloneRemote:
    """Any rclone remote: each operation is one `rclone` process or, inside `session()`, one call to a shared
    `rclone rcd` (rclone_rc.py)."""

    def __init__(self, spec: str, deadline: float | None = None) -> None:
        self.location, self.deadline = spec.rstrip("/"), deadline
        self._rc: RcSession | None = None
        self._scratch = Path()

    def _path(self, name: str = "") -> str:
        sep = "" if self.location.endswith(":") else "/"
        return f"{self.location}{sep}{name}" if name else self.location

    def _timeout(self, copy: bool) -> float:
        timeout = min(_COPY_TIMEOUT if copy else _CALL_TIMEOUT,
                      float(os.environ.get("LIFEVAULT_RCLONE_TIMEOUT") or _COPY_TIMEOUT))
        if self.deadline is not None:
            timeout = max(min(timeout, self.deadline - time.monotonic()), 0.1)
        return timeout

    def _no_answer(self, doing: str, timeout: float) -> ReplicaUnreachable:
        return ReplicaUnreachable(f"{self.location} is unreachable: rclone {doing} got no answer within "
                                  f"{timeout:.0f} s (a frozen server?).")

    def _run(self, *args: str, ok_missing: bool = False, data: bytes | None = None) -> subprocess.CompletedProcess | None:
        if shutil.which("rclone") is None:
            raise ReplicaUnreachable(f"Cannot reach {self.location}: rclone is not installed.")
        timeout = self._timeout(args[0] == "copy")
        try:  # on a timeout, subprocess.run kills rclone before raising
            # umask for rclone alone: what it writes locally (fetched segments, a local remote) is private
            proc = subprocess.run(["rclone", *args, *rclone_flags()], capture_output=True, timeout=timeout,
                                  umask=0o077, input=data)
        except subprocess.TimeoutExpired:
            raise self._no_answer(args[0], timeout) from None
        if proc.returncode == 0:
            return proc
        if ok_missing and proc.returncode in _RCLONE_NOT_FOUND:
            return None
        raise ReplicaUnreachable(f"{self.location} is unreachable: {_reason(proc.stderr)}.")

    @contextmanager
    def session(self) -> Iterator[None]:
        """Within the block, every call goes to one `rclone rcd`, stopped when it ends (a push makes about eight;
        each process costs ~0.1 s to start here). Should the daemon not start, calls start processes as before."""
        if self._rc is not None or shutil.which("rclone") is None:
            yield
            return
        with tempfile.TemporaryDirectory(prefix="lifevault-rc-") as tmp:
            try:
                rc: RcSession | None = RcSession.start(rclone_flags(), Path(tmp), self.deadline)
            except (OSError, RcFailed):
                rc = None
            self._rc, self._scratch = rc, Path(tmp)
            try:
                yield
            finally:
                self._rc = None
                if rc is not None:
                    rc.close()

    def _rc_call(self, doing: str, call: Callable[[RcSession, float], _T], *, copy: bool = False,
                 ok_missing: bool = False) -> _T | None:
        """One call to the session's daemon, its failures as _run's: None for a missing file or folder when
        `ok_missing`; a copy is tried again as rclone's own --retries would (rc calls are tried once)."""
        rc = self._rc
        if rc is None:  # stopped meanwhile, by a call on another thread that got no answer
            raise ReplicaUnreachable(f"{self.location} is unreachable: an earlier rclone call got no answer.")
        timeout = self._timeout(copy)
        for attempt in range(_retries() if copy else 1):
            try:
                return call(rc, timeout)
            except RcTimeout:
                self._rc = None  # the daemon may hang on with the frozen server: stop it; later calls use processes
                rc.close()
                raise self._no_answer(doing, timeout) from None
            except RcFailed as e:
                if ok_missing and e.status == 404:
                    return None
                if attempt + 1 >= (_retries() if copy else 1):
                    raise ReplicaUnreachable(f"{self.location} is unreachable: {e.reason.rstrip('.')}.") from None
        raise AssertionError("unreachable")

    def listing(self) -> dict[str, int] | None:
        if self._rc is not None:
            out = self._rc_call("lsjson", lambda rc, t: rc.call("operations/list", t, fs=self.location, remote="",
                                                                  opt={"filesOnly": True}), ok_missing=True)
            entries = None if out is None else out["list"]
        else:
            proc = self._run("lsjson", "--files-only", self._path(), ok_missing=True)
            entries = None if proc is None else json.loads(proc.stdout)
        if entries is None:
            return None
        return {e["Name"]: e["Size"] for e in entries if not e["Name"].endswith(PARTIAL)}

    def read(self, name: str) -> bytes | None:
        if self._rc is not None:
            return self._rc_call("cat", lambda rc, t: rc.fetch(self.location, name, t), ok_missing=True)
        proc = self._run("cat", self._path(name), ok_missing=True)
        return None if proc is None else proc.stdout

    @contextmanager
    def writer(self) -> Iterator[Put]:
        """Files are staged in a temporary folder (ciphertext only) and sent by `rclone copy` in batches of about
        _SEND_BYTES (_SEND_BYTES_RC through the daemon) while the next are being made, so a push costs its slower
        half rather than both."""
        limit = _SEND_BYTES if self._rc is None else _SEND_BYTES_RC
        with tempfile.TemporaryDirectory(prefix="lifevault-push-") as tmp, \
                ThreadPoolExecutor(_SENDERS, thread_name_prefix="lifevault-rclone") as pool:
            batch: dict[str, int] = {}  # staged, not yet being sent: name -> size
            sending: list[Future[None]] = []

            def send() -> None:
                sending.append(pool.submit(self._send, tmp, len(sending), list(batch)))
                batch.clear()

            def put(name: str, data: bytes) -> None:
                private_file(Path(tmp) / name).write_bytes(data)
                batch[name] = len(data)
                if sum(batch.values()) >= limit:
                    send()

            yield put
            if batch:
                send()
            for f in sending:
                f.result()  # the first failure, once every batch has ended

    def _send(self, folder: str, n: int, names: list[str]) -> None:
        # always: send even what looks the same, so a half-sent file from an interrupted push is replaced
        self._copy(names, Path(folder) / f".send-{n}", folder, self.location, always=True)

    def _copy(self, names: list[str], listed: Path, src: str, dst: str, *, always: bool = False) -> None:
        """Copy the files `names` from `src` to `dst` (their list written to `listed`); `always`: whatever the
        other side holds (--ignore-times)."""
        _write_list(listed, names)
        if self._rc is not None:
            config = {"NoTraverse": True, **({"IgnoreTimes": True} if always else {})}
            self._rc_call("copy", lambda rc, t: rc.call("sync/copy", t, srcFs=src, dstFs=dst,
                                                        _filter={"FilesFrom": [str(listed)]}, _config=config), copy=True)
            return
        self._run("copy", *(["--ignore-times"] if always else []), "--no-traverse", "--files-from", str(listed), src, dst)

    def put_one(self, name: str, data: bytes) -> None:
        if self._rc is None:
            self._run("rcat", self._path(name), data=data)
            return
        private_file(self._scratch / name).write_bytes(data)
        try:
            self._rc_call("rcat", lambda rc, t: rc.call("operations/copyfile", t, srcFs=str(self._scratch),
                                                        srcRemote=name, dstFs=self.location, dstRemote=name))
        finally:
            (self._scratch / name).unlink()

    @contextmanager
    def local_copy(self, names: list[str]) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="lifevault-fetch-") as tmp:
            if names:
                self._copy(names, Path(tmp) / ".files", self.location, tmp)
            yield Path(tmp)

    def remove(self, names: list[str]) -> None:
        if not names:  # (an empty --files-from would not mean "nothing")
            return
        if self._rc is not None:
            for name in names:  # a name already gone is skipped
                self._rc_call("delete", partial(_delete_file, self.location, name), ok_missing=True)
            return
        with tempfile.TemporaryDirectory(prefix="lifevault-remove-") as tmp:
            listed = _write_list(Path(tmp) / ".files", names)
            # One call; a name already gone is skipped (`deletefile` fails on it, with exit code 1, on a local remote).
            self._run("delete", "--files-from", str(listed), "--no-traverse", self._path(), ok_missing=True)

    def set_aside(self, suffix: str) -> str:
        self._run("move", "--no-traverse", self._path(), self.location + suffix)
        return self.location + suffix


def _write_list(path: Path, names: list[str]) -> Path:
    """A private file naming `names`, one a line (rclone's --files-from)."""
    private_file(path).write_text("".join(f"{n}\n" for n in names))
    return path


def _delete_file(fs: str, name: str, rc: RcSession, timeout: float) -> dict:
    return rc.call("operations/deletefile", timeout, fs=fs, remote=name)


def _retries() -> int:
    return max(int(os.environ.get("LIFEVAULT_RCLONE_RETRIES") or "1"), 1)


def _reason(stderr: bytes) -> str:
    """rclone's last meaningful line, without its timestamp and NOTICE chatter."""
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip() and "NOTICE" not in ln]
    last = lines[-1] if lines else "rclone failed without a message"
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", last).rstrip(".")
