"""What can go wrong with a replica, each as one sentence naming the replica.

    VaultError
    └── ReplicaError                 base for everything below
        ├── UnknownReplica(name)     no replica by that name for this vault
        ├── ReplicaMissing           the folder is gone or the replica is empty (an unmounted drive)
        ├── ReplicaUnreachable       the remote does not answer (rclone's reason attached)
        ├── ReplicaRolledBack        its head is older than what this vault already pushed
        ├── ReplicaForked            same seq, different hash: another history
        ├── ReplicaAhead             it holds events this vault lacks (pull first)
        ├── ReplicaBusy              another machine holds its lease (is pushing there)
        ├── ReplicaConflict          another push replaced the manifest while this one wrote it
        ├── ReplicaDamaged           a missing, extra, truncated or altered file, or a bad chain/signature
        │   └── RevokedSigner        its manifest is signed by a push key the vault revoked (or no longer lists)
        └── ForeignReplica           it belongs to another vault
"""

from __future__ import annotations

from vault.errors import VaultError


class ReplicaError(VaultError):
    http_status = 409


class UnknownReplica(ReplicaError):
    http_status = 404

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No replica named {name!r} for this vault; `lifevault replica list` shows them.")


class ReplicaMissing(ReplicaError):
    http_status = 503


class ReplicaUnreachable(ReplicaError):
    http_status = 503


class ReplicaRolledBack(ReplicaError):
    pass


class ReplicaForked(ReplicaError):
    pass


class ReplicaAhead(ReplicaError):
    pass


class ReplicaBusy(ReplicaError):
    pass


class ReplicaConflict(ReplicaError):
    pass


class ReplicaDamaged(ReplicaError):
    http_status = 500


class ForeignReplica(ReplicaError):
    pass


class RevokedSigner(ReplicaDamaged):
    """Its rows may be whole, but its listing is vouched for only by a revoked key; a push from the vault checks
    the rows and signs the manifest anew."""
