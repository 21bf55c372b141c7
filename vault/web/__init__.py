"""The web layer: `lifevault serve` — Datasette for browsing, the FastAPI app under /api.

`LiveVault` (live.py) is the one unlocked vault a server shares between its
pages, its API and its refresh loop; `create_app` (server.py) composes them
into one ASGI app. Nothing here encrypts, chains or replays: it calls the library.
"""

from vault.web.site.live import LiveVault

__all__ = ["LiveVault"]
