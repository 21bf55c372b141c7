"""schemathesis against the API's own OpenAPI schema, in process, with a valid token: no input gives a 5xx."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from vault import Kind, Source, Vault
from vault.store import tokens
from vault.web.api.routes import VaultHolder, create_api

from conftest import PASSPHRASE

MAX_EXAMPLES = 10  # per operation and mode; the whole file stays well under a minute


@pytest.fixture
def api_schema(tmp_path: Path):
    vault, _ = Vault.create(tmp_path / "vault.db", PASSPHRASE, kdf_cost="min")
    holder = VaultHolder(vault)
    holder.token = tokens.create_token(vault.log, "fuzzer")  # type: ignore[attr-defined]
    for kind, fields in ((Kind.CONTACT, {"name": "Ada"}), (Kind.MESSAGE, {"subject": "Hi"}), (Kind.NOTE, {"title": "T"})):
        vault.add(kind, fields, Source("cli"))
    app = create_api(holder, max_upload=64 * 1024)
    app.state.token = holder.token
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about httpx2
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    vault.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case) -> None:
    token = case.operation.schema.app.state.token
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        response = case.call(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
