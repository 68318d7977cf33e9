"""Building the explorer's :class:`~authbridge.explain.core.Snapshot` from the store, the
mapping file and each cluster's RBAC (read from the cluster, or rendered).

The store is read once per snapshot (every account's users, groups with their
members, roles; the access snapshot); nothing here talks to a cluster: the caller
passes what :meth:`authbridge.kube.KubeAdapter.rbac_objects` listed, or nothing, and
the bindings ``rbac render`` would write stand in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from authbridge.explain.core import IamSnapshot, Snapshot
from authbridge.explain.rbac import Rbac, rbac_from_objects, rendered_rbac
from authbridge.iam.access import AccessSnapshot
from authbridge.iam.model import Group
from authbridge.mapping.entries import effective_mapping
from authbridge.mapping.model import Mapping as MappingFile
from authbridge.store.base import Store

__all__ = [
    "cluster_mapping",
    "from_store",
    "iam_from_store",
    "live_rbac",
    "rendered_for",
    "snapshot",
]


def iam_from_store(store: Store, partition: str) -> IamSnapshot:
    """Every account's users (with their groups) and roles."""
    users = []
    roles = []
    groups: dict[str, list[Group]] = {}
    for account in store.list_accounts():
        a = account.account_id
        users.extend(store.list_users(a))
        roles.extend(store.list_roles(a))
        for group in store.list_groups(a):
            for member in store.list_group_members(a, group.name):
                groups.setdefault(member.user_id, []).append(group)
    return IamSnapshot(
        partition=partition,
        users=tuple(users),
        groups={k: tuple(sorted(v, key=lambda g: g.arn)) for k, v in groups.items()},
        roles=tuple(roles),
    )


def cluster_mapping(mapping: MappingFile, access: AccessSnapshot, cluster: str) -> MappingFile:
    """The mapping RBAC works from in ``cluster``: the file (when it is for that cluster)
    plus the cluster's access entries (:func:`authbridge.mapping.entries.effective_mapping`)."""
    if mapping.cluster_id is not None and mapping.cluster_id != cluster:
        mapping = replace(
            mapping,
            cluster_id=None,
            map_roles=(),
            map_users=(),
            map_groups=(),
            map_accounts=(),
            bindings=(),
            service_accounts=(),
        )
    return effective_mapping(mapping, access, cluster)


def rendered_for(
    mapping: MappingFile,
    access: AccessSnapshot,
    cluster: str,
    *,
    why: str,
    namespaces: Sequence[str] | None = None,
) -> Rbac:
    """The rendered RBAC of ``cluster`` (``why``: why the cluster itself was not asked)."""
    return rendered_rbac(cluster_mapping(mapping, access, cluster), namespaces=namespaces, why=why)


def live_rbac(objects: Sequence[Mapping[str, Any]], where: str) -> Rbac:
    """The RBAC a live cluster listed (its aggregated ClusterRoles' stored rules stand)."""
    return rbac_from_objects(objects, source="cluster", where=where)


def snapshot(
    *,
    iam: IamSnapshot,
    mapping: MappingFile,
    access: AccessSnapshot,
    clusters: Sequence[str],
    rbac_of: Callable[[str], Rbac] | None = None,
) -> Snapshot:
    """A snapshot over ``clusters``; ``rbac_of(cluster)`` gives a cluster's RBAC (default:
    rendered, "no cluster was asked")."""

    def default(cluster: str) -> Rbac:
        return rendered_for(
            mapping,
            access,
            cluster,
            why=f"cluster {cluster} was not asked (pass --kubeconfig/--context to read it)",
        )

    chosen = rbac_of or default
    return Snapshot(
        iam=iam,
        mapping=mapping,
        access=access,
        rbac={c: chosen(c) for c in clusters},
        clusters=tuple(clusters),
    )


def from_store(
    store: Store,
    *,
    partition: str,
    mapping: MappingFile,
    clusters: Sequence[str],
    rbac_of: Callable[[MappingFile, AccessSnapshot, str], Rbac] | None = None,
) -> Snapshot:
    """:func:`snapshot` with the IAM side and the access entries read from ``store`` now
    (what the CLI does, and the console will): ``rbac_of(mapping, access, cluster)``
    gives a cluster's RBAC (default: rendered)."""
    access = store.access_snapshot()
    iam = iam_from_store(store, partition)
    if rbac_of is None:
        return snapshot(iam=iam, mapping=mapping, access=access, clusters=clusters)
    chosen = rbac_of
    return snapshot(
        iam=iam,
        mapping=mapping,
        access=access,
        clusters=clusters,
        rbac_of=lambda cluster: chosen(mapping, access, cluster),
    )
