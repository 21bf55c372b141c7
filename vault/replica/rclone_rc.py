"""One `rclone rcd` serving every rclone call of a push, instead of one `rclone` process per call.

A first push to a remote makes about eight calls (lease, listings, the two-writer
checks, segments, manifest); each `rclone` process costs about 0.1 s to start
here, as long as a 60 MB push to loopback WebDAV takes to send. The daemon
listens on a loopback port rclone picks, behind a random user and password
passed through its environment (never its command line), and serves files
(`--rc-serve`) for reads. It runs with rclone's own retry and idle-timeout
flags; each call still has its own time limit (a frozen server is answered
within it, and the daemon is then stopped). It dies with the thread that
started it (PR_SET_PDEATHSIG, through util-linux's `setpriv`), so a pusher killed with SIGKILL leaves no daemon
behind; otherwise it is stopped when the push ends.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from vault.paths import private_file

_START_TIMEOUT = 10.0  # seconds for the daemon to listen
_LISTENING = re.compile(rb"Serving remote control on http://127\.0\.0\.1:(\d+)/")


class RcFailed(Exception):
    """rclone answered a call with an error: `status` is its HTTP status (404: not found), `reason` its message."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class RcTimeout(Exception):
    """A call got no answer within its time limit."""


def _dies_with_parent() -> list[str]:
    """A prefix for the daemon's command: util-linux's `setpriv` asks Linux to SIGKILL it when the thread that
    started it ends (PR_SET_PDEATHSIG), then runs it. A preexec_fn could do the same, but Python code between
    fork and exec may deadlock in a threaded server (`serve` pushes from a thread). [] where there is none."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class RcSession:
    """A running `rclone rcd` and the calls made to it."""

    def __init__(self, proc: subprocess.Popen, port: int, auth: str, log: Path) -> None:
        self._proc, self._port, self._auth, self._log = proc, port, auth, log

    @classmethod
    def start(cls, flags: list[str], scratch: Path, deadline: float | None = None) -> RcSession:
        """Start the daemon (its log in `scratch`, a private folder); OSError or RcFailed if it does not listen."""
        user, password = secrets.token_hex(16), secrets.token_hex(32)
        log = private_file(scratch / "rcd.log")
        env = dict(os.environ, RCLONE_RC_USER=user, RCLONE_RC_PASS=password)
        with open(log, "wb") as out:
            # --log-level: the line naming its port is a NOTICE, whatever RCLONE_LOG_LEVEL the user has set
            proc = subprocess.Popen([*_dies_with_parent(), "rclone", "rcd", "--rc-addr", "127.0.0.1:0", "--rc-serve",
                                     "--log-level", "NOTICE", *flags], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
                                    umask=0o077)  # what it fetches is private
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        limit = time.monotonic() + _START_TIMEOUT
        if deadline is not None:
            limit = min(limit, deadline)
        while (m := _LISTENING.search(log.read_bytes())) is None:
            if proc.poll() is not None or time.monotonic() > limit:
                _stop(proc)
                raise RcFailed(0, _last_line(log.read_bytes()) or "rclone rcd did not start")
            time.sleep(0.005)
        return cls(proc, int(m[1]), auth, log)

    def call(self, method: str, timeout: float, **params: Any) -> dict:
        """POST an rc method; RcFailed with rclone's status and message, RcTimeout past `timeout` seconds."""
        body = json.dumps(params).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self._port}/{method}", data=body,
                                     headers={"Content-Type": "application/json", "Authorization": self._auth})
        return json.loads(self._send(req, timeout))

    def fetch(self, fs: str, name: str, timeout: float) -> bytes:
        """A file's bytes, served by the daemon; RcFailed(404) when it does not exist."""
        path = urllib.parse.quote(f"[{fs}]/{name}", safe="/:[]")
        req = urllib.request.Request(f"http://127.0.0.1:{self._port}/{path}", headers={"Authorization": self._auth})
        return self._send(req, timeout)

    def _send(self, req: urllib.request.Request, timeout: float) -> bytes:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise RcFailed(e.code, _error_of(e)) from None
        except (TimeoutError, socket.timeout) as e:
            raise RcTimeout(str(e)) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise RcTimeout(str(e.reason)) from None
            raise RcFailed(0, f"rclone rcd stopped answering ({e.reason})") from None
        except (http.client.HTTPException, OSError) as e:  # e.g. a file removed while being served: cut short
            raise RcFailed(0, f"rclone's answer was cut short ({type(e).__name__})") from None

    def close(self) -> None:
        _stop(self._proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _error_of(answer: urllib.error.HTTPError) -> str:
    """rclone's message in an error answer (whose body may be cut short: a file removed while being served)."""
    try:
        return str(json.loads(answer.read())["error"])
    except (ValueError, KeyError, TypeError, http.client.HTTPException, OSError):
        return f"rclone answered {answer.code} {answer.reason}"


def _last_line(log: bytes) -> str:
    lines = [ln for ln in log.decode(errors="replace").splitlines() if ln.strip() and "NOTICE" not in ln]
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", lines[-1]).rstrip(".") if lines else ""


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A private folder for the daemon's log and the files a session stages."""
    return tempfile.TemporaryDirectory(prefix="lifevault-rc-")
