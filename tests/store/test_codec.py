"""Whatever the codec writes reads back the same, including values orjson alone would refuse."""

from __future__ import annotations

import pytest

from vault import Kind, Source, Vault
from vault.store.codec import dumps, loads


@pytest.mark.parametrize("value", [{"n": 2**70}, {"n": -(2**64)}, {"x": 1.5e300, "s": "naïve ☃", "l": [None, True]}])
def test_loads_reads_back_what_dumps_wrote(value: dict) -> None:
    assert loads(dumps(value)) == value
    assert loads(dumps(value).encode()) == value


def test_a_record_with_a_huge_integer_survives_the_projection(vault: Vault) -> None:
    rid = vault.add(Kind.NOTE, {"title": "big", "count": 2**80}, Source("cli"), allow_extra=True)  # the codec, not the schema
    vault.update(rid, {"count": 2**81}, Source("cli"), allow_extra=True)
    assert vault.get(rid)["count"] == 2**81
    assert [v["data"]["count"] for v in vault.history(rid)] == [2**80, 2**81]
