"""The API's Swagger UI, served from the assets the `fastapi-offline` package installs.

FastAPI's default /docs page loads Swagger UI from a CDN: blank offline, and a
third party learns when the owner reads the docs. This is FastAPI's documented
self-hosting recipe (docs_url=None, get_swagger_ui_html with local URLs), with
a Content-Security-Policy allowing only this site and the page's one inline
script, by hash. The assets are fastapi-offline's (Swagger UI 5): the
swagger-ui-bundle package ships Swagger UI 4.15, which refuses FastAPI's
OpenAPI 3.1 documents ("does not specify a valid version field").
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from vault.web.site.gate import content_security_policy, inline_script_hashes

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs-assets"


def add_docs(app: FastAPI, openapi_path: str) -> None:
    """Serve Swagger UI at /docs for `app` (created with docs_url=None), its files under /docs-assets."""
    assets = files("fastapi_offline") / "static"  # swagger-ui-bundle.js, swagger-ui.css, favicon.png
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="swagger-ui-assets")

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_path, title=f"{app.title} - docs",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # else a badge asks validator.swagger.io
        )
        csp = content_security_policy(inline_script_hashes(bytes(page.body).decode()))
        page.headers["content-security-policy"] = csp
        return page

    app.add_route(DOCS_PATH, docs, include_in_schema=False)  # open, like FastAPI's own docs route
