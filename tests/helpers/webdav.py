"""A real WebDAV server for rclone remotes: `rclone serve webdav ROOT` on a free loopback port."""

from __future__ import annotations

import subprocess
import socket
import time
from pathlib import Path

from helpers.served import free_port


class WebdavServer:
    """`rclone serve webdav ROOT` on a fixed loopback port; can be stopped and started again."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root, self.log, self.port = root, log, free_port()
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["rclone", "serve", "webdav", str(self.root), "--addr", f"127.0.0.1:{self.port}"],
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, f"rclone serve did not start: {self.log.read_text()}"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
