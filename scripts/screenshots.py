"""The time machine's screenshot for README, taken from a freshly built demo vault so it stays current.

    python scripts/screenshots.py            # writes docs/img/time-machine.png
    python scripts/screenshots.py --out DIR  # elsewhere

It builds the demo vault in a temporary folder, runs the real `lifevault serve` on a free loopback port, and
drives Debian's chromium through Playwright: a contact's page as it was just before it was deleted, with the
dated "as of" banner and the timeline in words.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# A contact the demo edited and then deleted, and the event that deleted it.
FEATURED_SQL = ("SELECT id, max(seq_from) AS deleted_at FROM contacts_history WHERE deleted = 1 AND id IN "
                "(SELECT id FROM contacts_history WHERE event = 'updated') GROUP BY id ORDER BY 2 DESC LIMIT 1")


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


def time_machine(page: Any, url: str) -> None:
    """A contact's page as it was just before it was deleted: the dated banner and the timeline in words."""
    featured = httpx.get(url + "/vault.json", params={"sql": FEATURED_SQL, "_shape": "array"}, timeout=30).json()[0]
    page.goto(f"{url}/-/as-of?seq={featured['deleted_at'] - 1}&next=/-/record/{featured['id']}")


def take(out: Path) -> Path:
    """Build the demo vault, serve it, and write time-machine.png into `out`."""
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from vault.demo import DEMO_PASSPHRASE, build_demo

    out.mkdir(parents=True, exist_ok=True)
    target = out / "time-machine.png"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        os.environ["LIFEVAULT_HOME"] = str(home)
        build_demo(Path(tmp), kdf_cost="min")
        proc, url = _serve(Path(tmp) / "demo.db", home, DEMO_PASSPHRASE)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                time_machine(page, url)
                page.screenshot(path=str(target))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for the picture")
    print(take(parser.parse_args().out))


if __name__ == "__main__":
    main()
