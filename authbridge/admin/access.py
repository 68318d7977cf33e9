"""The access-entry actions, in the names, parameters and JSON of the Amazon EKS API.

Each function is one ``authbridge access …`` verb and returns what ``authbridge
-o json access …`` prints (the table in :mod:`authbridge.cli.access`). The
username and group templates are checked here, by the mapping file's rules,
before the store is asked (:func:`authbridge.mapping.templates.check_access_entry`).

Every action acts on a cluster: its resource is the cluster ARN
``arn:<partition>:eks::<caller's account>:cluster/<cluster id>`` (authbridge
has no regions, and clusters belong to the deployment, so the caller's
account stands in EKS's place). ListAccessPolicies names no cluster, so
``*``. The parameters carry EKS's names: ``clusterName``, ``principalArn``,
``kubernetesGroups``, ``policyArn`` (an ARN or one of the short names),
``accessScope: {"type", "namespaces"}``, ``accessConfig:
{"authenticationMode"}`` (for UpdateClusterConfig).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from authbridge import arn as arns
from authbridge.admin.actions import Action, Document, Target, anywhere
from authbridge.admin.params import Param
from authbridge.errors import InputError, MalformedArn
from authbridge.iam import access
from authbridge.mapping import templates
from authbridge.store.base import Store


def principal_kind(store: Store, principal_arn: str) -> str:
    """``role`` for a role ARN, else ``user``: the stricter rules when in doubt."""
    try:
        partitions = arns.KNOWN_PARTITIONS | {store.partition}
        return arns.parse_principal(principal_arn, partitions=partitions).kind
    except MalformedArn:
        return "user"  # the store then names the ARN's problem


def create_entry(
    store: Store,
    cluster_id: str,
    principal_arn: str,
    *,
    username: str | None,
    groups: Sequence[str],
    entry_type: str,
) -> Document:
    templates.check_access_entry(principal_kind(store, principal_arn), username, tuple(groups))
    entry = store.create_access_entry(
        cluster_id, principal_arn, username=username, groups=groups, entry_type=entry_type
    )
    return {"accessEntry": entry.to_aws()}


def describe_entry(store: Store, cluster_id: str, principal_arn: str) -> Document:
    return {"accessEntry": store.get_access_entry(cluster_id, principal_arn).to_aws()}


def list_entries(store: Store, cluster_id: str) -> tuple[Document, list[dict[str, Any]]]:
    """The JSON document, and the entries' full shapes (for the CLI's table)."""
    entries = [e.to_aws() for e in store.list_access_entries(cluster_id)]
    return {"accessEntries": [e["principalArn"] for e in entries]}, entries


def delete_entry(store: Store, cluster_id: str, principal_arn: str) -> Document:
    store.delete_access_entry(cluster_id, principal_arn)
    return {}


def associate_policy(
    store: Store,
    cluster_id: str,
    principal_arn: str,
    policy: str,
    *,
    scope: str,
    namespaces: Sequence[str],
) -> Document:
    a = store.associate_access_policy(
        cluster_id, principal_arn, policy, scope=scope, namespaces=namespaces
    )
    return {
        "clusterName": a.cluster_id,
        "principalArn": a.principal_arn,
        "associatedAccessPolicy": a.to_aws(),
    }


def disassociate_policy(store: Store, cluster_id: str, principal_arn: str, policy: str) -> Document:
    store.disassociate_access_policy(cluster_id, principal_arn, policy)
    return {}


def list_associated_policies(store: Store, cluster_id: str, principal_arn: str) -> Document:
    entry = store.get_access_entry(cluster_id, principal_arn)
    docs = [a.to_aws() for a in store.list_associated_access_policies(cluster_id, principal_arn)]
    return {
        "clusterName": cluster_id,
        "principalArn": entry.principal_arn,
        "associatedAccessPolicies": docs,
    }


def list_policies() -> Document:
    return dict(access.list_policies_aws())


def cluster_doc(cluster_id: str, mode: str) -> Document:
    return {"cluster": {"name": cluster_id, "accessConfig": {"authenticationMode": mode}}}


def update_cluster_config(store: Store, cluster_id: str, mode: str) -> Document:
    return cluster_doc(cluster_id, store.set_authentication_mode(cluster_id, mode))


def describe_cluster_config(store: Store, cluster_id: str) -> Document:
    return cluster_doc(cluster_id, store.get_authentication_mode(cluster_id))


# --------------------------------------------------------------------------- schema

CLUSTER = Param("clusterName", "cluster_id", required=True, doc="The cluster id.")
PRINCIPAL = Param("principalArn", "principal_arn", required=True, doc="A user or role ARN.")
POLICY = Param("policyArn", "policy", required=True, doc="An access policy ARN or short name.")


def cluster_arn(target: Target, cluster_id: str) -> str:
    return f"arn:{target.partition}:eks::{target.account_id}:cluster/{cluster_id}"


def _cluster(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    cluster_id = args["cluster_id"]
    access.cluster_id(cluster_id)  # ValidationError before the ARN is built of it
    principal = args.get("principal_arn")
    return (cluster_arn(target, cluster_id), *((principal,) if principal else ()))


def _scope(args: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """``accessScope`` as (type, namespaces); the object's own fields checked here."""
    scope = args["scope"]
    if not isinstance(scope, dict):
        raise InputError("accessScope", 'must be an object {"type": ..., "namespaces": [...]}')
    unknown = sorted(set(scope) - {"type", "namespaces"})
    if unknown:
        raise InputError("accessScope", "has fields other than type and namespaces")
    kind = scope.get("type")
    if kind not in ("cluster", "namespace"):
        raise InputError("accessScope.type", "must be cluster or namespace")
    namespaces = scope.get("namespaces", [])
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise InputError("accessScope.namespaces", "must be a list of strings")
    return kind, tuple(namespaces)


def _associate(target: Target, args: Mapping[str, Any]) -> Document:
    kind, namespaces = _scope(args)
    return associate_policy(
        target.store,
        args["cluster_id"],
        args["principal_arn"],
        args["policy"],
        scope=kind,
        namespaces=namespaces,
    )


def _mode(args: Mapping[str, Any]) -> str:
    config = args["config"]
    if not isinstance(config, dict) or set(config) != {"authenticationMode"}:
        raise InputError(
            "accessConfig",
            'must be {"authenticationMode": "CONFIG_MAP" | "API_AND_CONFIG_MAP" | "API"}',
        )
    mode = config["authenticationMode"]
    if not isinstance(mode, str):
        raise InputError("accessConfig.authenticationMode", "must be a string")
    return mode


ACTIONS: Final[tuple[Action, ...]] = (
    Action(
        "CreateAccessEntry",
        "eks",
        "access",
        "access create-entry",
        (
            CLUSTER,
            PRINCIPAL,
            Param("username", "username"),
            Param("kubernetesGroups", "groups", kind="strings", default=()),
            Param("type", "entry_type", default="STANDARD"),
        ),
        lambda t, a: create_entry(
            t.store,
            a["cluster_id"],
            a["principal_arn"],
            username=a["username"],
            groups=a["groups"],
            entry_type=a["entry_type"],
        ),
        _cluster,
        mutating=True,
    ),
    Action(
        "DescribeAccessEntry",
        "eks",
        "access",
        "access describe-entry",
        (CLUSTER, PRINCIPAL),
        lambda t, a: describe_entry(t.store, a["cluster_id"], a["principal_arn"]),
        _cluster,
        mutating=False,
    ),
    Action(
        "ListAccessEntries",
        "eks",
        "access",
        "access list-entries",
        (CLUSTER,),
        lambda t, a: list_entries(t.store, a["cluster_id"])[0],
        _cluster,
        mutating=False,
    ),
    Action(
        "DeleteAccessEntry",
        "eks",
        "access",
        "access delete-entry",
        (CLUSTER, PRINCIPAL),
        lambda t, a: delete_entry(t.store, a["cluster_id"], a["principal_arn"]),
        _cluster,
        mutating=True,
    ),
    Action(
        "AssociateAccessPolicy",
        "eks",
        "access",
        "access associate-policy",
        (CLUSTER, PRINCIPAL, POLICY, Param("accessScope", "scope", kind="object", required=True)),
        _associate,
        _cluster,
        mutating=True,
    ),
    Action(
        "DisassociateAccessPolicy",
        "eks",
        "access",
        "access disassociate-policy",
        (CLUSTER, PRINCIPAL, POLICY),
        lambda t, a: disassociate_policy(t.store, a["cluster_id"], a["principal_arn"], a["policy"]),
        _cluster,
        mutating=True,
    ),
    Action(
        "ListAssociatedAccessPolicies",
        "eks",
        "access",
        "access list-associated-policies",
        (CLUSTER, PRINCIPAL),
        lambda t, a: list_associated_policies(t.store, a["cluster_id"], a["principal_arn"]),
        _cluster,
        mutating=False,
    ),
    Action(
        "ListAccessPolicies",
        "eks",
        "access",
        "access list-policies",
        (),
        lambda t, a: list_policies(),
        anywhere,
        mutating=False,
    ),
    Action(
        "UpdateClusterConfig",
        "eks",
        "access",
        "access update-cluster-config",
        (CLUSTER, Param("accessConfig", "config", kind="object", required=True)),
        lambda t, a: update_cluster_config(t.store, a["cluster_id"], _mode(a)),
        _cluster,
        mutating=True,
    ),
    Action(
        "DescribeCluster",
        "eks",
        "access",
        "access describe-cluster-config",
        (CLUSTER,),
        lambda t, a: describe_cluster_config(t.store, a["cluster_id"]),
        _cluster,
        mutating=False,
    ),
)
