"""``authbridge access …``: access entries, in the grammar and JSON shapes of ``aws eks``.

Each command is one admin action of :mod:`authbridge.admin.access`, called
through :meth:`App.admin` (the admin API with ``--profile``/``--endpoint``, else
the store; see :mod:`authbridge.iam.access` for the rules). Text is rendered
from the same document in both modes (``list-entries``: one ARN a line).
The JSON is what ``aws eks … --output json`` prints:

=============================  ===============================================
command                        JSON
=============================  ===============================================
``create-entry``               ``{"accessEntry": {...}}``
``describe-entry``             ``{"accessEntry": {...}}``
``list-entries``               ``{"accessEntries": [principal ARN, ...]}``
``delete-entry``               ``{}``
``associate-policy``           ``{"clusterName", "principalArn",
                               "associatedAccessPolicy": {...}}``
``disassociate-policy``        ``{}``
``list-associated-policies``   ``{"clusterName", "principalArn",
                               "associatedAccessPolicies": [...]}``
``list-policies``              ``{"accessPolicies": [{"name", "arn",
                               "clusterRole"}]}``
``update-cluster-config``      ``{"cluster": {"name", "accessConfig":
                               {"authenticationMode"}}}``
``describe-cluster-config``    the same
=============================  ===============================================

The username and group templates are checked before the store is asked
(in :func:`authbridge.admin.access.create_entry`), by the mapping file's rules
(:func:`authbridge.mapping.templates.check_access_entry`): an access entry
may never use a reserved prefix. Unlike EKS, a cluster's authentication mode
may be set back (``API`` to ``CONFIG_MAP``): the file is one the operator
owns, so going back loses nothing.
"""

from __future__ import annotations

from typing import Any

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.iam import access

_ENTRY_FIELDS = (
    "clusterName",
    "principalArn",
    "username",
    "kubernetesGroups",
    "type",
    "accessEntryArn",
    "createdAt",
    "modifiedAt",
)


@click.group("access")
def access_group() -> None:
    """Manage access entries: IAM principals let into a cluster without the mapping file.

    The commands and JSON shapes follow `aws eks` (create-access-entry,
    associate-access-policy, ...). An entry is bound to the principal's
    unique id: a deleted and re-created user or role does not inherit it.

    \b
    Example:
      authbridge access create-entry --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:role/Deploy --group deployers
      authbridge access associate-policy --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:role/Deploy \\
          --policy edit --scope namespace --namespace 'team-*'
    """


_cluster_option = click.option(
    "--cluster-id", required=True, metavar="ID", help="The cluster (its token audience)."
)
_principal_option = click.option(
    "--principal-arn", required=True, metavar="ARN", help="An IAM user or role ARN."
)
_policy_option = click.option(
    "--policy",
    "--policy-arn",
    "policy",
    required=True,
    metavar="POLICY",
    help="cluster-admin, admin, edit, view, admin-view, or a policy ARN.",
)


def _doc(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The document of an action that always answers one."""
    if doc is None:
        raise AssertionError("the action answered no document")  # pragma: no cover
    return doc


def _entry(cluster_id: str, principal_arn: str) -> dict[str, Any]:
    return {"clusterName": cluster_id, "principalArn": principal_arn}


def _entry_text(doc: dict[str, Any]) -> str:
    return out.fields(doc, _ENTRY_FIELDS)


def _association_text(docs: list[dict[str, Any]], empty: str) -> str:
    rows = [
        {
            "policyArn": d["policyArn"],
            "scope": d["accessScope"]["type"],
            "namespaces": d["accessScope"]["namespaces"],
            "associatedAt": d["associatedAt"],
        }
        for d in docs
    ]
    return out.table(rows, ("policyArn", "scope", "namespaces", "associatedAt"), empty)


@access_group.command("create-entry")
@_cluster_option
@_principal_option
@click.option(
    "--username",
    metavar="TEMPLATE",
    help="Kubernetes username; templates as in the mapping file. Default: the principal's ARN.",
)
@click.option(
    "--group", "--kubernetes-groups", "groups", multiple=True, metavar="G", help="Repeatable."
)
@click.option("--type", "entry_type", default="STANDARD", show_default=True, metavar="TYPE")
@output_option
@pass_app
def create_entry(
    app: App,
    cluster_id: str,
    principal_arn: str,
    username: str | None,
    groups: tuple[str, ...],
    entry_type: str,
) -> None:
    """Create an access entry for a user or role.

    \b
    Example:
      authbridge access create-entry --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:user/alice \\
          --username 'alice' --group devs
    """
    result = _doc(
        app.admin(
            "CreateAccessEntry",
            {
                **_entry(cluster_id, principal_arn),
                "username": username,
                "kubernetesGroups": list(groups),
                "type": entry_type,
            },
        )
    )
    app.emit(result, lambda: _entry_text(result["accessEntry"]))


@access_group.command("describe-entry")
@_cluster_option
@_principal_option
@output_option
@pass_app
def describe_entry(app: App, cluster_id: str, principal_arn: str) -> None:
    """Show one access entry.

    \b
    Example:
      authbridge access describe-entry --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:user/alice
    """
    result = _doc(app.admin("DescribeAccessEntry", _entry(cluster_id, principal_arn)))
    app.emit(result, lambda: _entry_text(result["accessEntry"]))


@access_group.command("list-entries")
@_cluster_option
@output_option
@pass_app
def list_entries(app: App, cluster_id: str) -> None:
    """List the principal ARNs that have an access entry in a cluster.

    \b
    Example:
      authbridge access list-entries --cluster-id prod
    """
    result = _doc(app.admin("ListAccessEntries", {"clusterName": cluster_id}))
    app.emit(
        result,
        lambda: (
            "\n".join(out.clean(arn) for arn in result["accessEntries"])
            or f"No access entries in cluster {cluster_id}."
        ),
    )


@access_group.command("delete-entry")
@_cluster_option
@_principal_option
@output_option
@pass_app
def delete_entry(app: App, cluster_id: str, principal_arn: str) -> None:
    """Delete an access entry and its policy associations.

    \b
    Example:
      authbridge access delete-entry --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:user/alice
    """
    result = _doc(app.admin("DeleteAccessEntry", _entry(cluster_id, principal_arn)))
    app.emit(result, lambda: f"Deleted the access entry for {out.clean(principal_arn)}.")


@access_group.command("associate-policy")
@_cluster_option
@_principal_option
@_policy_option
@click.option(
    "--scope", required=True, type=click.Choice(["cluster", "namespace"]), help="Where it applies."
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="N",
    help="With --scope namespace; repeatable; * patterns (team-*).",
)
@output_option
@pass_app
def associate_policy(
    app: App,
    cluster_id: str,
    principal_arn: str,
    policy: str,
    scope: str,
    namespaces: tuple[str, ...],
) -> None:
    """Associate an access policy with an entry (again: change its scope).

    \b
    Example:
      authbridge access associate-policy --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:user/alice \\
          --policy view --scope namespace --namespace 'team-*' --namespace ci
    """
    result = _doc(
        app.admin(
            "AssociateAccessPolicy",
            {
                **_entry(cluster_id, principal_arn),
                "policyArn": policy,
                "accessScope": {"type": scope, "namespaces": list(namespaces)},
            },
        )
    )
    app.emit(result, lambda: _association_text([result["associatedAccessPolicy"]], ""))


@access_group.command("disassociate-policy")
@_cluster_option
@_principal_option
@_policy_option
@output_option
@pass_app
def disassociate_policy(app: App, cluster_id: str, principal_arn: str, policy: str) -> None:
    """Remove an access policy from an entry.

    \b
    Example:
      authbridge access disassociate-policy --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:user/alice --policy view
    """
    result = _doc(
        app.admin(
            "DisassociateAccessPolicy", {**_entry(cluster_id, principal_arn), "policyArn": policy}
        )
    )
    app.emit(result, lambda: f"Disassociated {access.policy_name(policy)}.")


@access_group.command("list-associated-policies")
@_cluster_option
@_principal_option
@output_option
@pass_app
def list_associated_policies(app: App, cluster_id: str, principal_arn: str) -> None:
    """List the access policies associated with an entry.

    \b
    Example:
      authbridge access list-associated-policies --cluster-id prod \\
          --principal-arn arn:aws:iam::111122223333:user/alice
    """
    result = _doc(app.admin("ListAssociatedAccessPolicies", _entry(cluster_id, principal_arn)))
    app.emit(
        result,
        lambda: _association_text(
            result["associatedAccessPolicies"], "No associated access policies."
        ),
    )


@access_group.command("list-policies")
@output_option
@pass_app
def list_policies(app: App) -> None:
    """List the access policies and the ClusterRole each one is (rbac/access-policies.yaml).

    \b
    Example:
      authbridge access list-policies
    """
    doc = _doc(app.admin("ListAccessPolicies", {}))
    app.emit(doc, lambda: out.table(doc["accessPolicies"], ("name", "clusterRole", "arn"), ""))


@access_group.command("update-cluster-config")
@_cluster_option
@click.option(
    "--authentication-mode",
    required=True,
    metavar="MODE",
    help="CONFIG_MAP (the mapping file only), API_AND_CONFIG_MAP (an entry wins over the"
    " file) or API (entries only).",
)
@output_option
@pass_app
def update_cluster_config(app: App, cluster_id: str, authentication_mode: str) -> None:
    """Set how a cluster's principals are mapped: the file, entries, or both.

    \b
    Example:
      authbridge access update-cluster-config --cluster-id prod --authentication-mode API
    """
    result = _doc(
        app.admin(
            "UpdateClusterConfig",
            {
                "clusterName": cluster_id,
                "accessConfig": {"authenticationMode": authentication_mode},
            },
        )
    )
    mode = result["cluster"]["accessConfig"]["authenticationMode"]
    app.emit(result, lambda: f"{cluster_id}  {mode}")


@access_group.command("describe-cluster-config")
@_cluster_option
@output_option
@pass_app
def describe_cluster_config(app: App, cluster_id: str) -> None:
    """Show a cluster's authentication mode (API_AND_CONFIG_MAP unless set).

    \b
    Example:
      authbridge access describe-cluster-config --cluster-id prod
    """
    result = _doc(app.admin("DescribeCluster", {"clusterName": cluster_id}))
    mode = result["cluster"]["accessConfig"]["authenticationMode"]
    app.emit(result, lambda: f"{cluster_id}  {mode}")


def _register_explain() -> None:
    # Its own module (authbridge.cli.access_explain): the explorer is not an EKS verb.
    from authbridge.cli.access_explain import explain

    access_group.add_command(explain)


_register_explain()
