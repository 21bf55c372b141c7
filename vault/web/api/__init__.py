"""The HTTP API under /api for devices and scripts: routes, bodies, uploads, its offline docs."""
