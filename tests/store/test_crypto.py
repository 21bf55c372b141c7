"""The crypto module's shortcuts must stay byte-compatible with the PyNaCl APIs they stand in for."""

import hashlib
import os

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import pytest

from vault.store import crypto


@pytest.mark.parametrize("size", [0, 1, 500, 70_000])
def test_seal_is_nacl_secret_aead_format_both_ways(size: int) -> None:
    key, aad, plain = os.urandom(32), b"vault id, seq, previous hash", os.urandom(size)
    assert nacl.secret.Aead(key).decrypt(crypto.seal(key, plain, aad), aad) == plain
    assert crypto.open_sealed(key, bytes(nacl.secret.Aead(key).encrypt(plain, aad)), aad) == plain


@pytest.mark.parametrize("damage", ["aad", "tag", "nonce", "key", "short"])
def test_open_sealed_refuses_anything_altered(damage: str) -> None:
    key, aad = os.urandom(32), b"vault id, seq, previous hash"
    sealed = bytearray(crypto.seal(key, b"an event", aad))
    if damage == "tag":
        sealed[-1] ^= 1
    elif damage == "nonce":
        sealed[0] ^= 1
    elif damage == "key":
        key = os.urandom(32)
    elif damage == "short":
        sealed = sealed[: crypto.NONCE_BYTES + crypto.TAG_BYTES - 1]
    with pytest.raises(nacl.exceptions.CryptoError):
        crypto.open_sealed(key, bytes(sealed), aad + b"!" if damage == "aad" else aad)


@pytest.mark.parametrize("size", [500, 1 << 16, 3 << 20])  # long inputs go to libsodium itself, short to hashlib
def test_blake2b_is_libsodium_generichash(size: int) -> None:
    data, key = os.urandom(size), os.urandom(32)
    ours = crypto.blake2b(data, key=key, person=b"lv-chain", size=32)
    theirs = nacl.hash.blake2b(data, digest_size=32, key=key, person=b"lv-chain", encoder=nacl.encoding.RawEncoder)
    assert ours == theirs
    assert crypto.blake2b(data, person=b"lv-segment") == hashlib.blake2b(data, digest_size=32, person=b"lv-segment").digest()
