"""Encrypted replicas of a vault on storage its owner chooses (local folders, rclone remotes).

A replica is a folder of immutable segment files (the vault's raw, already
encrypted rows) and one signed manifest written last. It never holds
plaintext; anyone can check it (`verify_replica` without keys), and with the
passphrase or recovery key `clone` rebuilds an identical vault from it.

    from vault.replica import add_replica, push, verify_replica, clone
"""

from vault.replica.compact import CompactResult, compact
from vault.replica.check import Candidate, ReplicaReport, clone, survey, verify, verify_pinned, verify_replica
from vault.replica.compare import Relation, relation
from vault.replica.errors import (
    ForeignReplica, ReplicaAhead, ReplicaBusy, ReplicaConflict, ReplicaDamaged, ReplicaError, ReplicaForked,
    ReplicaMissing, ReplicaRolledBack, ReplicaUnreachable, UnknownReplica,
)
from vault.replica.fork import ForkResult, pull_fork
from vault.replica.pusher import Pusher, failing_replicas, push_on_change
from vault.replica.registry import Replica, registry_path
from vault.replica.registry import add as add_replica
from vault.replica.registry import get as get_replica
from vault.replica.registry import mark_offsite
from vault.replica.registry import remove as remove_replica
from vault.replica.registry import replicas
from vault.replica import status as status_module
from vault.replica.status import CopyStatus, Status, status
from vault.replica.sync import PullResult, PushResult, pull, push, relation_of, reseed, unlock
from vault.replica.targets import LocalFolder, RcloneRemote, target_for

__all__ = [
    "CompactResult", "compact",
    "Candidate", "survey", "verify_pinned", "CopyStatus", "ForeignReplica", "ForkResult", "Relation", "pull_fork", "relation", "relation_of", "LocalFolder", "PullResult", "PushResult", "Pusher", "failing_replicas", "RcloneRemote", "Replica",
    "ReplicaAhead", "ReplicaBusy", "ReplicaConflict", "ReplicaDamaged", "ReplicaError", "ReplicaForked", "ReplicaMissing", "ReplicaReport",
    "ReplicaRolledBack", "ReplicaUnreachable", "Status", "UnknownReplica", "add_replica", "clone", "get_replica", "mark_offsite", "status_module",
    "pull", "push", "push_on_change", "registry_path", "remove_replica", "replicas", "status", "target_for", "reseed", "unlock", "verify", "verify_replica",
]
