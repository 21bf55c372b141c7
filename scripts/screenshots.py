"""Screenshots of the web pages for README, taken from a freshly built demo vault so they stay current.

    python scripts/screenshots.py            # writes docs/img/*.png
    python scripts/screenshots.py --out DIR  # elsewhere

It builds the demo vault in a temporary folder, runs the real `lifevault serve`
on a free loopback port, and drives Debian's chromium through Playwright. Each
picture is one `Shot` in SHOTS: a name, a page, and optionally what to do on
the page before the picture is taken; add an entry to add a picture.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# A contact the demo edited and then deleted, and the event that deleted it.
FEATURED_SQL = ("SELECT id, max(seq_from) AS deleted_at FROM contacts_history WHERE deleted = 1 AND id IN "
                "(SELECT id FROM contacts_history WHERE event = 'updated') GROUP BY id ORDER BY 2 DESC LIMIT 1")


@dataclass(frozen=True)
class Shot:
    """One picture: `path` opened on the served demo, `prepare(page, url)` run, then the page captured."""

    name: str
    path: str
    prepare: Callable[[Any, str], None] | None = None
    full_page: bool = False


def time_machine(page: Any, url: str) -> None:
    """A contact's page as it was just before it was deleted: the dated banner and the timeline in words."""
    featured = httpx.get(url + "/vault.json", params={"sql": FEATURED_SQL, "_shape": "array"}, timeout=30).json()[0]
    page.goto(f"{url}/-/as-of?seq={featured['deleted_at'] - 1}&next=/-/record/{featured['id']}")


SHOTS = [
    Shot("contacts.png", "/vault/contacts"),
    Shot("time-machine.png", "/", time_machine),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(vault_path: Path, home: Path, passphrase: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, LIFEVAULT_HOME=str(home), LIFEVAULT_PATH=str(vault_path), LIFEVAULT_PASSPHRASE=passphrase,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", "from vault.cli import cli; cli()", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("lifevault serve exited before answering")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("lifevault serve did not answer in 60 s")


def take(out: Path, shots: list[Shot] = SHOTS) -> list[Path]:
    """Build the demo vault, serve it, and write each shot into `out`."""
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from vault.demo import DEMO_PASSPHRASE, build_demo

    out.mkdir(parents=True, exist_ok=True)
    written = []
    saved_home = os.environ.get("LIFEVAULT_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        os.environ["LIFEVAULT_HOME"] = str(home)  # the demo's seen-heads record stays in the temporary folder
        try:
            build_demo(Path(tmp), kdf_cost="min")
        finally:
            if saved_home is None:
                os.environ.pop("LIFEVAULT_HOME")
            else:
                os.environ["LIFEVAULT_HOME"] = saved_home
        proc, url = _serve(Path(tmp) / "demo.db", home, DEMO_PASSPHRASE)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for shot in shots:
                    page.goto(url + shot.path)
                    if shot.prepare:
                        shot.prepare(page, url)
                    target = out / shot.name
                    page.screenshot(path=str(target), full_page=shot.full_page)
                    written.append(target)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for the pictures")
    for path in take(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
