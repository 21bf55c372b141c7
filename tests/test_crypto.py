"""The crypto module's shortcuts must stay byte-compatible with the PyNaCl APIs they stand in for."""

import os

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import pytest

from vault import crypto


def test_seal_is_nacl_secret_aead_format_both_ways() -> None:
    key, aad = os.urandom(32), b"vault id, seq, previous hash"
    assert nacl.secret.Aead(key).decrypt(crypto.seal(key, b"an event", aad), aad) == b"an event"
    assert crypto.open_sealed(key, bytes(nacl.secret.Aead(key).encrypt(b"an event", aad)), aad) == b"an event"
    with pytest.raises(nacl.exceptions.CryptoError):
        crypto.open_sealed(key, crypto.seal(key, b"an event", aad), aad + b"!")


def test_blake2b_is_libsodium_generichash() -> None:
    data, key = os.urandom(500), os.urandom(32)
    ours = crypto.blake2b(data, key=key, person=b"lv-chain", size=32)
    theirs = nacl.hash.blake2b(data, digest_size=32, key=key, person=b"lv-chain", encoder=nacl.encoding.RawEncoder)
    assert ours == theirs
