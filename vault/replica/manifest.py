"""The manifest: the one small file a push rewrites, written after every segment it names.

It names the vault (id and public signing key), the head (seq, chain hash and
the vault's own head MAC and signature), the vault's meta rows (wrapped keys
and public values only, so a fresh machine can unlock a clone) and every
segment with its size and BLAKE2b digest, and the segments pushes repaired. The body is signed with the vault's
Ed25519 key (anyone can check it) and MACed with a key derived from the data
key (checkable with the passphrase).

    manifest.json = {"body": "<canonical JSON>", "sig": hex, "mac": hex}
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from vault.store import crypto
from vault.store.crypto import Keys, PushKeys
from vault.replica import push_key
from vault.replica.errors import ReplicaDamaged, RevokedSigner
from vault.replica.segments import SegmentInfo

FORMAT = "lifevault-replica/2"  # 2: an event segment's digest may cover its framing (segments.py)
_READS = (FORMAT, "lifevault-replica/1")  # a format-1 replica is read, verified, cloned and pushed to as it is
MANIFEST_NAME = "manifest.json"
_SIG_PREFIX = b"lv-manifest"


def _mac(keys: Keys | PushKeys, body: bytes) -> bytes:
    return crypto.blake2b(body, key=keys.manifest, person=b"lv-manifest")


def _encode_meta(meta: dict[str, bytes | str]) -> dict[str, dict[str, str]]:
    return {k: {"text": v} if isinstance(v, str) else {"hex": bytes(v).hex()} for k, v in sorted(meta.items())}


def _decode_meta(d: dict[str, dict[str, str]]) -> dict[str, bytes | str]:
    return {k: v["text"] if "text" in v else bytes.fromhex(v["hex"]) for k, v in d.items()}


@dataclass(frozen=True)
class Manifest:
    """What a replica holds, as of its last completed push."""

    vault_id: bytes
    verify_key: bytes
    head_seq: int
    head_hash: bytes
    head_mac: bytes
    head_sig: bytes
    meta: dict[str, bytes | str]
    events: tuple[SegmentInfo, ...] = ()
    blobs: tuple[SegmentInfo, ...] = ()
    written_at: str = ""
    repairs: tuple[dict[str, str], ...] = ()  # {"segment", "at", "why"}: segments a push re-sent from the vault
    signer: bytes = b""  # a push key's public key (push-key credential), vouched for by `delegation`; b"": the vault's
    delegation: bytes = b""
    body: bytes = field(default=b"", compare=False, repr=False)
    sig: bytes = field(default=b"", compare=False, repr=False)
    mac: bytes = field(default=b"", compare=False, repr=False)

    @property
    def segments(self) -> tuple[SegmentInfo, ...]:
        return self.events + self.blobs

    @property
    def blob_ids(self) -> set[str]:
        return {bid for seg in self.blobs for bid in seg.blob_ids}

    def _body(self) -> bytes:
        d: dict[str, Any] = {
            "format": FORMAT, "vault_id": self.vault_id.hex(), "verify_key": self.verify_key.hex(),
            "head": {"seq": self.head_seq, "hash": self.head_hash.hex(), "mac": self.head_mac.hex(),
                     "sig": self.head_sig.hex()},
            "meta": _encode_meta(self.meta), "written_at": self.written_at,
            "events": [s.as_dict() for s in self.events], "blobs": [s.as_dict() for s in self.blobs],
        }
        if self.repairs:  # absent until the first repair, so older readers see the same body
            d["repairs"] = list(self.repairs)
        if self.signer:
            d["signer"] = {"key": self.signer.hex(), "delegation": self.delegation.hex()}
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    def sealed(self, keys: Keys | PushKeys) -> bytes:
        """The manifest file's bytes, signed and MACed with the vault's keys (or a push credential's)."""
        body = self._body()
        sig = keys.sign(_SIG_PREFIX + body)
        return json.dumps({"body": body.decode(), "sig": sig.hex(), "mac": _mac(keys, body).hex()}).encode()

    def check_signatures(self, where: str, issued: push_key.Issued | None = None, revoked_ok: bool = False) -> None:
        """Blind checks: the manifest's and the head's Ed25519 signatures, and for a push key the vault's vouching
        and that the vault still lists it unrevoked (in `issued`, the vault's list, else the manifest's own copy),
        unless `revoked_ok` (a push about to check the rows and sign anew)."""
        signer = self.verify_key
        if self.signer:
            if not crypto.check_signature(self.verify_key, crypto.push_delegation_message(self.verify_key, self.signer),
                                          self.delegation):
                raise ReplicaDamaged(f"The manifest of {where} is signed by a push key this vault's key never vouched for.")
            listed = issued if issued is not None else push_key.issued_in(self.meta)
            if not revoked_ok and (why := push_key.refusal(listed, self.signer)):
                raise RevokedSigner(f"The manifest of {where} is signed by {why}; a push from the vault (with the "
                                    "passphrase or a current push credential) checks its rows and signs it anew.")
            signer = self.signer
        if not crypto.check_signature(signer, _SIG_PREFIX + self.body, self.sig):
            raise ReplicaDamaged(f"The manifest of {where} is altered: its signature does not verify.")
        msg = crypto.head_message(self.vault_id, self.head_seq, self.head_hash)
        if self.head_seq and not crypto.check_signature(self.verify_key, msg, self.head_sig):
            raise ReplicaDamaged(f"The manifest of {where} names a head whose signature does not verify.")

    def check_mac(self, keys: Keys, where: str) -> None:
        """The checks that need the key: the manifest MAC and the head MAC."""
        if not hmac.compare_digest(_mac(keys, self.body), self.mac):
            raise ReplicaDamaged(f"The manifest of {where} fails its MAC check (altered or not made by this vault).")
        msg = crypto.head_message(self.vault_id, self.head_seq, self.head_hash)
        if self.head_seq and not hmac.compare_digest(keys.head_mac(msg), self.head_mac):
            raise ReplicaDamaged(f"The manifest of {where} names a head whose MAC does not verify.")


def parse(data: bytes, where: str) -> Manifest:
    """Read a manifest file; ReplicaDamaged (one sentence naming `where`) if it is malformed."""
    try:
        outer = json.loads(data)
        body = outer["body"].encode()
        d = json.loads(body)
        if d.get("format") not in _READS:
            raise ReplicaDamaged(f"The manifest of {where} has an unknown format {d.get('format')!r}.")
        h = d["head"]
        return Manifest(
            bytes.fromhex(d["vault_id"]), bytes.fromhex(d["verify_key"]), int(h["seq"]), bytes.fromhex(h["hash"]),
            bytes.fromhex(h["mac"]), bytes.fromhex(h["sig"]), _decode_meta(d["meta"]),
            tuple(SegmentInfo.from_dict(s) for s in d["events"]), tuple(SegmentInfo.from_dict(s) for s in d["blobs"]),
            d.get("written_at", ""), tuple(d.get("repairs", ())), bytes.fromhex(d.get("signer", {}).get("key", "")),
            bytes.fromhex(d.get("signer", {}).get("delegation", "")), body, bytes.fromhex(outer["sig"]),
            bytes.fromhex(outer["mac"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ReplicaDamaged(f"The manifest of {where} cannot be read ({type(e).__name__}: {e}).") from e
